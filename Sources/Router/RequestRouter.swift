import CoreMetrics
import Foundation
import Raft
import ShardCtrler
import ShardKV
import SwiftProtobuf
import Wire

/// RPC method names a router serves besides the client ones it shares with group members
/// (`kv.request`, `kv.locate`, `ctrler.request`, `node.status`).
public enum RouterMethod {
  public static let status = "router.status"
  /// JOIN_CLUSTER, from a new node to a router (the same method a router calls on a group
  /// member).
  public static let joinCluster = KVMethod.joinCluster
}

/// Forwards client operations to the leader of the group that owns each key's shard, and admin
/// operations to the controller's leader, retrying inside the cluster until the client's
/// deadline so that the client never sees a transient error.
///
/// The request's bytes go on unchanged, with the client's own session id and sequence number,
/// so every retry of a write (the router's or the client's) stays exactly-once: the group
/// that executes it remembers the reply, and the session travels with the shard if it moves.
public struct RequestRouter: Sendable {
  public let routing: ShardRouting
  public let leaders: LeaderCache
  let transport: any Transport
  /// How long a request may take when the client does not say.
  public var defaultTimeout: Duration = .seconds(5)
  /// The longest a client may ask a request to take: a larger `timeout_ms` is cut to this, so
  /// no request keeps the router retrying for days.
  public var maxTimeout: Duration = .seconds(60)
  /// One call to a group member or controller replica.
  public var callTimeout: Duration = .seconds(2)

  public init(controllers: [String], transport: any Transport) {
    routing = ShardRouting(controllers: controllers, transport: transport)
    leaders = LeaderCache()
    self.transport = transport
  }

  // MARK: - Key-value operations

  /// Routes one client request (its bytes as sent) and returns the reply's bytes.
  public func forwardKV(_ payload: [UInt8]) async -> [UInt8] {
    guard let request = try? Shardkv_KvRequest(serializedBytes: payload) else {
      return Self.encode(Self.reply(.invalidArgument, "malformed request"))
    }
    let asked = request.timeoutMs > 0 ? Duration.milliseconds(Int64(request.timeoutMs)) : defaultTimeout
    let timeout = min(asked, maxTimeout)
    return Self.encode(await route(request, payload: payload, timeout: timeout))
  }

  /// Routes `request` (sent as `payload`) until it is answered for good or `timeout` has
  /// nearly passed; then answers TIMEOUT with the last reason, which names the shard and its
  /// group when the shard was unavailable.
  public func route(
    _ request: Shardkv_KvRequest, payload: [UInt8], timeout: Duration
  ) async -> Shardkv_KvReply {
    Self.forwards.increment()
    let key = [UInt8](request.key)
    if key.isEmpty { return Self.reply(.invalidArgument, "the key is empty") }
    let clock = ContinuousClock()
    // Answer a little before the client gives up, so that it reads the reason.
    let end = clock.now + timeout - max(timeout / 5, .milliseconds(50))
    var lastError = "no attempt"
    var attempt = 0
    var hintsFollowed = 0
    var backoff = Duration.milliseconds(10)
    while clock.now < end {
      if await routing.configuration == nil { await routing.refresh() }
      guard let owner = await routing.owner(of: key) else {
        lastError = "no configuration from the controller yet"
        await pause(&backoff, until: end)
        continue
      }
      guard owner.group != 0, !owner.servers.isEmpty else {
        lastError = "shard \(owner.shard) is not assigned to any group"
        await routing.refresh()
        await pause(&backoff, until: end)
        continue
      }
      let order = leaders.order(owner.group, owner.servers)
      let target = order[attempt % order.count]
      let reply: Shardkv_KvReply
      do {
        let bytes = try await transport.call(
          target, method: KVMethod.request, payload: payload, timeout: min(callTimeout, end - clock.now))
        reply = try Shardkv_KvReply(serializedBytes: bytes)
      } catch {
        lastError = "shard \(owner.shard) (group \(owner.group)): \(target): \(error)"
        Self.retry("unreachable")
        leaders.demote(owner.group, target, unreachable: true)
        attempt += 1
        // Every member failed in turn: the group may have left; re-read the configuration.
        if attempt % order.count == 0 { await routing.refresh() }
        await pause(&backoff, until: end)
        continue
      }
      let why = reply.message.isEmpty ? "\(reply.error)" : reply.message
      switch reply.error {
      case .ok, .noKey, .invalidArgument:
        leaders.remember(owner.group, leader: reply.servedBy.isEmpty ? target : reply.servedBy)
        return reply
      case .wrongLeader, .timeout:
        Self.retry(reply.error == .timeout ? "timeout" : "wrong_leader")
        lastError = "shard \(owner.shard) (group \(owner.group)): \(target): \(why)"
        leaders.demote(owner.group, target, unreachable: false)
        if Self.follows(hint: reply.leaderApi, from: target, among: owner.servers, after: &hintsFollowed) {
          // One hop to the leader the member named: it is first in the order now.
          leaders.remember(owner.group, leader: reply.leaderApi)
          attempt = 0
          continue
        }
        attempt += 1
        if attempt % order.count != 0 { continue }
        await pause(&backoff, until: end)
      case .wrongGroup:
        Self.retry("wrong_group")
        lastError = "shard \(owner.shard): \(why)"
        let before = await routing.configuration?.num
        let after = await routing.refresh()?.num
        attempt = 0
        if after == before { await pause(&backoff, until: end) }
      case .shardNotReady, .UNRECOGNIZED:
        Self.retry("shard_not_ready")
        lastError = "shard \(owner.shard) (group \(owner.group)): \(why)"
        await pause(&backoff, until: end)
      }
    }
    var reply = Self.reply(.timeout, "the cluster did not complete the request in time: \(lastError)")
    reply.configNum = await routing.configuration?.num ?? 0
    return reply
  }

  private static let forwards = Counter(label: "shardkv_router_forwards_total")

  /// Whether to go straight to `hint`, a leader's API address a member named in its
  /// wrong-leader answer: only to a member of the group as the configuration lists it (the
  /// router trusts the configuration, not a reply), other than the one that answered, and at
  /// most `GroupClient.maxHintsFollowedAtOnce` times per request (members naming each other
  /// during an election cannot make a busy loop). Counts the hints it follows in `followed`.
  static func follows(
    hint: String, from target: String, among members: [String], after followed: inout Int
  ) -> Bool {
    guard !hint.isEmpty, hint != target, members.contains(hint),
      followed < GroupClient.maxHintsFollowedAtOnce
    else { return false }
    followed += 1
    return true
  }

  private static func retry(_ reason: String) {
    Counter(label: "shardkv_router_retries_total", dimensions: [("reason", reason)]).increment()
  }

  private func pause(_ backoff: inout Duration, until end: ContinuousClock.Instant) async {
    try? await Task.sleep(for: min(backoff, max(.zero, end - .now)))
    backoff = min(backoff * 2, .milliseconds(200))
  }

  // MARK: - Admin operations

  /// Forwards one controller request (its bytes as sent) to the controller's leader.
  public func forwardController(_ payload: [UInt8]) async -> [UInt8] {
    let clock = ContinuousClock()
    let end = clock.now + defaultTimeout - .milliseconds(100)
    let controllers = await routing.controllerAddresses
    guard !controllers.isEmpty else {
      return Self.encodeController(.invalidArgument, "this router knows no controller")
    }
    var lastError = "no attempt"
    var attempt = 0
    var hintsFollowed = 0
    var backoff = Duration.milliseconds(10)
    while clock.now < end {
      let order = leaders.order(0, controllers)
      let target = order[attempt % order.count]
      do {
        let bytes = try await transport.call(
          target, method: ControllerMethod.request, payload: payload,
          timeout: min(callTimeout, end - clock.now))
        let reply = try Shardkv_Ctrler_CtrlerReply(serializedBytes: bytes)
        switch reply.error {
        case .ok, .invalidArgument:
          // The replica that executed it (the leader, when a follower forwarded the request).
          leaders.remember(0, leader: controllers.contains(reply.servedBy) ? reply.servedBy : target)
          if reply.error == .ok, reply.hasConfig { await routing.refresh() }
          return bytes
        case .wrongLeader, .timeout, .UNRECOGNIZED:
          lastError = "\(target): \(reply.message.isEmpty ? "\(reply.error)" : reply.message)"
          leaders.demote(0, target, unreachable: false)
          if Self.follows(hint: reply.leaderApi, from: target, among: controllers, after: &hintsFollowed) {
            leaders.remember(0, leader: reply.leaderApi)
            attempt = 0
            continue
          }
        }
      } catch {
        lastError = "\(target): \(error)"
        leaders.demote(0, target, unreachable: true)
      }
      attempt += 1
      await pause(&backoff, until: end)
    }
    return Self.encodeController(.timeout, "the controller did not answer in time: \(lastError)")
  }

  // MARK: - Replies

  static func reply(_ error: Shardkv_KvError, _ message: String) -> Shardkv_KvReply {
    var reply = Shardkv_KvReply()
    reply.error = error
    reply.message = message
    return reply
  }

  static func encode(_ reply: Shardkv_KvReply) -> [UInt8] { (try? reply.serializedBytes()) ?? [] }

  static func encodeController(_ error: Shardkv_Ctrler_CtrlerError, _ message: String) -> [UInt8] {
    var reply = Shardkv_Ctrler_CtrlerReply()
    reply.error = error
    reply.message = message
    return (try? reply.serializedBytes()) ?? []
  }
}
