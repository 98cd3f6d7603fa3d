import Foundation
import Raft
import Storage
import Synchronization

/// A durable state machine for runtime tests: it appends every command to a list kept in
/// RocksDB (column family `kv`, key = big-endian index), with the applied index in `meta`, in
/// one batch per apply, as the real KV state machine will. Its result for a command is the
/// number of commands applied so far, so a test can see exactly-once application.
final class TestStateMachine: StateMachine {
  static let columnFamilies = ["kv", "meta"]
  private static let appliedKey = Array("applied".utf8)

  private let db: RocksDB
  private let kv: ColumnFamily
  private let meta: ColumnFamily
  private let state: Mutex<(applied: UInt64, count: UInt64, restores: Int)>

  init(db: RocksDB) throws {
    self.db = db
    kv = try db.columnFamily("kv")
    meta = try db.columnFamily("meta")
    let applied = try db.get(Self.appliedKey, in: meta).flatMap { BigEndian.uint64(from: $0) } ?? 0
    let count = UInt64(try db.scan(kv, prefix: []).count)
    state = Mutex((applied, count, 0))
  }

  var appliedIndex: UInt64 { state.withLock { $0.applied } }
  var restoreCount: Int { state.withLock { $0.restores } }

  /// Every command applied, in order.
  func commands() throws -> [[UInt8]] {
    try db.scan(kv, prefix: []).map(\.value)
  }

  func apply(_ entries: [Entry]) throws -> [[UInt8]] {
    var batch = WriteBatch()
    var results: [[UInt8]] = []
    var (applied, count, _) = state.withLock { $0 }
    for entry in entries {
      guard entry.index == applied + 1 else {
        // Not a trap: the runtime stops the node, and the test sees it never catch up.
        throw RaftCodecError.malformed("applied out of order: \(entry.index) after \(applied)")
      }
      applied = entry.index
      if case .command(let data) = entry.payload {
        count += 1
        batch.put(key: BigEndian.bytes(entry.index), value: data, in: kv)
        results.append(BigEndian.bytes(count))
      } else {
        results.append([])
      }
    }
    batch.put(key: Self.appliedKey, value: BigEndian.bytes(applied), in: meta)
    try db.write(batch)
    state.withLock {
      $0.applied = applied; $0.count = count
    }
    return results
  }

  func sync() throws {
    try db.write(WriteBatch(), sync: true)
  }

  func makeSnapshot() throws -> any SnapshotReader {
    var pieces: [[UInt8]] = []
    for pair in try db.scan(kv, prefix: []) {
      pieces.append(pair.key + BigEndian.bytes(UInt32(pair.value.count)) + pair.value)
    }
    return ArrayReader(index: appliedIndex, pieces: pieces)
  }

  /// Reads the image a piece (one command) at a time into one synced batch: a crash leaves
  /// the old state or the whole new one. (Its images are a few kilobytes; `KVStateMachine`
  /// shows how a large one is installed without a batch of its size.)
  func restore(_ metadata: SnapshotMetadata, from image: any SnapshotReader) throws {
    var batch = WriteBatch()
    batch.deleteRange(from: [], to: Array(repeating: 0xFF, count: 9), in: kv)
    var count: UInt64 = 0
    while let piece = try image.nextPiece() {
      guard let length = BigEndian.uint32(from: piece, at: 8), piece.count == 12 + Int(length) else {
        throw RaftCodecError.malformed("bad test snapshot piece")
      }
      batch.put(key: Array(piece[0..<8]), value: Array(piece[12...]), in: kv)
      count += 1
    }
    batch.put(key: Self.appliedKey, value: BigEndian.bytes(metadata.index), in: meta)
    try db.write(batch, sync: true)
    state.withLock {
      $0.applied = metadata.index
      $0.count = count
      $0.restores += 1
    }
  }
}

final class ArrayReader: SnapshotReader {
  let index: UInt64
  private let pieces: Mutex<[[UInt8]]>

  init(index: UInt64, pieces: [[UInt8]]) {
    self.index = index
    self.pieces = Mutex(pieces.reversed())
  }

  func nextPiece() throws -> [UInt8]? { pieces.withLock { $0.popLast() } }
}

/// A unique temporary directory, removed by `remove()`.
struct TemporaryDirectory {
  let path: String

  init() {
    path =
      FileManager.default.temporaryDirectory
      .appendingPathComponent("shardkv-raft-\(UUID().uuidString)").path
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  }

  func remove() { try? FileManager.default.removeItem(atPath: path) }
}
