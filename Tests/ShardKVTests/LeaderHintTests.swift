import Foundation
import Raft
import Router
import ShardCtrler
import SwiftProtobuf
import Wire
import XCTest

@testable import ShardKV

/// Leader hints carry the leader's API address (from the group's replicated member directory),
/// so a client or router that first reaches a follower reaches the leader with exactly one
/// more request: for KV groups and the controller, after a leader change, and after the leader
/// restarts.
///
/// Every member's forwarding to its leader is severed (`severForwarding`): a follower then
/// answers WRONG_LEADER instead of passing the request on, and the only way to the leader in
/// one hop is the hint. Each client lists the followers before the leader, so a client that
/// ignored the hint and tried the next member in turn would make a request to the other
/// follower first (`RecordingTransport` counts the requests).
final class LeaderHintTests: XCTestCase {
  // MARK: - KV groups

  func testKVClerkReachesTheLeaderInOneHopFromAFollowerAlsoAfterALeaderChangeAndARestart() async throws {
    let cluster = KVTestCluster(size: 3, seed: 23)
    try await cluster.startAll()
    addTeardownBlock { await cluster.shutdown() }
    let leader = try await cluster.waitForLeader()
    try await cluster.waitUntilDirectoriesComplete()
    for i in 0..<cluster.size { cluster.severForwarding(i) }
    let (first, second) = ((leader + 1) % 3, (leader + 2) % 3)
    let transport = RecordingTransport(base: cluster.network.transport(for: "watched"))
    let clerk = KVClerk(servers: [first, second, leader].map(cluster.api), transport: transport)
    let requests = Requests(transport, method: KVMethod.request)

    try await clerk.put(Array("a".utf8), Array("1".utf8))
    XCTAssertEqual(requests.new(), [cluster.api(first), cluster.api(leader)], "a follower, then its hint")
    try await clerk.put(Array("b".utf8), Array("1".utf8))
    XCTAssertEqual(requests.new(), [cluster.api(leader)], "straight to the leader from then on")

    // Leadership moves to `second`; the client still goes to the old leader first. In turn it
    // would try `first` next (the list wraps around); the hint names `second`.
    try await lead(second, cluster.members.mapValues(\.node))
    try await clerk.put(Array("c".utf8), Array("1".utf8))
    XCTAssertEqual(requests.new(), [cluster.api(leader), cluster.api(second)], "after a leader change")
    try await clerk.put(Array("d".utf8), Array("1".utf8))
    XCTAssertEqual(requests.new(), [cluster.api(second)])

    // The leader restarts; `first` leads meanwhile (in turn the client would try the old
    // leader `leader` after `second`). The restarted member knows the leader's API address
    // from its own disk.
    await cluster.crash(second)
    _ = try await cluster.waitForLeader()
    try await lead(first, cluster.members.mapValues(\.node))
    try await cluster.restart(second)
    try await lead(first, cluster.members.mapValues(\.node))
    try await clerk.put(Array("e".utf8), Array("1".utf8))
    XCTAssertEqual(requests.new(), [cluster.api(second), cluster.api(first)], "after the leader restarted")
    try await clerk.put(Array("f".utf8), Array("1".utf8))
    XCTAssertEqual(requests.new(), [cluster.api(first)])
    let value = try await clerk.get(Array("e".utf8))
    XCTAssertEqual(value, Array("1".utf8))
  }

  /// A member records only members' addresses, and only well-formed ones, whatever the peer
  /// address is told.
  func testTheLeaderRecordsOnlyMembersAddresses() async throws {
    let cluster = KVTestCluster(size: 3, seed: 24)
    try await cluster.startAll()
    addTeardownBlock { await cluster.shutdown() }
    let leader = try await cluster.waitForLeader()
    try await cluster.waitUntilDirectoriesComplete()
    let transport = cluster.network.transport(for: "prober")
    for (peer, api) in [("stranger:peer", "stranger:api"), (cluster.peer(leader).rawValue, "not an address")]
    {
      var entry = Shardkv_MemberAddress()
      entry.peer = peer
      entry.api = api
      let bytes = try await transport.call(
        cluster.peer(leader).rawValue, method: NodeMethod.forwardedPublish,
        payload: try entry.serializedBytes(),
        timeout: .seconds(5))
      XCTAssertEqual(
        try Shardkv_PublishReply(serializedBytes: bytes).error, .invalidArgument, "\(peer) \(api)")
    }
    let directory = try XCTUnwrap(cluster.members[leader]?.stateMachine.memberDirectory)
    XCTAssertEqual(directory.all.map(\.peer), (0..<3).map { cluster.peer($0).rawValue })
    XCTAssertEqual(directory.apiAddress(of: cluster.peer(leader)), cluster.api(leader))
  }

  // MARK: - The controller

  func testControllerClerkReachesTheLeaderInOneHopAlsoAfterALeaderChangeAndARestart() async throws {
    let cluster = ShardedTestCluster(seed: 25)
    try await cluster.startControllers()
    addTeardownBlock { await cluster.shutdown() }
    let controllers = { cluster.controllers.mapValues(\.node) }
    let leader = try await agreedLeader(controllers())
    try await waitUntilControllerDirectoriesComplete(cluster)
    let (first, second) = ((leader + 1) % 3, (leader + 2) % 3)

    // Forwarding on: a follower passes a write on, and the answer names the leader.
    let forwarded = RecordingTransport(base: cluster.network.transport(for: "forwarded"))
    let viaFollower = ControllerClerk(
      servers: [first, second, leader].map(cluster.controllerAPI), transport: forwarded)
    let passedOn = Requests(forwarded, method: ControllerMethod.request)
    try await viaFollower.join([1: ["g1:api"]])
    XCTAssertEqual(passedOn.new(), [cluster.controllerAPI(first)])
    try await viaFollower.join([2: ["g2:api"]])
    XCTAssertEqual(passedOn.new(), [cluster.controllerAPI(leader)], "the answer named the leader (served_by)")

    // Forwarding severed: the follower's WRONG_LEADER names the leader's API address.
    for i in 0..<cluster.controllerSize { cluster.severForwarding("c\(i)") }
    let transport = RecordingTransport(base: cluster.network.transport(for: "watched"))
    let clerk = ControllerClerk(
      servers: [first, second, leader].map(cluster.controllerAPI), transport: transport)
    let requests = Requests(transport, method: ControllerMethod.request)
    try await clerk.join([3: ["g3:api"]])
    XCTAssertEqual(requests.new(), [cluster.controllerAPI(first), cluster.controllerAPI(leader)])
    let latest = try await clerk.query()
    XCTAssertEqual(latest.groups.keys.sorted(), [1, 2, 3])
    XCTAssertEqual(requests.new(), [cluster.controllerAPI(leader)], "straight to the leader from then on")

    try await lead(second, controllers())
    try await clerk.join([4: ["g4:api"]])
    XCTAssertEqual(
      requests.new(), [cluster.controllerAPI(leader), cluster.controllerAPI(second)], "after a leader change")

    await cluster.crashController(second)
    _ = try await agreedLeader(controllers())
    try await lead(first, controllers())
    try await cluster.startController(second)
    try await lead(first, controllers())
    try await clerk.join([5: ["g5:api"]])
    XCTAssertEqual(
      requests.new(), [cluster.controllerAPI(second), cluster.controllerAPI(first)],
      "after the leader restarted")
    try await clerk.join([6: ["g6:api"]])
    XCTAssertEqual(requests.new(), [cluster.controllerAPI(first)])
  }

  // MARK: - The router

  /// A router whose leader cache names a follower goes from that follower's WRONG_LEADER
  /// straight to the leader it names, and remembers it; the same for the controller.
  func testRouterLeaderCacheLearnsTheLeaderFromAHint() async throws {
    let cluster = ShardedTestCluster(seed: 26)
    try await cluster.startControllers()
    try await cluster.startGroup(1)
    addTeardownBlock { await cluster.shutdown() }
    try await cluster.join([1])
    try await cluster.waitUntilSettled([1])
    // Group 1 is led by member 0; the router is told member 2 leads. In configuration order the
    // router would try member 1 after member 2.
    let group = { (cluster.members[1] ?? [:]).mapValues(\.node) }
    try await lead(0, group())
    try await cluster.waitUntil("group 1's member directories complete") {
      (cluster.members[1] ?? [:]).values.allSatisfy { member in
        (0..<cluster.groupSize).allSatisfy {
          member.stateMachine.apiAddress(of: cluster.peer(1, $0)) == cluster.api(1, $0)
        }
      }
    }
    for i in 0..<cluster.groupSize { cluster.severForwarding(cluster.name(1, i)) }
    let transport = RecordingTransport(base: cluster.network.transport(for: "probe-router"))
    let router = RequestRouter(controllers: cluster.controllerAPIs, transport: transport)
    await router.routing.refresh()
    router.leaders.remember(1, leader: cluster.api(1, 2))
    let requests = Requests(transport, method: KVMethod.request)
    var request = Shardkv_KvRequest()
    request.op = .put
    request.key = Data("k".utf8)
    request.value = Data("v".utf8)
    request.clientID = 99
    request.sequence = 1
    var reply = await router.route(request, payload: try request.serializedBytes(), timeout: .seconds(5))
    XCTAssertEqual(reply.error, .ok, reply.message)
    XCTAssertEqual(requests.new(), [cluster.api(1, 2), cluster.api(1, 0)], "the follower, then its hint")
    XCTAssertEqual(router.leaders.preferred(1), cluster.api(1, 0))
    request.sequence = 2
    reply = await router.route(request, payload: try request.serializedBytes(), timeout: .seconds(5))
    XCTAssertEqual(reply.error, .ok, reply.message)
    XCTAssertEqual(requests.new(), [cluster.api(1, 0)])

    // The controller: led by replica 0, the router told replica 2.
    try await lead(0, cluster.controllers.mapValues(\.node))
    try await waitUntilControllerDirectoriesComplete(cluster)
    for i in 0..<cluster.controllerSize { cluster.severForwarding("c\(i)") }
    router.leaders.remember(0, leader: cluster.controllerAPI(2))
    // A write that moves nothing: group 1's member list, unchanged.
    var update = Shardkv_Ctrler_CtrlerRequest()
    update.clientID = 98
    update.sequence = 1
    update.updateMembers.gid = 1
    update.updateMembers.members = Shardkv_Ctrler_Members(cluster.apis(1))
    let admin = Requests(transport, method: ControllerMethod.request)
    let answer = try Shardkv_Ctrler_CtrlerReply(
      serializedBytes: await router.forwardController(try update.serializedBytes()))
    XCTAssertEqual(answer.error, .ok, answer.message)
    // (After its answer the router re-reads the configuration: a query, wherever its own
    // controller clerk goes.)
    XCTAssertEqual(Array(admin.new().prefix(2)), [cluster.controllerAPI(2), cluster.controllerAPI(0)])
    XCTAssertEqual(router.leaders.preferred(0), cluster.controllerAPI(0))
  }

  // MARK: - Helpers

  /// Waits until every running controller replica's member directory names every replica.
  private func waitUntilControllerDirectoriesComplete(_ cluster: ShardedTestCluster) async throws {
    try await cluster.waitUntil("every replica's API address in every controller directory") {
      cluster.controllers.values.allSatisfy { controller in
        cluster.controllers.keys.allSatisfy {
          controller.stateMachine.apiAddress(of: cluster.controllerPeer($0)) == cluster.controllerAPI($0)
        }
      }
    }
  }
}

/// The requests of one method a `RecordingTransport` saw since the last look.
private final class Requests: @unchecked Sendable {
  private let transport: RecordingTransport
  private let method: String
  private var seen: Int

  init(_ transport: RecordingTransport, method: String) {
    self.transport = transport
    self.method = method
    seen = transport.destinations(of: method).count
  }

  /// The addresses called since the last call of `new()` (or since creation).
  func new() -> [String] {
    let all = transport.destinations(of: method)
    defer { seen = all.count }
    return Array(all.dropFirst(seen))
  }
}

/// The member every running member of `nodes` agrees leads, once there is one.
private func agreedLeader(_ nodes: [Int: RaftNode], timeout: Duration = .seconds(10)) async throws -> Int {
  var found: Int?
  try await waitUntil(timeout: timeout, "a single agreed leader") {
    found = await currentLeader(nodes)
    return found != nil
  }
  return try XCTUnwrap(found)
}

private func currentLeader(_ nodes: [Int: RaftNode]) async -> Int? {
  var claimed: [Int] = []
  var views = Set<NodeID?>()
  for (i, node) in nodes {
    views.insert(await node.leader)
    if await node.isLeader { claimed.append(i) }
  }
  guard claimed.count == 1, let leader = nodes[claimed[0]], views == [leader.id] else { return nil }
  return claimed[0]
}

/// Moves leadership to `target` (transferring it from whoever leads) and waits until every
/// running member agrees.
private func lead(_ target: Int, _ nodes: [Int: RaftNode]) async throws {
  let node = try XCTUnwrap(nodes[target], "member \(target) is down")
  try await waitUntil(timeout: .seconds(15), "member \(target) leading") {
    let current = await currentLeader(nodes)
    if current == target { return true }
    if let current, let leader = nodes[current] { try? await leader.transferLeadership(to: node.id) }
    return false
  }
}
