import Foundation
import Logging
import Raft
import Storage
import Wire
import XCTest

@testable import ShardCtrler

/// A controller group in one process: real `RaftNode`s, `ControllerStateMachine`s on RocksDB
/// and `ControllerServer`s, over the fault-injecting in-memory network, in real time.
/// Replica `i` is network node `c<i>`, with API address `c<i>:api` and peer address `c<i>:peer`.
final class ControllerTestCluster: @unchecked Sendable {
  struct Replica {
    var node: RaftNode
    var stateMachine: ControllerStateMachine
    var db: RocksDB
    var listeners: [any TransportListener]
    /// Keeps the replica's API address in the member directory (`publishAddress`).
    var publishing: Task<Void, Never>
  }

  let network: InMemoryNetwork
  let size: Int
  let shardCount: Int
  private let root = FileManager.default.temporaryDirectory.appendingPathComponent(
    "ctrler-\(UUID().uuidString)"
  ).path
  private(set) var replicas: [Int: Replica] = [:]
  private var clientCount = 0

  init(size: Int = 3, shardCount: Int = 10, seed: UInt64 = 11) {
    network = InMemoryNetwork(seed: seed)
    self.size = size
    self.shardCount = shardCount
  }

  func peer(_ i: Int) -> NodeID { NodeID("c\(i):peer") }
  var apiAddresses: [String] { (0..<size).map { "c\($0):api" } }

  /// Drops 10% of messages and delays the rest by up to 5 ms, as the labs' unreliable mode.
  func makeUnreliable() {
    network.faults = NetworkFaults(
      dropProbability: 0.1, duplicateProbability: 0.05, delay: .zero ... .milliseconds(5))
  }

  func startAll() async throws {
    for i in 0..<size { try await start(i) }
  }

  func start(_ i: Int) async throws {
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    let db = try RocksDB(
      path: root + "/c\(i)",
      columnFamilies: RocksLogStorage.columnFamilies + ControllerStateMachine.columnFamilies)
    let stateMachine = try ControllerStateMachine(db: db, options: .init(shardCount: shardCount))
    let transport = network.transport(for: "c\(i)")
    var logger = Logger(label: "ctrlertest")
    logger.logLevel = ProcessInfo.processInfo.environment["CTRL_LOG"] == nil ? .error : .debug
    var options = RaftNodeOptions()
    options.tickInterval = .milliseconds(10)
    let node = try RaftNode(
      id: peer(i), options: options, storage: try RocksLogStorage(db: db), stateMachine: stateMachine,
      transport: WireRaftTransport(transport: transport, messageTimeout: .milliseconds(30)),
      bootstrapVoters: (0..<size).map(peer), logger: logger)
    var server = ControllerServer(
      node: node, stateMachine: stateMachine, peers: transport, apiAddress: "c\(i):api")
    server.requestTimeout = .seconds(1)
    var peerHandlers = RPCHandlers()
    WireRaftTransport.register(node, in: &peerHandlers)
    server.registerForwardedMethods(in: &peerHandlers)
    var apiHandlers = RPCHandlers()
    server.registerClientMethods(in: &apiHandlers)
    let listeners = [
      try await transport.listen(on: peer(i).rawValue, handlers: peerHandlers),
      try await transport.listen(on: "c\(i):api", handlers: apiHandlers),
    ]
    await node.start()
    replicas[i] = Replica(
      node: node, stateMachine: stateMachine, db: db, listeners: listeners,
      publishing: server.nodeCommands.publishAddress(every: .milliseconds(200)))
  }

  func crash(_ i: Int) async {
    guard let replica = replicas.removeValue(forKey: i) else { return }
    replica.publishing.cancel()
    await replica.node.stop()
    for listener in replica.listeners { await listener.close() }
    replica.db.close()
  }

  /// Stops every replica and starts it again from its disk.
  func restartAll() async throws {
    for i in 0..<size { await crash(i) }
    try await startAll()
  }

  func shutdown() async {
    for i in replicas.keys.sorted() { await crash(i) }
    try? FileManager.default.removeItem(atPath: root)
  }

  func clerk(deadline: Duration = .seconds(30)) -> ControllerClerk {
    clientCount += 1
    return ControllerClerk(
      servers: apiAddresses, transport: network.transport(for: "client\(clientCount)"), deadline: deadline,
      callTimeout: .milliseconds(500))
  }

  /// Waits until every running replica has applied the same index as the most advanced one,
  /// then asserts that they hold identical configuration histories and member directories.
  func assertReplicasAgree(file: StaticString = #filePath, line: UInt = #line) async throws {
    let deadline = ContinuousClock.now + .seconds(20)
    while true {
      let applied = replicas.values.map(\.stateMachine.appliedIndex)
      let nums = replicas.values.map(\.stateMachine.latestNum)
      if Set(applied).count == 1 && Set(nums).count == 1 { break }
      guard ContinuousClock.now < deadline else {
        XCTFail("replicas did not converge: applied \(applied)", file: file, line: line)
        return
      }
      try await Task.sleep(for: .milliseconds(20))
    }
    let histories = replicas.keys.sorted().compactMap { i -> [ShardConfiguration]? in
      guard let machine = replicas[i]?.stateMachine else { return nil }
      return (0...machine.latestNum).map { machine.configuration(Int64($0)) }
    }
    for history in histories.dropFirst() {
      XCTAssertEqual(
        history, histories.first, "replicas hold different configurations", file: file, line: line)
    }
    let directories = replicas.keys.sorted().compactMap { replicas[$0]?.stateMachine.memberDirectory }
    for directory in directories.dropFirst() {
      XCTAssertEqual(
        directory, directories.first, "replicas hold different member directories", file: file, line: line)
    }
  }
}

/// The shardctrler suite's `check`: exactly the expected groups, every shard on a present
/// group, and the load balanced to within one shard.
func assertValid(
  _ config: ShardConfiguration, groups expected: Set<GroupID>, file: StaticString = #filePath,
  line: UInt = #line
) {
  XCTAssertEqual(Set(config.groups.keys), expected, "groups of config \(config.num)", file: file, line: line)
  if expected.isEmpty {
    XCTAssertTrue(
      config.shards.allSatisfy { $0 == 0 }, "shards assigned with no groups", file: file, line: line)
    return
  }
  for (shard, gid) in config.shards.enumerated() {
    XCTAssertTrue(expected.contains(gid), "shard \(shard) on absent group \(gid)", file: file, line: line)
  }
  let counts = config.shardsByGroup.values.map(\.count)
  if let low = counts.min(), let high = counts.max() {
    XCTAssertLessThanOrEqual(
      high - low, 1, "unbalanced config \(config.num): \(counts)", file: file, line: line)
  }
}
