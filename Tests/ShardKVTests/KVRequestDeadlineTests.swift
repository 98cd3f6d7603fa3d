import Foundation
import Raft
import Synchronization
import Wire
import XCTest

@testable import ShardKV

/// A member works on a client request only while its sender waits (`timeout_ms`), not for its
/// own, longer request timeout: a proposal nobody waits for is not worth holding on to.
final class KVRequestDeadlineTests: XCTestCase {
  func testTheWaitForAProposalEndsWithTheClientsDeadline() async throws {
    var options = RaftNodeOptions()
    options.tickInterval = .milliseconds(10)
    // A leader cut off from its followers stays leader, so a proposal waits for a quorum that
    // never answers, for as long as the member is willing to wait.
    options.raft.checkQuorum = false
    let cluster = KVTestCluster(size: 3, raftOptions: options)
    cluster.requestTimeout = .seconds(20)
    addTeardownBlock { await cluster.shutdown() }
    try await cluster.startAll()
    let leader = try await cluster.waitForLeader()
    let others = (0..<3).filter { $0 != leader }
    cluster.partition([(servers: [leader], clients: ["client"]), (servers: others, clients: [])])

    var request = Shardkv_KvRequest()
    request.op = .put
    request.key = Data("k".utf8)
    request.value = Data("v".utf8)
    request.clientID = 1
    request.sequence = 1
    request.timeoutMs = 500
    let transport = cluster.network.transport(for: "client")
    let clock = ContinuousClock()
    let start = clock.now
    let bytes = try await transport.call(
      "s\(leader):api", method: KVMethod.request, payload: try request.serializedBytes(),
      timeout: .seconds(10))
    let elapsed = clock.now - start
    let reply = try Shardkv_KvReply(serializedBytes: bytes)
    XCTAssertEqual(reply.error, .timeout, reply.message)
    // Answered when the client's 500 ms ran out (less a margin for it to read the answer), not
    // after the member's own 20 s (the call itself would have timed out after 10 s).
    XCTAssertLessThan(elapsed, .seconds(2), "answered after \(elapsed)")
    XCTAssertGreaterThan(elapsed, .milliseconds(200), "answered after \(elapsed): did it wait at all?")
  }

  func testTheClerkSendsHowLongEachAttemptWaits() async throws {
    let cluster = KVTestCluster(size: 1)
    addTeardownBlock { await cluster.shutdown() }
    try await cluster.startAll()
    _ = try await cluster.waitForLeader()
    let recorder = AttemptRecorder(base: cluster.network.transport(for: "client"))
    // The whole deadline is shorter than one call may take: the request says the deadline.
    let clerk = KVClerk(
      servers: cluster.apiAddresses, transport: recorder, deadline: .milliseconds(800),
      callTimeout: .seconds(3))
    try await clerk.put(Array("k".utf8), Array("v".utf8))
    let sent = recorder.timeouts
    XCTAssertFalse(sent.isEmpty)
    XCTAssertTrue(sent.allSatisfy { (1...800).contains($0) }, "timeout_ms sent: \(sent)")
  }

  func testAReadWithoutADeadlineKeepsTheMembersOwnTimeout() {
    var request = Shardkv_KvRequest()
    XCTAssertEqual(KVGroupServer.timeout(for: request, default: .seconds(5)), .seconds(5))
    request.timeoutMs = 60_000
    XCTAssertEqual(KVGroupServer.timeout(for: request, default: .seconds(5)), .seconds(5))
    request.timeoutMs = 1_000
    XCTAssertEqual(KVGroupServer.timeout(for: request, default: .seconds(5)), .milliseconds(800))
  }
}

/// A transport that records the `timeout_ms` of each KV request it carries.
private final class AttemptRecorder: Transport {
  private let base: any Transport
  private let seen = Mutex<[UInt32]>([])

  init(base: any Transport) { self.base = base }

  var timeouts: [UInt32] { seen.withLock { $0 } }

  func call(
    _ peer: String, method: String, payload: [UInt8], timeout: Duration
  ) async throws(RPCError) -> [UInt8] {
    if method == KVMethod.request, let request = try? Shardkv_KvRequest(serializedBytes: payload) {
      seen.withLock { $0.append(request.timeoutMs) }
    }
    return try await base.call(peer, method: method, payload: payload, timeout: timeout)
  }

  func listen(on address: String, handlers: RPCHandlers) async throws(RPCError) -> any TransportListener {
    try await base.listen(on: address, handlers: handlers)
  }

  func shutdown() async { await base.shutdown() }
}
