/// A failure of the RocksDB layer, carrying RocksDB's own message where there is one.
public enum StorageError: Error, Equatable, CustomStringConvertible {
  /// RocksDB reported an error; `operation` names the call that failed (e.g. `"put"`).
  case rocksdb(operation: String, message: String)
  /// Another open handle, in this process or another, holds the database's `LOCK` file.
  case databaseInUse(path: String, message: String)
  /// No column family of this name was opened with the database.
  case unknownColumnFamily(String)
  /// The column family, snapshot or iterator belongs to a different `RocksDB` instance.
  case foreignHandle(String)
  /// The database, or the snapshot or iterator used, has been closed.
  case closed

  public var description: String {
    switch self {
    case .rocksdb(let operation, let message):
      return "RocksDB \(operation) failed: \(message)"
    case .databaseInUse(let path, let message):
      return
        "RocksDB database at \(path) is in use by another handle or process "
        + "(its LOCK file is held): \(message)"
    case .unknownColumnFamily(let name):
      return "unknown column family \"\(name)\" (not opened with this database)"
    case .foreignHandle(let what):
      return "\(what) belongs to a different RocksDB instance"
    case .closed:
      return "the RocksDB database, snapshot or iterator is closed"
    }
  }
}
