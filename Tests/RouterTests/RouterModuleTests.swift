import Foundation
import ShardKV
import Wire
import XCTest

@testable import Router

/// Placeholder so the target exists; the router's suites live beside it.
final class RouterModuleTests: XCTestCase {
  func testModuleLoads() {
    XCTAssertFalse(Router.name.isEmpty)
  }

  /// A client asking for a 49-day deadline (the largest `timeout_ms`) gets the router's cap:
  /// with no controller to answer, the request ends TIMEOUT after `maxTimeout`.
  func testAClientDeadlineIsCutToTheRoutersMaximum() async throws {
    let network = InMemoryNetwork(seed: 1)
    var router = RequestRouter(controllers: ["nobody:1"], transport: network.transport(for: "router:1"))
    router.maxTimeout = .milliseconds(300)
    router.callTimeout = .milliseconds(50)
    var request = Shardkv_KvRequest()
    request.op = .get
    request.key = Data("k".utf8)
    request.timeoutMs = .max
    let started = ContinuousClock.now
    let reply = try Shardkv_KvReply(serializedBytes: await router.forwardKV(try request.serializedBytes()))
    XCTAssertEqual(reply.error, .timeout, "\(reply)")
    XCTAssertLessThan(ContinuousClock.now - started, .seconds(5))
  }
}
