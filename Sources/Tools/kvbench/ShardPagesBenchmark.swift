import ArgumentParser
import Foundation
import Raft
import ShardCtrler
import ShardKV
import Storage
import Wire

/// The two ends of a shard migration in one process, without Raft, network or fsync: the old
/// owner reading pages of a handed-off shard (`KVStateMachine.page`: RocksDB iteration,
/// protobuf, zstd) and the new owner applying them as `InstallShard` entries
/// (`KVStateMachine.apply`: zstd, protobuf, one RocksDB write per page). What one page costs at
/// each end bounds what a migration can reach, whatever the replication adds.
struct ShardPagesBenchmark: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "shard-pages",
    abstract: "Per-page cost of a shard migration's two ends (read and apply), without Raft or network.",
    discussion: """
      Builds a shard of --megabytes MiB (values of --value-size random bytes) in a group-1 \
      state machine, hands it off to group 2 (as a configuration change would), then moves it \
      page by page, each stage timed: page(), the old owner's read of one page; zstd, the \
      compression inside it, timed again alone; apply(), the new owner applying the page as \
      one InstallShard entry. Both state machines write to RocksDB in --data (default: a \
      fresh temporary directory), as kvd's do, without the fsync of the Raft log.
      """)

  @Option(help: "MiB of values in the shard.") var megabytes = 200
  @Option(help: "Bytes per value.") var valueSize = 262_144
  @Option(help: "Uncompressed bytes per page (kvd's ShardMigration uses 2 MiB).") var pageBytes = 2 << 20
  @Option(help: "Directory for the two state machines' RocksDB data (default: a fresh temporary one).")
  var data: String?

  func validate() throws {
    guard megabytes > 0, valueSize > 0, pageBytes > 0 else {
      throw ValidationError("--megabytes, --value-size and --page-bytes must be positive")
    }
    guard valueSize <= 1 << 20 else { throw ValidationError("--value-size must be at most 1 MiB") }
  }

  func run() async throws {
    let root = data ?? NSTemporaryDirectory() + "kvbench-shard-pages-\(UUID().uuidString)"
    defer { if data == nil { try? FileManager.default.removeItem(atPath: root) } }
    let old = try Self.open(group: 1, at: root + "/old")
    let new = try Self.open(group: 2, at: root + "/new")
    defer {
      old.db.close()
      new.db.close()
    }

    // Configuration 1: group 1 owns every shard; 2: shard 0 moves to group 2.
    let shardCount = 8
    let groups: [GroupID: [String]] = [1: ["127.0.0.1:1"], 2: ["127.0.0.1:2"]]
    let first = ShardConfiguration(num: 1, shards: Array(repeating: 1, count: shardCount), groups: groups)
    let second = ShardConfiguration(
      num: 2, shards: [2] + Array(repeating: 1, count: shardCount - 1), groups: groups)
    let tag = Self.tag(for: 0, shardCount: shardCount)

    var oldLog = EntryLog()
    _ = try old.machine.apply([oldLog.next(Self.reconfigure(first))])
    let clock = ContinuousClock()
    let fillStart = clock.now
    var random = FastRandom()
    let count = max(1, (megabytes << 20) / valueSize)
    var batch: [Entry] = []
    for number in 0..<count {
      var request = Shardkv_KvRequest()
      request.op = .put
      request.key = Data("{\(tag)}:\(number)".utf8)
      request.value = Data(random.bytes(valueSize))
      request.clientID = 1
      request.sequence = UInt64(number + 1)
      var command = Shardkv_Group_Command()
      command.request = request
      batch.append(oldLog.next(try command.serializedBytes()))
      if batch.count == 16 || number == count - 1 {
        _ = try old.machine.apply(batch)
        batch = []
      }
    }
    let fillTime = clock.now - fillStart
    _ = try old.machine.apply([oldLog.next(Self.reconfigure(second))])
    let stored = try old.machine.storedSize(of: 0)
    print(
      "shard-pages: shard 0 of \(count) keys, \(Self.mb(stored.bytes)) MB (keys + values), "
        + "filled in \(Self.seconds(fillTime)) s; pages of \(pageBytes) B; RocksDB in \(root)")

    var newLog = EntryLog()
    _ = try new.machine.apply([newLog.next(Self.reconfigure(first))])
    _ = try new.machine.apply([newLog.next(Self.reconfigure(second))])

    var reads = LatencyRecorder()
    var compressions = LatencyRecorder()
    var applies = LatencyRecorder()
    var resume: [UInt8]?
    var sequence: UInt64 = 0
    var compressed = 0
    let moveStart = clock.now
    while true {
      let readStart = clock.now
      let reply = try old.machine.page(of: 0, handedOffIn: 2, after: resume, maxBytes: pageBytes)
      reads.record(clock.now - readStart)
      guard reply.error == .ok else { throw BenchError("page \(sequence): \(reply.error) \(reply.message)") }
      compressed += reply.page.count

      // The compression inside page(), again alone, on the same bytes.
      let plain = try Zstd.decompress([UInt8](reply.page), maxOutputSize: 64 << 20)
      let compressStart = clock.now
      _ = try Zstd.compress(plain)
      compressions.record(clock.now - compressStart)

      var command = Shardkv_Group_Command()
      command.installShard.shard = 0
      command.installShard.configNum = 2
      command.installShard.sequence = sequence
      command.installShard.resumeAfter = reply.resumeAfter
      command.installShard.page = reply.page
      command.installShard.last = reply.last
      let entry = newLog.next(try command.serializedBytes())
      let applyStart = clock.now
      let result = try new.machine.apply([entry])
      applies.record(clock.now - applyStart)
      if let problem = result.first, !problem.isEmpty {
        throw BenchError("page \(sequence) not installed: \(String(decoding: problem, as: UTF8.self))")
      }
      sequence += 1
      resume = [UInt8](reply.resumeAfter)
      if reply.last { break }
    }
    let moveTime = clock.now - moveStart
    let installed = try new.machine.storedSize(of: 0)
    guard installed == stored, new.machine.shardTable.access(shard: 0) == .serve else {
      throw BenchError(
        "the new owner holds \(installed) of \(stored), shard 0 \(new.machine.shardTable.access(shard: 0))")
    }
    let bytes = Double(stored.bytes)
    print("  \(sequence) pages, \(Self.mb(UInt64(compressed))) MB compressed on the wire")
    print("  page() at the old owner:   \(reads.summary); \(Self.rate(bytes, Self.total(reads)))")
    print(
      "    of which zstd compress:  \(compressions.summary); \(Self.rate(bytes, Self.total(compressions)))")
    print("  apply() at the new owner:  \(applies.summary); \(Self.rate(bytes, Self.total(applies)))")
    print(
      "  one page after another, read then apply: \(Self.seconds(moveTime)) s, "
        + Self.rate(bytes, moveTime))
  }

  private static func open(group: GroupID, at path: String) throws -> (db: RocksDB, machine: KVStateMachine) {
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    let db = try RocksDB(
      path: path, columnFamilies: RocksLogStorage.columnFamilies + KVStateMachine.columnFamilies)
    return (db, try KVStateMachine(db: db, options: .init(group: group, controllers: ["127.0.0.1:0"])))
  }

  private static func reconfigure(_ config: ShardConfiguration) throws -> [UInt8] {
    var command = Shardkv_Group_Command()
    command.reconfigure.config = config.message
    return try command.serializedBytes()
  }

  /// A hash tag whose keys fall in `shard`.
  private static func tag(for shard: Int, shardCount: Int) -> String {
    let map = ShardMap(shardCount: shardCount)
    var number = 0
    while map.shard(of: Array("{m\(number)}".utf8)) != shard { number += 1 }
    return "m\(number)"
  }

  private static func total(_ recorder: LatencyRecorder) -> Duration {
    recorder.samples.reduce(Duration.zero, +)
  }

  private static func seconds(_ duration: Duration) -> String {
    String(
      format: "%.2f", Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
  }

  private static func mb(_ bytes: UInt64) -> String { String(format: "%.1f", Double(bytes) / 1e6) }

  private static func rate(_ bytes: Double, _ duration: Duration) -> String {
    let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    return String(format: "%.0f MB/s", seconds > 0 ? bytes / 1e6 / seconds : 0)
  }
}

/// Log entries numbered from 1, in term 1, as one group's log would hand them to `apply`.
private struct EntryLog {
  private var index: UInt64 = 0

  mutating func next(_ command: [UInt8]) -> Entry {
    index += 1
    return Entry(term: 1, index: index, payload: .command(command))
  }
}
