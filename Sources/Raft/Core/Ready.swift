/// The role a core plays in its current term.
public enum RaftRole: String, Hashable, Sendable {
  case follower, preCandidate, candidate, leader
}

/// A read that may be served once the state machine has applied `index`.
public struct ReadState: Hashable, Sendable {
  public var index: UInt64
  public var context: [UInt8]

  public init(index: UInt64, context: [UInt8]) {
    self.index = index
    self.context = context
  }
}

/// Everything the owner of a core must do, in this order:
/// 1. if `snapshot` is set, install it into the state machine and the log storage;
/// 2. persist `entries` (replacing any stored entries at or after the first one's index) and
///    `hardState` in one write, synced to disk when `mustSync` is set;
/// 3. send `messages` (they may depend on step 2), or, when `messagesBeforePersisting` is
///    set, send them at any time from step 1 on: before or while step 2 runs;
/// 4. apply `committedEntries` in order;
/// 5. release `readStates` once the state machine has applied their index;
/// 6. call `advance(_:)` with this value.
public struct Ready: Sendable {
  /// Readies are numbered from 1 so that persistence can be acknowledged in order.
  public var number: UInt64
  public var hardState: HardState?
  /// The write of step 2 must reach the disk before anything that depends on it: set when it
  /// holds entries or a new term or vote. A change of the commit index alone need not be
  /// synced: a restarted node recovers it as at least its state machine's applied index, and
  /// the leader tells it the rest.
  public var mustSync: Bool
  /// Set for a leader whose term and vote are already on disk: its messages (appends,
  /// heartbeats, read answers) promise nothing about its own disk, so they may go out while it
  /// persists (Raft thesis §10.2.1); the core counts its own entries toward a quorum only
  /// after `advance`.
  public var messagesBeforePersisting: Bool
  public var entries: [Entry]
  public var snapshot: Snapshot?
  public var messages: [Message]
  public var committedEntries: [Entry]
  public var readStates: [ReadState]
  /// Set when the role or the known leader changed since the previous Ready.
  public var roleChange: RoleChange?

  public struct RoleChange: Hashable, Sendable {
    public var role: RaftRole
    public var leader: NodeID?
    public var term: UInt64
  }

  public var isEmpty: Bool {
    hardState == nil && entries.isEmpty && snapshot == nil && messages.isEmpty
      && committedEntries.isEmpty && readStates.isEmpty && roleChange == nil
  }
}
