import Foundation
import Logging
import Raft
import Router
import ShardCtrler
import Storage
import Wire
import XCTest

@testable import ShardKV

/// A sharded cluster in one process, as the classic sharded-KV suite builds it: a shard
/// controller group and several KV replica groups, every node a real `RaftNode` on RocksDB,
/// over the fault-injecting in-memory network, in real time. Group members run the real
/// `KVGroupServer` and `ShardMigration`.
///
/// Names: controller replica `i` is network node `c<i>` (API `c<i>:api`, peer `c<i>:peer`);
/// member `i` of group `gid` is `g<gid>s<i>` (API `g<gid>s<i>:api`, peer `g<gid>s<i>:peer`).
final class ShardedTestCluster: @unchecked Sendable {
  struct Member {
    var node: RaftNode
    var stateMachine: KVStateMachine
    var migration: ShardMigration?
    var db: RocksDB
    var listeners: [any TransportListener]
    /// Keeps the member's API address in the member directory (`publishAddress`).
    var publishing: Task<Void, Never>
  }

  struct Controller {
    var node: RaftNode
    var stateMachine: ControllerStateMachine
    var db: RocksDB
    var listeners: [any TransportListener]
    var publishing: Task<Void, Never>
  }

  let network: InMemoryNetwork
  let shardCount: Int
  let controllerSize: Int
  let groupSize: Int
  var maxLogEntries: Int?
  private let root = FileManager.default.temporaryDirectory.appendingPathComponent(
    "sharded-\(UUID().uuidString)"
  ).path
  private(set) var controllers: [Int: Controller] = [:]
  /// Controller replicas and group members (network node names) whose forwarding of client
  /// requests to their leader fails (`severForwarding`), across restarts.
  private let severed = SeveredMembers<String>()
  private(set) var members: [GroupID: [Int: Member]] = [:]
  private(set) var routers:
    [Int: (server: RouterServer, watcher: Task<Void, Never>?, listener: any TransportListener)] =
      [:]
  private var clients = 0

  init(shardCount: Int = 10, controllerSize: Int = 3, groupSize: Int = 3, seed: UInt64 = 5) {
    network = InMemoryNetwork(seed: seed)
    self.shardCount = shardCount
    self.controllerSize = controllerSize
    self.groupSize = groupSize
  }

  var controllerAPIs: [String] { (0..<controllerSize).map { "c\($0):api" } }
  func controllerPeer(_ i: Int) -> NodeID { NodeID("c\(i):peer") }
  func controllerAPI(_ i: Int) -> String { "c\(i):api" }
  func name(_ gid: GroupID, _ i: Int) -> String { "g\(gid)s\(i)" }
  func api(_ gid: GroupID, _ i: Int) -> String { "g\(gid)s\(i):api" }
  func peer(_ gid: GroupID, _ i: Int) -> NodeID { NodeID("g\(gid)s\(i):peer") }
  func apis(_ gid: GroupID) -> [String] { (0..<groupSize).map { api(gid, $0) } }

  static let unreliableFaults = NetworkFaults(
    dropProbability: 0.1, duplicateProbability: 0.05, delay: .zero ... .milliseconds(5))

  private var raftOptions: RaftNodeOptions {
    var options = RaftNodeOptions()
    // Elections after 200-400 ms of silence: fast, yet not set off by a loaded machine's
    // scheduling delays (a dozen nodes share two cores).
    options.tickInterval = .milliseconds(20)
    if let maxLogEntries {
      options.maxLogEntries = maxLogEntries
      options.retainedEntries = maxLogEntries / 4
    }
    return options
  }

  private var logger: Logger {
    var logger = Logger(label: "shardedtest")
    logger.logLevel = ProcessInfo.processInfo.environment["SHARDKV_TEST_LOG"] == nil ? .critical : .debug
    return logger
  }

  // MARK: - The controller

  func startControllers() async throws {
    for i in 0..<controllerSize { try await startController(i) }
  }

  func startController(_ i: Int) async throws {
    let db = try openDatabase("c\(i)", families: ControllerStateMachine.columnFamilies)
    let stateMachine = try ControllerStateMachine(db: db, options: .init(shardCount: shardCount))
    let transport = network.transport(for: "c\(i)")
    let node = try RaftNode(
      id: NodeID("c\(i):peer"), options: raftOptions, storage: try RocksLogStorage(db: db),
      stateMachine: stateMachine,
      transport: WireRaftTransport(transport: transport, messageTimeout: .milliseconds(50)),
      bootstrapVoters: (0..<controllerSize).map { NodeID("c\($0):peer") }, logger: logger)
    let forwarding = SeveringTransport(base: transport) { [severed] method in
      method == ControllerMethod.forwardedRequest && severed.contains("c\(i)")
    }
    var server = ControllerServer(
      node: node, stateMachine: stateMachine, peers: forwarding, apiAddress: controllerAPI(i))
    server.requestTimeout = .seconds(1)
    var peerHandlers = RPCHandlers()
    WireRaftTransport.register(node, in: &peerHandlers)
    server.registerForwardedMethods(in: &peerHandlers)
    var apiHandlers = RPCHandlers()
    server.registerClientMethods(in: &apiHandlers)
    let listeners = [
      try await transport.listen(on: "c\(i):peer", handlers: peerHandlers),
      try await transport.listen(on: "c\(i):api", handlers: apiHandlers),
    ]
    await node.start()
    controllers[i] = Controller(
      node: node, stateMachine: stateMachine, db: db, listeners: listeners,
      publishing: server.nodeCommands.publishAddress(every: .milliseconds(200)))
  }

  /// Stops controller replica `i`, as a crash would (its data stays for `startController`).
  func crashController(_ i: Int) async {
    guard let controller = controllers.removeValue(forKey: i) else {
      return XCTFail("controller replica \(i) is not running: nothing to crash")
    }
    controller.publishing.cancel()
    await controller.node.stop()
    for listener in controller.listeners { await listener.close() }
    controller.db.close()
  }

  /// From now on (restarts included), the controller replica or group member on network node
  /// `name` cannot forward client requests to its leader, as if its leader's peer address were
  /// unreachable from it; its Raft traffic flows, so it stays a follower that knows its leader.
  func severForwarding(_ name: String) {
    severed.insert(name)
  }

  func controllerClerk() -> ControllerClerk {
    clients += 1
    return ControllerClerk(
      servers: controllerAPIs, transport: network.transport(for: "admin\(clients)"), deadline: .seconds(30),
      callTimeout: .milliseconds(1500))
  }

  func join(_ gids: [GroupID]) async throws {
    try await controllerClerk().join(Dictionary(uniqueKeysWithValues: gids.map { ($0, apis($0)) }))
  }

  func leave(_ gids: [GroupID]) async throws {
    try await controllerClerk().leave(gids)
  }

  func latestConfiguration() async throws -> ShardConfiguration {
    try await controllerClerk().query()
  }

  // MARK: - Groups

  func startGroup(_ gid: GroupID) async throws {
    for i in 0..<groupSize { try await start(gid, i) }
  }

  /// Starts member `i` of group `gid`; a `standby` starts with no members and waits to be
  /// added (JOIN_CLUSTER).
  func start(_ gid: GroupID, _ i: Int, standby: Bool = false) async throws {
    let db = try openDatabase(name(gid, i), families: KVStateMachine.columnFamilies)
    let stateMachine = try KVStateMachine(
      db: db, options: .init(group: gid, controllers: controllerAPIs, apiAddress: api(gid, i)))
    let transport = network.transport(for: name(gid, i))
    let node = try RaftNode(
      id: peer(gid, i), options: raftOptions, storage: try RocksLogStorage(db: db),
      stateMachine: stateMachine,
      transport: WireRaftTransport(transport: transport, messageTimeout: .milliseconds(50)),
      bootstrapVoters: standby ? [] : (0..<groupSize).map { peer(gid, $0) }, logger: logger)
    let member = name(gid, i)
    let forwarding = SeveringTransport(base: transport) { [severed] method in
      method == KVMethod.forwardedRequest && severed.contains(member)
    }
    var server = KVGroupServer(node: node, stateMachine: stateMachine, peers: forwarding, api: transport)
    server.requestTimeout = .seconds(1)
    server.nodeCommands.forwardTimeout = .seconds(1)
    var peerHandlers = RPCHandlers()
    WireRaftTransport.register(node, in: &peerHandlers)
    server.registerForwardedMethods(in: &peerHandlers)
    var apiHandlers = RPCHandlers()
    server.registerClientMethods(in: &apiHandlers)
    let listeners = [
      try await transport.listen(on: peer(gid, i).rawValue, handlers: peerHandlers),
      try await transport.listen(on: api(gid, i), handlers: apiHandlers),
    ]
    await node.start()
    var options = ShardMigration.Options()
    options.pollInterval = .milliseconds(50)
    options.callTimeout = .milliseconds(500)
    options.proposeTimeout = .seconds(2)
    let migration = ShardMigration(
      node: node, stateMachine: stateMachine, transport: transport, controllers: controllerAPIs,
      options: options, logger: logger)
    await migration.start()
    members[gid, default: [:]][i] = Member(
      node: node, stateMachine: stateMachine, migration: migration, db: db, listeners: listeners,
      publishing: server.nodeCommands.publishAddress(every: .milliseconds(200)))
  }

  func crash(_ gid: GroupID, _ i: Int) async {
    guard let member = members[gid]?.removeValue(forKey: i) else { return }
    member.publishing.cancel()
    await member.migration?.stop()
    await member.node.stop()
    for listener in member.listeners { await listener.close() }
    member.db.close()
  }

  func shutdownGroup(_ gid: GroupID) async {
    for i in 0..<groupSize { await crash(gid, i) }
  }

  // MARK: - Routers

  func routerAPI(_ i: Int) -> String { "r\(i):api" }

  /// Starts router `i`; without `watch` it reads the configuration only when a reply tells
  /// it that it is stale.
  func startRouter(_ i: Int, watch: Bool = true) async throws {
    let transport = network.transport(for: "r\(i)")
    var server = RouterServer(apiAddress: routerAPI(i), controllers: controllerAPIs, transport: transport)
    server.joinTimeout = .seconds(20)
    var handlers = RPCHandlers()
    server.registerMethods(in: &handlers)
    let listener = try await transport.listen(on: routerAPI(i), handlers: handlers)
    routers[i] = (server, watch ? server.watchConfiguration(every: .milliseconds(200)) : nil, listener)
  }

  func stopRouter(_ i: Int) async {
    guard let router = routers.removeValue(forKey: i) else { return }
    router.watcher?.cancel()
    await router.listener.close()
  }

  /// A clerk that only knows routers.
  func routerClerk(
    _ routerIndices: [Int], deadline: Duration = .seconds(30), callTimeout: Duration = .seconds(2)
  ) -> KVClerk {
    clients += 1
    return KVClerk(
      servers: routerIndices.map(routerAPI), transport: network.transport(for: "client\(clients)"),
      deadline: deadline, callTimeout: callTimeout)
  }

  func shutdown() async {
    for i in routers.keys.sorted() { await stopRouter(i) }
    for gid in members.keys.sorted() { await shutdownGroup(gid) }
    for i in controllers.keys.sorted() { await crashController(i) }
    try? FileManager.default.removeItem(atPath: root)
  }

  /// A clerk that knows the controller and starts from every group member it can name.
  func clerk(
    deadline: Duration = .seconds(30), callTimeout: Duration = .milliseconds(500),
    groups: [GroupID] = [1, 2, 3]
  ) -> KVClerk {
    clients += 1
    return KVClerk(
      servers: groups.flatMap(apis), transport: network.transport(for: "client\(clients)"),
      deadline: deadline,
      callTimeout: callTimeout, controllers: controllerAPIs)
  }

  /// Bytes of data (keys + values) stored by every running member of every group.
  func storedBytes() throws -> UInt64 {
    var total: UInt64 = 0
    for group in members.values {
      for member in group.values {
        for shard in 0..<shardCount { total += try member.stateMachine.storedSize(of: shard).bytes }
      }
    }
    return total
  }

  /// Waits until every running member of `gids` has applied the controller's latest
  /// configuration and holds nothing in motion.
  func waitUntilSettled(_ gids: [GroupID], timeout: Duration = .seconds(20)) async throws {
    let latest = try await latestConfiguration().num
    try await waitUntil(timeout: timeout, "groups \(gids) settled at configuration \(latest)") {
      for gid in gids {
        for member in (self.members[gid] ?? [:]).values {
          let table = member.stateMachine.shardTable
          guard table.config.num == latest, table.isSettled else { return false }
        }
      }
      return true
    }
  }

  private func openDatabase(_ name: String, families: [String]) throws -> RocksDB {
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    return try RocksDB(path: root + "/" + name, columnFamilies: RocksLogStorage.columnFamilies + families)
  }

  /// Polls `condition` until it holds; fails the test at the deadline.
  func waitUntil(
    timeout: Duration = .seconds(10), _ what: String, file: StaticString = #filePath, line: UInt = #line,
    _ condition: () async throws -> Bool
  ) async throws {
    try await ShardKVTests.waitUntil(timeout: timeout, what, file: file, line: line, condition)
  }
}
