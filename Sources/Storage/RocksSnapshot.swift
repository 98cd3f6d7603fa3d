import CRocksDB

/// A consistent point-in-time view of a `RocksDB`, from `RocksDB.snapshot()`.
///
/// Reads and iterators given the snapshot see the database exactly as it was when the snapshot
/// was taken. It pins old data versions until released, so release it promptly: `close()` or
/// dropping the last reference does. Keeps its database object alive.
///
/// Thread safety: may be used from any thread. Its C objects are read under the database's read
/// lock and freed only under its write lock, so a `close()` never frees them under a read in
/// flight.
public final class RocksSnapshot: @unchecked Sendable {
  let database: RocksDB
  private let resourceID: UInt64
  /// Guarded by `database.lock`: read under it, set to `nil` only under the write lock.
  var native: (snapshot: OpaquePointer, readOptions: OpaquePointer)?

  init(database: RocksDB, resourceID: UInt64, snapshot: OpaquePointer, readOptions: OpaquePointer) {
    self.database = database
    self.resourceID = resourceID
    self.native = (snapshot, readOptions)
  }

  deinit {
    close()
  }

  /// Releases the snapshot; idempotent. Later use throws `.closed`.
  public func close() {
    database.lock.withWriteLock {
      guard native != nil else { return }
      native = nil
      database.release(resourceID: resourceID)
    }
  }
}
