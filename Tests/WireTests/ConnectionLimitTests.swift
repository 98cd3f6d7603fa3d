import Synchronization
import XCTest

@testable import Wire

/// `ConnectionLimits` over real loopback sockets: requests beyond the in-flight bounds are
/// answered `busy`, the connection limit evicts the quietest connection, idle ones are closed.
final class ConnectionLimitTests: XCTestCase {
  /// A handler that holds its request until `release()`.
  private final class Gate: Sendable {
    private let waiting = Mutex<[CheckedContinuation<Void, Never>]>([])
    private let open = Mutex(false)

    func pass() async {
      await withCheckedContinuation { continuation in
        let resumeNow = open.withLock { isOpen in
          if isOpen { return true }
          waiting.withLock { $0.append(continuation) }
          return false
        }
        if resumeNow { continuation.resume() }
      }
    }

    var held: Int { waiting.withLock { $0.count } }

    func release() {
      let all = open.withLock { isOpen in
        isOpen = true
        return waiting.withLock { list in
          defer { list = [] }
          return list
        }
      }
      for continuation in all { continuation.resume() }
    }
  }

  private func serve(
    _ limits: ConnectionLimits, gate: Gate
  ) async throws -> RPCServer {
    var handlers = testHandlers()
    handlers.register("hold") { payload in
      await gate.pass()
      return payload
    }
    var configuration = RPCServer.Configuration()
    configuration.limits = limits
    let server = try await onTestPort { port in
      try await RPCServer.bind(
        host: "127.0.0.1", port: port, handlers: handlers, configuration: configuration)
    }
    addTeardownBlock {
      gate.release()
      await server.shutdown()
    }
    return server
  }

  /// A client with one connection per peer, so that its calls share one server connection.
  private func client() -> RPCClient {
    let client = RPCClient(configuration: RPCClient.Configuration(connectionsPerPeer: 1))
    addTeardownBlock { await client.shutdown() }
    return client
  }

  func testRequestsBeyondTheConnectionsLimitAreAnsweredBusyWithoutRunning() async throws {
    let gate = Gate()
    let server = try await serve(ConnectionLimits(maxRequestsPerConnection: 2), gate: gate)
    let peer = server.localAddress.description
    let caller = client()
    let held = Task {
      try await withThrowingTaskGroup(of: [UInt8].self) { group in
        for i in 0..<2 {
          group.addTask {
            try await caller.call(peer, method: "hold", payload: [UInt8(i)], timeout: .seconds(30))
          }
        }
        return try await group.reduce(into: []) { $0 += $1 }
      }
    }
    await eventually { gate.held == 2 }
    let error = await rpcError {
      try await caller.call(peer, method: "echo", payload: [9], timeout: .seconds(10))
    }
    guard case .remote(let code, let message)? = error else {
      return XCTFail("expected a busy error, got \(String(describing: error))")
    }
    XCTAssertEqual(code, .busy)
    XCTAssertTrue(message.contains("connection"), message)
    // Another connection still gets through (the listener's own limit is far away).
    let other = client()
    let reply = try await other.call(peer, method: "echo", payload: [7], timeout: .seconds(10))
    XCTAssertEqual(reply, [7])
    gate.release()
    let released = try await held.value
    XCTAssertEqual(released.sorted(), [0, 1])
    let after = try await caller.call(peer, method: "echo", payload: [8], timeout: .seconds(10))
    XCTAssertEqual(after, [8])
  }

  func testACallerThatWaitsForEachReplyIsNeverRefusedForTheOneJustAnswered() async throws {
    // A request stops counting before its reply is written: one call in flight at a time
    // never meets the limit of one, however soon the next follows the reply.
    let server = try await serve(ConnectionLimits(maxRequestsPerConnection: 1, maxRequests: 1), gate: Gate())
    let peer = server.localAddress.description
    let caller = client()
    for i in 0..<500 {
      let reply = try await caller.call(
        peer, method: "echo", payload: [UInt8(i % 256)], timeout: .seconds(10))
      XCTAssertEqual(reply, [UInt8(i % 256)])
    }
  }

  func testTheListenersLimitAnswersBusyAcrossConnections() async throws {
    let gate = Gate()
    let server = try await serve(ConnectionLimits(maxRequests: 1), gate: gate)
    let peer = server.localAddress.description
    let first = client()
    let held = Task { try await first.call(peer, method: "hold", payload: [1], timeout: .seconds(30)) }
    await eventually { gate.held == 1 }
    let error = await rpcError {
      try await self.client().call(peer, method: "echo", payload: [2], timeout: .seconds(10))
    }
    guard case .remote(.busy, _)? = error else {
      return XCTFail("expected a busy error, got \(String(describing: error))")
    }
    gate.release()
    _ = try await held.value
  }

  func testAtTheConnectionLimitTheQuietestConnectionMakesRoom() async throws {
    let server = try await serve(ConnectionLimits(maxConnections: 3), gate: Gate())
    let peer = server.localAddress.description
    var callers: [RPCClient] = []
    for i in 0..<6 {
      let caller = client()
      callers.append(caller)
      let reply = try await caller.call(peer, method: "echo", payload: [UInt8(i)], timeout: .seconds(10))
      XCTAssertEqual(reply, [UInt8(i)])
      XCTAssertLessThanOrEqual(server.connectionCount, 3)
    }
    await eventually { server.connectionCount <= 3 }
    // The newest callers were never evicted; the oldest reconnects (evicting another) and works.
    let again = try await callers[0].call(peer, method: "echo", payload: [42], timeout: .seconds(10))
    XCTAssertEqual(again, [42])
  }

  func testIdleConnectionsAreClosedButNotWhileARequestRuns() async throws {
    let gate = Gate()
    let server = try await serve(ConnectionLimits(idleTimeout: .milliseconds(200)), gate: gate)
    let peer = server.localAddress.description
    let idle = client()
    _ = try await idle.call(peer, method: "echo", payload: [1], timeout: .seconds(10))
    let busy = client()
    let held = Task { try await busy.call(peer, method: "hold", payload: [2], timeout: .seconds(30)) }
    await eventually { gate.held == 1 }
    // The idle one goes; the one waiting on its handler stays past several timeouts.
    await eventually { server.connectionCount == 1 }
    try await Task.sleep(for: .milliseconds(600))
    XCTAssertEqual(server.connectionCount, 1)
    gate.release()
    let reply = try await held.value
    XCTAssertEqual(reply, [2])
    await eventually { server.connectionCount == 0 }
  }
}
