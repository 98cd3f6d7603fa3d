import Foundation
import Linearizability
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
    /// Keeps the member's API address in the member directory (`publishAddress`).
    var publishing: Task<Void, Never>
  }

  let network: InMemoryNetwork
  let size: Int
  var raftOptions: RaftNodeOptions
  /// How long a member works on one client request (unless the request says less).
  var requestTimeout: Duration = .seconds(1)
  private let root = FileManager.default.temporaryDirectory.appendingPathComponent(
    "kvgroup-\(UUID().uuidString)"
  ).path
  private(set) var members: [Int: Member] = [:]
  /// Members whose forwarding to the leader fails (`severForwarding`), across restarts.
  private let severed = SeveredMembers<Int>()

  init(size: Int, seed: UInt64 = 7, raftOptions: RaftNodeOptions? = nil) {
    network = InMemoryNetwork(seed: seed)
    self.size = size
    var defaults = RaftNodeOptions()
    defaults.tickInterval = .milliseconds(10)
    self.raftOptions = raftOptions ?? defaults
  }

  func name(_ i: Int) -> String { "s\(i)" }
  func peer(_ i: Int) -> NodeID { NodeID("s\(i):peer") }
  func api(_ i: Int) -> String { "s\(i):api" }
  var apiAddresses: [String] { (0..<size).map { "s\($0):api" } }

  func startAll() async throws {
    for i in 0..<size { try await start(i) }
  }

  func start(_ i: Int) async throws {
    let db = try openDatabase(i)
    let stateMachine = try KVStateMachine(db: db, options: .init(apiAddress: "s\(i):api"))
    let transport = network.transport(for: name(i))
    var logger = Logger(label: "kvtest")
    logger.logLevel = .error
    // A peer's messages go one batch per round trip, so a lost call holds up the next batch
    // until this timeout: keep it well under the election timeout (100-200 ms here), or a lossy
    // network makes followers campaign and leaders stall for seconds.
    let node = try RaftNode(
      id: peer(i), options: raftOptions, storage: try RocksLogStorage(db: db), stateMachine: stateMachine,
      transport: WireRaftTransport(transport: transport, messageTimeout: .milliseconds(50)),
      bootstrapVoters: (0..<size).map(peer), logger: logger)
    let forwarding = SeveringTransport(base: transport) { [severed] method in
      method == KVMethod.forwardedRequest && severed.contains(i)
    }
    var server = KVGroupServer(node: node, stateMachine: stateMachine, peers: forwarding)
    server.requestTimeout = requestTimeout
    server.nodeCommands.forwardTimeout = .seconds(1)
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
    members[i] = Member(
      node: node, stateMachine: stateMachine, db: db, listeners: listeners,
      publishing: server.nodeCommands.publishAddress(every: .milliseconds(200)))
  }

  func crash(_ i: Int) async {
    guard let member = members.removeValue(forKey: i) else { return }
    member.publishing.cancel()
    await member.node.stop()
    for listener in member.listeners { await listener.close() }
    member.db.close()
  }

  func shutdown() async {
    for i in members.keys.sorted() { await crash(i) }
    try? FileManager.default.removeItem(atPath: root)
  }

  func clerk(
    _ client: String, deadline: Duration = .seconds(30), callTimeout: Duration = .seconds(2)
  ) -> KVClerk {
    KVClerk(
      servers: apiAddresses, transport: network.transport(for: client), deadline: deadline,
      callTimeout: callTimeout)
  }

  /// Opens server `i`'s RocksDB (which must not be running); the caller closes it.
  func openDatabase(_ i: Int) throws -> RocksDB {
    // RocksDB creates its own directory, not its parents.
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    return try RocksDB(
      path: root + "/s\(i)", columnFamilies: RocksLogStorage.columnFamilies + KVStateMachine.columnFamilies)
  }

  /// Reopens a crashed server from its own disk (its stored state wins over the bootstrap list).
  func restart(_ i: Int) async throws { try await start(i) }

  func node(_ i: Int) throws -> RaftNode { try XCTUnwrap(members[i]?.node, "server \(i) is down") }

  /// Polls `condition` every few milliseconds until it holds; fails the test at the deadline.
  func waitUntil(
    timeout: Duration = .seconds(10), _ what: String, file: StaticString = #filePath, line: UInt = #line,
    _ condition: () async throws -> Bool
  ) async throws {
    try await ShardKVTests.waitUntil(timeout: timeout, what, file: file, line: line, condition)
  }

  /// Waits until exactly one running server leads and every running server agrees; returns it.
  func waitForLeader(timeout: Duration = .seconds(10)) async throws -> Int {
    var found: Int?
    try await waitUntil(timeout: timeout, "a single agreed leader") {
      var leaders = Set<NodeID?>()
      var claimed: [Int] = []
      for (i, member) in self.members {
        leaders.insert(await member.node.leader)
        if await member.node.isLeader { claimed.append(i) }
      }
      guard claimed.count == 1, leaders == [peer(claimed[0])] else { return false }
      found = claimed[0]
      return true
    }
    return try XCTUnwrap(found)
  }

  /// From now on (restarts included), server `i` cannot forward client requests to its leader,
  /// as if its leader's peer address were unreachable from it; its Raft traffic is untouched,
  /// so it stays a follower that knows its leader, and answers WRONG_LEADER with the hint.
  func severForwarding(_ i: Int) {
    severed.insert(i)
  }

  /// Waits until every running server's member directory names every running server's API
  /// address.
  func waitUntilDirectoriesComplete(timeout: Duration = .seconds(10)) async throws {
    try await waitUntil(timeout: timeout, "every member's API address in every member directory") {
      self.members.values.allSatisfy { member in
        self.members.keys.allSatisfy { member.stateMachine.apiAddress(of: self.peer($0)) == self.api($0) }
      }
    }
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
    switch LinearizabilityChecker.check(ops, stepsPerKey: 500_000) {
    case .linearizable:
      break
    case .violation(let key):
      XCTFail("history of key \(key) is not linearizable (\(ops.count) operations)", file: file, line: line)
    case .inconclusive(let key):
      XCTFail(
        "the checker gave up on key \(key) (\(ops.count) operations): the test needs more reads",
        file: file, line: line)
    }
  }
}

/// A transport that records where each call goes, then makes it through `base`.
final class RecordingTransport: Transport {
  private let base: any Transport
  private let log = Mutex<[(peer: String, method: String)]>([])

  init(base: any Transport) { self.base = base }

  /// Every call's address, in call order.
  var destinations: [String] { log.withLock { $0.map(\.peer) } }

  /// The addresses of the calls of `method`, in call order.
  func destinations(of method: String) -> [String] {
    log.withLock { $0.filter { $0.method == method }.map(\.peer) }
  }

  func call(
    _ peer: String, method: String, payload: [UInt8], timeout: Duration
  ) async throws(RPCError) -> [UInt8] {
    log.withLock { $0.append((peer, method)) }
    return try await base.call(peer, method: method, payload: payload, timeout: timeout)
  }

  func listen(on address: String, handlers: RPCHandlers) async throws(RPCError) -> any TransportListener {
    try await base.listen(on: address, handlers: handlers)
  }

  func shutdown() async { await base.shutdown() }
}

/// The members whose forwarding a test has cut, shared with their transports.
final class SeveredMembers<Member: Hashable & Sendable>: Sendable {
  private let members = Mutex<Set<Member>>([])

  func insert(_ member: Member) { members.withLock { _ = $0.insert(member) } }
  func contains(_ member: Member) -> Bool { members.withLock { $0.contains(member) } }
}

/// A transport that fails the calls `severs` picks as unreachable (without sending them) and
/// passes the rest to `base`: a member's forwarding transport with its leader's peer address
/// cut off while its Raft traffic (another transport) flows.
final class SeveringTransport: Transport {
  private let base: any Transport
  private let severs: @Sendable (_ method: String) -> Bool

  init(base: any Transport, severs: @escaping @Sendable (_ method: String) -> Bool) {
    self.base = base
    self.severs = severs
  }

  func call(
    _ peer: String, method: String, payload: [UInt8], timeout: Duration
  ) async throws(RPCError) -> [UInt8] {
    if severs(method) { throw .unreachable(peer: peer, reason: "severed by the test") }
    return try await base.call(peer, method: method, payload: payload, timeout: timeout)
  }

  func listen(on address: String, handlers: RPCHandlers) async throws(RPCError) -> any TransportListener {
    try await base.listen(on: address, handlers: handlers)
  }

  func shutdown() async { await base.shutdown() }
}

/// Polls `condition` every few milliseconds until it holds; fails the test at the deadline.
/// The one polling loop of the in-process cluster harnesses.
func waitUntil(
  timeout: Duration = .seconds(10), _ what: String, file: StaticString = #filePath, line: UInt = #line,
  _ condition: () async throws -> Bool
) async throws {
  let deadline = ContinuousClock.now + timeout
  while ContinuousClock.now < deadline {
    if try await condition() { return }
    try await Task.sleep(for: .milliseconds(10))
  }
  XCTFail("timed out waiting for \(what)", file: file, line: line)
  throw RaftNodeError.timeout
}
