import Foundation
import XCTest

@testable import Storage

final class RocksSnapshotTests: TemporaryDirectoryTestCase {
  func testSnapshotReadsDoNotSeeLaterWrites() throws {
    let db = try RocksDB(path: makeTemporaryPath(), columnFamilies: ["kv"])
    let kv = try db.columnFamily("kv")
    try db.put(key: [1], value: [1], in: kv)
    try db.put(key: [2], value: [2], in: kv)

    let snapshot = try db.snapshot()
    try db.put(key: [1], value: [100], in: kv)
    try db.delete([2], in: kv)
    try db.put(key: [3], value: [3], in: kv)

    XCTAssertEqual(try db.get([1], in: kv, snapshot: snapshot), [1])
    XCTAssertEqual(try db.get([2], in: kv, snapshot: snapshot), [2])
    XCTAssertNil(try db.get([3], in: kv, snapshot: snapshot))
    XCTAssertEqual(try db.scan(kv, prefix: [], snapshot: snapshot).map(\.key), [[1], [2]])

    let iterator = try db.makeIterator(in: kv, snapshot: snapshot)
    iterator.seekToFirst()
    XCTAssertEqual(iterator.entry, KeyValuePair(key: [1], value: [1]))

    // Without the snapshot, the latest state.
    XCTAssertEqual(try db.get([1], in: kv), [100])
    XCTAssertNil(try db.get([2], in: kv))
    XCTAssertEqual(try db.scan(kv, prefix: []).map(\.key), [[1], [3]])
  }

  func testClosedSnapshotThrowsClosed() throws {
    let db = try RocksDB(path: makeTemporaryPath(), columnFamilies: ["kv"])
    let kv = try db.columnFamily("kv")
    let snapshot = try db.snapshot()
    snapshot.close()
    snapshot.close()
    XCTAssertEqual(
      assertThrowsStorageError { () throws(StorageError) in try db.get([1], in: kv, snapshot: snapshot) },
      .closed)
    XCTAssertEqual(
      assertThrowsStorageError { () throws(StorageError) in try db.makeIterator(in: kv, snapshot: snapshot) },
      .closed)
  }

  func testClosingDatabaseReleasesOpenSnapshots() throws {
    let path = makeTemporaryPath()
    let db = try RocksDB(path: path, columnFamilies: ["kv"])
    let snapshot = try db.snapshot()
    db.close()
    XCTAssertEqual(
      assertThrowsStorageError { () throws(StorageError) in
        try db.get([1], in: db.columnFamily("kv"), snapshot: snapshot)
      },
      .closed)
    snapshot.close()
    XCTAssertNoThrow(try RocksDB(path: path, columnFamilies: ["kv"]), "the database really closed")
  }

  func testSnapshotOfAnotherDatabaseIsRejected() throws {
    let first = try RocksDB(path: makeTemporaryPath(), columnFamilies: ["kv"])
    let second = try RocksDB(path: makeTemporaryPath(), columnFamilies: ["kv"])
    let snapshot = try second.snapshot()
    let error = assertThrowsStorageError { () throws(StorageError) in
      try first.get([1], in: first.columnFamily("kv"), snapshot: snapshot)
    }
    XCTAssertEqual(error, .foreignHandle("snapshot"))
  }

  func testCheckpointOpensAsSeparateDatabase() throws {
    let db = try RocksDB(path: makeTemporaryPath(), columnFamilies: ["kv", "meta"])
    let kv = try db.columnFamily("kv")
    try db.put(key: [1], value: [1], in: kv)
    try db.put(key: [2], value: [2], in: db.columnFamily("meta"))

    let checkpointPath = makeTemporaryPath("checkpoint")
    try db.checkpoint(to: checkpointPath)
    try db.put(key: [1], value: [9], in: kv)

    // Opens while the source is still open: it has its own LOCK.
    let copy = try RocksDB(path: checkpointPath, columnFamilies: [])
    XCTAssertEqual(Set(copy.columnFamilyNames), ["default", "kv", "meta"])
    XCTAssertEqual(try copy.get([1], in: copy.columnFamily("kv")), [1])
    XCTAssertEqual(try copy.get([2], in: copy.columnFamily("meta")), [2])

    try copy.put(key: [3], value: [3], in: copy.columnFamily("kv"))
    XCTAssertNil(try db.get([3], in: kv), "writes to the copy do not reach the source")
  }

  func testCheckpointIntoExistingDirectoryFails() throws {
    let db = try RocksDB(path: makeTemporaryPath(), columnFamilies: ["kv"])
    let existing = makeTemporaryPath("existing")
    try FileManager.default.createDirectory(atPath: existing, withIntermediateDirectories: true)
    let error = assertThrowsStorageError { () throws(StorageError) in try db.checkpoint(to: existing) }
    guard case .rocksdb(let operation, let message)? = error else {
      return XCTFail("expected .rocksdb, got \(String(describing: error))")
    }
    XCTAssertEqual(operation, "checkpoint")
    XCTAssertFalse(message.isEmpty)
  }
}
