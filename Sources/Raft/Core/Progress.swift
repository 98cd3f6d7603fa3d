/// The leader's view of one follower's log (etcd's `tracker.Progress`).
///
/// Invariant: `match < next`. `match` only grows while this node stays leader.
public struct Progress: Hashable, Sendable {
  public enum State: String, Hashable, Sendable {
    /// Unknown position: one append at a time, backing `next` off on rejections.
    case probe
    /// Known position: appends are pipelined up to the in-flight window.
    case replicate
    /// The follower needs a snapshot; nothing else is sent until it answers or it times out.
    case snapshot
  }

  public var match: UInt64 = 0
  public var next: UInt64
  public var state: State = .probe
  /// In probe state: an append is outstanding, wait for its answer or the next heartbeat.
  var probeSent = false
  /// Last index of each append in flight, oldest first (replicate state).
  var inflight: [UInt64] = []
  /// Tick at which the snapshot was requested (snapshot state).
  var snapshotSentAt = 0
  /// Heard from since the last check-quorum round.
  var recentActive = false
  /// The newest read round this follower has acknowledged.
  var readAck: UInt64 = 0

  init(next: UInt64) { self.next = next }

  mutating func becomeProbe() {
    state = .probe
    probeSent = false
    inflight.removeAll()
    next = match + 1
  }

  mutating func becomeReplicate() {
    state = .replicate
    inflight.removeAll()
    next = match + 1
  }

  /// Records an acknowledgement up to `index`; false if it is stale.
  mutating func update(acknowledged index: UInt64) -> Bool {
    var updated = false
    if match < index {
      match = index
      updated = true
      probeSent = false
    }
    next = max(next, index + 1)
    inflight.removeAll { $0 <= index }
    return updated
  }
}

/// What `RaftCore.status` reports for one peer.
public struct PeerStatus: Hashable, Sendable {
  public var id: NodeID
  public var isVoter: Bool
  /// Replication position, when this node is leader.
  public var match: UInt64?
  public var next: UInt64?
  public var state: Progress.State?
  /// Ticks since this node last heard from the peer.
  public var ticksSinceContact: Int
}

/// A snapshot of a core's state for operators and tests.
public struct RaftStatus: Hashable, Sendable {
  public var id: NodeID
  public var role: RaftRole
  public var term: UInt64
  public var leader: NodeID?
  public var commit: UInt64
  public var applied: UInt64
  public var firstIndex: UInt64
  public var lastIndex: UInt64
  public var membership: Membership
  public var peers: [PeerStatus]
}
