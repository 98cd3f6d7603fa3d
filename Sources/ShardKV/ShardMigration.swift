import CoreMetrics
import Foundation
import Logging
import Raft
import ShardCtrler
import Storage
import SwiftProtobuf
import Wire

/// What a sharded group's leader does to follow the controller and move shards. Every
/// decision it takes goes through the group's Raft log, so it holds no state of its own that
/// matters: a new leader (or this one after a restart) picks up from the applied shard table.
///
/// While this node leads, every `pollInterval`:
/// - when the table is settled, it asks the controller for the configuration after the
///   current one and proposes it (`Reconfigure`);
/// - for each shard pulling, one task fetches the next page from a member of the old owner and
///   proposes it (`InstallShard`), until the shard serves;
/// - for each shard handing off, one task asks the new owner whether it has installed the
///   shard and, once it has, proposes `DeleteShard`.
/// A page or a configuration proposed twice takes effect once (see `ShardTable`).
public actor ShardMigration {
  /// Largest uncompressed page served or requested: well under the RPC frame limit even with
  /// one maximal value on top of it.
  public static let maxPageBytes = 8 << 20

  public struct Options: Sendable {
    public var pollInterval: Duration = .milliseconds(100)
    /// Uncompressed bytes per page.
    public var pageBytes = 2 << 20
    /// One call to another group or to the controller.
    public var callTimeout: Duration = .seconds(3)
    /// One proposal through this group's log.
    public var proposeTimeout: Duration = .seconds(5)

    public init() {}
  }

  private let node: RaftNode
  private let stateMachine: KVStateMachine
  /// Reaches other groups' members and the controller at their API addresses.
  private let transport: any Transport
  private let controller: ControllerClerk
  private let options: Options
  private let logger: Logger

  private static let owned = Gauge(label: "shardkv_shards_owned")
  private static let pulling = Gauge(label: "shardkv_shards_pulling")
  private static let handingOff = Gauge(label: "shardkv_shards_handing_off")
  /// Uncompressed bytes of the pages this group installed.
  private static let bytesMoved = Counter(label: "shardkv_shard_bytes_moved_total")

  private var loop: Task<Void, Never>?
  private var pulls: [Int: Task<Void, Never>] = [:]
  private var collections: [Int: Task<Void, Never>] = [:]

  public init(
    node: RaftNode, stateMachine: KVStateMachine, transport: any Transport, controllers: [String],
    options: Options = Options(), logger: Logger = Logger(label: "shardkv.migration")
  ) {
    self.node = node
    self.stateMachine = stateMachine
    self.transport = transport
    self.options = options
    self.logger = logger
    controller = ControllerClerk(
      servers: controllers, transport: transport, deadline: options.callTimeout,
      callTimeout: options.callTimeout)
  }

  public func start() {
    guard loop == nil else { return }
    let interval = options.pollInterval
    loop = Task {
      while !Task.isCancelled {
        await self.step()
        try? await Task.sleep(for: interval)
      }
    }
  }

  public func stop() {
    loop?.cancel()
    loop = nil
    for task in pulls.values { task.cancel() }
    for task in collections.values { task.cancel() }
    pulls = [:]
    collections = [:]
  }

  private func step() async {
    let table = stateMachine.shardTable
    Self.owned.record(table.holdings.values.count { $0.phase == .serving })
    Self.pulling.record(table.pulling.count)
    Self.handingOff.record(table.handingOff.count)
    guard await node.isLeader else { return }
    for shard in table.pulling where pulls[shard] == nil {
      pulls[shard] = Task {
        await self.pull(shard)
        self.finished(pull: shard)
      }
    }
    for shard in table.handingOff where collections[shard] == nil {
      collections[shard] = Task {
        await self.collect(shard)
        self.finished(collection: shard)
      }
    }
    if table.isSettled { await advance(from: table.config.num) }
  }

  private func finished(pull shard: Int) { pulls[shard] = nil }
  private func finished(collection shard: Int) { collections[shard] = nil }

  /// Proposes the configuration after `current`, if the controller has one.
  private func advance(from current: UInt64) async {
    guard let next = try? await controller.query(Int64(current + 1)), next.num == current + 1 else { return }
    var command = Shardkv_Group_Command()
    command.reconfigure.config = next.message
    if await propose(command) {
      logger.info("configuration \(next.num) applied", metadata: ["group": "\(stateMachine.options.group)"])
    }
  }

  /// Pulls `shard` page by page until it serves, or this node stops leading.
  private func pull(_ shard: Int) async {
    var attempt = 0
    while !Task.isCancelled, await node.isLeader {
      guard let holding = stateMachine.shardTable.holdings[shard],
        case .pulling(let from, let servers) = holding.phase
      else { return }
      guard !servers.isEmpty else {
        logger.error("no members known for group \(from); cannot pull shard \(shard)")
        return
      }
      var request = Shardkv_Group_PullShardRequest()
      request.shard = UInt32(shard)
      request.configNum = holding.configNum
      request.fromStart = holding.nextSequence == 0
      request.resumeAfter = Data(holding.resumeAfter)
      request.maxBytes = UInt64(options.pageBytes)
      let server = servers[attempt % servers.count]
      let reply: Shardkv_Group_PullShardReply
      do {
        let bytes = try await transport.call(
          server, method: KVMethod.pullShard, payload: try request.serializedBytes(),
          timeout: options.callTimeout)
        reply = try Shardkv_Group_PullShardReply(serializedBytes: bytes)
      } catch {
        attempt += 1
        await backOff(attempt)
        continue
      }
      guard reply.error == .ok else {
        logger.debug("pull of shard \(shard) from \(server): \(reply.message)")
        attempt += 1
        await backOff(attempt)
        continue
      }
      var command = Shardkv_Group_Command()
      command.installShard.shard = UInt32(shard)
      command.installShard.configNum = holding.configNum
      command.installShard.sequence = holding.nextSequence
      command.installShard.resumeAfter = reply.resumeAfter
      command.installShard.page = reply.page
      command.installShard.last = reply.last
      if await propose(command) {
        Self.bytesMoved.increment(by: reply.page.count)
        if reply.last {
          logger.info(
            "shard \(shard) installed from group \(from)", metadata: ["config": "\(holding.configNum)"])
        }
      } else {
        attempt += 1
        await backOff(attempt)
      }
    }
  }

  /// Deletes the frozen copy of `shard` once its new owner has installed it.
  private func collect(_ shard: Int) async {
    var attempt = 0
    while !Task.isCancelled, await node.isLeader {
      guard let holding = stateMachine.shardTable.holdings[shard],
        case .handingOff(_, let servers) = holding.phase
      else { return }
      // A shard left unassigned (no servers) stays here until a configuration names an owner.
      guard !servers.isEmpty else { return }
      var request = Shardkv_Group_ShardInstalledRequest()
      request.shard = UInt32(shard)
      request.configNum = holding.configNum
      let server = servers[attempt % servers.count]
      let installed: Bool
      do {
        let bytes = try await transport.call(
          server, method: KVMethod.shardInstalled, payload: try request.serializedBytes(),
          timeout: options.callTimeout)
        installed = try Shardkv_Group_ShardInstalledReply(serializedBytes: bytes).installed
      } catch {
        installed = false
      }
      guard installed else {
        attempt += 1
        await backOff(attempt)
        continue
      }
      var command = Shardkv_Group_Command()
      command.deleteShard.shard = UInt32(shard)
      command.deleteShard.configNum = holding.configNum
      if await propose(command) {
        logger.info("shard \(shard) deleted after hand-off", metadata: ["config": "\(holding.configNum)"])
      }
    }
  }

  /// Proposes `command` through this group's log; returns whether it was applied.
  private func propose(_ command: Shardkv_Group_Command) async -> Bool {
    var command = command
    command.stampMs = UInt64(max(0, Date().timeIntervalSince1970 * 1000))
    guard let bytes: [UInt8] = try? command.serializedBytes() else { return false }
    do {
      _ = try await node.propose(bytes, timeout: options.proposeTimeout)
      return true
    } catch {
      return false
    }
  }

  private func backOff(_ attempt: Int) async {
    let delay = min(options.pollInterval * max(1, attempt), .seconds(1))
    try? await Task.sleep(for: delay)
  }
}
