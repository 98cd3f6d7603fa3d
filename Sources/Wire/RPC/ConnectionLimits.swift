/// How much one listener lets its callers hold: connections, idle time and requests in flight.
/// Every bound turns excess into a refusal the caller can see (a closed connection or a `busy`
/// error), never into unbounded memory or tasks. Defaults and the kvd flags that set them are
/// listed in docs/ARCHITECTURE.md, "Hostile input and limits".
public struct ConnectionLimits: Hashable, Sendable {
  /// Open connections. When a new one arrives at the limit, the connection that has been
  /// quiet the longest (preferring one with no request running) is closed to make room: a flood of idle sockets then evicts itself,
  /// and a client with traffic keeps its connection.
  public var maxConnections: Int
  /// A connection with no request in flight that sends nothing for this long is closed; nil
  /// keeps connections open however quiet (peer links, which heartbeats keep busy anyway).
  public var idleTimeout: Duration?
  /// Requests whose handlers run at once on one connection; beyond it a request is answered
  /// with `RemoteErrorCode.busy` without running.
  public var maxRequestsPerConnection: Int
  /// Requests whose handlers run at once on the whole listener; beyond it, `busy` as well.
  public var maxRequests: Int

  public init(
    maxConnections: Int = 4096, idleTimeout: Duration? = nil, maxRequestsPerConnection: Int = 1024,
    maxRequests: Int = 16_384
  ) {
    self.maxConnections = max(1, maxConnections)
    self.idleTimeout = idleTimeout
    self.maxRequestsPerConnection = max(1, maxRequestsPerConnection)
    self.maxRequests = max(1, maxRequests)
  }
}
