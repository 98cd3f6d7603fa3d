import Foundation
import Raft
import ShardCtrler
import Storage
import SwiftProtobuf
import Synchronization
import Wire

/// The replicated key-value state of one group, durable in RocksDB.
///
/// Layout: the data family maps (shard as big-endian u32 ‖ user key) to the value, so one
/// shard is one contiguous key range (cheap to stream or delete when it moves); `meta` holds
/// the applied index, one record per client session, the shard table, the member directory
/// (`MemberDirectory`: each member's API address, for leader hints) and which of the two data
/// families (`kv`, `kv_b`) is the live one. Every `apply` writes its data, the sessions it
/// touched, the shard table, the directory entries it changed and the new applied index in one
/// RocksDB batch, so after a crash the node resumes exactly where its disk says, replaying only
/// the log entries after it.
///
/// Snapshot installs: `restore` writes the image piece by piece into the spare data family,
/// then switches to it in one batch (see `restore`), so a crash leaves the old state or the
/// whole new one without the image ever being in memory.
///
/// Shards: the `ShardTable` says which shards the group serves at each log index. A client
/// operation is checked against it when applied, not only when received: a write for a shard
/// the group does not serve at that index is answered WRONG_GROUP (SHARD_NOT_READY while the
/// shard is being pulled) and leaves the session table alone, so the client's retry elsewhere
/// still executes exactly once. A standalone group (no `group` option) serves every shard.
///
/// Exactly-once: see `SessionTable`; sessions travel with shards (the last page of a pulled
/// shard carries the old owner's sessions, merged by highest sequence per client).
public final class KVStateMachine: StateMachine {
  public static let columnFamilies = dataFamilyNames + ["meta"]
  /// The two families the data alternates between: one live, one spare for the next restore.
  static let dataFamilyNames = ["kv", "kv_b"]
  static let appliedKey = Array("applied".utf8)
  static let shardTableKey = Array("shard_table".utf8)
  /// Names the live data family (absent: `kv`, as before there were two).
  static let dataFamilyKey = Array("data_family".utf8)
  /// Beyond every data key (shard numbers are far below 2^32 − 1): the end of a range that
  /// empties a data family.
  static let endOfData = [UInt8](repeating: 0xFF, count: 8)

  public struct Options: Hashable, Sendable {
    /// The shard count of a standalone group. A sharded group takes its count from the
    /// controller's configurations.
    public var shardMap: ShardMap
    public var limits: KVLimits
    /// How long a client session may stay idle before its dedup record is dropped.
    public var sessionTimeout: Duration
    /// Sessions are swept at log indices divisible by this.
    public var sessionSweepInterval: UInt64
    /// The replica group this node belongs to; 0 for a standalone group.
    public var group: GroupID
    /// The shard controller's API addresses, named in WRONG_GROUP replies.
    public var controllers: [String]
    /// Largest decompressed shard page accepted from another group.
    public var maxPageBytes: Int
    /// This node's API address, named in replies (`served_by`) so that clients and routers
    /// come straight to the leader next time. Node-local: never part of the replicated state.
    public var apiAddress: String

    public init(
      shardMap: ShardMap = ShardMap(shardCount: 64), limits: KVLimits = KVLimits(),
      sessionTimeout: Duration = .seconds(3600), sessionSweepInterval: UInt64 = 1000, group: GroupID = 0,
      controllers: [String] = [], maxPageBytes: Int = 64 << 20, apiAddress: String = ""
    ) {
      self.shardMap = shardMap
      self.limits = limits
      self.sessionTimeout = sessionTimeout
      self.sessionSweepInterval = max(1, sessionSweepInterval)
      self.group = group
      self.controllers = controllers
      self.maxPageBytes = maxPageBytes
      self.apiAddress = apiAddress
    }
  }

  struct State {
    var applied: UInt64
    var sessions: SessionTable
    var table: ShardTable
    var members: MemberDirectory
    /// The live data family; only `restore` switches it.
    var data: ColumnFamily
  }

  public let options: Options
  let db: RocksDB
  /// `kv` and `kv_b`: `state.data` is one of them, the other is the spare.
  let dataFamilies: [ColumnFamily]
  let meta: ColumnFamily
  /// Also held while a batch is written, so that a reader sees the table and the data of the
  /// same batch (see `read`).
  let state: Mutex<State>

  /// Opens the state stored in `db`, which must have `columnFamilies` among its families.
  public init(db: RocksDB, options: Options = Options()) throws {
    self.db = db
    self.options = options
    dataFamilies = try Self.dataFamilyNames.map { try db.columnFamily($0) }
    meta = try db.columnFamily("meta")
    let liveName =
      try db.get(Self.dataFamilyKey, in: meta).map { String(decoding: $0, as: UTF8.self) } ?? "kv"
    guard let data = dataFamilies.first(where: { $0.name == liveName }) else {
      throw KVStateError.corrupt("meta names data family \"\(liveName)\", not one of \(Self.dataFamilyNames)")
    }
    let applied = try db.get(Self.appliedKey, in: meta).flatMap { BigEndian.uint64(from: $0) } ?? 0
    let sessions = try SessionTable(loadingFrom: db, family: meta)
    let members = try MemberDirectory(loadingFrom: db, family: meta)
    let table: ShardTable
    if let stored = try db.get(Self.shardTableKey, in: meta) {
      table = try ShardTable(Shardkv_Group_ShardTableRecord(serializedBytes: stored))
      guard table.group == options.group else {
        throw KVStateError.wrongGroup(stored: table.group, configured: options.group)
      }
    } else {
      table = Self.initialTable(options)
    }
    state = Mutex(State(applied: applied, sessions: sessions, table: table, members: members, data: data))
    // A restore that a crash interrupted left part of an image in the spare family.
    let spare = spareFamily(besides: data)
    let leftover = try db.scan(spare, prefix: [], limit: 1)
    if !leftover.isEmpty { try db.deleteRange(from: [], to: Self.endOfData, in: spare) }
  }

  /// The data family that is not `live`.
  func spareFamily(besides live: ColumnFamily) -> ColumnFamily {
    dataFamilies[0] == live ? dataFamilies[1] : dataFamilies[0]
  }

  /// The group whose data `db` holds (0: a standalone store), or nil when it holds none yet.
  public static func storedGroup(in db: RocksDB) throws -> GroupID? {
    guard let stored = try db.get(shardTableKey, in: try db.columnFamily("meta")) else { return nil }
    return try Shardkv_Group_ShardTableRecord(serializedBytes: stored).group
  }

  static func initialTable(_ options: Options) -> ShardTable {
    options.group == 0
      ? .standalone(shardCount: options.shardMap.shardCount) : .sharded(group: options.group)
  }

  public var appliedIndex: UInt64 { state.withLock { $0.applied } }

  /// Client sessions currently remembered.
  public var sessionCount: Int { state.withLock { $0.sessions.count } }

  /// The shard table as of the last applied entry.
  public var shardTable: ShardTable { state.withLock { $0.table } }

  /// The member directory as of the last applied entry.
  public var memberDirectory: MemberDirectory { state.withLock { $0.members } }

  /// This node's own value for `key`, without consensus and whatever the shard's phase:
  /// possibly stale (`direct_get`).
  public func localValue(for key: [UInt8]) throws -> [UInt8]? {
    // Under the lock: a restore switching families must not leave this reading the old one
    // while it is emptied.
    try state.withLock { state throws -> [UInt8]? in
      guard let map = state.table.shardMap else { return nil }
      return try db.get(Self.dataKey(shard: map.shard(of: key), key), in: state.data)
    }
  }

  /// A Get answered from local state: the value if the group serves the key's shard, else
  /// the error a client gets. Linearizable after a read barrier (`RaftNode.linearizableRead`).
  ///
  /// The table check and the read happen under the lock that `apply` holds while writing a
  /// batch, so the data read is that of the table checked (a shard cannot be handed off and
  /// deleted between the two).
  public func read(_ key: [UInt8]) throws -> Shardkv_KvReply {
    try state.withLock { state throws -> Shardkv_KvReply in
      let (shard, access) = Self.access(key, table: state.table)
      guard access == .serve else { return routingReply(access, shard: shard, table: state.table) }
      var reply = Self.reply(.noKey)
      if let found = try db.get(Self.dataKey(shard: shard, key), in: state.data) {
        reply.error = .ok
        reply.value = Data(found)
      }
      reply.servedBy = options.apiAddress
      return reply
    }
  }

  /// Why a request for `key` cannot be served here now, or nil if it can (as of the last
  /// applied entry: the answer is a hint; `apply` decides).
  public func refusal(for key: [UInt8]) -> Shardkv_KvReply? {
    let table = shardTable
    let (shard, access) = Self.access(key, table: table)
    return access == .serve ? nil : routingReply(access, shard: shard, table: table)
  }

  static func access(_ key: [UInt8], table: ShardTable) -> (shard: Int, access: ShardTable.Access) {
    guard let map = table.shardMap else { return (0, .wrongGroup) }
    let shard = map.shard(of: key)
    return (shard, table.access(shard: shard))
  }

  /// WRONG_GROUP or SHARD_NOT_READY, with what this node knows of the shard's owner.
  func routingReply(_ access: ShardTable.Access, shard: Int, table: ShardTable) -> Shardkv_KvReply {
    let owner = shard < table.config.shards.count ? table.config.shards[shard] : 0
    var reply: Shardkv_KvReply
    if access == .notReady {
      reply = Self.reply(.shardNotReady, "shard \(shard) of group \(owner) is still being pulled")
    } else {
      reply = Self.reply(
        .wrongGroup,
        table.shardMap == nil
          ? "group \(table.group) has no configuration yet"
          : "shard \(shard) belongs to group \(owner) in configuration \(table.config.num)")
    }
    reply.shard = UInt32(shard)
    reply.ownerGroup = owner
    reply.ownerServers = table.config.groups[owner] ?? []
    reply.controllers = options.controllers
    reply.configNum = table.config.num
    return reply
  }

  static func dataKey(shard: Int, _ key: [UInt8]) -> [UInt8] { BigEndian.bytes(UInt32(shard)) + key }

  /// The key range of `shard` in column family `kv`.
  static func range(of shard: Int) -> (start: [UInt8], end: [UInt8]) {
    (BigEndian.bytes(UInt32(shard)), BigEndian.bytes(UInt32(shard) + 1))
  }

  // MARK: - Applying

  public func apply(_ entries: [Entry]) throws -> [[UInt8]] {
    var batch = ApplyBatch(state: state.withLock { $0 })
    var results: [[UInt8]] = []
    results.reserveCapacity(entries.count)
    for entry in entries {
      batch.state.applied = entry.index
      if case .membership(let membership) = entry.payload {
        batch.state.members.retain(membership, in: &batch.writes, family: meta)
      }
      guard case .command(let bytes) = entry.payload else {
        results.append([])
        continue
      }
      let stamp = try execute(bytes, into: &batch, results: &results)
      if entry.index % options.sessionSweepInterval == 0 {
        batch.state.sessions.sweep(
          nowMs: stamp, timeout: options.sessionTimeout, in: &batch.writes, family: meta)
      }
    }
    if batch.tableChanged {
      batch.writes.put(
        key: Self.shardTableKey, value: try batch.state.table.record.serializedBytes(), in: meta)
    }
    batch.writes.put(key: Self.appliedKey, value: BigEndian.bytes(batch.state.applied), in: meta)
    try state.withLock { state throws in
      try db.write(batch.writes)
      state = batch.state
    }
    return results
  }

  /// What one `apply` call builds before writing it.
  struct ApplyBatch {
    var state: State
    var writes = WriteBatch()
    /// Values written earlier in this batch (nil: deleted), which later entries must see.
    var pending: [[UInt8]: [UInt8]?] = [:]
    /// Shards whose stored data this batch deleted.
    var cleared: Set<Int> = []
    var tableChanged = false
  }

  /// Executes one command; returns its leader stamp.
  private func execute(
    _ bytes: [UInt8], into batch: inout ApplyBatch, results: inout [[UInt8]]
  ) throws -> UInt64 {
    guard let command = try? Shardkv_Group_Command(serializedBytes: bytes) else {
      results.append((try? Self.reply(.invalidArgument, "undecodable command").serializedBytes()) ?? [])
      return 0
    }
    switch command.body {
    case .request(let request):
      let reply = try executeClient(request, stampMs: command.stampMs, into: &batch)
      results.append((try? reply.serializedBytes()) ?? [])
    case .reconfigure(let reconfigure):
      results.append(try executeReconfigure(ShardConfiguration(reconfigure.config), into: &batch))
    case .installShard(let install):
      results.append(try executeInstall(install, into: &batch))
    case .deleteShard(let delete):
      if batch.state.table.delete(shard: Int(delete.shard), configNum: delete.configNum) {
        clear(Int(delete.shard), in: &batch)
        batch.tableChanged = true
      }
      results.append([])
    case .publishMember(let entry):
      batch.state.members.publish(entry, in: &batch.writes, family: meta)
      results.append([])
    case nil:
      results.append((try? Self.reply(.invalidArgument, "empty command").serializedBytes()) ?? [])
    }
    return command.stampMs
  }

  private func executeClient(
    _ request: Shardkv_KvRequest, stampMs: UInt64, into batch: inout ApplyBatch
  ) throws -> Shardkv_KvReply {
    let key = [UInt8](request.key)
    let value = [UInt8](request.value)
    let isWrite = [.put, .append, .delete].contains(request.op)
    let (shard, access) = Self.access(key, table: batch.state.table)
    // Ownership first: a write the group does not execute must not touch the session table.
    guard access == .serve else { return routingReply(access, shard: shard, table: batch.state.table) }
    if isWrite {
      switch batch.state.sessions.check(client: request.clientID, sequence: request.sequence) {
      case .fresh: break
      case .duplicate(let reply): return (try? Shardkv_KvReply(serializedBytes: reply)) ?? Self.reply(.ok)
      case .superseded(let last): return Self.reply(.ok, "superseded by sequence \(last)")
      }
    }
    let dataKey = Self.dataKey(shard: shard, key)
    func current() throws -> [UInt8]? {
      if let staged = batch.pending[dataKey] { return staged }
      if batch.cleared.contains(shard) { return nil }
      return try db.get(dataKey, in: batch.state.data)
    }
    var reply: Shardkv_KvReply
    if let problem = options.limits.violation(key: key, value: value) {
      reply = Self.reply(.invalidArgument, problem)
    } else {
      switch request.op {
      case .get:
        if let found = try current() {
          reply = Self.reply(.ok)
          reply.value = Data(found)
        } else {
          reply = Self.reply(.noKey)
        }
      case .put:
        batch.writes.put(key: dataKey, value: value, in: batch.state.data)
        batch.pending[dataKey] = value
        reply = Self.reply(.ok)
      case .append:
        let combined = (try current() ?? []) + value
        if combined.count > options.limits.maxValueBytes {
          reply = Self.reply(
            .invalidArgument,
            "the value would grow to \(combined.count) bytes; the limit is \(options.limits.maxValueBytes)")
        } else {
          batch.writes.put(key: dataKey, value: combined, in: batch.state.data)
          batch.pending[dataKey] = combined
          reply = Self.reply(.ok)
          reply.length = UInt64(combined.count)
        }
      case .delete:
        let existed = try current() != nil
        batch.writes.delete(dataKey, in: batch.state.data)
        batch.pending[dataKey] = .some(nil)
        reply = Self.reply(.ok)
        reply.existed = existed
      default:
        reply = Self.reply(.invalidArgument, "unknown operation \(request.op.rawValue)")
      }
    }
    reply.servedBy = options.apiAddress
    if isWrite {
      try batch.state.sessions.record(
        client: request.clientID, sequence: request.sequence, reply: try reply.serializedBytes(),
        stampMs: stampMs, in: &batch.writes, family: meta)
    }
    return reply
  }

  private func executeReconfigure(_ next: ShardConfiguration, into batch: inout ApplyBatch) throws -> [UInt8]
  {
    do {
      for shard in try batch.state.table.reconfigure(to: next) { clear(shard, in: &batch) }
      batch.tableChanged = true
      return []
    } catch {
      // A late duplicate (another leader proposed the same configuration) or one proposed
      // before an earlier move settled: harmless, the leader proposes again when it can.
      return Array(error.description.utf8)
    }
  }

  private func executeInstall(
    _ install: Shardkv_Group_InstallShard, into batch: inout ApplyBatch
  ) throws -> [UInt8] {
    let shard = Int(install.shard)
    let page: Shardkv_Group_ShardPage
    do {
      page = try Shardkv_Group_ShardPage(
        serializedBytes: try Zstd.decompress([UInt8](install.page), maxOutputSize: options.maxPageBytes))
    } catch {
      return Array("undecodable page: \(error)".utf8)
    }
    guard
      batch.state.table.install(
        shard: shard, configNum: install.configNum, sequence: install.sequence,
        resumeAfter: [UInt8](install.resumeAfter), last: install.last)
    else { return Array("page \(install.sequence) of shard \(shard) not expected".utf8) }
    for record in page.records {
      let dataKey = Self.dataKey(shard: shard, [UInt8](record.key))
      let value = [UInt8](record.value)
      batch.writes.put(key: dataKey, value: value, in: batch.state.data)
      batch.pending[dataKey] = value
    }
    if install.last {
      try batch.state.sessions.merge(page.sessions, in: &batch.writes, family: meta)
    }
    batch.tableChanged = true
    return []
  }

  private func clear(_ shard: Int, in batch: inout ApplyBatch) {
    let range = Self.range(of: shard)
    batch.writes.deleteRange(from: range.start, to: range.end, in: batch.state.data)
    let prefix = range.start
    batch.pending = batch.pending.filter { !$0.key.starts(with: prefix) }
    batch.cleared.insert(shard)
  }

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
    try state.withLock { state throws -> any SnapshotReader in
      let snapshot = try db.snapshot()
      let data = try db.makeIterator(in: state.data, snapshot: snapshot)
      data.seekToFirst()
      return KVSnapshotReader(
        index: state.applied, snapshot: snapshot, data: data, sessions: state.sessions.all,
        table: state.table.record, members: state.members.all)
    }
  }

  /// Installs an image piece by piece without holding it in memory: the spare data family is
  /// emptied, each piece's records are written into it (one batch per piece, not synced), and
  /// then one synced batch switches to it: it names the spare as the live family, replaces
  /// the sessions, the member directory and the shard table, writes the applied index and
  /// empties the old family.
  /// The write-ahead log keeps writes in order, so that last batch, once durable, makes every
  /// piece durable too; a crash before it leaves the old state and applied index untouched
  /// (the partial image in the spare is emptied at the next open or restore). Readers see the
  /// old state or the new one: the switch happens under the state lock.
  public func restore(_ metadata: SnapshotMetadata, from image: any SnapshotReader) throws {
    let live = state.withLock { $0.data }
    let spare = spareFamily(besides: live)
    try db.deleteRange(from: [], to: Self.endOfData, in: spare)
    var sessions: [Shardkv_ClientSession] = []
    var members: [Shardkv_MemberAddress] = []
    var table = Self.initialTable(options)
    while let bytes = try image.nextPiece() {
      let piece = try Shardkv_Group_SnapshotPiece(serializedBytes: bytes)
      var batch = WriteBatch()
      for record in piece.data {
        batch.put(key: [UInt8](record.key), value: [UInt8](record.value), in: spare)
      }
      try db.write(batch)
      sessions.append(contentsOf: piece.sessions)
      members.append(contentsOf: piece.members)
      if piece.hasShardTable {
        table = try ShardTable(piece.shardTable)
        guard table.group == options.group else {
          throw KVStateError.wrongGroup(stored: table.group, configured: options.group)
        }
      }
    }
    var batch = WriteBatch()
    var restoredSessions = SessionTable()
    try restoredSessions.replace(with: sessions, in: &batch, family: meta)
    var restoredMembers = MemberDirectory()
    restoredMembers.replace(with: members, in: &batch, family: meta)
    batch.put(key: Self.shardTableKey, value: try table.record.serializedBytes(), in: meta)
    batch.put(key: Self.appliedKey, value: BigEndian.bytes(metadata.index), in: meta)
    batch.put(key: Self.dataFamilyKey, value: Array(spare.name.utf8), in: meta)
    batch.deleteRange(from: [], to: Self.endOfData, in: live)
    try state.withLock { state throws in
      try db.write(batch, sync: true)
      state = State(
        applied: metadata.index, sessions: restoredSessions, table: table, members: restoredMembers,
        data: spare)
    }
  }
}

/// Streams a consistent image: every data record, then every session, the shard table and the
/// member directory, as of one RocksDB snapshot taken under the state lock, in pieces of about
/// `pieceBytes`.
final class KVSnapshotReader: SnapshotReader {
  let index: UInt64
  private static let pieceBytes = 512 << 10

  private struct Cursor {
    let snapshot: RocksSnapshot
    let data: RocksIterator
    var sessions: [Shardkv_ClientSession]
    let table: Shardkv_Group_ShardTableRecord
    let members: [Shardkv_MemberAddress]
    var finished = false
  }
  // RocksIterator is not thread-safe; the lock makes each call exclusive.
  private let cursor: Mutex<Cursor>

  init(
    index: UInt64, snapshot: sending RocksSnapshot, data: sending RocksIterator,
    sessions: [Shardkv_ClientSession], table: Shardkv_Group_ShardTableRecord, members: [Shardkv_MemberAddress]
  ) {
    self.index = index
    cursor = Mutex(Cursor(snapshot: snapshot, data: data, sessions: sessions, table: table, members: members))
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
        piece.sessions = cursor.sessions
        piece.shardTable = cursor.table
        piece.members = cursor.members
        cursor.sessions.removeAll()
        cursor.finished = true
        cursor.data.close()
        cursor.snapshot.close()
      }
      return try piece.serializedBytes()
    }
  }
}

extension KVStateMachine: MemberAddressBook {
  public func apiAddress(of member: NodeID) -> String? {
    state.withLock { $0.members.apiAddress(of: member) }
  }

  public func publicationCommand(_ entry: Shardkv_MemberAddress) throws -> [UInt8] {
    var command = Shardkv_Group_Command()
    command.publishMember = entry
    command.stampMs = UInt64(max(0, Date().timeIntervalSince1970 * 1000))
    return try command.serializedBytes()
  }
}
