import NIOCore
import Synchronization

/// The calls in flight on one client connection, by request id.
///
/// Shared by the callers (any thread), the connection's pipeline handler (its event loop) and
/// the per-call deadline timers, hence a lock. Exactly one party removes a call's entry and only
/// that party completes its promise, so a reply racing its deadline (or a cancellation, or the
/// connection closing) completes the call exactly once. Once `close` has run, every call has
/// failed and new ones are refused: no call can be stranded on a dead connection.
final class PendingCalls: Sendable {
  private struct State {
    /// 0 is reserved for connection-level ERROR envelopes from the server.
    var nextID: UInt64 = 1
    var calls: [UInt64: EventLoopPromise<Shardkv_Envelope>] = [:]
    var closedBecause: RPCError?
  }

  private let state = Mutex(State())

  /// Adds a call and returns its request id.
  ///
  /// - Throws: the error the connection closed with, if it has.
  func register(_ promise: EventLoopPromise<Shardkv_Envelope>) throws(RPCError) -> UInt64 {
    try state.withLock { (state) throws(RPCError) -> UInt64 in
      if let error = state.closedBecause {
        throw error
      }
      let id = state.nextID
      state.nextID += 1
      state.calls[id] = promise
      return id
    }
  }

  /// Completes the call `envelope` answers. A reply for an unknown id (its call already timed
  /// out or was cancelled) is dropped.
  func complete(with envelope: Shardkv_Envelope) {
    let promise = state.withLock { $0.calls.removeValue(forKey: envelope.requestID) }
    promise?.succeed(envelope)
  }

  /// Fails call `id` with `error`, unless it has completed already.
  func fail(_ id: UInt64, with error: RPCError) {
    let promise = state.withLock { $0.calls.removeValue(forKey: id) }
    promise?.fail(error)
  }

  /// Fails every call with `error` and refuses new ones. Only the first close counts.
  func close(because error: RPCError) {
    let promises = state.withLock { state -> [EventLoopPromise<Shardkv_Envelope>] in
      if state.closedBecause == nil {
        state.closedBecause = error
      }
      let promises = Array(state.calls.values)
      state.calls = [:]
      return promises
    }
    for promise in promises {
      promise.fail(error)
    }
  }

  /// The number of calls in flight.
  var count: Int {
    state.withLock { $0.calls.count }
  }
}
