import NIOCore
import NIOPosix

/// The production `Transport`: an `RPCClient` for calls and one `RPCServer` per listener.
public final class TCPTransport: Transport {
  public let client: RPCClient
  private let serverConfiguration: RPCServer.Configuration
  private let group: any EventLoopGroup

  public init(
    client: RPCClient.Configuration = RPCClient.Configuration(),
    server: RPCServer.Configuration = RPCServer.Configuration(),
    group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
  ) {
    self.client = RPCClient(configuration: client, group: group)
    self.serverConfiguration = server
    self.group = group
  }

  public func call(
    _ peer: String, method: String, payload: [UInt8], timeout: Duration
  ) async throws(RPCError) -> [UInt8] {
    try await client.call(peer, method: method, payload: payload, timeout: timeout)
  }

  public func listen(
    on address: String, handlers: RPCHandlers
  ) async throws(RPCError) -> any TransportListener {
    try await listen(on: address, handlers: handlers, limits: serverConfiguration.limits)
  }

  /// `listen` with this listener's own limits (e.g. an idle timeout on a client address only).
  public func listen(
    on address: String, handlers: RPCHandlers, limits: ConnectionLimits
  ) async throws(RPCError) -> any TransportListener {
    let parsed = try PeerAddress(parsing: address)
    var configuration = serverConfiguration
    configuration.limits = limits
    let server = try await RPCServer.bind(
      host: parsed.host, port: parsed.port, handlers: handlers, configuration: configuration,
      group: group)
    return TCPListener(server: server)
  }

  public func shutdown() async {
    await client.shutdown()
  }
}

/// A `TransportListener` over an `RPCServer`.
public struct TCPListener: TransportListener {
  public let server: RPCServer

  public var address: String { server.localAddress.description }

  public func close() async {
    await server.shutdown()
  }
}
