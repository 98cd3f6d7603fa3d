import NIOCore
import NIOPosix
import XCTest

@testable import Wire

final class RPCTests: XCTestCase {
  private var servers: [RPCServer] = []
  private var clients: [RPCClient] = []

  override func tearDown() async throws {
    for client in clients {
      await client.shutdown()
    }
    for server in servers {
      await server.shutdown()
    }
    clients = []
    servers = []
  }

  private func startServer(
    port: Int? = nil, handlers: RPCHandlers = testHandlers(),
    configuration: RPCServer.Configuration = RPCServer.Configuration()
  ) async throws -> RPCServer {
    let bind = { (port: Int) in
      try await RPCServer.bind(
        host: "127.0.0.1", port: port, handlers: handlers, configuration: configuration)
    }
    let server = if let port { try await bind(port) } else { try await onTestPort(bind) }
    servers.append(server)
    return server
  }

  private func makeClient(_ configuration: RPCClient.Configuration = RPCClient.Configuration()) -> RPCClient {
    let client = RPCClient(configuration: configuration)
    clients.append(client)
    return client
  }

  func testRoundTripOverLoopback() async throws {
    let server = try await startServer()
    XCTAssertNotEqual(server.port, 0)
    let client = makeClient()
    let peer = server.localAddress.description
    let reply = try await client.call(
      peer, method: "echo", payload: Array("ping".utf8), timeout: .seconds(10))
    XCTAssertEqual(reply, Array("ping".utf8))
    let empty = try await client.call(peer, method: "echo", payload: [], timeout: .seconds(10))
    XCTAssertEqual(empty, [])
  }

  /// A handler runs on its connection's event loop, and so do the nonisolated calls it makes:
  /// a request answered by work on that loop wakes no other thread.
  func testHandlersRunOnTheirConnectionsEventLoop() async throws {
    var handlers = RPCHandlers()
    handlers.register("where") { _ in
      let onLoop = MultiThreadedEventLoopGroup.currentEventLoop != nil
      let nestedOnLoop = await Self.onEventLoop()
      return [onLoop ? 1 : 0, nestedOnLoop ? 1 : 0]
    }
    let server = try await startServer(handlers: handlers)
    let client = makeClient()
    let reply = try await client.call(
      server.localAddress.description, method: "where", payload: [], timeout: .seconds(10))
    XCTAssertEqual(reply, [1, 1], "the handler, or the call it made, left the connection's loop")
  }

  private nonisolated static func onEventLoop() async -> Bool {
    MultiThreadedEventLoopGroup.currentEventLoop != nil
  }

  func testThousandConcurrentCallsWithOutOfOrderCompletion() async throws {
    let server = try await startServer()
    let client = makeClient()
    let peer = server.localAddress.description
    let replies = try await withThrowingTaskGroup(of: (Int, [UInt8]).self) { group in
      for i in 0..<1000 {
        // First byte: the handler's sleep in ms, varying so that later requests finish first.
        let payload: [UInt8] = [UInt8((i * 7919) % 23), UInt8(i & 0xFF), UInt8(i >> 8)]
        group.addTask {
          (i, try await client.call(peer, method: "sleepEcho", payload: payload, timeout: .seconds(60)))
        }
      }
      var replies: [Int: [UInt8]] = [:]
      for try await (i, reply) in group {
        replies[i] = reply
      }
      return replies
    }
    XCTAssertEqual(replies.count, 1000)
    for (i, reply) in replies {
      XCTAssertEqual(reply, [UInt8((i * 7919) % 23), UInt8(i & 0xFF), UInt8(i >> 8)])
    }
  }

  func testUnknownMethodIsARemoteError() async throws {
    let server = try await startServer()
    let client = makeClient()
    let error = await rpcError {
      try await client.call(
        server.localAddress.description, method: "nope", payload: [], timeout: .seconds(10))
    }
    guard case .remote(.unknownMethod, let message) = error else {
      return XCTFail("expected remote unknownMethod, got \(String(describing: error))")
    }
    XCTAssertTrue(message.contains("nope"), message)
  }

  func testThrowingHandlerIsARemoteErrorWithMessage() async throws {
    let server = try await startServer()
    let client = makeClient()
    let error = await rpcError {
      try await client.call(
        server.localAddress.description, method: "fail", payload: [], timeout: .seconds(10))
    }
    guard case .remote(.handlerFailed, let message) = error else {
      return XCTFail("expected remote handlerFailed, got \(String(describing: error))")
    }
    XCTAssertTrue(message.contains("on purpose"), message)
  }

  func testDeadlineExpiryFailsOnlyThatCall() async throws {
    let server = try await startServer()
    let client = makeClient()
    let peer = server.localAddress.description
    let error = await rpcError {
      try await client.call(peer, method: "hang", payload: [], timeout: .milliseconds(200))
    }
    XCTAssertEqual(error, .timeout(peer: peer, method: "hang"))
    // The same client and connection keep working.
    let reply = try await client.call(peer, method: "echo", payload: [1], timeout: .seconds(10))
    XCTAssertEqual(reply, [1])
  }

  func testBindingABusyPortIsATypedError() async throws {
    let server = try await startServer()
    do {
      _ = try await RPCServer.bind(host: "127.0.0.1", port: server.port, handlers: testHandlers())
      XCTFail("bound a busy port")
    } catch {
      XCTAssertEqual(error, .addressInUse("127.0.0.1:\(server.port)"))
    }
  }

  func testOversizedRequestFailsFastAndOversizedReplyIsARemoteError() async throws {
    var handlers = RPCHandlers()
    handlers.register("big") { _ in [UInt8](repeating: 1, count: 4096) }
    let server = try await startServer(
      handlers: handlers, configuration: RPCServer.Configuration(maximumFrameSize: 1024))
    let client = makeClient(RPCClient.Configuration(maximumFrameSize: 1024))
    let peer = server.localAddress.description
    let tooBig = await rpcError {
      try await client.call(
        peer, method: "big", payload: [UInt8](repeating: 0, count: 2048), timeout: .seconds(10))
    }
    guard case .frameTooLarge = tooBig else {
      return XCTFail("expected frameTooLarge, got \(String(describing: tooBig))")
    }
    let replyTooBig = await rpcError {
      try await client.call(peer, method: "big", payload: [], timeout: .seconds(10))
    }
    guard case .remote(.frameTooLarge, _) = replyTooBig else {
      return XCTFail("expected remote frameTooLarge, got \(String(describing: replyTooBig))")
    }
  }

  func testGarbageClosesOnlyThatConnection() async throws {
    let server = try await startServer()
    let client = makeClient()
    let peer = server.localAddress.description
    await assertEqual(try await client.call(peer, method: "echo", payload: [1], timeout: .seconds(10)), [1])

    let received = Recorder<ByteBuffer>()
    let raw = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .channelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          try channel.pipeline.syncOperations.addHandler(ByteCollector(received: received))
        }
      }
      .connect(host: "127.0.0.1", port: server.port)
      .get()
    // An absurd length prefix followed by junk.
    var garbage = raw.allocator.buffer(capacity: 16)
    garbage.writeBytes([0xFF, 0xFF, 0xFF, 0xF0, 0xDE, 0xAD, 0xBE, 0xEF])
    try await raw.writeAndFlush(garbage)
    await eventually("the server did not close the garbage connection") { !raw.isActive }
    // It said why, in an ERROR envelope for request 0, before closing.
    var bytes = ByteBufferAllocator().buffer(capacity: 0)
    for var chunk in received.all {
      bytes.writeBuffer(&chunk)
    }
    var decoder = FrameDecoder()
    let envelope = try decoder.decode(buffer: &bytes)
    XCTAssertEqual(envelope?.kind, .error)
    XCTAssertEqual(envelope?.requestID, 0)
    XCTAssertEqual(envelope?.errorCode, .frameTooLarge)

    // The well-behaved client's connection is unaffected.
    await assertEqual(try await client.call(peer, method: "echo", payload: [2], timeout: .seconds(10)), [2])
    let second = makeClient()
    await assertEqual(try await second.call(peer, method: "echo", payload: [3], timeout: .seconds(10)), [3])
  }

  func testUndecodableEnvelopeGetsAnErrorAndServerKeepsServing() async throws {
    let server = try await startServer()
    let raw = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .connect(host: "127.0.0.1", port: server.port).get()
    var garbage = raw.allocator.buffer(capacity: 16)
    garbage.writeInteger(UInt32(5), endianness: .big)
    garbage.writeBytes([0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
    try await raw.writeAndFlush(garbage)
    await eventually("the server did not close the garbage connection") { !raw.isActive }
    let client = makeClient()
    let reply = try await client.call(
      server.localAddress.description, method: "echo", payload: [9], timeout: .seconds(10))
    XCTAssertEqual(reply, [9])
  }

  func testPeerDownFailsFastThenRecoversAfterBackoff() async throws {
    let server = try await startServer()
    let port = server.port
    let peer = server.localAddress.description
    let client = makeClient(
      RPCClient.Configuration(initialBackoff: .milliseconds(100), maximumBackoff: .milliseconds(400)))
    await assertEqual(try await client.call(peer, method: "echo", payload: [1], timeout: .seconds(10)), [1])

    await server.shutdown()
    // The first call may still race the closing connection; soon calls are refused outright.
    await eventually("calls never failed with .unreachable") {
      if case .unreachable = await rpcError({
        try await client.call(peer, method: "echo", payload: [], timeout: .seconds(30))
      }) {
        return true
      }
      return false
    }
    // Known down: the call fails with .unreachable, not after its (long) deadline.
    let clock = ContinuousClock()
    let start = clock.now
    let error = await rpcError {
      try await client.call(peer, method: "echo", payload: [], timeout: .seconds(60))
    }
    guard case .unreachable = error else {
      return XCTFail("expected .unreachable, got \(String(describing: error))")
    }
    XCTAssertLessThan(clock.now - start, .seconds(60), "waited for the deadline instead of failing fast")

    // Back on the same port: calls succeed again once the backoff window has passed.
    _ = try await startServer(port: port)
    await eventually("calls never succeeded after the server came back") {
      (try? await client.call(peer, method: "echo", payload: [5], timeout: .seconds(10))) == [5]
    }
  }

  func testCallToNothingIsUnreachable() async throws {
    // Bind and release a port so that nothing listens on it.
    let server = try await startServer()
    let peer = server.localAddress.description
    await server.shutdown()
    let client = makeClient()
    let error = await rpcError {
      try await client.call(peer, method: "echo", payload: [], timeout: .seconds(30))
    }
    guard case .unreachable = error else {
      return XCTFail("expected .unreachable, got \(String(describing: error))")
    }
  }

  func testShutdownFailsCallsInFlightAndLater() async throws {
    let server = try await startServer()
    let client = makeClient()
    let peer = server.localAddress.description
    let inFlight = Task {
      await rpcError { try await client.call(peer, method: "hang", payload: [], timeout: .seconds(60)) }
    }
    await eventually { server.activeRequestCount == 1 }
    await client.shutdown()
    let error = await inFlight.value
    XCTAssertEqual(error, .shutdown)
    let later = await rpcError {
      try await client.call(peer, method: "echo", payload: [], timeout: .seconds(10))
    }
    XCTAssertEqual(later, .shutdown)
  }

  func testCancellingACallFailsItWithCancelled() async throws {
    let server = try await startServer()
    let client = makeClient()
    let peer = server.localAddress.description
    let call = Task {
      await rpcError { try await client.call(peer, method: "hang", payload: [], timeout: .seconds(60)) }
    }
    await eventually { server.activeRequestCount == 1 }
    call.cancel()
    let error = await call.value
    XCTAssertEqual(error, .cancelled)
  }

  func testInvalidAddress() async {
    let client = makeClient()
    let error = await rpcError {
      try await client.call("no-port", method: "echo", payload: [], timeout: .seconds(1))
    }
    XCTAssertEqual(error, .invalidAddress("no-port"))
  }
}

/// Collects every byte a raw test connection receives.
private final class ByteCollector: ChannelInboundHandler {
  typealias InboundIn = ByteBuffer
  let received: Recorder<ByteBuffer>

  init(received: Recorder<ByteBuffer>) {
    self.received = received
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    received.append(Self.unwrapInboundIn(data))
  }
}
