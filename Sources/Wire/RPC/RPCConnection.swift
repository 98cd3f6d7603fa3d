import NIOCore

/// One client connection to a peer, multiplexing any number of concurrent calls by request id.
final class RPCConnection: Sendable {
  let peer: String
  let channel: any Channel
  private let pending: PendingCalls

  init(peer: String, channel: any Channel, pending: PendingCalls) {
    self.peer = peer
    self.channel = channel
    self.pending = pending
  }

  /// The number of calls waiting for a reply on this connection.
  var inFlight: Int { pending.count }

  /// Sends one request and waits for its reply until `deadline`.
  ///
  /// Fails with `.timeout` at the deadline, `.cancelled` if the calling task is cancelled,
  /// `.connectionClosed` (or the error that closed it) if the connection goes away first, and
  /// `.remote` for an ERROR reply. Only this call is affected by its own deadline or cancellation.
  func call(method: String, payload: [UInt8], deadline: NIODeadline) async throws(RPCError) -> [UInt8] {
    let promise = channel.eventLoop.makePromise(of: Shardkv_Envelope.self)
    let id: UInt64
    do {
      id = try pending.register(promise)
    } catch {
      promise.fail(error)  // Never awaited; completed so that NIO does not report a leak.
      throw error
    }
    let pending = self.pending
    let peer = self.peer
    let timer = channel.eventLoop.scheduleTask(deadline: deadline) {
      pending.fail(id, with: .timeout(peer: peer, method: method))
    }
    let request = Shardkv_Envelope.request(id: id, method: method, payload: payload)
    channel.writeAndFlush(request).whenFailure { error in
      pending.fail(id, with: (error as? RPCError) ?? .connectionClosed(peer: peer))
    }
    let reply: Shardkv_Envelope
    do {
      reply = try await withTaskCancellationHandler {
        try await promise.futureResult.get()
      } onCancel: {
        pending.fail(id, with: .cancelled)
      }
    } catch {
      timer.cancel()
      throw (error as? RPCError) ?? .connectionClosed(peer: peer)
    }
    timer.cancel()
    return try reply.replyResult.get()
  }

  /// Closes the connection, failing its pending calls with `error`.
  func close(because error: RPCError) {
    pending.close(because: error)
    channel.close(promise: nil)
  }
}
