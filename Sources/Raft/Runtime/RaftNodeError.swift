/// Why a request to a `RaftNode` failed.
public enum RaftNodeError: Error, Hashable, Sendable, CustomStringConvertible {
  /// Ask the leader instead; it is named when known.
  case notLeader(leader: NodeID?)
  /// Leadership changed before the entry was applied here. Its outcome is unknown: retry with
  /// the same client session and sequence number, which makes the retry exactly-once.
  case leadershipLost
  case timeout
  case stopped
  /// The core refused the request (see `RaftError`).
  case rejected(RaftError)
  /// Storage failed; the node stops, since it can no longer keep its promises.
  case storage(String)
  /// A snapshot transfer was malformed or arrived out of order.
  case badSnapshot(String)
  /// Too many proposal bytes wait to commit (`RaftNodeOptions.maxUncommittedBytes`): retry
  /// once the group has caught up.
  case busy(String)

  public var description: String {
    switch self {
    case .notLeader(let leader?): return "not the leader; try \(leader)"
    case .notLeader(nil): return "not the leader, and no leader is known yet"
    case .leadershipLost: return "leadership changed before the request was applied; outcome unknown"
    case .timeout: return "timed out"
    case .stopped: return "the node is stopped"
    case .rejected(let error): return error.description
    case .storage(let message): return "storage failure: \(message)"
    case .badSnapshot(let message): return "bad snapshot transfer: \(message)"
    case .busy(let message): return "busy: \(message); retry later"
    }
  }

  init(_ error: RaftError) {
    if case .notLeader(let leader) = error {
      self = .notLeader(leader: leader)
    } else {
      self = .rejected(error)
    }
  }
}
