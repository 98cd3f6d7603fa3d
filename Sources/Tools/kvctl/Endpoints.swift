import Foundation
import SwiftProtobuf
import Synchronization
import Wire

/// The endpoints `-a` names, for the commands that any one of them can answer (`status`,
/// `leader`, `shards`, ...): each call tries them in turn, starting with the one that answered
/// last, and stops at the first answer. A dead endpoint costs one refused or timed-out connect
/// (`--connect-timeout`), a silent one at most `attemptTimeout`, and the last one tried gets
/// whatever remains of the deadline. (Data and controller commands get the same list through
/// their clerk's `GroupClient`, which has its own retry discipline.)
final class Endpoints: Sendable {
  let all: [String]
  let transport: TCPTransport
  let deadline: Duration
  /// The most one endpoint may take to answer while others remain to be tried.
  let attemptTimeout: Duration
  private let preferred = Mutex(0)

  init(_ all: [String], transport: TCPTransport, deadline: Duration, attemptTimeout: Duration = .seconds(3)) {
    self.all = all
    self.transport = transport
    self.deadline = deadline
    self.attemptTimeout = attemptTimeout
  }

  /// The endpoint that answered last (the first before any answered).
  var current: String { all[preferred.withLock { $0 }] }

  /// Makes `endpoint` the first one the next call tries, if it is one of `all` (a leader hint
  /// naming another address is not followed: `-a` lists what kvctl may talk to). Returns
  /// whether it is.
  @discardableResult
  func prefer(_ endpoint: String) -> Bool {
    guard let index = all.firstIndex(of: endpoint) else { return false }
    preferred.withLock { $0 = index }
    return true
  }

  /// Calls `method` on the endpoints in turn; returns the first reply and who sent it.
  /// - Parameters:
  ///   - timeout: the whole call's deadline (default `deadline`).
  ///   - slow: the method legitimately takes long (a membership change): an endpoint that
  ///     accepted the call gets the whole remaining time, not `attemptTimeout`.
  /// - Throws: `Failure`: `.unavailable` when none answered, `.rejected` when the ones that
  ///   answered do not serve `method` (another kind of node).
  func call<Reply: SwiftProtobuf.Message>(
    _ method: String, _ request: some SwiftProtobuf.Message, as: Reply.Type, timeout: Duration? = nil,
    slow: Bool = false
  ) async throws(Failure) -> (reply: Reply, from: String) {
    let payload: [UInt8]
    do {
      payload = try request.serializedBytes()
    } catch {
      throw Failure(message: "cannot encode the request: \(error)", status: .rejected)
    }
    let clock = ContinuousClock()
    let end = clock.now + (timeout ?? deadline)
    let first = preferred.withLock { $0 }
    var errors: [String] = []
    var refused = false
    for step in 0..<all.count {
      let index = (first + step) % all.count
      let endpoint = all[index]
      let remaining = end - clock.now
      guard remaining > .zero else { break }
      let patient = slow || step == all.count - 1
      do {
        let bytes = try await transport.call(
          endpoint, method: method, payload: payload,
          timeout: patient ? remaining : min(remaining, attemptTimeout))
        let reply = try Reply(serializedBytes: bytes)
        preferred.withLock { $0 = index }
        return (reply, endpoint)
      } catch let error as RPCError {
        if case .remote(code: .unknownMethod, _) = error { refused = true }
        errors.append("\(endpoint): \(error)")
      } catch {
        errors.append("\(endpoint): bad reply: \(error)")
      }
    }
    if errors.isEmpty { errors.append("no endpoint tried before the deadline") }
    throw Failure(message: errors.joined(separator: "; "), status: refused ? .rejected : .unavailable)
  }
}
