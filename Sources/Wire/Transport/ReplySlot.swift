import Synchronization

/// Where an in-memory call's reply lands, and where its caller waits for it with a deadline.
///
/// The first of reply, deadline and cancellation to arrive wins; later ones are ignored (a
/// duplicate or late reply has nowhere to go, as on a real network).
final class ReplySlot: Sendable {
  private enum State {
    case pending
    case waiting(CheckedContinuation<Result<[UInt8], RPCError>, Never>)
    case done(Result<[UInt8], RPCError>)
  }

  private let state = Mutex(State.pending)

  /// Delivers `result` unless the slot is already done.
  func complete(_ result: Result<[UInt8], RPCError>) {
    let continuation = state.withLock { state -> CheckedContinuation<Result<[UInt8], RPCError>, Never>? in
      switch state {
      case .pending:
        state = .done(result)
        return nil
      case .waiting(let continuation):
        state = .done(result)
        return continuation
      case .done:
        return nil
      }
    }
    continuation?.resume(returning: result)
  }

  /// Waits for the result; after `timeout`, or if the calling task is cancelled, the slot
  /// completes with `timeoutError` or `.cancelled` instead.
  func wait(timeout: Duration, timeoutError: RPCError) async -> Result<[UInt8], RPCError> {
    let timer = Task { [self] in
      try? await Task.sleep(for: timeout)
      if !Task.isCancelled {
        complete(.failure(timeoutError))
      }
    }
    defer { timer.cancel() }
    return await withTaskCancellationHandler {
      await withCheckedContinuation { continuation in
        let ready = state.withLock { state -> Result<[UInt8], RPCError>? in
          if case .done(let result) = state {
            return result
          }
          state = .waiting(continuation)
          return nil
        }
        if let ready {
          continuation.resume(returning: ready)
        }
      }
    } onCancel: {
      complete(.failure(.cancelled))
    }
  }
}
