/// Why the core refused an input.
public enum RaftError: Error, Hashable, Sendable, CustomStringConvertible {
  /// Only the leader accepts proposals; `leader` is the current leader if known.
  case notLeader(leader: NodeID?)
  /// A leadership transfer is under way; proposals resume once it ends.
  case transferInProgress
  /// The previous membership change has not committed yet.
  case membershipChangePending
  /// The leader has not yet committed an entry of its term.
  case leaderNotReady
  case alreadyMember(NodeID)
  case notMember(NodeID)
  case wouldRemoveLastVoter(NodeID)
  /// The transfer target is not a voter other than the leader itself.
  case invalidTransferTarget(NodeID)

  public var description: String {
    switch self {
    case .notLeader(let leader?): return "not the leader; the leader is \(leader)"
    case .notLeader(nil): return "not the leader; no leader is known"
    case .transferInProgress: return "a leadership transfer is in progress"
    case .membershipChangePending: return "another membership change is still pending"
    case .leaderNotReady: return "the leader has not committed an entry of its term yet"
    case .alreadyMember(let id): return "\(id) is already a member"
    case .notMember(let id): return "\(id) is not a member"
    case .wouldRemoveLastVoter(let id): return "removing \(id) would leave no voters"
    case .invalidTransferTarget(let id): return "cannot transfer leadership to \(id)"
    }
  }
}
