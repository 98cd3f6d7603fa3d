import Storage
import Synchronization

/// `LogStorage` on the node's RocksDB: column family `raft_log` maps a big-endian u64 index
/// to an entry, so a key-order scan is a log-order scan and a suffix or prefix is one range
/// delete; `raft_state` holds the hard state and the compaction point. Each operation is one
/// atomic write batch, so a crash in the middle leaves the previous or the next state, both
/// of which Raft accepts.
public final class RocksLogStorage: LogStorage {
  public static let columnFamilies = ["raft_log", "raft_state"]
  private static let hardStateKey = Array("hard_state".utf8)
  private static let compactionKey = Array("compaction".utf8)
  private static let pendingSnapshotKey = Array("pending_snapshot".utf8)
  private static let clusterIDKey = Array("cluster_id".utf8)

  private let db: RocksDB
  private let logFamily: ColumnFamily
  private let stateFamily: ColumnFamily
  /// The highest index in `raft_log` (0 when empty), once known: an append above it needs no
  /// range delete. Only an append that replaces entries (a follower's conflict) writes one;
  /// a range tombstone per write would pile up in the memtable and slow every later read.
  private let lastStored = Mutex<UInt64?>(nil)

  /// `db` must have been opened with `RocksLogStorage.columnFamilies` among its families.
  public init(db: RocksDB) throws {
    self.db = db
    self.logFamily = try db.columnFamily("raft_log")
    self.stateFamily = try db.columnFamily("raft_state")
  }

  public func load() throws -> StoredLog? {
    let hardStateBytes = try db.get(Self.hardStateKey, in: stateFamily)
    let compactionBytes = try db.get(Self.compactionKey, in: stateFamily)
    let pending = try db.get(Self.pendingSnapshotKey, in: stateFamily).map(
      RaftCodec.deserializeSnapshotMetadata)
    var entries: [Entry] = []
    for pair in try db.scan(logFamily, prefix: []) {
      entries.append(try RaftCodec.deserializeEntry(pair.value))
    }
    if hardStateBytes == nil && compactionBytes == nil && entries.isEmpty && pending == nil { return nil }
    let hardState = try hardStateBytes.map(RaftCodec.deserializeHardState) ?? HardState()
    let snapshot =
      try compactionBytes.map(RaftCodec.deserializeSnapshotMetadata)
      ?? SnapshotMetadata(index: 0, term: 0, membership: Membership())
    entries.removeAll { $0.index <= snapshot.index }
    for (offset, entry) in entries.enumerated() where entry.index != snapshot.index + 1 + UInt64(offset) {
      throw RaftCodecError.malformed("raft_log has a gap before index \(entry.index)")
    }
    return StoredLog(
      hardState: hardState, snapshot: snapshot, entries: entries, pendingSnapshot: pending)
  }

  public func save(hardState: HardState?, entries: [Entry], sync: Bool) throws {
    var batch = WriteBatch()
    if let hardState {
      batch.put(key: Self.hardStateKey, value: try RaftCodec.serialize(hardState), in: stateFamily)
    }
    if let first = entries.first {
      if first.index <= (try lastStoredIndex()) {
        batch.deleteRange(from: BigEndian.bytes(first.index), to: Self.end, in: logFamily)
      }
      for entry in entries {
        batch.put(key: BigEndian.bytes(entry.index), value: try RaftCodec.serialize(entry), in: logFamily)
      }
    }
    try db.write(batch, sync: sync)
    // After the write (atomic): a guess above the truth costs a needless range delete, one
    // below it would leave stale entries above an append.
    if let last = entries.last { lastStored.withLock { $0 = last.index } }
  }

  /// The highest index in `raft_log`, read from disk the first time.
  private func lastStoredIndex() throws -> UInt64 {
    if let known = lastStored.withLock({ $0 }) { return known }
    let iterator = try db.makeIterator(in: logFamily)
    defer { iterator.close() }
    iterator.seekToLast()
    try iterator.checkStatus()
    let last = try iterator.key.map { key throws -> UInt64 in
      guard let index = BigEndian.uint64(from: key) else {
        throw RaftCodecError.malformed("raft_log key of \(key.count) bytes")
      }
      return index
    }
    lastStored.withLock { $0 = last ?? 0 }
    return last ?? 0
  }

  public func installSnapshot(_ metadata: SnapshotMetadata) throws {
    var batch = WriteBatch()
    batch.deleteRange(from: BigEndian.bytes(UInt64(0)), to: Self.end, in: logFamily)
    batch.put(key: Self.compactionKey, value: try RaftCodec.serialize(metadata), in: stateFamily)
    batch.delete(Self.pendingSnapshotKey, in: stateFamily)
    var hardState =
      try db.get(Self.hardStateKey, in: stateFamily).map(RaftCodec.deserializeHardState) ?? HardState()
    if hardState.commit < metadata.index {
      hardState.commit = metadata.index
      batch.put(key: Self.hardStateKey, value: try RaftCodec.serialize(hardState), in: stateFamily)
    }
    try db.write(batch, sync: true)
    lastStored.withLock { $0 = 0 }
  }

  public func beginSnapshotInstall(_ metadata: SnapshotMetadata?) throws {
    var batch = WriteBatch()
    if let metadata {
      batch.put(key: Self.pendingSnapshotKey, value: try RaftCodec.serialize(metadata), in: stateFamily)
    } else {
      batch.delete(Self.pendingSnapshotKey, in: stateFamily)
    }
    try db.write(batch, sync: true)
  }

  public func compact(through metadata: SnapshotMetadata) throws {
    var batch = WriteBatch()
    batch.deleteRange(
      from: BigEndian.bytes(UInt64(0)), to: BigEndian.bytes(metadata.index + 1), in: logFamily)
    batch.put(key: Self.compactionKey, value: try RaftCodec.serialize(metadata), in: stateFamily)
    try db.write(batch, sync: true)
  }

  public func loadClusterID() throws -> UInt64 {
    guard let bytes = try db.get(Self.clusterIDKey, in: stateFamily) else { return 0 }
    guard let id = BigEndian.uint64(from: bytes) else {
      throw RaftCodecError.malformed("cluster id of \(bytes.count) bytes")
    }
    return id
  }

  public func saveClusterID(_ id: UInt64) throws {
    var batch = WriteBatch()
    batch.put(key: Self.clusterIDKey, value: BigEndian.bytes(id), in: stateFamily)
    try db.write(batch, sync: true)
  }

  /// An exclusive upper bound above every index key.
  private static let end: [UInt8] = Array(repeating: 0xFF, count: 9)
}
