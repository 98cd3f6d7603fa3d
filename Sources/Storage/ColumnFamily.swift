/// A column family of one open `RocksDB`, obtained from `RocksDB.columnFamily(_:)`.
public struct ColumnFamily: Sendable, Hashable, CustomStringConvertible {
  /// The column family's name.
  public let name: String
  let index: Int
  /// The owning database's `token`, so a handle of another database is rejected, not misused.
  let owner: UInt64

  public var description: String { name }
}
