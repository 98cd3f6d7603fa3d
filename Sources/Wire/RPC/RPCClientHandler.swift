import Logging
import NIOCore

/// The last handler of a client connection's pipeline: hands each reply to the call waiting for
/// it and fails all pending calls when the connection errors or closes.
final class RPCClientHandler: ChannelInboundHandler {
  typealias InboundIn = Shardkv_Envelope

  private let peer: String
  private let pending: PendingCalls
  private let logger: Logger

  init(peer: String, pending: PendingCalls, logger: Logger) {
    self.peer = peer
    self.pending = pending
    self.logger = logger
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    let envelope = Self.unwrapInboundIn(data)
    if envelope.requestID == 0 && envelope.kind == .error {
      // The server rejected the connection as a whole (e.g. our frame was too large) and is
      // closing it; every call on it fails with the server's reason.
      logger.warning("\(peer) closed the connection: \(envelope.errorCode): \(envelope.errorMessage)")
      pending.close(because: .remote(code: envelope.errorCode, message: envelope.errorMessage))
      context.close(promise: nil)
      return
    }
    pending.complete(with: envelope)
  }

  func channelInactive(context: ChannelHandlerContext) {
    pending.close(because: .connectionClosed(peer: peer))
    context.fireChannelInactive()
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    let reason: RPCError
    if let error = error as? RPCError {
      reason = error
      logger.warning("closing connection to \(peer): \(error)")
    } else {
      reason = .connectionClosed(peer: peer)
      logger.debug("closing connection to \(peer): \(error)")
    }
    pending.close(because: reason)
    context.close(promise: nil)
  }
}

@available(*, unavailable)
extension RPCClientHandler: Sendable {}
