import Foundation
import SwiftProtobuf
import Wire

/// Why a client operation failed for good.
public enum KVClientError: Error, Hashable, Sendable, CustomStringConvertible {
  /// The request itself is unacceptable (empty or oversized key or value, …).
  case invalidArgument(String)
  /// No member completed the request before the deadline; `lastError` says what went wrong
  /// last. A write's outcome is then unknown.
  case timeout(lastError: String)
  case wrongGroup

  public var description: String {
    switch self {
    case .invalidArgument(let message): return "invalid argument: \(message)"
    case .timeout(let last): return "no answer before the deadline (last error: \(last))"
    case .wrongGroup: return "the key's shard is not served by this group"
    }
  }
}

/// A client session with one group: it remembers which member answered last (the leader, or
/// one that forwards to it), retries on wrong leader, timeouts and connection failures with
/// backoff across the members, and reuses the sequence number of a write across its retries,
/// so that the group executes it exactly once.
///
/// Operations run one at a time, in call order: callers that share a clerk queue behind each
/// other. (Use several clerks for concurrency.)
public actor KVClerk {
  public let clientID: UInt64
  private let servers: [String]
  private let transport: any Transport
  private let deadline: Duration
  private let callTimeout: Duration
  private var sequence: UInt64 = 0
  private var preferred = 0
  /// Whether an operation is under way, and the callers queued behind it.
  private var busy = false
  private var queued: [CheckedContinuation<Void, Never>] = []

  /// - Parameters:
  ///   - servers: the members' API addresses.
  ///   - deadline: how long one operation may take, retries included.
  public init(
    servers: [String], transport: any Transport, deadline: Duration = .seconds(10),
    callTimeout: Duration = .seconds(3), clientID: UInt64 = UInt64.random(in: 1 ... .max)
  ) {
    precondition(!servers.isEmpty, "a clerk needs at least one server")
    self.servers = servers
    self.transport = transport
    self.deadline = deadline
    self.callTimeout = callTimeout
    self.clientID = clientID
  }

  /// The value of `key`, or nil if there is none.
  public func get(_ key: [UInt8]) async throws(KVClientError) -> [UInt8]? {
    let reply = try await execute(.get, key: key, value: [])
    return reply.error == .noKey ? nil : [UInt8](reply.value)
  }

  public func put(_ key: [UInt8], _ value: [UInt8]) async throws(KVClientError) {
    _ = try await execute(.put, key: key, value: value)
  }

  public func append(_ key: [UInt8], _ value: [UInt8]) async throws(KVClientError) {
    _ = try await execute(.append, key: key, value: value)
  }

  public func delete(_ key: [UInt8]) async throws(KVClientError) {
    _ = try await execute(.delete, key: key, value: [])
  }

  /// Runs one operation once every earlier one has finished.
  ///
  /// Invariant: a session has at most one request outstanding. The group keeps only the last
  /// reply per session and answers an older sequence number as superseded without executing
  /// it; if this actor interleaved operations at their suspension points, a later sequence
  /// could reach the log first and an earlier write would be acknowledged yet never applied.
  private func execute(
    _ op: Shardkv_KvOp, key: [UInt8], value: [UInt8]
  ) async throws(KVClientError)
    -> Shardkv_KvReply
  {
    if busy {
      await withCheckedContinuation { queued.append($0) }
    } else {
      busy = true
    }
    // Hand the turn straight to the next caller (busy stays set), or free it.
    defer {
      if queued.isEmpty {
        busy = false
      } else {
        queued.removeFirst().resume()
      }
    }
    return try await attempt(op, key: key, value: value)
  }

  private func attempt(
    _ op: Shardkv_KvOp, key: [UInt8], value: [UInt8]
  ) async throws(KVClientError)
    -> Shardkv_KvReply
  {
    var request = Shardkv_KvRequest()
    request.op = op
    request.key = Data(key)
    request.value = Data(value)
    request.clientID = clientID
    if op != .get {
      sequence += 1
      request.sequence = sequence
    }
    let payload: [UInt8]
    do {
      payload = try request.serializedBytes()
    } catch {
      throw .invalidArgument("cannot encode the request: \(error)")
    }
    let clock = ContinuousClock()
    let end = clock.now + deadline
    var backoff = Duration.milliseconds(20)
    var lastError = "no attempt"
    while clock.now < end {
      let server = servers[preferred % servers.count]
      do {
        let bytes = try await transport.call(
          server, method: KVMethod.request, payload: payload, timeout: min(callTimeout, end - clock.now))
        let reply = try Shardkv_KvReply(serializedBytes: bytes)
        switch reply.error {
        case .ok, .noKey:
          return reply
        case .invalidArgument:
          throw KVClientError.invalidArgument(reply.message)
        case .wrongGroup:
          throw KVClientError.wrongGroup
        case .wrongLeader:
          lastError = "\(server): not the leader (\(reply.message))"
          preferred += 1
        case .timeout:
          // This member could not get the request through in time (it may be cut off from the
          // quorum, or a stale leader): try the next one, as after a failed call.
          lastError = "\(server): \(reply.message.isEmpty ? "\(reply.error)" : reply.message)"
          preferred += 1
        case .shardNotReady, .UNRECOGNIZED:
          lastError = "\(server): \(reply.message.isEmpty ? "\(reply.error)" : reply.message)"
        }
      } catch let error as KVClientError {
        throw error
      } catch {
        lastError = "\(server): \(error)"
        preferred += 1
      }
      try? await Task.sleep(for: min(backoff, max(.zero, end - clock.now)))
      backoff = min(backoff * 2, .milliseconds(500))
    }
    throw .timeout(lastError: lastError)
  }
}
