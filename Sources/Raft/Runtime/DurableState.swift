/// A node's two durable stores, its Raft log and its state machine, each behind a serial queue
/// of its own, and the rules that keep them in agreement across crashes.
///
/// Every blocking call a `RaftNode` makes goes through here, so the node's actor never blocks:
/// log writes on one queue, the state machine's apply, sync and images on the other. The two
/// queues run side by side, which is how a Ready's entries are persisted while the previous
/// Ready's committed entries are applied.
///
/// Invariants kept here:
/// - The log never holds an entry the state machine already reflects at a position it would
///   be applied again from: on `open`, the state machine's applied index is at least the log's
///   compaction point.
/// - A snapshot install is three synced writes (the intent in the log, the state machine's
///   new state, the log's new position) and a crash after any prefix of them is recovered by
///   `open` (the restart rule), never by replaying entries the image already holds.
/// - The log is compacted only through an index the state machine has synced.
final class DurableState: Sendable {
  private let log: any LogStorage
  private let stateMachine: any StateMachine
  /// The log's serial context (persisting Readies, installs, compaction).
  private let logIO: IOQueue
  /// The state machine's serial context (apply, sync, images).
  private let applyIO: IOQueue

  /// What `open` found on disk.
  struct Opened {
    var restored: RestoredState
    /// The stored cluster id, or the one a bootstrapped group got; 0 for a standby.
    var clusterID: UInt64
  }

  init(log: any LogStorage, stateMachine: any StateMachine, node: NodeID) {
    self.log = log
    self.stateMachine = stateMachine
    self.logIO = IOQueue(label: "raft.io.\(node)")
    self.applyIO = IOQueue(label: "raft.apply.\(node)")
  }

  /// Reads what both stores hold, first finishing or forgetting an install a crash
  /// interrupted, so the log and the state machine agree before a core is built on them. A
  /// node with nothing stored starts from `bootstrapVoters` and, if it has voters, gets the
  /// cluster id `clusterID` (nil: derived from the voters).
  func open(bootstrapVoters: [NodeID], clusterID: UInt64?) throws(RaftNodeError) -> Opened {
    do {
      var storedID = try log.loadClusterID()
      let applied = stateMachine.appliedIndex
      guard var stored = try log.load() else {
        let restored = RestoredState.bootstrap(voters: bootstrapVoters)
        try log.installSnapshot(restored.snapshot)
        if storedID == ClusterIdentity.unknown && !bootstrapVoters.isEmpty {
          storedID = clusterID ?? ClusterIdentity.derived(fromVoters: bootstrapVoters)
          try log.saveClusterID(storedID)
        }
        return Opened(restored: restored, clusterID: storedID)
      }
      if let pending = stored.pendingSnapshot {
        // The restart rule: if the state machine's restore landed, finish the install, else
        // forget it (the state machine still holds its old state and the log its entries).
        if applied >= pending.index {
          try log.installSnapshot(pending)
        } else {
          try log.beginSnapshotInstall(nil)
        }
        stored = try log.load() ?? stored
      }
      guard applied >= stored.snapshot.index else {
        throw RaftNodeError.storage(
          "state machine applied index \(applied) is behind the log's compaction point "
            + "\(stored.snapshot.index)")
      }
      let restored = RestoredState(
        hardState: stored.hardState, snapshot: stored.snapshot, entries: stored.entries,
        applied: applied)
      return Opened(restored: restored, clusterID: storedID)
    } catch let error as RaftNodeError {
      throw error
    } catch {
      throw .storage("\(error)")
    }
  }

  /// One Ready's hard state and entries, in one write; durable when it returns if `sync`.
  func persist(hardState: HardState?, entries: [Entry], sync: Bool) async throws {
    let log = self.log
    try await logIO.run { try log.save(hardState: hardState, entries: entries, sync: sync) }
  }

  /// Replaces the state machine's state with `image` and moves the log past it, in the three
  /// writes the restart rule in `open` recovers from. The caller has handed every entry before
  /// the image to `apply` and waited for it (they are older state).
  func installSnapshot(_ metadata: SnapshotMetadata, from image: any SnapshotReader) async throws {
    let log = self.log
    let stateMachine = self.stateMachine
    try await logIO.run { try log.beginSnapshotInstall(metadata) }
    // The state machine reads the image a piece at a time.
    try await applyIO.run { try stateMachine.restore(metadata, from: image) }
    try await logIO.run { try log.installSnapshot(metadata) }
  }

  /// Applies committed entries in log order; one result per entry.
  func apply(_ entries: [Entry]) async throws -> [[UInt8]] {
    let stateMachine = self.stateMachine
    return try await applyIO.run { try stateMachine.apply(entries) }
  }

  /// Drops the log through `metadata.index` once the state machine has made everything it has
  /// applied durable (the dropped entries are then needed by no restart).
  func compact(through metadata: SnapshotMetadata) async throws {
    let log = self.log
    let stateMachine = self.stateMachine
    try await applyIO.run { try stateMachine.sync() }
    try await logIO.run { try log.compact(through: metadata) }
  }

  /// A consistent image of the state machine, taken after every batch handed to `apply` so far.
  func makeSnapshot() async throws -> any SnapshotReader {
    let stateMachine = self.stateMachine
    return try await applyIO.run { try stateMachine.makeSnapshot() }
  }

  /// Records the cluster id, durably (a small synchronous write, made once per node).
  func saveClusterID(_ id: UInt64) throws {
    try log.saveClusterID(id)
  }
}
