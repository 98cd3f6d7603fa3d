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
    /// TLS for every connection (nil: plain TCP); see `ServerTLS`.
    public var tls: ServerTLS?

    public init(
      maximumFrameSize: Int = Frame.defaultMaximumSize, backlog: Int32 = 256,
      logger: Logger = Logger(label: "shardkv.wire.server"), tls: ServerTLS? = nil
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
    var connections: [ObjectIdentifier: any Channel] = [:]
    var tasks: [UInt64: Task<Void, Never>] = [:]
    var nextTaskID: UInt64 = 0
  }

  init(handlers: RPCHandlers, configuration: RPCServer.Configuration) {
    self.handlers = handlers
    self.configuration = configuration
  }

  var logger: Logger { configuration.logger }

  /// Records a new connection; false once shut down (the connection must then be refused).
  func accept(_ channel: any Channel) -> Bool {
    let id = ObjectIdentifier(channel)
    let accepted = state.withLock { state in
      guard !state.isShutdown else { return false }
      state.connections[id] = channel
      return true
    }
    if accepted {
      channel.closeFuture.whenComplete { [self] _ in
        state.withLock { _ = $0.connections.removeValue(forKey: id) }
      }
    }
    return accepted
  }

  /// Runs `work` in a task that shutdown can cancel. Does nothing once shut down.
  func spawn(_ work: @escaping @Sendable () async -> Void) {
    state.withLock { state in
      guard !state.isShutdown else { return }
      state.nextTaskID += 1
      let id = state.nextTaskID
      // Created inside the lock so that the task's own removal (which takes the lock) cannot run
      // before its insertion.
      state.tasks[id] = Task { [self] in
        await work()
        self.state.withLock { _ = $0.tasks.removeValue(forKey: id) }
      }
    }
  }

  var activeTaskCount: Int {
    state.withLock { $0.tasks.count }
  }

  /// Marks the server shut down and hands back what must be closed and cancelled.
  func beginShutdown() -> (connections: [any Channel], tasks: [Task<Void, Never>]) {
    state.withLock { state in
      state.isShutdown = true
      let result = (Array(state.connections.values), Array(state.tasks.values))
      state.connections = [:]
      state.tasks = [:]
      return result
    }
  }
}
