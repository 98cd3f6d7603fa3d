/// The kinds of message Raft nodes exchange.
public enum MessageKind: UInt8, Hashable, Sendable, CaseIterable {
  case preVote, preVoteResponse
  case vote, voteResponse
  case append, appendResponse
  case heartbeat, heartbeatResponse
  /// Leader → follower: install this snapshot. Sent by the core without data; the runtime
  /// attaches the state machine image (see `Snapshot`).
  case snapshot
  /// Leader → transfer target: campaign now, skipping pre-vote and the leader lease.
  case timeoutNow
  /// Follower → leader: confirm leadership for a linearizable read, and reply with the index.
  case readIndex, readIndexResponse
}

/// A configuration and the index of the log entry that holds it (for a configuration that
/// comes from a snapshot, the snapshot's index: an upper bound).
public struct IndexedMembership: Hashable, Sendable {
  public var index: UInt64
  public var membership: Membership

  public init(index: UInt64, membership: Membership) {
    self.index = index
    self.membership = membership
  }
}

/// One Raft message. Fields are used per kind, as in etcd's raftpb.Message:
/// - vote / preVote: `index`/`logTerm` are the candidate's last entry;
/// - append: `index`/`logTerm` are the entry before `entries`, `commit` the leader's commit;
/// - appendResponse: `index` is the last index now matching (accepted) or the rejected
///   `index`; on rejection `rejectHint`/`conflictTerm` let the leader skip a whole term;
/// - heartbeat(Response): `readRound` confirms leadership for reads;
/// - readIndex(Response): `context` identifies the read, `index` is the read index.
public struct Message: Hashable, Sendable {
  public var kind: MessageKind
  public var from: NodeID
  public var to: NodeID
  public var term: UInt64
  public var logTerm: UInt64 = 0
  public var index: UInt64 = 0
  public var entries: [Entry] = []
  public var commit: UInt64 = 0
  public var reject: Bool = false
  public var rejectHint: UInt64 = 0
  public var conflictTerm: UInt64 = 0
  public var snapshot: Snapshot? = nil
  public var context: [UInt8] = []
  public var readRound: UInt64 = 0
  /// Set on votes of a campaign started by `timeoutNow`, so voters skip the leader lease.
  public var isTransfer: Bool = false
  /// The sender's newest configuration, for a recipient that may not know the sender yet: a
  /// leader attaches it to appends and heartbeats while the recipient has not acknowledged
  /// its entry, a candidate to every vote request. A member that missed the entry adding the
  /// sender, or a standby being added, recognises the sender by it (see `RaftCore.step`).
  public var senderMembership: IndexedMembership? = nil

  public init(kind: MessageKind, from: NodeID, to: NodeID, term: UInt64) {
    self.kind = kind
    self.from = from
    self.to = to
    self.term = term
  }
}
