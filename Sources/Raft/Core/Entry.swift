/// What a log entry carries.
public enum EntryPayload: Hashable, Sendable {
  /// Appended by every new leader so that it can commit an entry of its own term (the commit
  /// rule counts replicas only for current-term entries) and so serve reads.
  case noop
  /// An opaque state machine command.
  case command([UInt8])
  /// The complete member list that is in force from the moment this entry is appended to a
  /// log (Raft thesis §4.1). Carrying the whole list, not a delta, lets any node derive its
  /// membership from the newest such entry alone.
  case membership(Membership)
}

/// One entry of the replicated log.
public struct Entry: Hashable, Sendable {
  public var term: UInt64
  public var index: UInt64
  public var payload: EntryPayload

  public init(term: UInt64, index: UInt64, payload: EntryPayload) {
    self.term = term
    self.index = index
    self.payload = payload
  }

  /// The bytes this entry adds to a message, for batching limits.
  public var approximateSize: Int {
    switch payload {
    case .noop: return 16
    case .command(let data): return 16 + data.count
    case .membership(let m): return 16 + (m.voters.count + m.learners.count) * 24
    }
  }
}

/// The state that must be on disk before a node answers any message that depends on it.
public struct HardState: Hashable, Sendable {
  public var term: UInt64
  /// The candidate this node voted for in `term`, if any.
  public var vote: NodeID?
  public var commit: UInt64

  public init(term: UInt64 = 0, vote: NodeID? = nil, commit: UInt64 = 0) {
    self.term = term
    self.vote = vote
    self.commit = commit
  }
}

/// The members of a group. Voters elect leaders and form quorums; learners only receive the
/// log, so that a new node can catch up before it counts toward a quorum.
///
/// Invariant: `voters` and `learners` are sorted and disjoint.
public struct Membership: Hashable, Sendable {
  public private(set) var voters: [NodeID]
  public private(set) var learners: [NodeID]

  public init(voters: [NodeID] = [], learners: [NodeID] = []) {
    let voterSet = Set(voters)
    self.voters = voterSet.sorted()
    self.learners = Set(learners).subtracting(voterSet).sorted()
  }

  public var isEmpty: Bool { voters.isEmpty && learners.isEmpty }
  public var all: [NodeID] { (voters + learners).sorted() }
  public func isVoter(_ id: NodeID) -> Bool { voters.contains(id) }
  public func isLearner(_ id: NodeID) -> Bool { learners.contains(id) }
  public func contains(_ id: NodeID) -> Bool { isVoter(id) || isLearner(id) }
  /// Votes needed to win an election or commit an entry.
  public var quorum: Int { voters.count / 2 + 1 }

  /// The membership after `change`, or why it cannot be made.
  public func applying(_ change: MembershipChange) throws(RaftError) -> Membership {
    switch change {
    case .addLearner(let id):
      if contains(id) { throw .alreadyMember(id) }
      return Membership(voters: voters, learners: learners + [id])
    case .promote(let id):
      if isVoter(id) { throw .alreadyMember(id) }
      guard isLearner(id) else { throw .notMember(id) }
      return Membership(voters: voters + [id], learners: learners.filter { $0 != id })
    case .remove(let id):
      guard contains(id) else { throw .notMember(id) }
      let next = Membership(
        voters: voters.filter { $0 != id }, learners: learners.filter { $0 != id })
      if next.voters.isEmpty { throw .wouldRemoveLastVoter(id) }
      return next
    }
  }
}

/// A single-server membership change. Changes are made one at a time: a leader accepts a new
/// one only when the previous one is committed and it has committed an entry of its own term,
/// so that any two consecutive configurations share a majority (thesis §4.1 plus the fix for
/// the single-server-change bug Ongaro described in 2015).
public enum MembershipChange: Hashable, Sendable {
  case addLearner(NodeID)
  case promote(NodeID)
  case remove(NodeID)
}

/// Where a snapshot stands in the log: the state machine state through `index`, whose entry
/// had `term`, with the membership in force at that index.
public struct SnapshotMetadata: Hashable, Sendable {
  public var index: UInt64
  public var term: UInt64
  public var membership: Membership

  public init(index: UInt64, term: UInt64, membership: Membership) {
    self.index = index
    self.term = term
    self.membership = membership
  }
}

/// A snapshot as it travels between nodes. The core never looks at `data`: the runtime fills
/// it with the state machine's image on the sender and restores it on the receiver.
public struct Snapshot: Hashable, Sendable {
  public var metadata: SnapshotMetadata
  public var data: [UInt8]

  public init(metadata: SnapshotMetadata, data: [UInt8] = []) {
    self.metadata = metadata
    self.data = data
  }
}
