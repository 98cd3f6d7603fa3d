@testable import Raft

/// What a node has on its simulated disk: only what it persisted through the Ready protocol.
struct DurableLog {
  /// The hard state last written, synced or not.
  var hardState = HardState()
  /// The hard state as of the last synced write: what survives a power failure. Only the
  /// commit index may differ from `hardState` (a term or vote is always synced).
  var syncedHardState = HardState()
  /// The compaction point (or installed snapshot position).
  var snapshot: SnapshotMetadata
  /// The entries after `snapshot.index`, contiguous.
  var entries: [Entry] = []

  var lastIndex: UInt64 { snapshot.index + UInt64(entries.count) }

  func term(at index: UInt64) -> UInt64? {
    if index == snapshot.index { return snapshot.term }
    guard index > snapshot.index, index <= lastIndex else { return nil }
    return entries[Int(index - snapshot.index - 1)].term
  }

  func entry(at index: UInt64) -> Entry? {
    guard index > snapshot.index, index <= lastIndex else { return nil }
    return entries[Int(index - snapshot.index - 1)]
  }

  /// Writes `new`, replacing every stored entry at or after its first index. Returns why the
  /// write is impossible, if it is.
  mutating func persist(_ new: [Entry]) -> String? {
    guard let first = new.first else { return nil }
    for (offset, entry) in new.enumerated() where entry.index != first.index + UInt64(offset) {
      return "non-contiguous entries in a Ready at \(entry.index)"
    }
    guard first.index > snapshot.index else {
      return "Ready entry \(first.index) at or below the compaction point \(snapshot.index)"
    }
    guard first.index <= lastIndex + 1 else {
      return "Ready entry \(first.index) leaves a gap after stored index \(lastIndex)"
    }
    entries.removeSubrange(Int(first.index - snapshot.index - 1)...)
    entries.append(contentsOf: new)
    return nil
  }

  /// Replaces the log by a snapshot position.
  mutating func install(_ metadata: SnapshotMetadata) {
    snapshot = metadata
    entries.removeAll()
  }

  mutating func compact(_ metadata: SnapshotMetadata) {
    guard metadata.index > snapshot.index else { return }
    entries.removeFirst(Int(min(metadata.index, lastIndex) - snapshot.index))
    snapshot = metadata
  }
}

/// A durable state machine: the commands applied so far by index, and the applied index,
/// written together (as the real one writes its applied index in the same RocksDB batch).
struct SimStateMachine {
  var applied: UInt64 = 0
  var commands: [UInt64: [UInt8]] = [:]

  /// The state as of `index` (which must be applied), for a snapshot message.
  func image(through index: UInt64) -> [UInt8] {
    SnapshotImage.encode(
      commands.filter { $0.key <= index }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
  }
}

/// One simulated server: a core while it is up, and its durable disk and state machine,
/// which survive crashes.
final class SimNode {
  let id: NodeID
  var core: RaftCore?
  var log: DurableLog
  var stateMachine = SimStateMachine()
  /// Reads released to this node's owner, in order.
  var readStates: [ReadState] = []
  var crashes = 0
  /// A Ready taken from the core whose work is under way, and the step it completes at.
  var pendingReady: (ready: Ready, dueAt: Int)?
  /// The highest commit index this node ever reported (survives crashes).
  var observedCommit: UInt64 = 0

  init(id: NodeID, bootstrapVoters: [NodeID]) {
    self.id = id
    let boot = RestoredState.bootstrap(voters: bootstrapVoters)
    log = DurableLog(
      hardState: boot.hardState, syncedHardState: boot.hardState, snapshot: boot.snapshot)
  }

  var isUp: Bool {
    if case .some = core { true } else { false }
  }

  var restoredState: RestoredState {
    RestoredState(
      hardState: log.hardState, snapshot: log.snapshot, entries: log.entries,
      applied: stateMachine.applied)
  }
}
