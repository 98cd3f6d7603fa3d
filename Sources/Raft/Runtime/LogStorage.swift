/// The durable half of a Raft node: hard state, log entries and the compaction point.
///
/// Contract (tested against every implementation):
/// - `save` is atomic and, with `sync`, durable when it returns: a crash leaves either all or
///   none of it. Saved entries replace every stored entry at or after the first one's index.
/// - `installSnapshot` discards every entry and records the snapshot's position.
/// - `compact(through:)` drops entries up to an index and records it as the compaction point,
///   with its term and membership, so that `load` can rebuild the core.
public protocol LogStorage: AnyObject, Sendable {
  /// What is on disk; nil for a node that has never stored anything.
  func load() throws -> StoredLog?
  func save(hardState: HardState?, entries: [Entry], sync: Bool) throws
  func installSnapshot(_ metadata: SnapshotMetadata) throws
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

  public init(hardState: HardState, snapshot: SnapshotMetadata, entries: [Entry]) {
    self.hardState = hardState
    self.snapshot = snapshot
    self.entries = entries
  }
}
