import Synchronization

/// One node's view of an `InMemoryNetwork`; see there for the fault model.
///
/// Addresses are arbitrary strings (conventionally the node's `host:port`); `listen` uses the
/// address verbatim, so port 0 is not special here.
public final class InMemoryTransport: Transport {
  /// The node this transport calls from and serves for.
  public let node: String
  public let network: InMemoryNetwork
  private let isShutdown = Mutex(false)

  init(node: String, network: InMemoryNetwork) {
    self.node = node
    self.network = network
  }

  public func call(
    _ peer: String, method: String, payload: [UInt8], timeout: Duration
  ) async throws(RPCError) -> [UInt8] {
    guard !isShutdown.withLock({ $0 }) else { throw .shutdown }
    return try await network.call(from: node, to: peer, method: method, payload: payload, timeout: timeout)
  }

  public func listen(
    on address: String, handlers: RPCHandlers
  ) async throws(RPCError) -> any TransportListener {
    guard !isShutdown.withLock({ $0 }) else { throw .shutdown }
    return try network.register(address: address, node: node, handlers: handlers)
  }

  /// Later calls fail with `.shutdown`; calls in flight end as they would have (reply, error or
  /// deadline).
  public func shutdown() async {
    isShutdown.withLock { $0 = true }
  }
}

/// A listener registered on an `InMemoryNetwork`.
public struct InMemoryListener: TransportListener {
  public let address: String
  let id: UInt64
  let network: InMemoryNetwork

  public func close() async {
    network.unregister(address: address, id: id)
  }
}
