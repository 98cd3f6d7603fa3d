import Foundation
import Logging
import Raft
import ShardCtrler
import ShardKV
import SwiftProtobuf
import Wire

/// A router's API address: the same client methods a group member serves (`kv.request`,
/// `kv.locate`), the controller's (`ctrler.request`), `node.status` (answering "router", so
/// that kvctl asks `router.status` for the router's view), and JOIN_CLUSTER.
///
/// Stateless: everything it knows (the configuration, the leaders) is a cache that a restart
/// rebuilds from the controller and from replies.
public struct RouterServer: Sendable {
  public var router: RequestRouter
  public let apiAddress: String
  let transport: any Transport
  /// How long JOIN_CLUSTER may take (the new node is caught up before it is promoted).
  public var joinTimeout: Duration = .seconds(60)

  public init(apiAddress: String, controllers: [String], transport: any Transport) {
    self.apiAddress = apiAddress
    self.transport = transport
    router = RequestRouter(controllers: controllers, transport: transport)
  }

  public func registerMethods(in handlers: inout RPCHandlers) {
    let server = self
    handlers.register(KVMethod.request) { await server.router.forwardKV($0) }
    handlers.register(KVMethod.locate) { try await server.locate($0) }
    handlers.register(ControllerMethod.request) { await server.router.forwardController($0) }
    handlers.register(NodeMethod.status) { _ in try server.nodeStatus() }
    handlers.register(RouterMethod.status) { _ in try await server.status().serializedBytes() }
    handlers.register(RouterMethod.joinCluster) { try await server.joinCluster($0).serializedBytes() }
  }

  /// Keeps the configuration fresh: reads it from the controller every `interval` until the
  /// task is cancelled (WRONG_GROUP replies also refresh it at once).
  public func watchConfiguration(every interval: Duration = .milliseconds(500)) -> Task<Void, Never> {
    let routing = router.routing
    return Task {
      while !Task.isCancelled {
        await routing.refresh()
        try? await Task.sleep(for: interval)
      }
    }
  }

  // MARK: - Handlers

  func locate(_ payload: [UInt8]) async throws -> [UInt8] {
    var reply = Shardkv_LocateReply()
    guard let request = try? Shardkv_LocateRequest(serializedBytes: payload) else {
      reply.error = .invalidArgument
      reply.message = "malformed request"
      return try reply.serializedBytes()
    }
    if let problem = KVLimits().violation(key: [UInt8](request.key), value: []) {
      reply.error = .invalidArgument
      reply.message = problem
      return try reply.serializedBytes()
    }
    if await router.routing.configuration == nil { await router.routing.refresh() }
    guard let configuration = await router.routing.configuration,
      let owner = await router.routing.owner(of: [UInt8](request.key))
    else {
      reply.error = .timeout
      reply.message = "no configuration from the controller"
      return try reply.serializedBytes()
    }
    reply.shard = UInt32(owner.shard)
    reply.group = owner.group
    reply.configNum = configuration.num
    reply.shardCount = UInt32(configuration.shardCount)
    return try reply.serializedBytes()
  }

  func nodeStatus() throws -> [UInt8] {
    var reply = Shardkv_StatusReply()
    reply.node = apiAddress
    reply.service = "router"
    return try reply.serializedBytes()
  }

  /// The router's view: configuration, each group's members, the member it sends to first,
  /// and the addresses whose last call failed.
  public func status() async -> Shardkv_Router_RouterStatusReply {
    var reply = Shardkv_Router_RouterStatusReply()
    reply.api = apiAddress
    let controllers = await router.routing.controllerAddresses
    reply.controllers = controllers
    let down = router.leaders.unreachable(0)
    reply.unreachableControllers = controllers.filter(down.contains)
    guard let configuration = await router.routing.configuration else { return reply }
    reply.configNum = configuration.num
    reply.shardCount = UInt32(configuration.shardCount)
    let owned = configuration.shardsByGroup
    for gid in configuration.groups.keys.sorted() {
      var group = Shardkv_Router_RouterGroupStatus()
      group.group = gid
      group.members = configuration.groups[gid] ?? []
      group.leader = router.leaders.preferred(gid) ?? ""
      let failed = router.leaders.unreachable(gid)
      group.unreachable = group.members.filter(failed.contains)
      group.shards = (owned[gid] ?? []).map { UInt32($0) }
      reply.groups.append(group)
    }
    return reply
  }

  /// JOIN_CLUSTER: picks the group (the one asked for, or the one with the fewest members,
  /// ties to the lowest id) and, unless only asked which, forwards the request to that group's
  /// members, whose leader adds the node and records the new member list in the controller.
  func joinCluster(_ payload: [UInt8]) async throws -> Shardkv_Router_JoinClusterReply {
    var reply = Shardkv_Router_JoinClusterReply()
    reply.controllers = await router.routing.controllerAddresses
    guard var request = try? Shardkv_Router_JoinClusterRequest(serializedBytes: payload),
      KVGroupServer.isAddress(request.peer), KVGroupServer.isAddress(request.api)
    else {
      reply.error = .invalidArgument
      reply.message =
        "JOIN_CLUSTER needs the node's peer and API addresses (HOST:PORT, each at most 255 bytes)"
      return reply
    }
    let refreshed = await router.routing.refresh()
    let known = await router.routing.configuration
    guard let configuration = refreshed ?? known else {
      reply.error = .unavailable
      reply.message = "no configuration from the controller"
      return reply
    }
    if request.group == 0 {
      let smallest = configuration.groups.min { lhs, rhs in
        lhs.value.count != rhs.value.count ? lhs.value.count < rhs.value.count : lhs.key < rhs.key
      }
      guard let smallest else {
        reply.error = .invalidArgument
        reply.message = "the cluster has no groups yet: register one with `kvctl group join`"
        return reply
      }
      request.group = smallest.key
    }
    guard let members = configuration.groups[request.group] else {
      reply.error = .invalidArgument
      reply.message = "group \(request.group) is not in configuration \(configuration.num)"
      return reply
    }
    reply.group = request.group
    reply.members = members
    if request.pickOnly { return reply }
    let bytes: [UInt8] = try request.serializedBytes()
    let clock = ContinuousClock()
    let end = clock.now + joinTimeout
    var lastError = "no attempt"
    var attempt = 0
    while clock.now < end {
      let order = router.leaders.order(request.group, members)
      let target = order[attempt % order.count]
      do {
        let answer = try await transport.call(
          target, method: KVMethod.joinCluster, payload: bytes, timeout: end - clock.now)
        let joined = try Shardkv_Router_JoinClusterReply(serializedBytes: answer)
        if joined.error != Shardkv_Router_JoinClusterError.unavailable {
          await router.routing.refresh()
          return joined
        }
        lastError = "\(target): \(joined.message)"
      } catch {
        lastError = "\(target): \(error)"
      }
      attempt += 1
      try? await Task.sleep(for: .milliseconds(200))
    }
    reply.error = .unavailable
    reply.message = "group \(request.group) did not add the node in time: \(lastError)"
    return reply
  }
}
