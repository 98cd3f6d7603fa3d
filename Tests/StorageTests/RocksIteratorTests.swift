import XCTest

@testable import Storage

final class RocksIteratorTests: TemporaryDirectoryTestCase {
  private func makeDatabase(keys: [[UInt8]]) throws -> (RocksDB, ColumnFamily) {
    let db = try RocksDB(path: makeTemporaryPath(), columnFamilies: ["kv", "other"])
    let kv = try db.columnFamily("kv")
    var batch = WriteBatch()
    for key in keys {
      batch.put(key: key, value: key + [0xAA], in: kv)
    }
    // Same keys in a neighbouring family must never leak into scans of `kv`.
    batch.put(key: [0x01, 0x02], value: [0], in: try db.columnFamily("other"))
    try db.write(batch)
    return (db, kv)
  }

  func testPrefixScanExcludesKeysJustOutside() throws {
    let keys: [[UInt8]] = [
      [0x01, 0x01, 0xFF],  // just before the prefix
      [0x01, 0x02],  // the prefix itself
      [0x01, 0x02, 0x00],
      [0x01, 0x02, 0xFF, 0xFF],
      [0x01, 0x03],  // just after every key with the prefix
      [0x01, 0x03, 0x00],
    ]
    let (db, kv) = try makeDatabase(keys: keys)
    let entries = try db.scan(kv, prefix: [0x01, 0x02])
    XCTAssertEqual(entries.map(\.key), [[0x01, 0x02], [0x01, 0x02, 0x00], [0x01, 0x02, 0xFF, 0xFF]])
    XCTAssertEqual(entries.first?.value, [0x01, 0x02, 0xAA])
    XCTAssertEqual(try db.scan(kv, prefix: [0x01, 0x02], limit: 2).count, 2)
    XCTAssertEqual(try db.scan(kv, prefix: [0x01, 0x02], limit: 0).count, 0)
    XCTAssertEqual(try db.scan(kv, prefix: [0x02]).count, 0)
    XCTAssertEqual(try db.scan(kv, prefix: []).count, keys.count, "the empty prefix matches everything")
  }

  func testPrefixScanWithTrailingFFBytes() throws {
    let keys: [[UInt8]] = [
      [0x01, 0xFE], [0x01, 0xFF], [0x01, 0xFF, 0x05], [0x02], [0xFF], [0xFF, 0xFF, 0x01],
    ]
    let (db, kv) = try makeDatabase(keys: keys)
    XCTAssertEqual(try db.scan(kv, prefix: [0x01, 0xFF]).map(\.key), [[0x01, 0xFF], [0x01, 0xFF, 0x05]])
    XCTAssertEqual(try db.scan(kv, prefix: [0xFF, 0xFF]).map(\.key), [[0xFF, 0xFF, 0x01]])
    XCTAssertEqual(try db.scan(kv, prefix: [0xFF]).map(\.key), [[0xFF], [0xFF, 0xFF, 0x01]])
  }

  func testUpperBoundForPrefix() {
    XCTAssertEqual(RocksDB.upperBound(forPrefix: [0x01, 0x02]), [0x01, 0x03])
    XCTAssertEqual(RocksDB.upperBound(forPrefix: [0x01, 0xFF]), [0x02])
    XCTAssertEqual(RocksDB.upperBound(forPrefix: [0x01, 0xFF, 0xFF]), [0x02])
    XCTAssertNil(RocksDB.upperBound(forPrefix: [0xFF, 0xFF]))
    XCTAssertNil(RocksDB.upperBound(forPrefix: []))
  }

  func testRangeScanIsLowerInclusiveUpperExclusive() throws {
    let keys = (UInt64(1)...20).map { BigEndian.bytes($0) }
    let (db, kv) = try makeDatabase(keys: keys)
    func indices(_ entries: [KeyValuePair]) -> [UInt64] {
      entries.compactMap { BigEndian.uint64(from: $0.key) }
    }

    XCTAssertEqual(
      indices(try db.scan(kv, from: BigEndian.bytes(UInt64(5)), to: BigEndian.bytes(UInt64(9)))),
      [5, 6, 7, 8])
    XCTAssertEqual(indices(try db.scan(kv, from: nil, to: BigEndian.bytes(UInt64(3)))), [1, 2])
    XCTAssertEqual(indices(try db.scan(kv, from: BigEndian.bytes(UInt64(19)), to: nil)), [19, 20])
    XCTAssertEqual(indices(try db.scan(kv, from: nil, to: nil, limit: 3)), [1, 2, 3])
    XCTAssertEqual(try db.scan(kv, from: BigEndian.bytes(UInt64(9)), to: BigEndian.bytes(UInt64(9))).count, 0)
    XCTAssertEqual(try db.scan(kv, from: BigEndian.bytes(UInt64(9)), to: BigEndian.bytes(UInt64(5))).count, 0)
    // A bound that falls between keys.
    XCTAssertEqual(
      indices(try db.scan(kv, from: BigEndian.bytes(UInt64(4)) + [0], to: BigEndian.bytes(UInt64(6)) + [0])),
      [5, 6])
  }

  func testIteratorSeekNextPrevious() throws {
    let keys: [[UInt8]] = [[10], [20], [30], [40]]
    let (db, kv) = try makeDatabase(keys: keys)
    let iterator = try db.makeIterator(in: kv)
    XCTAssertFalse(iterator.isValid, "unpositioned until a seek")
    XCTAssertNil(iterator.key)

    iterator.seekToFirst()
    XCTAssertEqual(iterator.key, [10])
    XCTAssertEqual(iterator.value, [10, 0xAA])
    iterator.next()
    XCTAssertEqual(iterator.entry, KeyValuePair(key: [20], value: [20, 0xAA]))

    iterator.seek(to: [25])
    XCTAssertEqual(iterator.key, [30])
    iterator.previous()
    XCTAssertEqual(iterator.key, [20])
    iterator.seek(toLastAtOrBefore: [25])
    XCTAssertEqual(iterator.key, [20])
    iterator.seek(toLastAtOrBefore: [30])
    XCTAssertEqual(iterator.key, [30])

    iterator.seekToLast()
    XCTAssertEqual(iterator.key, [40])
    iterator.next()
    XCTAssertFalse(iterator.isValid)
    XCTAssertNil(iterator.value)
    XCTAssertNoThrow(try iterator.checkStatus(), "running off the end is not an error")
    iterator.next()  // no-op when invalid
    XCTAssertFalse(iterator.isValid)

    iterator.seekToFirst()
    iterator.previous()
    XCTAssertFalse(iterator.isValid)

    iterator.seek(to: [41])
    XCTAssertFalse(iterator.isValid)

    var forward: [[UInt8]] = []
    iterator.seekToFirst()
    while let key = iterator.key {
      forward.append(key)
      iterator.next()
    }
    XCTAssertEqual(forward, keys)
    var backward: [[UInt8]] = []
    iterator.seekToLast()
    while let key = iterator.key {
      backward.append(key)
      iterator.previous()
    }
    XCTAssertEqual(backward, keys.reversed())
    try iterator.checkStatus()
  }

  func testBoundedIterator() throws {
    let keys = (UInt64(1)...10).map { BigEndian.bytes($0) }
    let (db, kv) = try makeDatabase(keys: keys)
    let iterator = try db.makeIterator(
      in: kv, lowerBound: BigEndian.bytes(UInt64(3)), upperBound: BigEndian.bytes(UInt64(7)))
    iterator.seekToFirst()
    XCTAssertEqual(iterator.key.flatMap { BigEndian.uint64(from: $0) }, 3)
    iterator.seekToLast()
    XCTAssertEqual(iterator.key.flatMap { BigEndian.uint64(from: $0) }, 6)
    iterator.next()
    XCTAssertFalse(iterator.isValid)
    iterator.seek(to: BigEndian.bytes(UInt64(8)))
    XCTAssertFalse(iterator.isValid, "seeking past the upper bound finds nothing")
  }

  func testIteratorOnEmptyColumnFamily() throws {
    let (db, _) = try makeDatabase(keys: [[1]])
    let iterator = try db.makeIterator(in: try db.columnFamily("default"))
    iterator.seekToFirst()
    XCTAssertFalse(iterator.isValid)
    iterator.seekToLast()
    XCTAssertFalse(iterator.isValid)
    XCTAssertNoThrow(try iterator.checkStatus())
  }

  func testClosedIteratorReportsClosed() throws {
    let (db, kv) = try makeDatabase(keys: [[1], [2]])
    let iterator = try db.makeIterator(in: kv)
    iterator.seekToFirst()
    XCTAssertTrue(iterator.isValid)
    iterator.close()
    iterator.close()
    XCTAssertFalse(iterator.isValid)
    iterator.seekToFirst()
    XCTAssertNil(iterator.key)
    XCTAssertEqual(
      assertThrowsStorageError { () throws(StorageError) in try iterator.checkStatus() }, .closed)
  }

  func testClosingDatabaseInvalidatesOpenIterators() throws {
    let (db, kv) = try makeDatabase(keys: [[1], [2]])
    let iterator = try db.makeIterator(in: kv, lowerBound: [1], upperBound: [3])
    iterator.seekToFirst()
    XCTAssertEqual(iterator.key, [1])
    db.close()
    XCTAssertFalse(iterator.isValid)
    XCTAssertNil(iterator.key)
    iterator.next()
    XCTAssertEqual(
      assertThrowsStorageError { () throws(StorageError) in try iterator.checkStatus() }, .closed)
    iterator.close()  // after the database freed it: must not free twice
  }

  func testIteratorKeepsDatabaseAlive() throws {
    let path = makeTemporaryPath()
    var db: RocksDB? = try RocksDB(path: path, columnFamilies: ["kv"])
    let kv = try XCTUnwrap(db).columnFamily("kv")
    try XCTUnwrap(db).put(key: [1], value: [2], in: kv)
    let iterator = try XCTUnwrap(db).makeIterator(in: kv)
    db = nil
    iterator.seekToFirst()
    XCTAssertEqual(iterator.value, [2])
  }
}
