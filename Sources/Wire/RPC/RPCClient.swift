import Logging
import NIOCore
import NIOPosix
import Synchronization

/// Calls RPCs on peers over TCP.
///
/// One connection pool per peer (see `PeerConnectionPool`): a few connections, opened lazily,
/// each carrying any number of concurrent calls matched to replies by request id. Every call has
/// its own deadline; a peer that cannot be reached is backed off exponentially, and calls to it
/// fail fast with `.unreachable` meanwhile.
public final class RPCClient: Sendable {
  /// Connection and retry policy.
  public struct Configuration: Sendable {
    /// Connections kept per peer (at least 1).
    public var connectionsPerPeer: Int
    /// The longest a connection attempt may take (a call's own deadline may cut it shorter).
    public var connectTimeout: Duration
    /// The fast-fail window after the first failed connection attempt; doubled for each further
    /// consecutive failure.
    public var initialBackoff: Duration
    /// The longest fast-fail window.
    public var maximumBackoff: Duration
    /// The largest request and reply body sent or accepted.
    public var maximumFrameSize: Int
    public var logger: Logger
    /// TLS for every connection (nil: plain TCP): WireTLS's `ClientTLS`; see
    /// `ClientChannelSecurity`.
    public var tls: (any ClientChannelSecurity)?

    public init(
      connectionsPerPeer: Int = 2,
      connectTimeout: Duration = .seconds(2),
      initialBackoff: Duration = .milliseconds(50),
      maximumBackoff: Duration = .seconds(2),
      maximumFrameSize: Int = Frame.defaultMaximumSize,
      logger: Logger = Logger(label: "shardkv.wire.client"),
      tls: (any ClientChannelSecurity)? = nil
    ) {
      self.connectionsPerPeer = max(1, connectionsPerPeer)
      self.connectTimeout = connectTimeout
      self.initialBackoff = initialBackoff
      self.maximumBackoff = maximumBackoff
      self.maximumFrameSize = maximumFrameSize
      self.logger = logger
      self.tls = tls
    }
  }

  public let configuration: Configuration
  private let group: any EventLoopGroup
  private let state = Mutex(State())

  private struct State {
    var pools: [String: PeerConnectionPool] = [:]
    var isShutdown = false
  }

  public init(
    configuration: Configuration = Configuration(),
    group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
  ) {
    self.configuration = configuration
    self.group = group
  }

  /// Calls `method` on `peer` (`host:port`) and returns the reply payload.
  ///
  /// - Throws: `RPCError`: `.timeout` when no reply arrives within `timeout` (the request may
  ///   still have run), `.unreachable` when the peer cannot be connected to (at once while it is
  ///   backed off), `.connectionClosed` when the connection drops mid-call, `.remote` for an
  ///   ERROR reply, `.frameTooLarge`, `.invalidAddress`, `.cancelled`, `.shutdown`.
  public func call(
    _ peer: String, method: String, payload: [UInt8], timeout: Duration
  ) async throws(RPCError) -> [UInt8] {
    // A cheap early check; the encoder enforces the exact limit (envelope included).
    guard payload.count <= configuration.maximumFrameSize else {
      throw .frameTooLarge(size: payload.count, limit: configuration.maximumFrameSize)
    }
    let deadline = NIODeadline.now() + TimeAmount(timeout)
    let pool = try pool(for: peer)
    let connection = try await pool.connection(method: method, deadline: deadline)
    return try await connection.call(method: method, payload: payload, deadline: deadline)
  }

  /// Closes every connection, failing calls in flight with `.shutdown`; later calls fail with
  /// `.shutdown` too. Idempotent.
  public func shutdown() async {
    let pools = state.withLock { state -> [PeerConnectionPool] in
      state.isShutdown = true
      return Array(state.pools.values)
    }
    for pool in pools {
      pool.shutdown()
    }
  }

  private func pool(for peer: String) throws(RPCError) -> PeerConnectionPool {
    try state.withLock { (state) throws(RPCError) -> PeerConnectionPool in
      guard !state.isShutdown else { throw .shutdown }
      if let pool = state.pools[peer] {
        return pool
      }
      let pool = PeerConnectionPool(
        peer: peer, address: try PeerAddress(parsing: peer), configuration: configuration, group: group)
      state.pools[peer] = pool
      return pool
    }
  }
}
