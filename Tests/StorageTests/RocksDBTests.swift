import Dispatch
import Foundation
import Synchronization
import XCTest

@testable import Storage

final class RocksDBTests: TemporaryDirectoryTestCase {
  private let families = ["raft_log", "raft_state", "kv", "meta"]

  func testPutGetDeleteAcrossColumnFamilies() throws {
    let db = try RocksDB(path: makeTemporaryPath(), columnFamilies: families)
    let kv = try db.columnFamily("kv")
    let meta = try db.columnFamily("meta")

    try db.put(key: [1], value: [10], in: kv)
    try db.put(key: [1], value: [20], in: meta)
    XCTAssertEqual(try db.get([1], in: kv), [10])
    XCTAssertEqual(try db.get([1], in: meta), [20])
    XCTAssertNil(try db.get([2], in: kv))

    try db.put(key: [1], value: [11], in: kv, sync: true)
    XCTAssertEqual(try db.get([1], in: kv), [11])

    try db.delete([1], in: kv)
    XCTAssertNil(try db.get([1], in: kv))
    XCTAssertEqual(try db.get([1], in: meta), [20], "a delete touches only its column family")
    try db.delete([99], in: kv)  // deleting a missing key is not an error
  }

  func testEmptyKeyAndValue() throws {
    let db = try RocksDB(path: makeTemporaryPath(), columnFamilies: ["kv"])
    let kv = try db.columnFamily("kv")
    try db.put(key: [], value: [], in: kv)
    XCTAssertEqual(try db.get([], in: kv), [])
    try db.put(key: [], value: [7], in: kv)
    XCTAssertEqual(try db.get([], in: kv), [7])
  }

  func testMissingColumnFamiliesAreCreatedOnReopen() throws {
    let path = makeTemporaryPath()
    do {
      let db = try RocksDB(path: path, columnFamilies: ["raft_log"])
      XCTAssertEqual(db.columnFamilyNames, ["default", "raft_log"])
      try db.put(key: [1], value: [1], in: db.columnFamily("raft_log"), sync: true)
      db.close()
    }
    do {
      let db = try RocksDB(path: path, columnFamilies: ["raft_log", "kv"])
      XCTAssertEqual(db.columnFamilyNames, ["default", "raft_log", "kv"])
      XCTAssertEqual(try db.get([1], in: db.columnFamily("raft_log")), [1])
      try db.put(key: [2], value: [2], in: db.columnFamily("kv"), sync: true)
      db.close()
    }
    // Existing families are opened even when not asked for (RocksDB requires all of them).
    let db = try RocksDB(path: path, columnFamilies: [])
    XCTAssertEqual(Set(db.columnFamilyNames), ["default", "raft_log", "kv"])
    XCTAssertEqual(try db.get([2], in: db.columnFamily("kv")), [2])
  }

  func testWriteBatchIsAtomicAcrossColumnFamilies() throws {
    let db = try RocksDB(path: makeTemporaryPath(), columnFamilies: families)
    let log = try db.columnFamily("raft_log")
    let meta = try db.columnFamily("meta")
    try db.put(key: [9], value: [9], in: log)

    var batch = WriteBatch()
    batch.put(key: BigEndian.bytes(UInt64(1)), value: [1], in: log)
    batch.put(key: BigEndian.bytes(UInt64(2)), value: [2], in: log)
    batch.put(key: [UInt8](utf8: "applied"), value: BigEndian.bytes(UInt64(2)), in: meta)
    batch.delete([9], in: log)
    XCTAssertEqual(batch.count, 4)
    try db.write(batch, sync: true)

    XCTAssertEqual(try db.get(BigEndian.bytes(UInt64(1)), in: log), [1])
    XCTAssertEqual(try db.get(BigEndian.bytes(UInt64(2)), in: log), [2])
    XCTAssertEqual(try db.get([UInt8](utf8: "applied"), in: meta), BigEndian.bytes(UInt64(2)))
    XCTAssertNil(try db.get([9], in: log))

    // A batch with one bad operation writes nothing, not even the operations before it.
    let other = try RocksDB(path: makeTemporaryPath(), columnFamilies: ["kv"])
    var bad = WriteBatch()
    bad.put(key: [3], value: [3], in: log)
    bad.put(key: [4], value: [4], in: meta)
    bad.put(key: [5], value: [5], in: try other.columnFamily("kv"))
    let error = assertThrowsStorageError { () throws(StorageError) in try db.write(bad) }
    XCTAssertEqual(error, .foreignHandle("column family \"kv\""))
    XCTAssertNil(try db.get([3], in: log))
    XCTAssertNil(try db.get([4], in: meta))

    bad.removeAll()
    XCTAssertTrue(bad.isEmpty)
    try db.write(bad)  // an empty batch is fine
  }

  func testDeleteRangeRemovesHalfOpenRange() throws {
    let db = try RocksDB(path: makeTemporaryPath(), columnFamilies: ["raft_log"])
    let log = try db.columnFamily("raft_log")
    for index in UInt64(1)...10 {
      try db.put(key: BigEndian.bytes(index), value: [UInt8(index)], in: log)
    }
    try db.deleteRange(from: BigEndian.bytes(UInt64(3)), to: BigEndian.bytes(UInt64(8)), in: log, sync: true)
    let remaining = try db.scan(log, from: nil, to: nil).compactMap { BigEndian.uint64(from: $0.key) }
    XCTAssertEqual(remaining, [1, 2, 8, 9, 10])

    var batch = WriteBatch()
    batch.deleteRange(from: BigEndian.bytes(UInt64(0)), to: BigEndian.bytes(UInt64(9)), in: log)
    try db.write(batch)
    XCTAssertEqual(
      try db.scan(log, from: nil, to: nil).compactMap { BigEndian.uint64(from: $0.key) }, [9, 10])
  }

  func testSyncedWritesSurviveCloseAndReopen() throws {
    let path = makeTemporaryPath()
    do {
      let db = try RocksDB(path: path, columnFamilies: families)
      var batch = WriteBatch()
      for index in UInt64(1)...100 {
        batch.put(
          key: BigEndian.bytes(index), value: [UInt8](utf8: "entry \(index)"),
          in: try db.columnFamily("raft_log"))
      }
      try db.write(batch, sync: true)
      try db.put(
        key: [UInt8](utf8: "term"), value: BigEndian.bytes(UInt64(7)), in: db.columnFamily("raft_state"),
        sync: true)
      db.close()
    }
    let db = try RocksDB(path: path, columnFamilies: families)
    let log = try db.columnFamily("raft_log")
    XCTAssertEqual(try db.get(BigEndian.bytes(UInt64(42)), in: log), [UInt8](utf8: "entry 42"))
    XCTAssertEqual(try db.scan(log, from: nil, to: nil).count, 100)
    let term = try db.get([UInt8](utf8: "term"), in: db.columnFamily("raft_state"))
    XCTAssertEqual(term.flatMap { BigEndian.uint64(from: $0) }, 7)
  }

  func testDroppedHandleClosesDatabase() throws {
    let path = makeTemporaryPath()
    do {
      let db = try RocksDB(path: path, columnFamilies: ["kv"])
      try db.put(key: [1], value: [1], in: db.columnFamily("kv"))
    }
    // deinit closed the first handle and released the LOCK, so this open succeeds.
    let db = try RocksDB(path: path, columnFamilies: ["kv"])
    XCTAssertEqual(try db.get([1], in: db.columnFamily("kv")), [1])
  }

  func testUnknownColumnFamilyThrows() throws {
    let db = try RocksDB(path: makeTemporaryPath(), columnFamilies: ["kv"])
    let error = assertThrowsStorageError { () throws(StorageError) in try db.columnFamily("nope") }
    XCTAssertEqual(error, .unknownColumnFamily("nope"))
    XCTAssertEqual(error?.description.contains("nope"), true)
    XCTAssertNoThrow(try db.columnFamily("default"))
  }

  func testColumnFamilyOfAnotherDatabaseIsRejected() throws {
    let first = try RocksDB(path: makeTemporaryPath(), columnFamilies: ["kv"])
    let second = try RocksDB(path: makeTemporaryPath(), columnFamilies: ["kv"])
    let foreign = try second.columnFamily("kv")
    let error = assertThrowsStorageError { () throws(StorageError) in try first.get([1], in: foreign) }
    XCTAssertEqual(error, .foreignHandle("column family \"kv\""))
  }

  func testSecondHandleOnOpenDatabaseGivesClearError() throws {
    let path = makeTemporaryPath()
    let db = try RocksDB(path: path, columnFamilies: ["kv"])
    let error = assertThrowsStorageError { () throws(StorageError) in
      try RocksDB(path: path, columnFamilies: ["kv"])
    }
    guard case .databaseInUse(let reportedPath, let message)? = error else {
      return XCTFail("expected .databaseInUse, got \(String(describing: error))")
    }
    XCTAssertEqual(reportedPath, path)
    XCTAssertTrue(message.contains("LOCK"), message)
    let description = error?.description ?? ""
    XCTAssertTrue(description.contains("in use by another handle or process"), description)
    XCTAssertTrue(description.contains(path), description)

    db.close()
    XCTAssertNoThrow(try RocksDB(path: path, columnFamilies: ["kv"]), "closing releases the lock")
  }

  func testOpeningMissingDatabaseWithoutCreateIfMissingFails() throws {
    let path = makeTemporaryPath()
    let error = assertThrowsStorageError { () throws(StorageError) in
      try RocksDB(path: path, columnFamilies: [], options: .init(createIfMissing: false))
    }
    guard case .rocksdb(let operation, let message)? = error else {
      return XCTFail("expected .rocksdb, got \(String(describing: error))")
    }
    XCTAssertEqual(operation, "open")
    XCTAssertFalse(message.isEmpty)
  }

  func testEveryCompressionTypeOpens() throws {
    for compression: RocksDB.Compression in [.none, .snappy, .lz4, .zstd] {
      let db = try RocksDB(
        path: makeTemporaryPath(), columnFamilies: ["kv"],
        options: .init(compression: compression, backgroundThreads: 2))
      try db.put(key: [1], value: makeTestData(count: 4096), in: db.columnFamily("kv"))
      XCTAssertEqual(try db.get([1], in: db.columnFamily("kv")), makeTestData(count: 4096))
    }
  }

  func testOperationsAfterCloseThrowClosed() throws {
    let db = try RocksDB(path: makeTemporaryPath(), columnFamilies: ["kv"])
    let kv = try db.columnFamily("kv")
    db.close()
    db.close()  // idempotent
    XCTAssertTrue(db.isClosed)

    let operations: [(String, () throws(StorageError) -> Void)] = [
      ("get", { () throws(StorageError) in _ = try db.get([1], in: kv) }),
      ("put", { () throws(StorageError) in try db.put(key: [1], value: [1], in: kv) }),
      ("delete", { () throws(StorageError) in try db.delete([1], in: kv) }),
      ("write", { () throws(StorageError) in try db.write(WriteBatch()) }),
      ("scan", { () throws(StorageError) in _ = try db.scan(kv, prefix: []) }),
      ("iterator", { () throws(StorageError) in _ = try db.makeIterator(in: kv) }),
      ("snapshot", { () throws(StorageError) in _ = try db.snapshot() }),
      ("checkpoint", { () throws(StorageError) in try db.checkpoint(to: self.makeTemporaryPath()) }),
      ("columnFamily", { () throws(StorageError) in _ = try db.columnFamily("kv") }),
    ]
    for (name, operation) in operations {
      let error = assertThrowsStorageError(operation)
      XCTAssertEqual(error, .closed, name)
    }
  }

  func testConcurrentReadsAndWrites() throws {
    let db = try RocksDB(path: makeTemporaryPath(), columnFamilies: ["kv"])
    let kv = try db.columnFamily("kv")
    let failures = FailureCounter()
    DispatchQueue.concurrentPerform(iterations: 8) { worker in
      for index in 0..<200 {
        let key = BigEndian.bytes(UInt32(worker)) + BigEndian.bytes(UInt32(index))
        do {
          try db.put(key: key, value: [UInt8(worker)], in: kv)
          if try db.get(key, in: kv) != [UInt8(worker)] { failures.record() }
        } catch {
          failures.record()
        }
      }
    }
    XCTAssertEqual(failures.count, 0)
    XCTAssertEqual(try db.scan(kv, from: nil, to: nil).count, 8 * 200)
  }

  func testCloseWaitsForConcurrentOperations() throws {
    let db = try RocksDB(path: makeTemporaryPath(), columnFamilies: ["kv"])
    let kv = try db.columnFamily("kv")
    let unexpected = FailureCounter()
    DispatchQueue.concurrentPerform(iterations: 4) { worker in
      if worker == 0 {
        db.close()
        return
      }
      for index in 0..<500 {
        do {
          try db.put(key: BigEndian.bytes(UInt32(index)), value: [1], in: kv)
        } catch StorageError.closed {
          return
        } catch {
          unexpected.record()
          return
        }
      }
    }
    XCTAssertEqual(unexpected.count, 0)
    XCTAssertTrue(db.isClosed)
  }
}

/// A thread-safe counter for failures seen on worker threads.
final class FailureCounter: Sendable {
  private let value = Mutex(0)

  func record() {
    value.withLock { $0 += 1 }
  }

  var count: Int {
    value.withLock { $0 }
  }
}
