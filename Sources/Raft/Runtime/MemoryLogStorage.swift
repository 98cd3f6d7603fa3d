import Synchronization

/// A `LogStorage` in memory with the same semantics as the RocksDB one, for tests. A "crash"
/// is simply building a new node from the same instance: only what was saved is there.
public final class MemoryLogStorage: LogStorage {
  private let state = Mutex<StoredLog?>(nil)
  private let clusterID = Mutex<UInt64>(0)

  public init() {}

  public func load() throws -> StoredLog? { state.withLock { $0 } }

  public func save(hardState: HardState?, entries: [Entry], sync: Bool) throws {
    state.withLock { stored in
      var log = stored ?? Self.empty
      if let hardState { log.hardState = hardState }
      if let first = entries.first {
        log.entries.removeAll { $0.index >= first.index }
        log.entries.append(contentsOf: entries)
      }
      stored = log
    }
  }

  public func installSnapshot(_ metadata: SnapshotMetadata) throws {
    state.withLock { stored in
      var log = stored ?? Self.empty
      log.snapshot = metadata
      log.entries.removeAll()
      log.hardState.commit = max(log.hardState.commit, metadata.index)
      log.pendingSnapshot = nil
      stored = log
    }
  }

  public func beginSnapshotInstall(_ metadata: SnapshotMetadata?) throws {
    state.withLock { stored in
      var log = stored ?? Self.empty
      log.pendingSnapshot = metadata
      stored = log
    }
  }

  public func compact(through metadata: SnapshotMetadata) throws {
    state.withLock { stored in
      var log = stored ?? Self.empty
      guard metadata.index > log.snapshot.index else { return }
      log.snapshot = metadata
      log.entries.removeAll { $0.index <= metadata.index }
      stored = log
    }
  }

  public func loadClusterID() throws -> UInt64 { clusterID.withLock { $0 } }

  public func saveClusterID(_ id: UInt64) throws { clusterID.withLock { $0 = id } }

  private static let empty = StoredLog(
    hardState: HardState(), snapshot: SnapshotMetadata(index: 0, term: 0, membership: Membership()),
    entries: [])
}
