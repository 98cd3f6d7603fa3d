import CoreMetrics
import Foundation
import Raft
import ShardCtrler
import SwiftProtobuf
import Wire

/// RPC method names of a KV group member (the node commands are `NodeMethod`'s). Client-facing
/// methods are served on the API address; `forwarded*` ones on the peer address, where a
/// follower hands a request to its leader (and they are never forwarded again, so a stale hint
/// cannot make a loop).
public enum KVMethod {
  public static let request = "kv.request"
  public static let directGet = "node.direct_get"
  public static let locate = "kv.locate"
  public static let shards = "kv.shards"

  public static let forwardedRequest = "forwarded.kv.request"

  /// JOIN_CLUSTER (a router asks any member; a follower forwards it to its leader).
  public static let joinCluster = "cluster.join"
  public static let forwardedJoinCluster = "forwarded.cluster.join"

  /// Between groups (API address): a page of a handed-off shard, and whether a shard was
  /// installed by its new owner.
  public static let pullShard = "shard.pull"
  public static let shardInstalled = "shard.installed"
}

/// Serves one group member: client operations (writes through the Raft log, reads through
/// ReadIndex), `direct_get`, `locate`, `shards`, the node commands every replica serves,
/// forwarding to the leader, and the shard pages other groups pull.
public struct KVGroupServer: Sendable {
  public let node: RaftNode
  public let stateMachine: KVStateMachine
  /// Reaches other members at their peer addresses, to forward to the leader.
  public let peers: any Transport
  /// Reaches API addresses (the controller's replicas). Differs from `peers` when the peer and
  /// API addresses use different TLS settings.
  public let api: any Transport
  public var requestTimeout: Duration = .seconds(5)
  /// `leader`, `dropped`, `status`, `join` and `remove`.
  public var nodeCommands: NodeCommandService
  /// The controller's view, for `locate`.
  let routing: ShardRouting

  /// `api` defaults to `peers` (one transport reaching both kinds of address).
  public init(node: RaftNode, stateMachine: KVStateMachine, peers: any Transport, api: (any Transport)? = nil)
  {
    self.node = node
    self.stateMachine = stateMachine
    self.peers = peers
    self.api = api ?? peers
    nodeCommands = NodeCommandService(
      node: node, peers: peers, service: "kv", apiAddress: stateMachine.options.apiAddress,
      addressBook: stateMachine)
    nodeCommands.groupID = stateMachine.options.group
    routing = ShardRouting(controllers: stateMachine.options.controllers, transport: self.api)
  }

  /// The methods of the API address.
  public func registerClientMethods(in handlers: inout RPCHandlers) {
    let server = self
    handlers.register(KVMethod.request) { try await server.handleRequest($0, forwarded: false) }
    handlers.register(KVMethod.directGet) { try server.directGet($0) }
    handlers.register(KVMethod.locate) { try await server.locate($0) }
    handlers.register(KVMethod.shards) { _ in try server.stateMachine.shardsReport().serializedBytes() }
    handlers.register(KVMethod.pullShard) { try server.pullShard($0) }
    handlers.register(KVMethod.shardInstalled) { try server.shardInstalled($0) }
    handlers.register(KVMethod.joinCluster) { try await server.joinCluster($0, forwarded: false) }
    nodeCommands.registerClientMethods(in: &handlers)
  }

  /// The methods of the peer address that take requests forwarded by followers.
  public func registerForwardedMethods(in handlers: inout RPCHandlers) {
    let server = self
    handlers.register(KVMethod.forwardedRequest) { try await server.handleRequest($0, forwarded: true) }
    handlers.register(KVMethod.forwardedJoinCluster) { try await server.joinCluster($0, forwarded: true) }
    nodeCommands.registerForwardedMethods(in: &handlers)
  }

  // MARK: - Client operations

  /// A deliberately broken read path that exists only to prove the nemesis can fail
  /// (RELIABILITY.md): with `SHARDKV_UNSAFE_STALE_READS=1` in its environment a member answers
  /// Get from its own state without ReadIndex, so a follower, or a deposed leader that has
  /// not heard of its successor, serves stale values. Never set it outside that test.
  static let unsafeStaleReads = ProcessInfo.processInfo.environment["SHARDKV_UNSAFE_STALE_READS"] == "1"

  func handleRequest(_ payload: [UInt8], forwarded: Bool) async throws -> [UInt8] {
    let started = ContinuousClock.now
    let reply = try await execute(payload, forwarded: forwarded)
    if !forwarded { KVMetrics.record(request: payload, reply: reply, since: started) }
    return reply
  }

  private func execute(_ payload: [UInt8], forwarded: Bool) async throws -> [UInt8] {
    guard let request = try? Shardkv_KvRequest(serializedBytes: payload) else {
      return try KVStateMachine.reply(.invalidArgument, "malformed request").serializedBytes()
    }
    let key = [UInt8](request.key)
    let limits = stateMachine.options.limits
    let value: [UInt8] = request.op == .get || request.op == .delete ? [] : [UInt8](request.value)
    if let problem = limits.violation(key: key, value: value) {
      return try KVStateMachine.reply(.invalidArgument, problem).serializedBytes()
    }
    // A cheap early answer for a misrouted request; `apply` decides for the ones that pass.
    if let refusal = stateMachine.refusal(for: key) { return try refusal.serializedBytes() }
    let timeout = Self.timeout(for: request, default: requestTimeout)
    do {
      switch request.op {
      case .get:
        if !Self.unsafeStaleReads { try await node.linearizableRead(timeout: timeout) }
        return try stateMachine.read(key).serializedBytes()
      case .put, .append, .delete:
        var command = Shardkv_Group_Command()
        command.request = request
        command.stampMs = UInt64(max(0, Date().timeIntervalSince1970 * 1000))
        return try await node.propose(try command.serializedBytes(), timeout: timeout)
      default:
        return try KVStateMachine.reply(.invalidArgument, "unknown operation \(request.op.rawValue)")
          .serializedBytes()
      }
    } catch RaftNodeError.notLeader(let leader?) where !forwarded {
      return try await forward(payload, method: KVMethod.forwardedRequest, to: leader, timeout: timeout)
    } catch let error as RaftNodeError {
      var reply = Self.reply(for: error)
      if case .notLeader(let leader) = error { reply.leaderApi = nodeCommands.apiHint(for: leader) }
      return try reply.serializedBytes()
    }
  }

  /// How long to work on `request`: until just before its sender stops waiting (`timeout_ms`,
  /// less a fifth or at least 50 ms, so the TIMEOUT answer reaches it and it can try another
  /// member), and never longer than `default`. A request whose sender has given up is not
  /// worth a proposal's wait.
  static func timeout(for request: Shardkv_KvRequest, default limit: Duration) -> Duration {
    guard request.timeoutMs > 0 else { return limit }
    let waits = Duration.milliseconds(Int64(request.timeoutMs))
    return min(limit, max(waits - max(waits / 5, .milliseconds(50)), .milliseconds(1)))
  }

  private func forward(
    _ payload: [UInt8], method: String, to leader: NodeID, timeout: Duration
  ) async throws -> [UInt8] {
    if let answer = await nodeCommands.forward(payload, method: method, to: leader, timeout: timeout) {
      return answer
    }
    var reply = KVStateMachine.reply(.wrongLeader, "could not reach the leader \(leader)")
    reply.leaderHint = leader.rawValue
    reply.leaderApi = nodeCommands.apiHint(for: leader)
    return try reply.serializedBytes()
  }

  static func reply(for error: RaftNodeError) -> Shardkv_KvReply {
    let outcome = NodeCommandService.outcome(of: error)
    let code: Shardkv_KvError =
      switch outcome.error {
      case .ok: .ok
      case .wrongLeader: .wrongLeader
      case .timeout: .timeout
      case .invalidArgument, .UNRECOGNIZED: .invalidArgument
      }
    var reply = KVStateMachine.reply(code, outcome.message)
    reply.leaderHint = outcome.leaderHint
    return reply
  }

  // MARK: - Diagnostics

  func directGet(_ payload: [UInt8]) throws -> [UInt8] {
    var reply = Shardkv_DirectGetReply()
    guard let request = try? Shardkv_DirectGetRequest(serializedBytes: payload), !request.key.isEmpty else {
      reply.error = .invalidArgument
      return try reply.serializedBytes()
    }
    if let value = try stateMachine.localValue(for: [UInt8](request.key)) {
      reply.error = .ok
      reply.value = Data(value)
    } else {
      reply.error = .noKey
    }
    reply.appliedIndex = stateMachine.appliedIndex
    return try reply.serializedBytes()
  }

  /// The key's shard and its owner in this node's latest configuration.
  /// Answered from the controller's latest configuration (this member's own may lag behind it
  /// by a poll), or from this member's when the controller does not answer.
  func locate(_ payload: [UInt8]) async throws -> [UInt8] {
    var reply = Shardkv_LocateReply()
    guard let request = try? Shardkv_LocateRequest(serializedBytes: payload) else {
      reply.error = .invalidArgument
      reply.message = "malformed request"
      return try reply.serializedBytes()
    }
    let key = [UInt8](request.key)
    if let problem = stateMachine.options.limits.violation(key: key, value: []) {
      reply.error = .invalidArgument
      reply.message = problem
      return try reply.serializedBytes()
    }
    let table = stateMachine.shardTable
    if !table.isStandalone, let latest = await routing.refresh(), latest.num >= table.config.num,
      let owner = await routing.owner(of: key)
    {
      reply.shard = UInt32(owner.shard)
      reply.group = owner.group
      reply.configNum = latest.num
      reply.shardCount = UInt32(latest.shardCount)
      return try reply.serializedBytes()
    }
    guard let map = table.shardMap else {
      reply.error = .wrongGroup
      reply.message = "group \(table.group) has no configuration yet"
      return try reply.serializedBytes()
    }
    let shard = map.shard(of: key)
    reply.shard = UInt32(shard)
    reply.group = table.isStandalone ? 0 : table.config.shards[shard]
    reply.configNum = table.config.num
    reply.shardCount = UInt32(map.shardCount)
    return try reply.serializedBytes()
  }

  // MARK: - Between groups

  func pullShard(_ payload: [UInt8]) throws -> [UInt8] {
    guard let request = try? Shardkv_Group_PullShardRequest(serializedBytes: payload) else {
      var reply = Shardkv_Group_PullShardReply()
      reply.error = .invalidArgument
      reply.message = "malformed request"
      return try reply.serializedBytes()
    }
    let maxBytes = Int(clamping: min(max(request.maxBytes, 1), UInt64(ShardMigration.maxPageBytes)))
    return try stateMachine.page(
      of: Int(request.shard), handedOffIn: request.configNum,
      after: request.fromStart ? nil : [UInt8](request.resumeAfter), maxBytes: maxBytes
    ).serializedBytes()
  }

  func shardInstalled(_ payload: [UInt8]) throws -> [UInt8] {
    var reply = Shardkv_Group_ShardInstalledReply()
    let table = stateMachine.shardTable
    reply.configNum = table.config.num
    if let request = try? Shardkv_Group_ShardInstalledRequest(serializedBytes: payload) {
      reply.installed = table.hasInstalled(shard: Int(request.shard), gainedIn: request.configNum)
    }
    return try reply.serializedBytes()
  }

  // MARK: - JOIN_CLUSTER

  /// Adds the node named in the request to this group (as a learner, promoted once caught up)
  /// and records the group's new member list in the controller (`UpdateMembers`). Asking again
  /// for a member succeeds. Only the leader changes the membership; a follower forwards.
  func joinCluster(_ payload: [UInt8], forwarded: Bool) async throws -> [UInt8] {
    var reply = Shardkv_Router_JoinClusterReply()
    let options = stateMachine.options
    reply.controllers = options.controllers
    reply.group = options.group
    guard let request = try? Shardkv_Router_JoinClusterRequest(serializedBytes: payload),
      Self.isAddress(request.peer), Self.isAddress(request.api)
    else {
      reply.error = .invalidArgument
      reply.message =
        "JOIN_CLUSTER needs the node's peer and API addresses (HOST:PORT, each at most 255 bytes)"
      return try reply.serializedBytes()
    }
    guard options.group != 0, request.group == options.group else {
      reply.error = .invalidArgument
      reply.message =
        options.group == 0
        ? "this node is a standalone store; join it with `kvctl join`"
        : "this node is a member of group \(options.group), not of group \(request.group)"
      return try reply.serializedBytes()
    }
    do {
      try await node.addMember(NodeID(request.peer), timeout: nodeCommands.membershipTimeout)
    } catch .notLeader(let leader?) where !forwarded {
      if let answer = await nodeCommands.forward(payload, method: KVMethod.forwardedJoinCluster, to: leader) {
        return answer
      }
      reply.error = .unavailable
      reply.message = "could not reach the group's leader \(leader)"
      return try reply.serializedBytes()
    } catch {
      reply.error = .unavailable
      reply.message = "adding \(request.peer) to group \(options.group): \(error)"
      return try reply.serializedBytes()
    }
    // Record the member list as the controller has it now, plus the new node.
    let controller = ControllerClerk(servers: options.controllers, transport: api, deadline: .seconds(10))
    do {
      var members = try await controller.query().groups[options.group] ?? []
      if !members.contains(request.api) { members.append(request.api) }
      try await controller.updateMembers(of: options.group, to: members)
      reply.members = members
    } catch {
      reply.error = .unavailable
      reply.message =
        "\(request.peer) joined group \(options.group), but the controller did not record it: \(error)"
      return try reply.serializedBytes()
    }
    return try reply.serializedBytes()
  }

  /// Whether `text` can name a node: `HOST:PORT` (or a name of the in-memory test network),
  /// without spaces, at most 255 bytes.
  public static func isAddress(_ text: String) -> Bool {
    !text.isEmpty && text.utf8.count <= 255 && text.contains(":") && !text.contains(where: \.isWhitespace)
  }
}

/// Client operations as a member counts them: by kind and result, and their latency.
enum KVMetrics {
  static func record(request: [UInt8], reply: [UInt8], since started: ContinuousClock.Instant) {
    let op = (try? Shardkv_KvRequest(serializedBytes: request)).map { name($0.op) } ?? "malformed"
    let result = (try? Shardkv_KvReply(serializedBytes: reply)).map { name($0.error) } ?? "malformed"
    Counter(label: "shardkv_kv_requests_total", dimensions: [("op", op), ("result", result)]).increment()
    Timer(label: "shardkv_kv_request_seconds", dimensions: [("op", op)]).record(since: started)
  }

  static func name(_ op: Shardkv_KvOp) -> String {
    switch op {
    case .get: "get"
    case .put: "put"
    case .append: "append"
    case .delete: "delete"
    case .unspecified, .UNRECOGNIZED: "unknown"
    }
  }

  static func name(_ error: Shardkv_KvError) -> String {
    switch error {
    case .ok: "ok"
    case .noKey: "no_key"
    case .wrongLeader: "wrong_leader"
    case .wrongGroup: "wrong_group"
    case .shardNotReady: "shard_not_ready"
    case .timeout: "timeout"
    case .invalidArgument: "invalid_argument"
    case .UNRECOGNIZED: "unknown"
    }
  }
}
