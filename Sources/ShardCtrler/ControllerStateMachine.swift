import Foundation
import Raft
import Storage
import SwiftProtobuf
import Synchronization
import Wire

/// The controller's replicated state: every configuration since 0, the client sessions that
/// make writes exactly-once, and the member directory (`MemberDirectory`: each replica's API
/// address, for leader hints). Durable in RocksDB (column family `ctrler`): each `apply`
/// writes the configurations it created, the sessions and directory entries it touched and the
/// new applied index in one batch, so a restarted replica resumes from its own disk.
///
/// The shard count is fixed by the first client command applied (each command carries its
/// proposer's count), not by each replica's flags: replicas started with different `--shards`
/// still agree. A replica's address publication does not fix it.
public final class ControllerStateMachine: StateMachine {
  public static let columnFamilies = ["ctrler"]
  static let appliedKey = Array("applied".utf8)
  static let shardCountKey = Array("shard_count".utf8)
  static let configPrefix = Array("config/".utf8)

  public struct Options: Hashable, Sendable {
    /// The shard count this replica proposes; the first command applied fixes the real one.
    public var shardCount: Int
    /// How long a client session may stay idle before its dedup record is dropped.
    public var sessionTimeout: Duration
    /// Sessions are swept at log indices divisible by this.
    public var sessionSweepInterval: UInt64

    public init(
      shardCount: Int = 64, sessionTimeout: Duration = .seconds(3600), sessionSweepInterval: UInt64 = 1000
    ) {
      self.shardCount = shardCount
      self.sessionTimeout = sessionTimeout
      self.sessionSweepInterval = max(1, sessionSweepInterval)
    }
  }

  private struct State {
    var applied: UInt64 = 0
    /// nil until the first command fixes it.
    var shardCount: Int?
    /// configs[n] is configuration n; empty until the shard count is fixed.
    var configs: [ShardConfiguration] = []
    var sessions = SessionTable()
    var members = MemberDirectory()

    /// Configuration `num` (-1 or past the latest: the latest); before anything was applied,
    /// configuration 0 of `fallbackShardCount` shards.
    func configuration(_ num: Int64, fallbackShardCount: Int) -> ShardConfiguration {
      guard let latest = configs.last else { return .initial(shardCount: shardCount ?? fallbackShardCount) }
      return num >= 0 && num < Int64(configs.count) ? configs[Int(num)] : latest
    }
  }

  public let options: Options
  private let db: RocksDB
  private let family: ColumnFamily
  private let state: Mutex<State>

  /// Opens the state stored in `db`, which must have `columnFamilies` among its families.
  public init(db: RocksDB, options: Options = Options()) throws {
    self.db = db
    self.options = options
    family = try db.columnFamily("ctrler")
    var loaded = State()
    loaded.applied = try db.get(Self.appliedKey, in: family).flatMap { BigEndian.uint64(from: $0) } ?? 0
    loaded.shardCount = try db.get(Self.shardCountKey, in: family).flatMap { BigEndian.uint64(from: $0) }
      .map { Int($0) }
    // Keys are big-endian numbers, so the scan yields configurations in order.
    for pair in try db.scan(family, prefix: Self.configPrefix) {
      loaded.configs.append(ShardConfiguration(try Shardkv_Ctrler_Config(serializedBytes: pair.value)))
    }
    guard loaded.configs.enumerated().allSatisfy({ UInt64($0.offset) == $0.element.num }) else {
      throw ControllerStateError.corrupt("controller configurations are not numbered 0, 1, 2, …")
    }
    loaded.sessions = try SessionTable(loadingFrom: db, family: family)
    loaded.members = try MemberDirectory(loadingFrom: db, family: family)
    state = Mutex(loaded)
  }

  public var appliedIndex: UInt64 { state.withLock { $0.applied } }

  /// The shard count: fixed by the log once anything was applied, else this replica's own.
  public var shardCount: Int { state.withLock { $0.shardCount ?? options.shardCount } }

  /// Client sessions currently remembered.
  public var sessionCount: Int { state.withLock { $0.sessions.count } }

  /// The member directory as of the last applied entry.
  public var memberDirectory: MemberDirectory { state.withLock { $0.members } }

  /// The latest configuration number.
  public var latestNum: UInt64 { state.withLock { UInt64(max(0, $0.configs.count - 1)) } }

  /// Configuration `num` as applied on this replica (-1 or past the latest: the latest).
  /// Linearizable only after a read barrier.
  public func configuration(_ num: Int64) -> ShardConfiguration {
    state.withLock { $0.configuration(num, fallbackShardCount: options.shardCount) }
  }

  // MARK: - Applying

  public func apply(_ entries: [Entry]) throws -> [[UInt8]] {
    var current = state.withLock { $0 }
    let firstNew = current.configs.count
    let hadShardCount = current.shardCount != nil
    var batch = WriteBatch()
    var results: [[UInt8]] = []
    results.reserveCapacity(entries.count)
    for entry in entries {
      current.applied = entry.index
      if case .membership(let membership) = entry.payload {
        current.members.retain(membership, in: &batch, family: family)
      }
      guard case .command(let bytes) = entry.payload else {
        results.append([])
        continue
      }
      let (reply, stamp) = try execute(bytes, state: &current, batch: &batch)
      results.append((try? reply.serializedBytes()) ?? [])
      if entry.index % options.sessionSweepInterval == 0 {
        current.sessions.sweep(nowMs: stamp, timeout: options.sessionTimeout, in: &batch, family: family)
      }
    }
    if !hadShardCount, let count = current.shardCount {
      batch.put(key: Self.shardCountKey, value: BigEndian.bytes(UInt64(count)), in: family)
    }
    for config in current.configs[firstNew...] {
      batch.put(key: Self.configKey(config.num), value: try config.message.serializedBytes(), in: family)
    }
    batch.put(key: Self.appliedKey, value: BigEndian.bytes(current.applied), in: family)
    try db.write(batch)
    state.withLock { $0 = current }
    return results
  }

  private func execute(
    _ bytes: [UInt8], state: inout State, batch: inout WriteBatch
  ) throws
    -> (Shardkv_Ctrler_CtrlerReply, UInt64)
  {
    guard let command = try? Shardkv_Ctrler_Command(serializedBytes: bytes) else {
      return (Self.reply(.invalidArgument, "undecodable command"), 0)
    }
    if command.hasPublishMember {
      state.members.publish(command.publishMember, in: &batch, family: family)
      return (Self.reply(.ok), command.stampMs)
    }
    if state.shardCount == nil {
      let proposed = Int(command.shardCount)
      state.shardCount = proposed > 0 ? proposed : options.shardCount
    }
    if state.configs.isEmpty {
      state.configs.append(.initial(shardCount: state.shardCount ?? options.shardCount))
    }
    let request = command.request
    let isWrite: Bool
    if case .query = request.op { isWrite = false } else { isWrite = request.op != nil }
    if isWrite {
      switch state.sessions.check(client: request.clientID, sequence: request.sequence) {
      case .fresh: break
      case .duplicate(let reply):
        return ((try? Shardkv_Ctrler_CtrlerReply(serializedBytes: reply)) ?? Self.reply(.ok), command.stampMs)
      case .superseded(let last):
        // An older write was answered already.
        return (Self.reply(.ok, "superseded by sequence \(last)"), command.stampMs)
      }
    }
    let latest = state.configs[state.configs.count - 1]
    var reply: Shardkv_Ctrler_CtrlerReply
    do throws(ConfigurationError) {
      let next: ShardConfiguration
      switch request.op {
      case .join(let join): next = try latest.joining(join.groups.mapValues(\.addresses))
      case .leave(let leave): next = try latest.leaving(leave.gids)
      case .move(let move): next = try latest.moving(shard: Int(move.shard), to: move.gid)
      case .updateMembers(let update):
        next = try latest.updatingMembers(of: update.gid, to: update.members.addresses)
      case .query(let query):
        reply = Self.reply(.ok)
        reply.config = state.configuration(query.num, fallbackShardCount: options.shardCount).message
        return (reply, command.stampMs)
      case nil:
        return (Self.reply(.invalidArgument, "the request names no operation"), command.stampMs)
      }
      if next.num != latest.num { state.configs.append(next) }
      reply = Self.reply(.ok)
      reply.config = next.message
    } catch {
      reply = Self.reply(.invalidArgument, error.description)
    }
    try state.sessions.record(
      client: request.clientID, sequence: request.sequence, reply: try reply.serializedBytes(),
      stampMs: command.stampMs, in: &batch, family: family)
    return (reply, command.stampMs)
  }

  static func configKey(_ num: UInt64) -> [UInt8] { configPrefix + BigEndian.bytes(num) }

  static func reply(_ error: Shardkv_Ctrler_CtrlerError, _ message: String = "") -> Shardkv_Ctrler_CtrlerReply
  {
    var reply = Shardkv_Ctrler_CtrlerReply()
    reply.error = error
    reply.message = message
    return reply
  }

  // MARK: - Durability and snapshots

  public func sync() throws {
    try db.write(WriteBatch(), sync: true)
  }

  public func makeSnapshot() throws -> any SnapshotReader {
    let image = state.withLock { $0 }
    return ControllerSnapshotReader(
      index: image.applied, shardCount: image.shardCount ?? 0, configs: image.configs,
      sessions: image.sessions.all, members: image.members.all)
  }

  /// The controller keeps its whole state in memory (every configuration), so it rebuilds it
  /// from the pieces as they are read (never the raw image) and writes it in one batch.
  public func restore(_ metadata: SnapshotMetadata, from image: any SnapshotReader) throws {
    var restored = State()
    restored.applied = metadata.index
    var sessions: [Shardkv_ClientSession] = []
    var members: [Shardkv_MemberAddress] = []
    while let bytes = try image.nextPiece() {
      let piece = try Shardkv_Ctrler_SnapshotPiece(serializedBytes: bytes)
      if piece.shardCount > 0 { restored.shardCount = Int(piece.shardCount) }
      restored.configs.append(contentsOf: piece.configs.map(ShardConfiguration.init))
      sessions.append(contentsOf: piece.sessions)
      members.append(contentsOf: piece.members)
    }
    guard restored.configs.enumerated().allSatisfy({ UInt64($0.offset) == $0.element.num }) else {
      throw ControllerStateError.corrupt("snapshot configurations are not numbered 0, 1, 2, …")
    }
    // One batch: a crash leaves either the old state or the whole new one.
    var batch = WriteBatch()
    batch.deleteRange(from: [], to: Array(repeating: 0xFF, count: 16), in: family)
    if let count = restored.shardCount {
      batch.put(key: Self.shardCountKey, value: BigEndian.bytes(UInt64(count)), in: family)
    }
    for config in restored.configs {
      batch.put(key: Self.configKey(config.num), value: try config.message.serializedBytes(), in: family)
    }
    try restored.sessions.replace(with: sessions, in: &batch, family: family)
    restored.members.replace(with: members, in: &batch, family: family)
    batch.put(key: Self.appliedKey, value: BigEndian.bytes(metadata.index), in: family)
    try db.write(batch, sync: true)
    state.withLock { $0 = restored }
  }
}

/// A controller image: the shard count, every configuration in order (a few hundred per
/// piece), then the sessions and the member directory. Configurations never change once created, so a copy of the
/// arrays taken under the lock is a consistent image.
final class ControllerSnapshotReader: SnapshotReader {
  let index: UInt64
  private static let configsPerPiece = 256

  private struct Cursor {
    var shardCount: Int
    var configs: ArraySlice<ShardConfiguration>
    var sessions: [Shardkv_ClientSession]
    let members: [Shardkv_MemberAddress]
    var first = true
    var finished = false
  }
  private let cursor: Mutex<Cursor>

  init(
    index: UInt64, shardCount: Int, configs: [ShardConfiguration], sessions: [Shardkv_ClientSession],
    members: [Shardkv_MemberAddress]
  ) {
    self.index = index
    cursor = Mutex(
      Cursor(shardCount: shardCount, configs: configs[...], sessions: sessions, members: members))
  }

  func nextPiece() throws -> [UInt8]? {
    try cursor.withLock { cursor throws -> [UInt8]? in
      guard !cursor.finished else { return nil }
      var piece = Shardkv_Ctrler_SnapshotPiece()
      if cursor.first {
        piece.shardCount = UInt32(cursor.shardCount)
        cursor.first = false
      }
      piece.configs = cursor.configs.prefix(Self.configsPerPiece).map(\.message)
      cursor.configs = cursor.configs.dropFirst(Self.configsPerPiece)
      if cursor.configs.isEmpty {
        piece.sessions = cursor.sessions
        piece.members = cursor.members
        cursor.sessions = []
        cursor.finished = true
      }
      return try piece.serializedBytes()
    }
  }
}

extension ControllerStateMachine: MemberAddressBook {
  public func apiAddress(of member: NodeID) -> String? {
    state.withLock { $0.members.apiAddress(of: member) }
  }

  public func publicationCommand(_ entry: Shardkv_MemberAddress) throws -> [UInt8] {
    var command = Shardkv_Ctrler_Command()
    command.publishMember = entry
    command.stampMs = UInt64(max(0, Date().timeIntervalSince1970 * 1000))
    return try command.serializedBytes()
  }
}

/// The controller's stored or received state is not what this code wrote.
public enum ControllerStateError: Error, Hashable, Sendable, CustomStringConvertible {
  case corrupt(String)

  public var description: String {
    switch self {
    case .corrupt(let what): return "corrupt controller state: \(what)"
    }
  }
}
