import Logging
import NIOCore
import NIOPosix
import RESP
import ShardKV
import Synchronization

/// The router's Redis front end (RESP2 over TCP), so that redis-cli, redis-benchmark and Redis
/// client libraries work against the cluster.
///
/// Each connection parses its bytes incrementally (`RESPRequestParser`: pipelining, requests
/// split across reads, inline commands, limits) and runs its requests through `RESPCommands`:
/// requests on disjoint keys concurrently, requests sharing a key in arrival order, replies
/// always in request order. A malformed or oversized request gets `-ERR Protocol error: …` and
/// its connection is closed; other connections are unaffected.
public final class RESPServer: Sendable {
  public let localAddress: String
  private let channel: any Channel

  private init(channel: any Channel, localAddress: String) {
    self.channel = channel
    self.localAddress = localAddress
  }

  /// Starts serving on `host:port`.
  public static func bind(
    host: String, port: Int, commands: RESPCommands, limits: RESPLimits = RESPLimits(),
    logger: Logger = Logger(label: "shardkv.resp"),
    group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
  ) async throws -> RESPServer {
    let channel = try await ServerBootstrap(group: group)
      .serverChannelOption(.backlog, value: 256)
      .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
      .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
      .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          let connection = RESPConnection(channel: channel, commands: commands)
          try channel.pipeline.syncOperations.addHandler(
            RESPConnectionHandler(connection: connection, limits: limits, logger: logger))
        }
      }
      .bind(host: host, port: port).get()
    return RESPServer(channel: channel, localAddress: "\(host):\(channel.localAddress?.port ?? port)")
  }

  public func close() async {
    try? await channel.close()
  }
}

/// Parses one connection's bytes and hands each complete request to its `RESPConnection`.
/// Runs on the channel's event loop only.
final class RESPConnectionHandler: ChannelInboundHandler {
  typealias InboundIn = ByteBuffer

  private var parser: RESPRequestParser
  private let connection: RESPConnection
  private let logger: Logger
  private var failed = false

  init(connection: RESPConnection, limits: RESPLimits, logger: Logger) {
    self.connection = connection
    parser = RESPRequestParser(limits: limits)
    self.logger = logger
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    guard !failed else { return }
    var buffer = unwrapInboundIn(data)
    guard let bytes = buffer.readBytes(length: buffer.readableBytes) else { return }
    parser.append(bytes)
    do {
      while let request = try parser.next() {
        connection.submit(request)
      }
    } catch {
      // Everything parsed before the bad bytes is answered first, then the error, then close.
      failed = true
      logger.debug("closing a RESP connection: \(error)")
      connection.fail(with: "ERR Protocol error: \(error)")
    }
  }

  func channelInactive(context: ChannelHandlerContext) {
    connection.finish()
    context.fireChannelInactive()
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    connection.finish()
    context.close(promise: nil)
  }
}

/// One client connection: runs its requests (ordered per key, bounded in number), and writes
/// the replies in request order from one writer task.
final class RESPConnection: Sendable {
  /// Requests in flight beyond which the connection stops reading until they drain.
  static let maxOutstanding = 1024

  private enum Item: Sendable {
    case reply(Task<(RESPValue, RESPCommands.Effect), Never>)
    case failure(String)
  }

  private struct State {
    var tails: [[UInt8]: Task<(RESPValue, RESPCommands.Effect), Never>] = [:]
    var outstanding = 0
    var paused = false
  }

  private let channel: any Channel
  private let commands: RESPCommands
  private let sessions = RESPSessions()
  private let state = Mutex(State())
  private let items: AsyncStream<Item>.Continuation
  private let writer: Task<Void, Never>

  init(channel: any Channel, commands: RESPCommands) {
    self.channel = channel
    self.commands = commands
    let (stream, continuation) = AsyncStream<Item>.makeStream()
    items = continuation
    writer = Task { [channel] in
      for await item in stream {
        switch item {
        case .reply(let task):
          let (value, effect) = await task.value
          try? await channel.writeAndFlush(ByteBuffer(bytes: value.encoded))
          if effect == .close {
            try? await channel.close()
            return
          }
        case .failure(let message):
          try? await channel.writeAndFlush(ByteBuffer(bytes: RESPValue.error(message).encoded))
          try? await channel.close()
          return
        }
      }
    }
  }

  /// Starts `request` once every earlier request sharing one of its keys has finished.
  func submit(_ request: [[UInt8]]) {
    let keys = RESPCommands.keys(of: request)
    let commands = self.commands
    let sessions = self.sessions
    let pause = state.withLock { state -> Bool in
      let before = keys.compactMap { state.tails[$0] }
      let task = Task { () -> (RESPValue, RESPCommands.Effect) in
        for earlier in before { _ = await earlier.value }
        return await commands.execute(request, sessions: sessions)
      }
      for key in keys { state.tails[key] = task }
      state.outstanding += 1
      items.yield(.reply(task))
      Task { [weak self] in
        _ = await task.value
        self?.completed(task, keys: keys)
      }
      if state.outstanding > Self.maxOutstanding && !state.paused {
        state.paused = true
        return true
      }
      return false
    }
    if pause { channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in } }
  }

  private func completed(_ task: Task<(RESPValue, RESPCommands.Effect), Never>, keys: [[UInt8]]) {
    let resume = state.withLock { state -> Bool in
      for key in keys where state.tails[key] == task { state.tails[key] = nil }
      state.outstanding -= 1
      if state.paused && state.outstanding < Self.maxOutstanding / 2 {
        state.paused = false
        return true
      }
      return false
    }
    if resume {
      let channel = self.channel
      channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in channel.read() }
    }
  }

  /// Answers the requests submitted so far, then `message`, then closes.
  func fail(with message: String) {
    items.yield(.failure(message))
    items.finish()
  }

  /// The peer went away: nothing more to write.
  func finish() {
    items.finish()
  }
}
