import CRocksDB
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An open RocksDB database with named column families.
///
/// Thread safety: RocksDB's `DB` is safe for concurrent use, so one instance is shared by all
/// threads and tasks (hence `@unchecked Sendable`). The only state this wrapper adds is the set of
/// C handles, which `close()` frees; a reader-writer lock makes every operation hold the handles
/// for reading, so `close()` (the writer) waits for operations in flight and later operations see
/// `.closed` instead of a freed pointer.
///
/// Lifetime: iterators and snapshots keep their database object alive. An explicit `close()`
/// frees the C objects of any still-open iterators and snapshots first (RocksDB must not be
/// closed under them); those then report `.closed`.
public final class RocksDB: @unchecked Sendable {
  /// How a database is opened. The defaults suit a node's single database.
  public struct Options: Sendable {
    /// Create the database directory and files if they do not exist. Default `true`.
    public var createIfMissing: Bool
    /// Block compression for SST files. Default `.lz4`: cheap on CPU, and linked into the
    /// RocksDB packages of Debian and Homebrew (a type that is not linked fails at open).
    public var compression: Compression
    /// Total background threads for flushes and compactions; `nil` keeps RocksDB's default.
    public var backgroundThreads: Int32?

    public init(
      createIfMissing: Bool = true, compression: Compression = .lz4, backgroundThreads: Int32? = nil
    ) {
      self.createIfMissing = createIfMissing
      self.compression = compression
      self.backgroundThreads = backgroundThreads
    }
  }

  /// SST block compression.
  public enum Compression: Sendable {
    case none, snappy, lz4, zstd

    var rawValue: Int32 {
      switch self {
      case .none: Int32(rocksdb_no_compression)
      case .snappy: Int32(rocksdb_snappy_compression)
      case .lz4: Int32(rocksdb_lz4_compression)
      case .zstd: Int32(rocksdb_zstd_compression)
      }
    }
  }

  /// The C handles; `nil` once closed.
  struct Native {
    let database: OpaquePointer
    /// One per column family, in the order of `RocksDB.columnFamilyNames`.
    let columnFamilies: [OpaquePointer]
    let writeOptions: OpaquePointer
    let syncWriteOptions: OpaquePointer
    let readOptions: OpaquePointer
  }

  /// The directory the database lives in.
  public let path: String
  /// Every column family the database has open, `"default"` first.
  public let columnFamilyNames: [String]
  private let columnFamilyIndices: [String: Int]
  /// Distinguishes this instance's column families and snapshots from another instance's (a
  /// random 64-bit value: unlike an object identifier it is never reused after deallocation).
  let token: UInt64

  let lock = ReadWriteLock()
  /// Written only under the write lock, read under either lock.
  private var native: Native?
  /// Iterators and snapshots whose C objects are still alive, by resource id.
  /// Guarded by `resourcesLock`, which may be taken while `lock` is held either way.
  private var resources: [UInt64: NativeResource] = [:]
  private var nextResourceID: UInt64 = 0
  /// Guards the two properties above instead of holding them: a value moved into a `Mutex` must
  /// be `sending`, and a registered iterator's C handles stay shared with its `RocksIterator`
  /// (safely, because of `lock`; see the type's documentation).
  private let resourcesLock = Mutex(())
  /// The first write that failed, if one has: every later write is refused without reaching
  /// RocksDB, whose write path asserts (aborting the process) when it is handed a write after
  /// its log writer has seen an I/O error such as a full disk. Writes hold this lock while in
  /// RocksDB, so none can slip in between a failure and its record here; RocksDB serializes
  /// its log writes anyway, so the lock costs little. The owner learns of the failure from the
  /// first error and stops; the gate keeps a concurrent writer (a node's state machine beside
  /// its log) from turning that into a crash.
  private let writeFailure = Mutex<String?>(nil)

  /// Runs one native write through the gate described at `writeFailure`.
  private func gatedWrite(
    _ operation: String, _ body: () -> UnsafeMutablePointer<CChar>?
  ) throws(StorageError) {
    try writeFailure.withLock { (failure: inout String?) throws(StorageError) in
      if let failure {
        throw .rocksdb(operation: operation, message: "refused after an earlier write failed: \(failure)")
      }
      do throws(StorageError) {
        try throwIfError(body(), operation: operation)
      } catch {
        failure = error.description
        throw error
      }
    }
  }

  /// RocksDB's `InfoLogLevel::ERROR_LEVEL`.
  private static let errorLogLevel: Int32 = 3

  /// Opens the database at `path`, creating it (if `options.createIfMissing`) and any column
  /// family in `columnFamilies` that does not exist yet.
  ///
  /// Column families already in the database are opened too, even if not listed, because
  /// RocksDB refuses to open a database without all of them.
  public init(
    path: String, columnFamilies: [String], options: Options = .init()
  ) throws(StorageError) {
    guard let rocksOptions = rocksdb_options_create() else {
      throw .rocksdb(operation: "open", message: "could not allocate options")
    }
    // RocksDB copies the options when opening, so they are freed right after.
    defer { rocksdb_options_destroy(rocksOptions) }
    rocksdb_options_set_create_if_missing(rocksOptions, options.createIfMissing ? 1 : 0)
    rocksdb_options_set_create_missing_column_families(rocksOptions, 1)
    rocksdb_options_set_compression(rocksOptions, options.compression.rawValue)
    // RocksDB's own LOG file in the data directory gets errors only. On a full disk RocksDB's
    // no-space recovery thread writes a warning through a LOG writer that has already failed,
    // and Debian's librocksdb (built with assertions) aborts the process there.
    rocksdb_options_set_info_log_level(rocksOptions, Self.errorLogLevel)
    if let threads = options.backgroundThreads {
      rocksdb_options_increase_parallelism(rocksOptions, threads)
    }

    var names = ["default"]
    for name in Self.existingColumnFamilies(path: path, options: rocksOptions) + columnFamilies
    where !names.contains(name) {
      names.append(name)
    }

    let cNames = names.map { strdup($0) }
    defer { cNames.forEach { free($0) } }
    guard !cNames.contains(nil) else {
      throw .rocksdb(operation: "open", message: "could not allocate column family names")
    }
    let namePointers = cNames.map { UnsafePointer($0) }
    let familyOptions = [OpaquePointer?](repeating: rocksOptions, count: names.count)
    var handles = [OpaquePointer?](repeating: nil, count: names.count)
    var error: UnsafeMutablePointer<CChar>?
    let database = rocksdb_open_column_families(
      rocksOptions, path, Int32(names.count), namePointers, familyOptions, &handles, &error)
    do {
      try throwIfError(error, operation: "open")
    } catch {
      if case .rocksdb(_, let message) = error, Self.isLockContention(message) {
        throw .databaseInUse(path: path, message: message)
      }
      throw error
    }
    let openHandles = handles.compactMap { $0 }
    guard let database, openHandles.count == names.count else {
      openHandles.forEach { rocksdb_column_family_handle_destroy($0) }
      if let database { rocksdb_close(database) }
      throw .rocksdb(operation: "open", message: "RocksDB returned no database or column family handle")
    }
    guard let writeOptions = rocksdb_writeoptions_create(),
      let syncWriteOptions = rocksdb_writeoptions_create(),
      let readOptions = rocksdb_readoptions_create()
    else {
      openHandles.forEach { rocksdb_column_family_handle_destroy($0) }
      rocksdb_close(database)
      throw .rocksdb(operation: "open", message: "could not allocate read/write options")
    }
    rocksdb_writeoptions_set_sync(syncWriteOptions, 1)

    self.path = path
    self.columnFamilyNames = names
    self.columnFamilyIndices = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
    self.token = UInt64.random(in: .min ... .max)
    self.native = Native(
      database: database, columnFamilies: openHandles, writeOptions: writeOptions,
      syncWriteOptions: syncWriteOptions, readOptions: readOptions)
  }

  deinit {
    close()
  }

  /// Closes the database, first freeing the C objects of any iterator or snapshot still open.
  /// Idempotent; every later operation throws `.closed`. Waits for operations in flight.
  public func close() {
    lock.withWriteLock {
      guard let native else { return }
      let open = resourcesLock.withLock { _ in
        let open = resources
        resources = [:]
        return open
      }
      for resource in open.values {
        resource.destroy(database: native.database)
      }
      native.columnFamilies.forEach { rocksdb_column_family_handle_destroy($0) }
      rocksdb_close(native.database)
      rocksdb_writeoptions_destroy(native.writeOptions)
      rocksdb_writeoptions_destroy(native.syncWriteOptions)
      rocksdb_readoptions_destroy(native.readOptions)
      self.native = nil
    }
  }

  /// Whether `close()` has run.
  public var isClosed: Bool {
    lock.withReadLock { native == nil }
  }

  /// The column family named `name`, which must have been opened with the database.
  public func columnFamily(_ name: String) throws(StorageError) -> ColumnFamily {
    guard !isClosed else { throw .closed }
    guard let index = columnFamilyIndices[name] else { throw .unknownColumnFamily(name) }
    return ColumnFamily(name: name, index: index, owner: token)
  }

  // MARK: - Point reads and writes

  /// The value stored for `key`, or `nil` if there is none; as of `snapshot` if one is given.
  public func get(
    _ key: [UInt8], in columnFamily: ColumnFamily, snapshot: RocksSnapshot? = nil
  ) throws(StorageError) -> [UInt8]? {
    try withNative { native throws(StorageError) -> [UInt8]? in
      let family = try handle(for: columnFamily, in: native)
      let readOptions =
        try snapshot.map { snapshot throws(StorageError) in
          try self.nativeSnapshot(snapshot).readOptions
        } ?? native.readOptions
      var error: UnsafeMutablePointer<CChar>?
      var length = 0
      let value = withCBytes(key) { key, keyLength in
        rocksdb_get_cf(native.database, readOptions, family, key, keyLength, &length, &error)
      }
      try throwIfError(error, operation: "get")
      guard let value else { return nil }
      defer { rocksdb_free(value) }
      return copyBytes(value, count: length)
    }
  }

  /// Stores `value` for `key`. With `sync`, returns only after the write-ahead log is fsynced.
  public func put(
    key: [UInt8], value: [UInt8], in columnFamily: ColumnFamily, sync: Bool = false
  ) throws(StorageError) {
    try withNative { native throws(StorageError) in
      let family = try handle(for: columnFamily, in: native)
      try gatedWrite("put") {
        var error: UnsafeMutablePointer<CChar>?
        withCBytes(key) { key, keyLength in
          withCBytes(value) { value, valueLength in
            rocksdb_put_cf(
              native.database, writeOptions(native, sync: sync), family, key, keyLength, value,
              valueLength, &error)
          }
        }
        return error
      }
    }
  }

  /// Removes `key` if present. With `sync`, returns only after the write-ahead log is fsynced.
  public func delete(
    _ key: [UInt8], in columnFamily: ColumnFamily, sync: Bool = false
  ) throws(StorageError) {
    try withNative { native throws(StorageError) in
      let family = try handle(for: columnFamily, in: native)
      try gatedWrite("delete") {
        var error: UnsafeMutablePointer<CChar>?
        withCBytes(key) { key, keyLength in
          rocksdb_delete_cf(native.database, writeOptions(native, sync: sync), family, key, keyLength, &error)
        }
        return error
      }
    }
  }

  /// Removes every key `k` with `start <= k < end`.
  public func deleteRange(
    from start: [UInt8], to end: [UInt8], in columnFamily: ColumnFamily, sync: Bool = false
  ) throws(StorageError) {
    var batch = WriteBatch()
    batch.deleteRange(from: start, to: end, in: columnFamily)
    try write(batch, sync: sync)
  }

  /// Applies every operation of `batch` atomically: after a crash, all or none are visible.
  /// With `sync`, returns only after the write-ahead log is fsynced.
  public func write(_ batch: WriteBatch, sync: Bool = false) throws(StorageError) {
    try withNative { native throws(StorageError) in
      guard let nativeBatch = rocksdb_writebatch_create() else {
        throw .rocksdb(operation: "write", message: "could not allocate a write batch")
      }
      defer { rocksdb_writebatch_destroy(nativeBatch) }
      for operation in batch.operations {
        switch operation {
        case .put(let columnFamily, let key, let value):
          let family = try handle(for: columnFamily, in: native)
          withCBytes(key) { key, keyLength in
            withCBytes(value) { value, valueLength in
              rocksdb_writebatch_put_cf(nativeBatch, family, key, keyLength, value, valueLength)
            }
          }
        case .delete(let columnFamily, let key):
          let family = try handle(for: columnFamily, in: native)
          withCBytes(key) { key, keyLength in
            rocksdb_writebatch_delete_cf(nativeBatch, family, key, keyLength)
          }
        case .deleteRange(let columnFamily, let start, let end):
          let family = try handle(for: columnFamily, in: native)
          withCBytes(start) { start, startLength in
            withCBytes(end) { end, endLength in
              rocksdb_writebatch_delete_range_cf(nativeBatch, family, start, startLength, end, endLength)
            }
          }
        }
      }
      try gatedWrite("write") {
        var error: UnsafeMutablePointer<CChar>?
        rocksdb_write(native.database, writeOptions(native, sync: sync), nativeBatch, &error)
        return error
      }
    }
  }

  // MARK: - Iteration

  /// A new iterator over `columnFamily`, unpositioned until one of its `seek` methods is called.
  ///
  /// Bounds are enforced by RocksDB (`iterate_lower_bound`/`iterate_upper_bound`), which also
  /// lets it skip tombstones beyond them: `lowerBound` is inclusive, `upperBound` exclusive.
  public func makeIterator(
    in columnFamily: ColumnFamily, snapshot: RocksSnapshot? = nil,
    lowerBound: [UInt8]? = nil, upperBound: [UInt8]? = nil
  ) throws(StorageError) -> RocksIterator {
    let (id, iterator) = try withNative { native throws(StorageError) -> (UInt64, NativeIterator) in
      let family = try handle(for: columnFamily, in: native)
      let snapshotPointer = try snapshot.map { snapshot throws(StorageError) in
        try self.nativeSnapshot(snapshot).snapshot
      }
      guard
        let iterator = NativeIterator(
          database: native.database, columnFamily: family, snapshot: snapshotPointer,
          lowerBound: lowerBound, upperBound: upperBound)
      else {
        throw .rocksdb(operation: "iterate", message: "could not create an iterator")
      }
      return (register(.iterator(iterator)), iterator)
    }
    return RocksIterator(database: self, resourceID: id, native: iterator, snapshot: snapshot)
  }

  /// The entries whose keys start with `prefix`, in key order, at most `limit` of them.
  public func scan(
    _ columnFamily: ColumnFamily, prefix: [UInt8], limit: Int? = nil, snapshot: RocksSnapshot? = nil
  ) throws(StorageError) -> [KeyValuePair] {
    try scan(
      columnFamily, from: prefix, to: Self.upperBound(forPrefix: prefix), limit: limit, snapshot: snapshot)
  }

  /// The entries with `start <= key < end` (`nil` meaning unbounded), in key order, at most
  /// `limit` of them.
  public func scan(
    _ columnFamily: ColumnFamily, from start: [UInt8]?, to end: [UInt8]?, limit: Int? = nil,
    snapshot: RocksSnapshot? = nil
  ) throws(StorageError) -> [KeyValuePair] {
    try withNative { native throws(StorageError) -> [KeyValuePair] in
      let family = try handle(for: columnFamily, in: native)
      let snapshotPointer = try snapshot.map { snapshot throws(StorageError) in
        try self.nativeSnapshot(snapshot).snapshot
      }
      // Destroyed before the read lock is released, so it never needs registering.
      guard
        let iterator = NativeIterator(
          database: native.database, columnFamily: family, snapshot: snapshotPointer,
          lowerBound: start, upperBound: end)
      else {
        throw .rocksdb(operation: "iterate", message: "could not create an iterator")
      }
      defer { iterator.destroy() }
      var result: [KeyValuePair] = []
      let limit = limit ?? .max
      rocksdb_iter_seek_to_first(iterator.iterator)
      while result.count < limit, iterator.isValid {
        result.append(KeyValuePair(key: iterator.key, value: iterator.value))
        rocksdb_iter_next(iterator.iterator)
      }
      try iterator.checkStatus()
      return result
    }
  }

  /// The smallest key greater than every key that starts with `prefix`, or `nil` if there is
  /// none (`prefix` empty or all `0xFF`).
  public static func upperBound(forPrefix prefix: [UInt8]) -> [UInt8]? {
    var bound = prefix
    while let last = bound.last {
      if last < 0xFF {
        bound[bound.count - 1] = last + 1
        return bound
      }
      bound.removeLast()
    }
    return nil
  }

  // MARK: - Snapshots and checkpoints

  /// A consistent point-in-time view for reads and iterators; release it with `close()` or by
  /// dropping it, since it pins old versions of data that compaction would otherwise drop.
  public func snapshot() throws(StorageError) -> RocksSnapshot {
    let (id, pointers) = try withNative {
      native throws(StorageError) -> (UInt64, (snapshot: OpaquePointer, readOptions: OpaquePointer)) in
      guard let snapshot = rocksdb_create_snapshot(native.database) else {
        throw .rocksdb(operation: "snapshot", message: "could not create a snapshot")
      }
      guard let readOptions = rocksdb_readoptions_create() else {
        rocksdb_release_snapshot(native.database, snapshot)
        throw .rocksdb(operation: "snapshot", message: "could not allocate read options")
      }
      rocksdb_readoptions_set_snapshot(readOptions, snapshot)
      let id = register(.snapshot(snapshot: snapshot, readOptions: readOptions))
      return (id, (snapshot, readOptions))
    }
    return RocksSnapshot(
      database: self, resourceID: id, snapshot: pointers.snapshot, readOptions: pointers.readOptions)
  }

  /// Writes a consistent copy of the database to the directory `path`, which must not exist.
  /// SST files are hard-linked when on the same file system, so this is cheap; the copy opens
  /// as an independent database.
  public func checkpoint(to path: String) throws(StorageError) {
    try withNative { native throws(StorageError) in
      var error: UnsafeMutablePointer<CChar>?
      let checkpoint = rocksdb_checkpoint_object_create(native.database, &error)
      try throwIfError(error, operation: "checkpoint")
      guard let checkpoint else {
        throw .rocksdb(operation: "checkpoint", message: "could not create a checkpoint object")
      }
      defer { rocksdb_checkpoint_object_destroy(checkpoint) }
      // 0: always flush the memtables, so the checkpoint needs no WAL replay.
      rocksdb_checkpoint_create(checkpoint, path, 0, &error)
      try throwIfError(error, operation: "checkpoint")
    }
  }

  // MARK: - Internals

  /// Runs `body` with the C handles, holding them open for its duration.
  func withNative<Result>(
    _ body: (Native) throws(StorageError) -> Result
  ) throws(StorageError) -> Result {
    try lock.withReadLock { () throws(StorageError) -> Result in
      guard let native else { throw .closed }
      return try body(native)
    }
  }

  /// Whether the database is open; the caller must hold `lock`.
  var isOpenLocked: Bool { native != nil }

  private func handle(for columnFamily: ColumnFamily, in native: Native) throws(StorageError) -> OpaquePointer
  {
    guard columnFamily.owner == token, native.columnFamilies.indices.contains(columnFamily.index) else {
      throw .foreignHandle("column family \"\(columnFamily.name)\"")
    }
    return native.columnFamilies[columnFamily.index]
  }

  /// The snapshot's C objects; the caller must hold `lock`.
  private func nativeSnapshot(
    _ snapshot: RocksSnapshot
  ) throws(StorageError) -> (snapshot: OpaquePointer, readOptions: OpaquePointer) {
    guard snapshot.database === self else { throw .foreignHandle("snapshot") }
    guard let pointers = snapshot.native else { throw .closed }
    return pointers
  }

  private func writeOptions(_ native: Native, sync: Bool) -> OpaquePointer {
    sync ? native.syncWriteOptions : native.writeOptions
  }

  private func register(_ resource: NativeResource) -> UInt64 {
    resourcesLock.withLock { _ in
      nextResourceID += 1
      resources[nextResourceID] = resource
      return nextResourceID
    }
  }

  /// Frees a resource's C objects unless `close()` already has; the caller must hold `lock`
  /// (for reading if the resource is used by one thread only, for writing otherwise).
  func release(resourceID: UInt64) {
    guard let native else { return }
    let resource = resourcesLock.withLock { _ in resources.removeValue(forKey: resourceID) }
    resource?.destroy(database: native.database)
  }

  private static func existingColumnFamilies(path: String, options: OpaquePointer) -> [String] {
    var count = 0
    var error: UnsafeMutablePointer<CChar>?
    let list = rocksdb_list_column_families(options, path, &count, &error)
    if let error {
      // Usually "the database does not exist yet"; anything worse is reported by the open itself.
      rocksdb_free(error)
    }
    guard let list else { return [] }
    defer { rocksdb_list_column_families_destroy(list, count) }
    return (0..<count).compactMap { index in list[index].map { String(cString: $0) } }
  }

  /// Whether an open error means another handle holds the LOCK file: RocksDB reports
  /// "lock hold by current process" for a second handle in this process and
  /// "While lock file: ... Resource temporarily unavailable" for another process.
  private static func isLockContention(_ message: String) -> Bool {
    message.contains("lock hold by current process") || message.contains("While lock file")
  }
}
