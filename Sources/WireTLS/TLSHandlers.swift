import NIOCore
import NIOSSL
import NIOTLS
import Wire

/// The first handler of a TLS server connection: looks at the first byte the client sends. A
/// TLS client starts with a handshake record (content type 22); anything else is a plain-TCP
/// client, which gets one plain ERROR frame (request id 0, so that it fails every call with the
/// reason) and is closed, instead of a TLS alert it could not read. Removes itself after the
/// first read either way.
final class PlaintextRefusal: ChannelInboundHandler, RemovableChannelHandler {
  typealias InboundIn = ByteBuffer
  typealias InboundOut = ByteBuffer

  /// The first byte of every TLS record that opens a handshake.
  private static let handshakeRecord: UInt8 = 22

  private let address: String

  init(address: String) {
    self.address = address
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    let bytes = Self.unwrapInboundIn(data)
    guard let first = bytes.getInteger(at: bytes.readerIndex, as: UInt8.self), first != Self.handshakeRecord
    else {
      context.fireChannelRead(data)
      context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
      return
    }
    let reply = Shardkv_Envelope.error(
      id: 0, code: .malformed,
      message: "\(address) accepts only TLS connections: give the client a CA certificate "
        + "(and a client certificate where mutual TLS is on)")
    var buffer = context.channel.allocator.buffer(capacity: 256)
    // Without the frame there is still the close; the client then sees a closed connection.
    try? FrameEncoder.encode(reply, into: &buffer)
    let boundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
    context.writeAndFlush(Self.wrapInboundOut(buffer)).whenComplete { _ in
      boundContext.value.close(promise: nil)
    }
  }
}

/// Sits behind a client connection's `NIOSSLClientHandler` and completes `promise` when the TLS
/// handshake has finished — or fails it with the handshake's error, when the connection closes
/// first, or after `timeout` (then closing the connection) — so that a connection counts as
/// open only once it can carry calls, and a refused handshake is a failed connection attempt
/// (backed off like any other) rather than calls failing one by one.
///
/// With TLS 1.3 a server checks the client's certificate after the client has finished its
/// side of the handshake, so a refused client certificate arrives later, as an alert on the
/// open connection: it is passed on as `RPCError.unreachable` with the reason, so that the
/// calls on the connection fail saying why rather than "connection closed".
final class TLSHandshakeWait: ChannelInboundHandler, RemovableChannelHandler {
  typealias InboundIn = ByteBuffer
  typealias InboundOut = ByteBuffer

  private let peer: String
  private let promise: EventLoopPromise<Void>
  private let timeout: Duration
  private var timer: Scheduled<Void>?
  private var isDone = false

  init(peer: String, promise: EventLoopPromise<Void>, timeout: Duration) {
    self.peer = peer
    self.promise = promise
    self.timeout = timeout
  }

  func handlerAdded(context: ChannelHandlerContext) {
    let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
    timer = context.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
      let (handler, context) = bound.value
      handler.finish(.failure(TLSHandshakeError.timedOut))
      context.close(promise: nil)
    }
  }

  func handlerRemoved(context: ChannelHandlerContext) {
    finish(.failure(TLSHandshakeError.closed))
  }

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    if case .handshakeCompleted = event as? TLSUserEvent {
      finish(.success(()))
    }
    context.fireUserInboundEventTriggered(event)
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    if isDone, error is NIOSSLError || error is BoringSSLError {
      let reason =
        "the server refused the TLS connection (is this client's certificate signed by its CA?): \(error)"
      context.fireErrorCaught(RPCError.unreachable(peer: peer, reason: reason))
      return
    }
    if let error = error as? NIOSSLExtraError, error == .failedToValidateHostname {
      // NIOSSL's own text names no address ("Couldn't find <none>") when an IP was dialled.
      finish(.failure(TLSHandshakeError.failed(Self.addressNotInCertificate)))
    } else {
      finish(.failure(TLSHandshakeError.failed("\(error)")))
    }
    context.fireErrorCaught(error)
  }

  func channelInactive(context: ChannelHandlerContext) {
    finish(.failure(TLSHandshakeError.closed))
    context.fireChannelInactive()
  }

  static let addressNotInCertificate =
    "the server's certificate does not name the address dialled (an IP address must be one of its IP "
    + "subject alternative names)"

  private func finish(_ result: Result<Void, TLSHandshakeError>) {
    guard !isDone else { return }
    isDone = true
    timer?.cancel()
    promise.completeWith(result.mapError { $0 })
  }
}

/// Why a client's TLS handshake did not complete; it becomes the reason of an
/// `RPCError.unreachable`.
enum TLSHandshakeError: Error, CustomStringConvertible {
  case failed(String)
  case closed
  case timedOut

  var description: String {
    switch self {
    case .failed(let reason): "TLS handshake failed: \(reason)"
    case .closed: "the server closed the connection during the TLS handshake (is it a TLS server?)"
    case .timedOut: "the TLS handshake timed out"
    }
  }
}

@available(*, unavailable)
extension PlaintextRefusal: Sendable {}

@available(*, unavailable)
extension TLSHandshakeWait: Sendable {}
