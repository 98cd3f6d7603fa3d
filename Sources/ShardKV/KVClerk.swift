import Foundation
import Raft
import SwiftProtobuf
import Wire

/// Why a client operation failed for good.
public enum KVClientError: Error, Hashable, Sendable, CustomStringConvertible {
  /// The request itself is unacceptable (empty or oversized key or value, …).
  case invalidArgument(String)
  /// No member completed the request before the deadline; `lastError` says what went wrong
  /// last (for a shard that is moving, which shard and group). A write's outcome is then
  /// unknown.
  case timeout(lastError: String)

  public var description: String {
    switch self {
    case .invalidArgument(let message): return "invalid argument: \(message)"
    case .timeout(let last): return "no answer before the deadline (last error: \(last))"
    }
  }
}

/// A client session with a KV store: Get, Put, Append and Delete over a `GroupClient`
/// (retries with backoff across a group's members, one sequence number per write across all
/// its retries and redirects, operations one at a time in call order). It keeps to the member
/// named in each answer (`served_by`: the leader for a write) and follows a wrong-leader
/// answer's `leader_api`, so after one request through a follower it talks to the leader.
///
/// Against a standalone group every member serves every key. Against a sharded cluster the
/// clerk routes each key by the latest configuration it knows (`ShardRouting`), and a group
/// that does not own the key answers WRONG_GROUP with the owner it knows and the controller's
/// addresses: the clerk follows, re-reading the configuration from the controller when the
/// hint leads back where it came from. Sequence numbers are per client across groups, so the
/// sessions that travel with a shard keep a retry exactly-once after the shard moved.
public struct KVClerk: Sendable {
  private let session: GroupClient
  private let routing: ShardRouting

  public var clientID: UInt64 { session.clientID }

  /// - Parameters:
  ///   - servers: API addresses to start from: a group's members, or any member of a sharded
  ///     cluster.
  ///   - controllers: the shard controller's API addresses, if known (else learned from
  ///     WRONG_GROUP replies).
  ///   - deadline: how long one operation may take, retries included.
  public init(
    servers: [String], transport: any Transport, deadline: Duration = .seconds(10),
    callTimeout: Duration = .seconds(3), clientID: UInt64 = UInt64.random(in: 1 ... .max),
    controllers: [String] = []
  ) {
    session = GroupClient(
      servers: servers, transport: transport, deadline: deadline, callTimeout: callTimeout, clientID: clientID
    )
    routing = ShardRouting(controllers: controllers, transport: transport)
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
    let routing = self.routing
    // A clerk given the controller's addresses routes by its configuration from the start.
    if await routing.needsFirstRefresh { await routing.refresh() }
    return try await session.perform(
      method: KVMethod.request, isWrite: op != .get, route: await routing.servers(for: key),
      reroute: {
        await routing.refresh()
        return await routing.servers(for: key)
      },
      encode: { sequence, attempt in
        var request = Shardkv_KvRequest()
        request.op = op
        request.key = Data(key)
        request.value = Data(value)
        request.clientID = clientID
        request.sequence = sequence
        // How long this attempt waits: a router retries inside the cluster for about this
        // long, and a group member works on the request no longer.
        let (seconds, attoseconds) = attempt.components
        request.timeoutMs = UInt32(clamping: max(1, seconds * 1000 + attoseconds / 1_000_000_000_000_000))
        do {
          return .success(try request.serializedBytes())
        } catch {
          return .failure(.invalidArgument("cannot encode the request: \(error)"))
        }
      },
      interpret: { bytes, servers in await Self.verdict(bytes, from: servers, key: key, routing: routing) },
      giveUp: { .timeout(lastError: $0) },
      notServed: { .invalidArgument("\($0): is it a shard controller rather than a KV group member?") }
    ).get()
  }

  static func verdict(
    _ bytes: [UInt8], from servers: [String], key: [UInt8], routing: ShardRouting
  ) async -> ReplyVerdict<Shardkv_KvReply, KVClientError> {
    guard let reply = try? Shardkv_KvReply(serializedBytes: bytes) else {
      return .tryNextMember("undecodable reply")
    }
    let why = reply.message.isEmpty ? "\(reply.error)" : reply.message
    switch reply.error {
    case .ok, .noKey: return .done(reply, leader: reply.servedBy.isEmpty ? nil : reply.servedBy)
    case .invalidArgument: return .refused(.invalidArgument(reply.message))
    case .wrongLeader:
      return .tryNextMember(
        "not the leader (\(why))", leader: reply.leaderApi.isEmpty ? nil : reply.leaderApi)
    // Cut off from the quorum, or a stale leader: another member may get it through.
    case .timeout: return .tryNextMember(why)
    case .shardNotReady: return .retryLater(why)
    case .wrongGroup:
      await routing.learn(controllers: reply.controllers)
      var owner = reply.ownerServers
      let known = await routing.configuration != nil
      if owner.isEmpty || owner == servers || !known {
        // The hint is stale (it leads back here) or missing: ask the controller.
        await routing.refresh()
        if let routed = await routing.servers(for: key) { owner = routed }
      }
      guard !owner.isEmpty else { return .retryLater(why) }
      // The controller agrees this group owns the shard: this member has not applied the
      // configuration yet (it may be cut off from its leader); another member may have.
      guard owner != servers else { return .tryNextMember(why) }
      return .redirect(servers: owner, why)
    case .UNRECOGNIZED: return .retryLater(why)
    }
  }
}
