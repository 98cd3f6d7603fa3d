import Foundation
import Linearizability
import Raft
import Router
import ShardCtrler
import Wire
import XCTest

@testable import ShardKV

/// Routers in front of a controller and several groups, in one process on the in-memory
/// network: clients that talk only to routers see a linearizable store across joins, leaves,
/// moves and leader kills; routers with stale configurations stay correct; admin commands
/// and JOIN_CLUSTER go through a router.
final class RouterClusterTests: XCTestCase {
  private func makeCluster(
    seed: UInt64, routers: [Int: Bool] = [0: true, 1: true]
  ) async throws
    -> ShardedTestCluster
  {
    let cluster = ShardedTestCluster(seed: seed)
    try await cluster.startControllers()
    for gid in GroupID(1)...3 { try await cluster.startGroup(gid) }
    for (i, watch) in routers.sorted(by: { $0.key < $1.key }) {
      try await cluster.startRouter(i, watch: watch)
    }
    return cluster
  }

  /// Crashes the current leader of `gid` and restarts it a moment later.
  private func killLeader(of gid: GroupID, in cluster: ShardedTestCluster) async throws {
    for (i, member) in cluster.members[gid] ?? [:] where await member.node.isLeader {
      await cluster.crash(gid, i)
      try await Task.sleep(for: .milliseconds(150))
      try await cluster.start(gid, i)
      return
    }
  }

  func testClientsThroughRoutersAreLinearizableAcrossMovesAndLeaderKills() async throws {
    let seed: UInt64 = 41
    let cluster = try await makeCluster(seed: seed)
    addTeardownBlock { await cluster.shutdown() }
    // Admin goes through a router too.
    let admin = ControllerClerk(
      servers: [cluster.routerAPI(0), cluster.routerAPI(1)],
      transport: cluster.network.transport(for: "admin"),
      deadline: .seconds(20))
    try await admin.join([1: cluster.apis(1)])
    let history = History()
    let stop = StopFlag()
    let workers = Task {
      await withTaskGroup(of: Void.self) { group in
        for c in 0..<4 {
          let clerk = cluster.routerClerk(c % 2 == 0 ? [0, 1] : [1, 0])
          group.addTask {
            var random = SeededGenerator(seed: seed &+ UInt64(c))
            var n = 0
            while !stop.isSet {
              n += 1
              let key = "k\(Int.random(in: 0..<5, using: &random))"
              let kind: LinearizabilityChecker.Kind =
                switch Int.random(in: 0..<100, using: &random) {
                case 0..<40: .append
                case 40..<50: .put
                case 50..<55: .delete
                default: .get
                }
              await history.run(clerk, client: c, kind, key, "c\(c).\(n);")
            }
          }
        }
      }
    }
    try await Task.sleep(for: .milliseconds(300))
    try await admin.join([2: cluster.apis(2)])
    try await killLeader(of: 1, in: cluster)
    try await admin.join([3: cluster.apis(3)])
    try await Task.sleep(for: .milliseconds(300))
    let shard = try await admin.query().shards.firstIndex(of: 3) ?? 0
    try await admin.move(shard: shard, to: 2)
    try await killLeader(of: 2, in: cluster)
    try await admin.leave([1])
    try await Task.sleep(for: .milliseconds(500))
    stop.set()
    await workers.value
    XCTAssertGreaterThan(history.all.filter { $0.returned != nil }.count, 50, "seed \(seed)")
    XCTAssertTrue(
      history.all.allSatisfy { $0.returned != nil }, "through routers, no operation fails (seed \(seed))")
    history.assertLinearizable()
  }

  /// A router that reads the configuration only when a group tells it it is stale serves the
  /// right data after the shards have moved under it, as does a watching one.
  func testRoutersWithStaleConfigurationsStayCorrect() async throws {
    let cluster = try await makeCluster(seed: 42, routers: [0: false, 1: true])
    addTeardownBlock { await cluster.shutdown() }
    try await cluster.join([1])
    let stale = cluster.routerClerk([0])
    let fresh = cluster.routerClerk([1])
    for i in 0..<20 { try await stale.put(Array("key\(i)".utf8), Array("v\(i)".utf8)) }
    try await cluster.join([2, 3])
    try await cluster.leave([1])
    try await cluster.waitUntilSettled([2, 3])
    for i in 0..<20 {
      let key = Array("key\(i)".utf8)
      let viaStale = try await stale.get(key)
      let viaFresh = try await fresh.get(key)
      XCTAssertEqual(viaStale, Array("v\(i)".utf8))
      XCTAssertEqual(viaFresh, viaStale)
      try await stale.append(key, Array("+".utf8))
      let appended = try await fresh.get(key)
      XCTAssertEqual(appended, Array("v\(i)+".utf8))
    }
  }

  /// A router answers TIMEOUT just before the client's attempt ends, naming the shard and
  /// group that could not serve, instead of holding the request past it.
  func testUnavailableShardIsNamedBeforeTheClientsDeadline() async throws {
    let cluster = try await makeCluster(seed: 43, routers: [0: true])
    addTeardownBlock { await cluster.shutdown() }
    try await cluster.join([1])
    await cluster.shutdownGroup(1)
    // Attempts of 3 s: the router answers 0.6 s before each ends, a margin that survives a
    // loaded machine.
    let clerk = cluster.routerClerk([0], deadline: .seconds(7), callTimeout: .seconds(3))
    let started = ContinuousClock.now
    do {
      try await clerk.put(Array("k".utf8), Array("v".utf8))
      XCTFail("group 1 is down")
    } catch {
      XCTAssertTrue(error.description.contains("group 1"), "\(error)")
      XCTAssertTrue(error.description.contains("shard"), "\(error)")
    }
    XCTAssertLessThan(ContinuousClock.now - started, .seconds(12))
  }

  /// JOIN_CLUSTER: a standby asks a router; the router picks the smallest group (or the one
  /// named), the group's leader adds the node, and the controller lists it; asking again
  /// succeeds without change.
  func testJoinClusterThroughARouter() async throws {
    let cluster = ShardedTestCluster(groupSize: 1, seed: 44)
    try await cluster.startControllers()
    try await cluster.startGroup(1)
    try await cluster.startGroup(2)
    try await cluster.startRouter(0)
    addTeardownBlock { await cluster.shutdown() }
    try await cluster.join([1])
    try await cluster.join([2])
    let clerk = cluster.routerClerk([0])
    for i in 0..<10 { try await clerk.put(Array("key\(i)".utf8), Array("v\(i)".utf8)) }
    // A new member of group 1, started as a standby (index 1 of a group of one).
    try await cluster.start(1, 1, standby: true)
    let transport = cluster.network.transport(for: "joiner")
    func join(group: GroupID) async throws -> Shardkv_Router_JoinClusterReply {
      var request = Shardkv_Router_JoinClusterRequest()
      request.peer = cluster.peer(1, 1).rawValue
      request.api = cluster.api(1, 1)
      request.group = group
      let payload: [UInt8] = try request.serializedBytes()
      let bytes = try await transport.call(
        cluster.routerAPI(0), method: RouterMethod.joinCluster, payload: payload, timeout: .seconds(30))
      return try Shardkv_Router_JoinClusterReply(serializedBytes: bytes)
    }
    var reply = try await join(group: 1)
    XCTAssertEqual(reply.error, .ok, reply.message)
    XCTAssertEqual(reply.members, [cluster.api(1, 0), cluster.api(1, 1)])
    let recorded = try await cluster.latestConfiguration().groups[1]
    XCTAssertEqual(recorded, [cluster.api(1, 0), cluster.api(1, 1)])
    reply = try await join(group: 1)
    XCTAssertEqual(reply.error, .ok, "asking again succeeds: \(reply.message)")
    XCTAssertEqual(reply.members, [cluster.api(1, 0), cluster.api(1, 1)])
    // The new member holds the group's data and table.
    let newcomer = try XCTUnwrap(cluster.members[1]?[1]?.stateMachine)
    try await cluster.waitUntil("the new member caught up") {
      newcomer.shardTable == cluster.members[1]?[0]?.stateMachine.shardTable
    }
    // Without a group, the router picks the one with the fewest members: group 2.
    var pick = Shardkv_Router_JoinClusterRequest()
    pick.peer = "g2s1:peer"
    pick.api = "g2s1:api"
    pick.pickOnly = true
    let pickPayload: [UInt8] = try pick.serializedBytes()
    let picked = try Shardkv_Router_JoinClusterReply(
      serializedBytes: try await transport.call(
        cluster.routerAPI(0), method: RouterMethod.joinCluster, payload: pickPayload, timeout: .seconds(5)))
    XCTAssertEqual(picked.group, 2)
    XCTAssertEqual(picked.controllers, cluster.controllerAPIs)
  }
}
