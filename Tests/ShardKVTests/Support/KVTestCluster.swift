import Foundation
import Logging
import Raft
import Storage
import Synchronization
import Wire
import XCTest

@testable import ShardKV

/// A KV group in one process: real `RaftNode`s, `KVStateMachine`s on RocksDB and
/// `KVGroupServer`s, over the fault-injecting in-memory network, in real time. Server `i` is
/// the network node `s<i>`, with API address `s<i>:api` and peer address `s<i>:peer`.
final class KVTestCluster: @unchecked Sendable {
  struct Member {
    var node: RaftNode
    var stateMachine: KVStateMachine
    var db: RocksDB
    var listeners: [any TransportListener]
  }

  let network: InMemoryNetwork
  let size: Int
  var raftOptions: RaftNodeOptions
  private let root = FileManager.default.temporaryDirectory.appendingPathComponent(
    "kvgroup-\(UUID().uuidString)"
  ).path
  private(set) var members: [Int: Member] = [:]

  init(size: Int, seed: UInt64 = 7, raftOptions: RaftNodeOptions? = nil) {
    network = InMemoryNetwork(seed: seed)
    self.size = size
    var defaults = RaftNodeOptions()
    defaults.tickInterval = .milliseconds(10)
    self.raftOptions = raftOptions ?? defaults
  }

  func name(_ i: Int) -> String { "s\(i)" }
  func peer(_ i: Int) -> NodeID { NodeID("s\(i):peer") }
  var apiAddresses: [String] { (0..<size).map { "s\($0):api" } }

  func startAll() async throws {
    for i in 0..<size { try await start(i) }
  }

  func start(_ i: Int) async throws {
    let db = try RocksDB(
      path: root + "/s\(i)", columnFamilies: RocksLogStorage.columnFamilies + KVStateMachine.columnFamilies)
    let stateMachine = try KVStateMachine(db: db)
    let transport = network.transport(for: name(i))
    var logger = Logger(label: "kvtest")
    logger.logLevel = .error
    let node = try RaftNode(
      id: peer(i), options: raftOptions, storage: try RocksLogStorage(db: db), stateMachine: stateMachine,
      transport: WireRaftTransport(transport: transport, messageTimeout: .milliseconds(200)),
      bootstrapVoters: (0..<size).map(peer), logger: logger)
    var server = KVGroupServer(node: node, stateMachine: stateMachine, peers: transport)
    server.requestTimeout = .seconds(1)
    var peerHandlers = RPCHandlers()
    WireRaftTransport.register(node, in: &peerHandlers)
    server.registerForwardedMethods(in: &peerHandlers)
    var apiHandlers = RPCHandlers()
    server.registerClientMethods(in: &apiHandlers)
    let listeners = [
      try await transport.listen(on: peer(i).rawValue, handlers: peerHandlers),
      try await transport.listen(on: "s\(i):api", handlers: apiHandlers),
    ]
    await node.start()
    members[i] = Member(node: node, stateMachine: stateMachine, db: db, listeners: listeners)
  }

  func crash(_ i: Int) async {
    guard let member = members.removeValue(forKey: i) else { return }
    await member.node.stop()
    for listener in member.listeners { await listener.close() }
    member.db.close()
  }

  func shutdown() async {
    for i in members.keys.sorted() { await crash(i) }
    try? FileManager.default.removeItem(atPath: root)
  }

  func clerk(_ client: String, deadline: Duration = .seconds(30)) -> KVClerk {
    KVClerk(
      servers: apiAddresses, transport: network.transport(for: client), deadline: deadline,
      callTimeout: .seconds(2))
  }

  /// Partitions servers (by index) and clients (by name) into groups that only talk within.
  func partition(_ groups: [(servers: [Int], clients: [String])]) {
    network.partition(groups.map { Set($0.servers.map(name)).union($0.clients) })
  }
}

/// Records operations with call and return times for the linearizability checker.
final class History: Sendable {
  private let clock = ContinuousClock()
  private let start: ContinuousClock.Instant
  private let operations = Mutex<[LinearizabilityChecker.Operation]>([])

  init() { start = clock.now }

  private func now() -> UInt64 {
    let elapsed = clock.now - start
    return UInt64(elapsed.components.seconds) * 1_000_000_000
      + UInt64(elapsed.components.attoseconds / 1_000_000_000)
  }

  var all: [LinearizabilityChecker.Operation] { operations.withLock { $0 } }

  /// Runs one operation through `clerk` and records it; an operation that gave up is recorded
  /// with an unknown outcome.
  @discardableResult
  func run(
    _ clerk: KVClerk, client: Int, _ kind: LinearizabilityChecker.Kind, _ key: String, _ value: String = ""
  ) async -> Bool {
    let call = now()
    var output: String?
    var returned: UInt64?
    do {
      switch kind {
      case .get: output = try await clerk.get(Array(key.utf8)).map { String(decoding: $0, as: UTF8.self) }
      case .put: try await clerk.put(Array(key.utf8), Array(value.utf8))
      case .append: try await clerk.append(Array(key.utf8), Array(value.utf8))
      case .delete: try await clerk.delete(Array(key.utf8))
      }
      returned = now()
    } catch {
      returned = nil
    }
    let op = LinearizabilityChecker.Operation(
      client: client, kind: kind, key: key, value: value, output: output, call: call, returned: returned)
    operations.withLock { $0.append(op) }
    return returned != nil
  }

  func assertLinearizable(file: StaticString = #filePath, line: UInt = #line) {
    let ops = all
    XCTAssertGreaterThan(
      ops.filter { $0.returned != nil }.count, 0, "no operation completed", file: file, line: line)
    if let key = LinearizabilityChecker.firstViolation(in: ops) {
      XCTFail("history of key \(key) is not linearizable (\(ops.count) operations)", file: file, line: line)
    }
  }
}
