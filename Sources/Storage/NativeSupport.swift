import CRocksDB

/// Calls `body` with a C view of `bytes`.
///
/// An empty array may have no storage at all; RocksDB gets a valid one-byte address with length
/// zero instead of a null pointer, so no `Slice` or `memcpy` ever sees null.
func withCBytes<Result>(
  _ bytes: [UInt8], _ body: (UnsafePointer<CChar>, Int) -> Result
) -> Result {
  bytes.withUnsafeBufferPointer { buffer in
    if let base = buffer.baseAddress {
      return base.withMemoryRebound(to: CChar.self, capacity: buffer.count) { body($0, buffer.count) }
    }
    let empty: CChar = 0
    return withUnsafePointer(to: empty) { body($0, 0) }
  }
}

/// Copies `count` bytes that RocksDB returned into a Swift array.
func copyBytes(_ pointer: UnsafePointer<CChar>?, count: Int) -> [UInt8] {
  guard let pointer, count > 0 else { return [] }
  return [UInt8](UnsafeRawBufferPointer(start: UnsafeRawPointer(pointer), count: count))
}

/// Converts a RocksDB `errptr` into a typed error and frees the C string (RocksDB mallocs it
/// and hands ownership to the caller).
func throwIfError(
  _ error: UnsafeMutablePointer<CChar>?, operation: String
) throws(StorageError) {
  guard let error else { return }
  let message = String(cString: error)
  rocksdb_free(error)
  throw .rocksdb(operation: operation, message: message)
}

/// A C iterator with the read options and bound buffers it points into.
///
/// Invariant: the iterator is destroyed before its read options, and the read options before the
/// bound buffers, because RocksDB's iterator keeps a pointer to the options' bound `Slice`s,
/// which in turn point at the buffers.
struct NativeIterator {
  let iterator: OpaquePointer
  let readOptions: OpaquePointer
  let bounds: [UnsafeMutablePointer<CChar>]

  /// Creates the iterator; `nil` only if RocksDB fails to allocate.
  init?(
    database: OpaquePointer, columnFamily: OpaquePointer, snapshot: OpaquePointer?,
    lowerBound: [UInt8]?, upperBound: [UInt8]?
  ) {
    guard let readOptions = rocksdb_readoptions_create() else { return nil }
    var bounds: [UnsafeMutablePointer<CChar>] = []
    if let snapshot {
      rocksdb_readoptions_set_snapshot(readOptions, snapshot)
    }
    if let lowerBound {
      let buffer = Self.copy(lowerBound)
      bounds.append(buffer)
      rocksdb_readoptions_set_iterate_lower_bound(readOptions, buffer, lowerBound.count)
    }
    if let upperBound {
      let buffer = Self.copy(upperBound)
      bounds.append(buffer)
      rocksdb_readoptions_set_iterate_upper_bound(readOptions, buffer, upperBound.count)
    }
    guard let iterator = rocksdb_create_iterator_cf(database, readOptions, columnFamily) else {
      rocksdb_readoptions_destroy(readOptions)
      bounds.forEach { $0.deallocate() }
      return nil
    }
    self.iterator = iterator
    self.readOptions = readOptions
    self.bounds = bounds
  }

  func destroy() {
    rocksdb_iter_destroy(iterator)
    rocksdb_readoptions_destroy(readOptions)
    bounds.forEach { $0.deallocate() }
  }

  var isValid: Bool { rocksdb_iter_valid(iterator) != 0 }

  var key: [UInt8] {
    var length = 0
    let pointer = rocksdb_iter_key(iterator, &length)
    return copyBytes(pointer, count: length)
  }

  var value: [UInt8] {
    var length = 0
    let pointer = rocksdb_iter_value(iterator, &length)
    return copyBytes(pointer, count: length)
  }

  func checkStatus() throws(StorageError) {
    var error: UnsafeMutablePointer<CChar>?
    rocksdb_iter_get_error(iterator, &error)
    try throwIfError(error, operation: "iterate")
  }

  private static func copy(_ bytes: [UInt8]) -> UnsafeMutablePointer<CChar> {
    let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: max(bytes.count, 1))
    withCBytes(bytes) { source, count in buffer.update(from: source, count: count) }
    return buffer
  }
}

/// A C object owned by an open database that must be freed before `rocksdb_close`.
enum NativeResource {
  case iterator(NativeIterator)
  case snapshot(snapshot: OpaquePointer, readOptions: OpaquePointer)

  func destroy(database: OpaquePointer) {
    switch self {
    case .iterator(let iterator):
      iterator.destroy()
    case .snapshot(let snapshot, let readOptions):
      rocksdb_readoptions_destroy(readOptions)
      rocksdb_release_snapshot(database, snapshot)
    }
  }
}
