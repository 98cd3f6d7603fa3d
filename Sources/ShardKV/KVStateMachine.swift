import Foundation
import Raft
import Storage
import SwiftProtobuf
import Synchronization
import Wire

/// The replicated key-value state of one group, durable in RocksDB.
///
/// Layout: column family `kv` maps (shard as big-endian u32 ‖ user key) to the value, so one
/// shard is one contiguous key range (cheap to stream or delete when it moves); `meta` holds
/// the applied index and one record per client session. Every `apply` writes its data, the
/// sessions it touched and the new applied index in one RocksDB batch, so after a crash the
/// node resumes exactly where its disk says, replaying only the log entries after it.
///
/// Exactly-once: a write carries (client id, sequence). The last reply per client is kept; a
/// retry of that sequence gets the same reply without executing again, and an older sequence
/// is never executed. Sessions idle for longer than `sessionTimeout` are dropped, measured in
/// the leader-stamped time inside the log, so every replica drops the same ones at the same
/// index.
public final class KVStateMachine: StateMachine {
  public static let columnFamilies = ["kv", "meta"]
  static let appliedKey = Array("applied".utf8)
  static let sessionPrefix = Array("session/".utf8)

  public struct Options: Hashable, Sendable {
    public var shardMap: ShardMap
    public var limits: KVLimits
    /// How long a client session may stay idle before its dedup record is dropped.
    public var sessionTimeout: Duration
    /// Sessions are swept at log indices divisible by this.
    public var sessionSweepInterval: UInt64

    public init(
      shardMap: ShardMap = ShardMap(shardCount: 64), limits: KVLimits = KVLimits(),
      sessionTimeout: Duration = .seconds(3600), sessionSweepInterval: UInt64 = 1000
    ) {
      self.shardMap = shardMap
      self.limits = limits
      self.sessionTimeout = sessionTimeout
      self.sessionSweepInterval = max(1, sessionSweepInterval)
    }
  }

  private struct State {
    var applied: UInt64
    var sessions: [UInt64: Shardkv_Group_Session]
  }

  public let options: Options
  private let db: RocksDB
  private let kv: ColumnFamily
  private let meta: ColumnFamily
  private let state: Mutex<State>

  /// Opens the state stored in `db`, which must have `columnFamilies` among its families.
  public init(db: RocksDB, options: Options = Options()) throws {
    self.db = db
    self.options = options
    kv = try db.columnFamily("kv")
    meta = try db.columnFamily("meta")
    let applied = try db.get(Self.appliedKey, in: meta).flatMap { BigEndian.uint64(from: $0) } ?? 0
    var sessions: [UInt64: Shardkv_Group_Session] = [:]
    for pair in try db.scan(meta, prefix: Self.sessionPrefix) {
      let session = try Shardkv_Group_Session(serializedBytes: pair.value)
      sessions[session.clientID] = session
    }
    state = Mutex(State(applied: applied, sessions: sessions))
  }

  public var appliedIndex: UInt64 { state.withLock { $0.applied } }

  /// Client sessions currently remembered.
  public var sessionCount: Int { state.withLock { $0.sessions.count } }

  /// This node's own value for `key`, without consensus: linearizable only after a read
  /// barrier (`RaftNode.linearizableRead`), else possibly stale (`direct_get`).
  public func localValue(for key: [UInt8]) throws -> [UInt8]? {
    try db.get(dataKey(key), in: kv)
  }

  func dataKey(_ key: [UInt8]) -> [UInt8] {
    BigEndian.bytes(UInt32(options.shardMap.shard(of: key))) + key
  }

  // MARK: - Applying

  public func apply(_ entries: [Entry]) throws -> [[UInt8]] {
    var current = state.withLock { $0 }
    var batch = WriteBatch()
    // Writes earlier in this batch are not in RocksDB yet; later reads must see them.
    var pending: [[UInt8]: [UInt8]?] = [:]
    var results: [[UInt8]] = []
    results.reserveCapacity(entries.count)
    for entry in entries {
      current.applied = entry.index
      guard case .command(let bytes) = entry.payload else {
        results.append([])
        continue
      }
      let (reply, stamp) = try execute(bytes, state: &current, batch: &batch, pending: &pending)
      results.append((try? reply.serializedBytes()) ?? [])
      if entry.index % options.sessionSweepInterval == 0 {
        sweepSessions(now: stamp, state: &current, batch: &batch)
      }
    }
    batch.put(key: Self.appliedKey, value: BigEndian.bytes(current.applied), in: meta)
    try db.write(batch)
    state.withLock { $0 = current }
    return results
  }

  private func execute(
    _ bytes: [UInt8], state: inout State, batch: inout WriteBatch, pending: inout [[UInt8]: [UInt8]?]
  ) throws -> (Shardkv_KvReply, UInt64) {
    guard let command = try? Shardkv_Group_Command(serializedBytes: bytes) else {
      return (Self.reply(.invalidArgument, "undecodable command"), 0)
    }
    let request = command.request
    let isWrite = [.put, .append, .delete].contains(request.op)
    if isWrite, request.clientID != 0, let session = state.sessions[request.clientID],
      request.sequence <= session.sequence
    {
      // A retry of the last write gets its reply again; an older one was answered already
      // and its client has moved on, so it must not execute.
      return (
        request.sequence == session.sequence
          ? session.reply : Self.reply(.ok, "superseded by sequence \(session.sequence)"),
        command.stampMs
      )
    }
    let key = [UInt8](request.key)
    let value = [UInt8](request.value)
    var reply: Shardkv_KvReply
    if let problem = options.limits.violation(key: key, value: value) {
      reply = Self.reply(.invalidArgument, problem)
    } else {
      let dataKey = self.dataKey(key)
      func current() throws -> [UInt8]? {
        if let staged = pending[dataKey] { return staged }
        return try db.get(dataKey, in: kv)
      }
      switch request.op {
      case .get:
        if let found = try current() {
          reply = Self.reply(.ok)
          reply.value = Data(found)
        } else {
          reply = Self.reply(.noKey)
        }
      case .put:
        batch.put(key: dataKey, value: value, in: kv)
        pending[dataKey] = value
        reply = Self.reply(.ok)
      case .append:
        let combined = (try current() ?? []) + value
        batch.put(key: dataKey, value: combined, in: kv)
        pending[dataKey] = combined
        reply = Self.reply(.ok)
      case .delete:
        batch.delete(dataKey, in: kv)
        pending[dataKey] = .some(nil)
        reply = Self.reply(.ok)
      default:
        reply = Self.reply(.invalidArgument, "unknown operation \(request.op.rawValue)")
      }
    }
    if isWrite && request.clientID != 0 {
      var session = Shardkv_Group_Session()
      session.clientID = request.clientID
      session.sequence = request.sequence
      session.reply = reply
      session.lastSeenMs = command.stampMs
      state.sessions[request.clientID] = session
      batch.put(
        key: Self.sessionKey(request.clientID), value: try session.serializedBytes(), in: meta)
    }
    return (reply, command.stampMs)
  }

  private func sweepSessions(now: UInt64, state: inout State, batch: inout WriteBatch) {
    let timeout = UInt64(max(0, options.sessionTimeout.components.seconds)) * 1000
    guard now > timeout else { return }
    let horizon = now - timeout
    for clientID in state.sessions.keys.sorted() {
      guard let session = state.sessions[clientID], session.lastSeenMs < horizon else { continue }
      state.sessions[clientID] = nil
      batch.delete(Self.sessionKey(clientID), in: meta)
    }
  }

  static func sessionKey(_ clientID: UInt64) -> [UInt8] { sessionPrefix + BigEndian.bytes(clientID) }

  static func reply(_ error: Shardkv_KvError, _ message: String = "") -> Shardkv_KvReply {
    var reply = Shardkv_KvReply()
    reply.error = error
    reply.message = message
    return reply
  }

  // MARK: - Durability and snapshots

  public func sync() throws {
    try db.write(WriteBatch(), sync: true)
  }

  public func makeSnapshot() throws -> any SnapshotReader {
    let snapshot = try db.snapshot()
    let index = appliedIndex
    let data = try db.makeIterator(in: kv, snapshot: snapshot)
    data.seekToFirst()
    let sessions = try db.scan(meta, prefix: Self.sessionPrefix, snapshot: snapshot)
    return KVSnapshotReader(index: index, snapshot: snapshot, data: data, sessions: sessions)
  }

  public func restore(_ metadata: SnapshotMetadata, from pieces: [[UInt8]]) throws {
    // One batch: a crash leaves either the old state or the whole new one.
    var batch = WriteBatch()
    batch.deleteRange(from: [], to: Array(repeating: 0xFF, count: 8), in: kv)
    batch.deleteRange(
      from: Self.sessionPrefix, to: RocksDB.upperBound(forPrefix: Self.sessionPrefix) ?? [0xFF],
      in: meta)
    var sessions: [UInt64: Shardkv_Group_Session] = [:]
    for bytes in pieces {
      let piece = try Shardkv_Group_SnapshotPiece(serializedBytes: bytes)
      for record in piece.data {
        batch.put(key: [UInt8](record.key), value: [UInt8](record.value), in: kv)
      }
      for session in piece.sessions {
        sessions[session.clientID] = session
        batch.put(
          key: Self.sessionKey(session.clientID), value: try session.serializedBytes(), in: meta)
      }
    }
    batch.put(key: Self.appliedKey, value: BigEndian.bytes(metadata.index), in: meta)
    try db.write(batch, sync: true)
    state.withLock { $0 = State(applied: metadata.index, sessions: sessions) }
  }
}

/// Streams a consistent image: every data record, then every session, as of one RocksDB
/// snapshot, in pieces of about `pieceBytes`.
final class KVSnapshotReader: SnapshotReader {
  let index: UInt64
  private static let pieceBytes = 512 << 10

  private struct Cursor {
    let snapshot: RocksSnapshot
    let data: RocksIterator
    var sessions: [KeyValuePair]
    var finished = false
  }
  // RocksIterator is not thread-safe; the lock makes each call exclusive.
  private let cursor: Mutex<Cursor>

  init(index: UInt64, snapshot: sending RocksSnapshot, data: sending RocksIterator, sessions: [KeyValuePair])
  {
    self.index = index
    cursor = Mutex(Cursor(snapshot: snapshot, data: data, sessions: sessions))
  }

  func nextPiece() throws -> [UInt8]? {
    try cursor.withLock { cursor throws -> [UInt8]? in
      guard !cursor.finished else { return nil }
      var piece = Shardkv_Group_SnapshotPiece()
      var bytes = 0
      while bytes < Self.pieceBytes, cursor.data.isValid, let entry = cursor.data.entry {
        var record = Shardkv_Group_SnapshotPiece.Record()
        record.key = Data(entry.key)
        record.value = Data(entry.value)
        piece.data.append(record)
        bytes += entry.key.count + entry.value.count
        cursor.data.next()
      }
      try cursor.data.checkStatus()
      if !cursor.data.isValid {
        for pair in cursor.sessions {
          piece.sessions.append(try Shardkv_Group_Session(serializedBytes: pair.value))
        }
        cursor.sessions.removeAll()
        cursor.finished = true
        cursor.data.close()
        cursor.snapshot.close()
      }
      return try piece.serializedBytes()
    }
  }
}
