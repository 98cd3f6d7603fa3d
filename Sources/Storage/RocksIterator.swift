import CRocksDB

/// A cursor over one column family, from `RocksDB.makeIterator(in:snapshot:lowerBound:upperBound:)`.
///
/// Follows RocksDB's model: moving never throws; when the iterator runs off either end, hits an
/// error, or its database is closed, `isValid` becomes `false`, and `checkStatus()` tells an
/// error (or `.closed`) apart from the normal end.
///
/// Not `Sendable`: a RocksDB iterator must not be used by two threads at once. Its C objects
/// are freed by `close()`, by deinit, or by the database's `close()`, whichever comes first.
public final class RocksIterator {
  private let database: RocksDB
  private let resourceID: UInt64
  /// Kept alive while the iterator reads through it.
  private let snapshot: RocksSnapshot?
  /// `nil` after `close()`. Valid only while the database is open (checked under its lock).
  private var native: NativeIterator?

  init(database: RocksDB, resourceID: UInt64, native: NativeIterator, snapshot: RocksSnapshot?) {
    self.database = database
    self.resourceID = resourceID
    self.native = native
    self.snapshot = snapshot
  }

  deinit {
    close()
  }

  /// Frees the iterator; idempotent. Afterwards `isValid` is `false` and `checkStatus()`
  /// throws `.closed`.
  public func close() {
    database.lock.withReadLock {
      guard native != nil else { return }
      native = nil
      database.release(resourceID: resourceID)
    }
  }

  /// Whether the iterator is positioned at an entry.
  public var isValid: Bool {
    withIterator { $0.isValid } ?? false
  }

  /// The current entry's key, or `nil` if the iterator is not valid.
  public var key: [UInt8]? {
    withIterator { $0.isValid ? $0.key : nil } ?? nil
  }

  /// The current entry's value, or `nil` if the iterator is not valid.
  public var value: [UInt8]? {
    withIterator { $0.isValid ? $0.value : nil } ?? nil
  }

  /// The current entry, or `nil` if the iterator is not valid.
  public var entry: KeyValuePair? {
    withIterator { $0.isValid ? KeyValuePair(key: $0.key, value: $0.value) : nil } ?? nil
  }

  /// Moves to the first entry (at or after the lower bound).
  public func seekToFirst() {
    withIterator { rocksdb_iter_seek_to_first($0.iterator) }
  }

  /// Moves to the last entry (before the upper bound).
  public func seekToLast() {
    withIterator { rocksdb_iter_seek_to_last($0.iterator) }
  }

  /// Moves to the first entry whose key is at or after `key`.
  public func seek(to key: [UInt8]) {
    withIterator { native in
      withCBytes(key) { rocksdb_iter_seek(native.iterator, $0, $1) }
    }
  }

  /// Moves to the last entry whose key is at or before `key`.
  public func seek(toLastAtOrBefore key: [UInt8]) {
    withIterator { native in
      withCBytes(key) { rocksdb_iter_seek_for_prev(native.iterator, $0, $1) }
    }
  }

  /// Moves to the next entry; does nothing unless valid.
  public func next() {
    withIterator { native in
      if native.isValid { rocksdb_iter_next(native.iterator) }
    }
  }

  /// Moves to the previous entry; does nothing unless valid.
  public func previous() {
    withIterator { native in
      if native.isValid { rocksdb_iter_prev(native.iterator) }
    }
  }

  /// Throws the error that stopped the iterator, if any, or `.closed` if it or its database
  /// has been closed. Call it when `isValid` turns `false` to tell an error from the end.
  public func checkStatus() throws(StorageError) {
    try database.lock.withReadLock { () throws(StorageError) in
      guard database.isOpenLocked, let native else { throw .closed }
      try native.checkStatus()
    }
  }

  /// Runs `body` if the iterator and its database are open.
  private func withIterator<Result>(_ body: (NativeIterator) -> Result) -> Result? {
    database.lock.withReadLock {
      guard database.isOpenLocked, let native else { return nil }
      return body(native)
    }
  }
}
