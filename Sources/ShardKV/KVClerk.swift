import Foundation
import Raft
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

/// A client session with one group: Get, Put, Append and Delete over a `GroupClient`
/// (leader cache, retries with backoff across the members, one sequence number per write
/// across its retries, operations one at a time in call order).
public struct KVClerk: Sendable {
  private let session: GroupClient

  public var clientID: UInt64 { session.clientID }

  /// - Parameters:
  ///   - servers: the members' API addresses.
  ///   - deadline: how long one operation may take, retries included.
  public init(
    servers: [String], transport: any Transport, deadline: Duration = .seconds(10),
    callTimeout: Duration = .seconds(3), clientID: UInt64 = UInt64.random(in: 1 ... .max)
  ) {
    session = GroupClient(
      servers: servers, transport: transport, deadline: deadline, callTimeout: callTimeout, clientID: clientID
    )
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

  private func execute(
    _ op: Shardkv_KvOp, key: [UInt8], value: [UInt8]
  ) async throws(KVClientError) -> Shardkv_KvReply {
    let clientID = self.clientID
    return try await session.perform(
      method: KVMethod.request, isWrite: op != .get,
      encode: { sequence in
        var request = Shardkv_KvRequest()
        request.op = op
        request.key = Data(key)
        request.value = Data(value)
        request.clientID = clientID
        request.sequence = sequence
        do {
          return .success(try request.serializedBytes())
        } catch {
          return .failure(.invalidArgument("cannot encode the request: \(error)"))
        }
      },
      interpret: Self.verdict,
      giveUp: { .timeout(lastError: $0) },
      notServed: { .invalidArgument("\($0): is it a shard controller rather than a KV group member?") }
    ).get()
  }

  @Sendable static func verdict(_ bytes: [UInt8]) -> ReplyVerdict<Shardkv_KvReply, KVClientError> {
    guard let reply = try? Shardkv_KvReply(serializedBytes: bytes) else {
      return .tryNextMember("undecodable reply")
    }
    let why = reply.message.isEmpty ? "\(reply.error)" : reply.message
    switch reply.error {
    case .ok, .noKey: return .done(reply)
    case .invalidArgument: return .refused(.invalidArgument(reply.message))
    case .wrongGroup: return .refused(.wrongGroup)
    case .wrongLeader: return .tryNextMember("not the leader (\(why))")
    // Cut off from the quorum, or a stale leader: another member may get it through.
    case .timeout: return .tryNextMember(why)
    case .shardNotReady, .UNRECOGNIZED: return .retryLater(why)
    }
  }
}
