import Logging
import NIOCore
import NIOPosix
import Synchronization

/// Serves RPCs over TCP: accepts connections, reads request frames, runs the registered handler
/// for each request concurrently, and writes each reply as soon as it is ready (so replies on
/// one connection may come back in any order; the request id pairs them up).
///
/// A connection that sends an oversized or undecodable frame gets one ERROR envelope (request id
/// 0) and is closed; other connections are unaffected.
public final class RPCServer: Sendable {
  /// How the server frames and logs.
  public struct Configuration: Sendable {
    /// The largest request and reply body accepted or sent.
    public var maximumFrameSize: Int
    /// The listen backlog.
    public var backlog: Int32
    public var logger: Logger
    /// Connections, idle time and requests in flight (see `ConnectionLimits`).
    public var limits = ConnectionLimits()
    /// TLS for every connection (nil: plain TCP): WireTLS's `ServerTLS`; see
    /// `ServerChannelSecurity`.
    public var tls: (any ServerChannelSecurity)?

    public init(
      maximumFrameSize: Int = Frame.defaultMaximumSize, backlog: Int32 = 256,
      logger: Logger = Logger(label: "shardkv.wire.server"), tls: (any ServerChannelSecurity)? = nil
    ) {
      self.maximumFrameSize = maximumFrameSize
      self.backlog = backlog
      self.logger = logger
      self.tls = tls
    }
  }

  /// The address the server listens on, with the actual port when bound to port 0.
  public let localAddress: PeerAddress

  /// The port the server listens on.
  public var port: Int { localAddress.port }

  private let serverChannel: any Channel
  private let core: RPCServerCore

  private init(serverChannel: any Channel, localAddress: PeerAddress, core: RPCServerCore) {
    self.serverChannel = serverChannel
    self.localAddress = localAddress
    self.core = core
  }

  /// Starts serving `handlers` on `host:port` (port 0: any free port, see `port`).
  ///
  /// - Throws: `RPCError.addressInUse` when something already listens there,
  ///   `RPCError.bindFailed` for any other failure.
  public static func bind(
    host: String, port: Int, handlers: RPCHandlers,
    configuration: Configuration = Configuration(),
    group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
  ) async throws(RPCError) -> RPCServer {
    let core = RPCServerCore(handlers: handlers, configuration: configuration)
    let requested = PeerAddress(host: host, port: port)
    let bootstrap = ServerBootstrap(group: group)
      .serverChannelOption(.backlog, value: configuration.backlog)
      // Lets a restarted server bind the port its predecessor left in TIME_WAIT. On Linux this
      // does not let two live servers share a port (that would need SO_REUSEPORT).
      .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
      .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
      .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          guard core.accept(channel) else {
            throw RPCError.shutdown
          }
          try configuration.tls?.addHandlers(
            to: channel.pipeline.syncOperations, listening: requested.description)
          try channel.pipeline.syncOperations.addHandlers([
            ByteToMessageHandler(FrameDecoder(maximumFrameSize: configuration.maximumFrameSize)),
            FrameEncoder(maximumFrameSize: configuration.maximumFrameSize),
            RPCServerHandler(core: core),
          ])
          if let idle = configuration.limits.idleTimeout {
            let nanoseconds =
              idle.components.seconds * 1_000_000_000 + idle.components.attoseconds / 1_000_000_000
            try channel.pipeline.syncOperations.addHandler(
              IdleStateHandler(allTimeout: .nanoseconds(nanoseconds)), position: .first)
          }
        }
      }
    let channel: any Channel
    do {
      channel = try await bootstrap.bind(host: host, port: port).get()
    } catch let error as IOError where error.errnoCode == EADDRINUSE {
      throw .addressInUse(requested.description)
    } catch {
      throw .bindFailed(address: requested.description, reason: String(describing: error))
    }
    let boundPort = channel.localAddress?.port ?? port
    let server = RPCServer(
      serverChannel: channel, localAddress: PeerAddress(host: host, port: boundPort), core: core)
    configuration.logger.debug("listening", metadata: ["address": "\(server.localAddress)"])
    return server
  }

  /// The number of requests whose handlers are running now.
  public var activeRequestCount: Int { core.activeTaskCount }

  /// The number of open connections.
  public var connectionCount: Int { core.connectionCount }

  /// Stops accepting, closes every connection and cancels the handlers still running. Replies of
  /// cancelled handlers are never sent; their callers see the connection close. Idempotent.
  public func shutdown() async {
    let (connections, handlers) = core.beginShutdown()
    try? await serverChannel.close()
    for handler in handlers {
      handler.cancel()
    }
    for connection in connections {
      try? await connection.close()
    }
    // Wait until the listening socket is really gone, so that the port can be bound again.
    try? await serverChannel.closeFuture.get()
  }
}

/// What the listening socket and all its connections share: the handlers, the live connections
/// and the handler tasks in flight (both kept so that shutdown can end them).
final class RPCServerCore: Sendable {
  let handlers: RPCHandlers
  let configuration: RPCServer.Configuration
  private let state = Mutex(State())

  private struct State {
    var isShutdown = false
    var connections: [ObjectIdentifier: Connection] = [:]
    var tasks: [UInt64: Task<Void, Never>] = [:]
    /// Requests counted against the limits: a request stops counting once its reply is
    /// ready, before it is written, so a caller that sends its next request upon a reply is
    /// never refused for the one just answered.
    var counted: [UInt64: ObjectIdentifier] = [:]
    var nextTaskID: UInt64 = 0
  }

  private struct Connection {
    var channel: any Channel
    /// When it last sent a request (or connected): the eviction order at the limit.
    var lastActive: ContinuousClock.Instant
    var requestsInFlight = 0
  }

  init(handlers: RPCHandlers, configuration: RPCServer.Configuration) {
    self.handlers = handlers
    self.configuration = configuration
  }

  var logger: Logger { configuration.logger }

  /// Records a new connection; false once shut down (the connection must then be refused).
  /// At `limits.maxConnections` the connection quiet for longest is closed to make room.
  func accept(_ channel: any Channel) -> Bool {
    let id = ObjectIdentifier(channel)
    let maxConnections = configuration.limits.maxConnections
    let (accepted, evicted) = state.withLock { state -> (Bool, (any Channel)?) in
      guard !state.isShutdown else { return (false, nil) }
      var evicted: (any Channel)?
      // The quietest connection with nothing running; failing that, the quietest of all.
      let quiet = state.connections.filter { $0.value.requestsInFlight == 0 }
      if state.connections.count >= maxConnections,
        let oldest = (quiet.isEmpty ? state.connections : quiet).min(by: {
          $0.value.lastActive < $1.value.lastActive
        })
      {
        evicted = state.connections.removeValue(forKey: oldest.key)?.channel
      }
      state.connections[id] = Connection(channel: channel, lastActive: .now)
      return (true, evicted)
    }
    if let evicted {
      logger.debug("closing the quietest connection to admit a new one (connection limit \(maxConnections))")
      evicted.close(promise: nil)
    }
    if accepted {
      channel.closeFuture.whenComplete { [self] _ in
        state.withLock { _ = $0.connections.removeValue(forKey: id) }
      }
    }
    return accepted
  }

  /// Why a request was not started.
  enum Refusal: Error {
    case shutdown
    case busy(String)
  }

  /// Runs `work`, a request that arrived on `channel`, in a task that shutdown can cancel;
  /// refuses it when shut down or when the connection or the listener already runs as many
  /// requests as `limits` allow. `work` calls the closure it is given once its reply is ready
  /// and before writing it: from then on the request no longer counts against the limits.
  func spawn(
    on channel: ObjectIdentifier, executor: EventLoopTaskExecutor? = nil,
    _ work: @escaping @Sendable (_ replyReady: @escaping @Sendable () -> Void) async -> Void
  ) -> Result<Void, Refusal> {
    let limits = configuration.limits
    return state.withLock { state in
      guard !state.isShutdown else { return .failure(.shutdown) }
      guard state.counted.count < limits.maxRequests else {
        return .failure(.busy("the server has \(limits.maxRequests) requests in flight"))
      }
      let inFlight = state.connections[channel]?.requestsInFlight ?? 0
      guard inFlight < limits.maxRequestsPerConnection else {
        return .failure(.busy("the connection has \(limits.maxRequestsPerConnection) requests in flight"))
      }
      state.connections[channel]?.requestsInFlight += 1
      state.connections[channel]?.lastActive = .now
      state.nextTaskID += 1
      let id = state.nextTaskID
      state.counted[id] = channel
      let stopCounting: @Sendable () -> Void = { [self] in
        self.state.withLock { state in
          guard let channel = state.counted.removeValue(forKey: id) else { return }
          state.connections[channel]?.requestsInFlight -= 1
        }
      }
      // Created inside the lock so that the task's own removal (which takes the lock) cannot run
      // before its insertion.
      state.tasks[id] = Task(executorPreference: executor) { [self] in
        await work(stopCounting)
        stopCounting()
        self.state.withLock { state in _ = state.tasks.removeValue(forKey: id) }
      }
      return .success(())
    }
  }

  /// Requests running for the connection `channel`.
  func requestsInFlight(on channel: ObjectIdentifier) -> Int {
    state.withLock { $0.connections[channel]?.requestsInFlight ?? 0 }
  }

  /// Open connections.
  var connectionCount: Int {
    state.withLock { $0.connections.count }
  }

  var activeTaskCount: Int {
    state.withLock { $0.tasks.count }
  }

  /// Marks the server shut down and hands back what must be closed and cancelled.
  func beginShutdown() -> (connections: [any Channel], tasks: [Task<Void, Never>]) {
    state.withLock { state in
      state.isShutdown = true
      let result = (state.connections.values.map(\.channel), Array(state.tasks.values))
      state.connections = [:]
      state.tasks = [:]
      return result
    }
  }
}
