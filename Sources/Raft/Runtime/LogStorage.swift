/// The durable half of a Raft node: hard state, log entries and the compaction point.
///
/// Contract (tested against every implementation):
/// - `save` is atomic and, with `sync`, durable when it returns: a crash leaves either all or
///   none of it. Saved entries replace every stored entry at or after the first one's index.
/// - `installSnapshot` discards every entry and records the snapshot's position; it also clears
///   the position recorded by `beginSnapshotInstall`.
/// - `beginSnapshotInstall` durably records the position of a snapshot about to replace the
///   state machine, returned by `load` as `pendingSnapshot` until `installSnapshot` or
///   `beginSnapshotInstall(nil)`. This makes the install recoverable: the state machine's
///   restore and the log's new position are two writes (in two stores, in general), and a
///   crash between them must not leave a log whose entries the state machine already holds.
/// - `compact(through:)` drops entries up to an index and records it as the compaction point,
///   with its term and membership, so that `load` can rebuild the core.
public protocol LogStorage: AnyObject, Sendable {
  /// What is on disk; nil for a node that has never stored anything.
  func load() throws -> StoredLog?
  func save(hardState: HardState?, entries: [Entry], sync: Bool) throws
  func installSnapshot(_ metadata: SnapshotMetadata) throws
  func beginSnapshotInstall(_ metadata: SnapshotMetadata?) throws
  func compact(through metadata: SnapshotMetadata) throws
  /// The group's cluster id (`ClusterIdentity`), 0 when none was ever saved.
  func loadClusterID() throws -> UInt64
  /// Records the cluster id, durably.
  func saveClusterID(_ id: UInt64) throws
}

/// The contents of a `LogStorage`.
public struct StoredLog: Hashable, Sendable {
  public var hardState: HardState
  public var snapshot: SnapshotMetadata
  public var entries: [Entry]
  /// A snapshot install that began and did not finish (see `beginSnapshotInstall`).
  public var pendingSnapshot: SnapshotMetadata?

  public init(
    hardState: HardState, snapshot: SnapshotMetadata, entries: [Entry],
    pendingSnapshot: SnapshotMetadata? = nil
  ) {
    self.hardState = hardState
    self.snapshot = snapshot
    self.entries = entries
    self.pendingSnapshot = pendingSnapshot
  }
}
