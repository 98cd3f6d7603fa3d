import XCTest

@testable import Wire

/// The same scenario over both transports: code above the seam must not tell them apart.
final class TransportTests: XCTestCase {
  private func exercise(_ transport: any Transport, listenOn address: String? = nil) async throws {
    let listener =
      if let address {
        try await transport.listen(on: address, handlers: testHandlers())
      } else {
        try await onTestPort { try await transport.listen(on: "127.0.0.1:\($0)", handlers: testHandlers()) }
      }
    let peer = listener.address
    await assertEqual(
      try await transport.call(peer, method: "echo", payload: [1, 2], timeout: .seconds(10)), [1, 2])
    guard
      case .remote(.unknownMethod, _) = await rpcError({
        try await transport.call(peer, method: "missing", payload: [], timeout: .seconds(10))
      })
    else {
      return XCTFail("expected unknownMethod")
    }
    await assertEqual(
      await rpcError {
        try await transport.call(peer, method: "hang", payload: [], timeout: .milliseconds(100))
      },
      .timeout(peer: peer, method: "hang"))
    await listener.close()
    // Over TCP a call racing the close may see .connectionClosed first; then .unreachable.
    await eventually("calls after close never failed with .unreachable") {
      if case .unreachable = await rpcError({
        try await transport.call(peer, method: "echo", payload: [], timeout: .seconds(30))
      }) {
        return true
      }
      return false
    }
    await transport.shutdown()
    await assertEqual(
      await rpcError { try await transport.call(peer, method: "echo", payload: [], timeout: .seconds(10)) },
      .shutdown)
  }

  func testTCPTransport() async throws {
    let transport = TCPTransport()
    try await exercise(transport)
  }

  func testInMemoryTransport() async throws {
    let network = InMemoryNetwork(seed: 5)
    try await exercise(network.transport(for: "n1"), listenOn: "n1")
  }

  func testPeerAddressParsing() throws {
    XCTAssertEqual(try PeerAddress(parsing: "127.0.0.1:7001"), PeerAddress(host: "127.0.0.1", port: 7001))
    XCTAssertEqual(try PeerAddress(parsing: "[::1]:80"), PeerAddress(host: "::1", port: 80))
    XCTAssertEqual(PeerAddress(host: "::1", port: 80).description, "[::1]:80")
    XCTAssertThrowsError(try PeerAddress(parsing: "host"))
    XCTAssertThrowsError(try PeerAddress(parsing: ":80"))
    XCTAssertThrowsError(try PeerAddress(parsing: "h:99999"))
  }
}
