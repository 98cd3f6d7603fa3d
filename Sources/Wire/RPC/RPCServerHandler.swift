import Logging
import NIOCore

/// The last handler of a server connection's pipeline: turns each request envelope into a handler
/// task and its outcome into a RESPONSE or ERROR envelope.
///
/// Event-loop confined, like every NIO handler; the handler tasks only touch the (Sendable)
/// channel, whose writes NIO hops onto the event loop.
final class RPCServerHandler: ChannelInboundHandler {
  typealias InboundIn = Shardkv_Envelope
  typealias OutboundOut = Shardkv_Envelope

  private let core: RPCServerCore
  /// Set once the connection is being closed because of a protocol error, so that the errors
  /// NIO reports for the same stream afterwards are not answered again.
  private var isClosing = false
  /// Handlers run on the connection's event loop (see `EventLoopTaskExecutor`).
  private var executor: EventLoopTaskExecutor?

  init(core: RPCServerCore) {
    self.core = core
  }

  func handlerAdded(context: ChannelHandlerContext) {
    executor = EventLoopTaskExecutor(context.eventLoop)
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    let envelope = Self.unwrapInboundIn(data)
    let id = envelope.requestID
    guard envelope.kind == .request else {
      // A confused peer; the stream itself is intact, so answer and carry on.
      let reply = Shardkv_Envelope.error(
        id: id, code: .malformed, message: "expected a request, got an envelope of kind \(envelope.kind)")
      context.writeAndFlush(Self.wrapOutboundOut(reply), promise: nil)
      return
    }
    let channel = context.channel
    let method = envelope.method
    let payload = [UInt8](envelope.payload)
    let core = self.core
    let spawned = core.spawn(on: ObjectIdentifier(channel), executor: executor) { replyReady in
      let reply: Shardkv_Envelope
      switch await core.handlers.dispatch(method: method, payload: payload) {
      case .success(let payload):
        reply = .response(id: id, payload: payload)
      case .failure(.remote(let code, let message)):
        reply = .error(id: id, code: code, message: message)
      case .failure(let error):
        reply = .error(id: id, code: .handlerFailed, message: error.description)
      }
      replyReady()
      do {
        try await channel.writeAndFlush(reply)
      } catch RPCError.frameTooLarge(let size, let limit) {
        // The encoder refused the reply but the connection is intact: tell the caller why.
        let message = "reply to \(method) of \(size) bytes exceeds the frame limit of \(limit) bytes"
        try? await channel.writeAndFlush(
          Shardkv_Envelope.error(id: id, code: .frameTooLarge, message: message))
      } catch {
        // The connection is gone; its caller learns that from the closed connection.
      }
    }
    if case .failure(.busy(let why)) = spawned {
      let reply = Shardkv_Envelope.error(id: id, code: .busy, message: "busy: \(why); retry later")
      context.writeAndFlush(Self.wrapOutboundOut(reply), promise: nil)
    }
  }

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    // From the IdleStateHandler that `ConnectionLimits.idleTimeout` adds: a quiet connection
    // with nothing running is closed; one waiting for a slow handler stays.
    if event is IdleStateHandler.IdleStateEvent {
      if core.requestsInFlight(on: ObjectIdentifier(context.channel)) == 0 {
        core.logger.debug("closing an idle connection")
        context.close(promise: nil)
      }
      return
    }
    context.fireUserInboundEventTriggered(event)
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    guard !isClosing else { return }
    isClosing = true
    let peer = context.channel.remoteAddress.map { "\($0)" } ?? "unknown peer"
    let code: RemoteErrorCode?
    switch error {
    case RPCError.frameTooLarge:
      code = .frameTooLarge
    case RPCError.malformed:
      code = .malformed
    default:
      code = nil
    }
    guard let code, context.channel.isActive else {
      core.logger.debug("closing connection from \(peer): \(error)")
      context.close(promise: nil)
      return
    }
    core.logger.warning("closing connection from \(peer) after a bad frame: \(error)")
    let reply = Shardkv_Envelope.error(id: 0, code: code, message: String(describing: error))
    let boundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
    context.writeAndFlush(Self.wrapOutboundOut(reply)).whenComplete { _ in
      boundContext.value.close(promise: nil)
    }
  }
}

@available(*, unavailable)
extension RPCServerHandler: Sendable {}
