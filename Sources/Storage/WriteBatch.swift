/// Writes to apply atomically with `RocksDB.write(_:sync:)`, possibly across column families.
///
/// A plain value rather than a wrapper of `rocksdb_writebatch_t`: the C batch needs live column
/// family handles, so it is built inside `write` while the database is held open. That keeps a
/// batch free of C lifetime rules (it is `Sendable`, can outlive a closed database, and needs no
/// cleanup) at the cost of one extra copy of keys and values, small next to the write itself.
public struct WriteBatch: Sendable {
  enum Operation: Sendable {
    case put(ColumnFamily, key: [UInt8], value: [UInt8])
    case delete(ColumnFamily, key: [UInt8])
    case deleteRange(ColumnFamily, start: [UInt8], end: [UInt8])
  }

  private(set) var operations: [Operation] = []

  public init() {}

  /// The number of operations recorded.
  public var count: Int { operations.count }

  /// Whether no operation has been recorded.
  public var isEmpty: Bool { operations.isEmpty }

  /// Stores `value` for `key`.
  public mutating func put(key: [UInt8], value: [UInt8], in columnFamily: ColumnFamily) {
    operations.append(.put(columnFamily, key: key, value: value))
  }

  /// Removes `key` if present.
  public mutating func delete(_ key: [UInt8], in columnFamily: ColumnFamily) {
    operations.append(.delete(columnFamily, key: key))
  }

  /// Removes every key `k` with `start <= k < end`.
  public mutating func deleteRange(from start: [UInt8], to end: [UInt8], in columnFamily: ColumnFamily) {
    operations.append(.deleteRange(columnFamily, start: start, end: end))
  }

  /// Forgets every recorded operation, keeping the storage for reuse.
  public mutating func removeAll() {
    operations.removeAll(keepingCapacity: true)
  }
}
