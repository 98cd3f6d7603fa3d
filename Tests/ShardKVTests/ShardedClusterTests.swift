import Foundation
import Linearizability
import Raft
import ShardCtrler
import Synchronization
import Wire
import XCTest

@testable import ShardKV

/// In-process sharded clusters (a controller group and several KV groups on the in-memory
/// network), ported from the classic sharded-KV suite (6.824 lab 4B and its challenges).
/// Concurrent histories are checked by the linearizability checker.
final class ShardedClusterTests: XCTestCase {
  // MARK: - Helpers

  private func makeCluster(seed: UInt64 = 5, maxLogEntries: Int? = nil) async throws -> ShardedTestCluster {
    let cluster = ShardedTestCluster(seed: seed)
    cluster.maxLogEntries = maxLogEntries
    try await cluster.startControllers()
    for gid in GroupID(1)...3 { try await cluster.startGroup(gid) }
    return cluster
  }

  private func key(_ i: Int) -> [UInt8] { Array("key\(i)".utf8) }

  private func check(
    _ clerk: KVClerk, _ expected: [Int: String], file: StaticString = #filePath, line: UInt = #line
  ) async throws {
    for (i, value) in expected.sorted(by: { $0.key < $1.key }) {
      let got = try await clerk.get(key(i)).map { String(decoding: $0, as: UTF8.self) }
      XCTAssertEqual(got, value, "key\(i)", file: file, line: line)
    }
  }

  /// Appends a fresh suffix to every key, checking it first, as the lab's tests do after each
  /// configuration change.
  private func checkAndAppend(
    _ clerk: KVClerk, _ values: inout [Int: String], round: Int, file: StaticString = #filePath,
    line: UInt = #line
  ) async throws {
    for i in values.keys.sorted() {
      let got = try await clerk.get(key(i)).map { String(decoding: $0, as: UTF8.self) }
      XCTAssertEqual(got, values[i], "key\(i)", file: file, line: line)
      let suffix = "r\(round)k\(i);"
      try await clerk.append(key(i), Array(suffix.utf8))
      values[i, default: ""] += suffix
    }
  }

  private func shardOf(_ i: Int, _ cluster: ShardedTestCluster) -> Int {
    ShardMap(shardCount: cluster.shardCount).shard(of: key(i))
  }

  // MARK: - Static shards and rejection

  /// With one group down, exactly the keys of the other group's shards are served.
  func testStaticShards() async throws {
    let cluster = try await makeCluster()
    addTeardownBlock { await cluster.shutdown() }
    try await cluster.join([1])
    try await cluster.join([2])
    let clerk = cluster.clerk()
    var values: [Int: String] = [:]
    for i in 0..<20 {
      values[i] = "v\(i)"
      try await clerk.put(key(i), Array("v\(i)".utf8))
    }
    try await check(clerk, values)
    let config = try await cluster.latestConfiguration()
    XCTAssertEqual(Set(config.shards), [1, 2])

    await cluster.shutdownGroup(2)
    let served = await withTaskGroup(of: Int?.self) { group in
      for i in 0..<20 {
        let probe = cluster.clerk(deadline: .seconds(2))
        let probed = key(i)
        group.addTask { (try? await probe.get(probed)) != nil ? i : nil }
      }
      var served: Set<Int> = []
      for await i in group { if let i { served.insert(i) } }
      return served
    }
    let expected = Set((0..<20).filter { config.shards[shardOf($0, cluster)] == 1 })
    XCTAssertFalse(expected.isEmpty)
    XCTAssertEqual(served, expected, "exactly group 1's keys are served while group 2 is down")

    try await cluster.startGroup(2)
    try await check(clerk, values)
  }

  /// A member refuses keys of shards its group does not own (never answering an empty value),
  /// names the owner and the controllers, and stops serving a shard the moment it leaves.
  func testRejectionNamesTheOwner() async throws {
    let cluster = try await makeCluster()
    addTeardownBlock { await cluster.shutdown() }
    try await cluster.join([1, 2])
    let clerk = cluster.clerk()
    for i in 0..<20 { try await clerk.put(key(i), Array("v\(i)".utf8)) }
    let config = try await cluster.latestConfiguration()
    try await cluster.waitUntilSettled([1, 2])
    let transport = cluster.network.transport(for: "prober")
    for i in 0..<20 {
      let owner = config.shards[shardOf(i, cluster)]
      let other: GroupID = owner == 1 ? 2 : 1
      for op in [Shardkv_KvOp.get, .put] {
        var request = Shardkv_KvRequest()
        request.op = op
        request.key = Data(key(i))
        request.value = Data("x".utf8)
        request.clientID = 99
        request.sequence = UInt64(i + 1)
        let bytes = try await transport.call(
          cluster.api(other, 0), method: KVMethod.request, payload: try request.serializedBytes(),
          timeout: .seconds(2))
        let reply = try Shardkv_KvReply(serializedBytes: bytes)
        XCTAssertEqual(reply.error, .wrongGroup, "key\(i) \(op) at group \(other)")
        XCTAssertTrue(reply.value.isEmpty)
        XCTAssertEqual(reply.ownerGroup, owner)
        XCTAssertEqual(reply.ownerServers, cluster.apis(owner))
        XCTAssertEqual(reply.controllers, cluster.controllerAPIs)
      }
    }
    // Nothing was changed by the refused puts.
    for i in 0..<20 {
      let got = try await clerk.get(key(i)).map { String(decoding: $0, as: UTF8.self) }
      XCTAssertEqual(got, "v\(i)")
    }
  }

  /// A write retried after its shard moved is not executed again: the session travelled with
  /// the shard, and the old owner refuses it.
  func testRetryAfterTheShardMovedExecutesOnce() async throws {
    let cluster = try await makeCluster()
    addTeardownBlock { await cluster.shutdown() }
    try await cluster.join([1, 2])
    try await cluster.waitUntilSettled([1, 2])
    let transport = cluster.network.transport(for: "retrier")
    let config = try await cluster.latestConfiguration()
    let i = try XCTUnwrap((0..<50).first { config.shards[shardOf($0, cluster)] == 1 })
    func append(_ value: String, sequence: UInt64, at gid: GroupID) async throws -> Shardkv_KvReply {
      var request = Shardkv_KvRequest()
      request.op = .append
      request.key = Data(key(i))
      request.value = Data(value.utf8)
      request.clientID = 77
      request.sequence = sequence
      for member in cluster.apis(gid) {
        let bytes = try await transport.call(
          member, method: KVMethod.request, payload: try request.serializedBytes(), timeout: .seconds(2))
        let reply = try Shardkv_KvReply(serializedBytes: bytes)
        if reply.error != .wrongLeader && reply.error != .timeout { return reply }
      }
      throw RaftNodeError.timeout
    }
    var reply = try await append("a", sequence: 1, at: 1)
    XCTAssertEqual(reply.error, .ok)
    try await cluster.controllerClerk().move(shard: shardOf(i, cluster), to: 2)
    try await cluster.waitUntilSettled([1, 2])
    reply = try await append("a", sequence: 1, at: 1)
    XCTAssertEqual(reply.error, .wrongGroup, "the old owner refuses the retry")
    reply = try await append("a", sequence: 1, at: 2)
    XCTAssertEqual(reply.error, .ok, "the new owner answers the retry from the session")
    reply = try await append("b", sequence: 2, at: 2)
    XCTAssertEqual(reply.error, .ok)
    let value = try await cluster.clerk().get(key(i))
    XCTAssertEqual(value.map { String(decoding: $0, as: UTF8.self) }, "ab")
  }

  // MARK: - Joins and leaves

  /// Data follows its shards through joins and leaves; after a group leaves and is shut down,
  /// everything is readable from the others.
  func testJoinAndLeave() async throws {
    let cluster = try await makeCluster()
    addTeardownBlock { await cluster.shutdown() }
    try await cluster.join([1])
    let clerk = cluster.clerk()
    var values: [Int: String] = [:]
    for i in 0..<20 {
      values[i] = "v\(i);"
      try await clerk.put(key(i), Array("v\(i);".utf8))
    }
    try await check(clerk, values)
    try await cluster.join([2])
    try await checkAndAppend(clerk, &values, round: 1)
    try await cluster.join([3])
    try await checkAndAppend(clerk, &values, round: 2)
    try await cluster.leave([1])
    try await checkAndAppend(clerk, &values, round: 3)
    try await cluster.waitUntilSettled([2, 3])
    // Group 1 keeps nothing once the others have installed its shards.
    try await cluster.waitUntil(timeout: .seconds(20), "group 1 holds nothing") {
      cluster.members[1]?.values.allSatisfy { $0.stateMachine.shardTable.holdings.isEmpty } ?? false
    }
    await cluster.shutdownGroup(1)
    try await check(clerk, values)
  }

  /// Groups restart from their own disks and from small logs (compaction after 100 entries)
  /// after several joins and leaves.
  func testSnapshotsAndRestarts() async throws {
    let cluster = try await makeCluster(maxLogEntries: 100)
    addTeardownBlock { await cluster.shutdown() }
    try await cluster.join([1])
    let clerk = cluster.clerk()
    var values: [Int: String] = [:]
    for i in 0..<30 {
      values[i] = "v\(i);"
      try await clerk.put(key(i), Array("v\(i);".utf8))
    }
    try await cluster.join([2])
    try await cluster.join([3])
    try await cluster.leave([1])
    try await checkAndAppend(clerk, &values, round: 1)
    try await cluster.leave([2])
    try await cluster.join([1])
    try await checkAndAppend(clerk, &values, round: 2)
    for gid in GroupID(1)...3 { await cluster.shutdownGroup(gid) }
    for gid in GroupID(1)...3 { try await cluster.startGroup(gid) }
    try await check(clerk, values)
  }

  /// A member that was down through several configurations catches up through every one of
  /// them (from its peers' logs or a snapshot), and the group keeps serving meanwhile.
  func testMissedConfigurationChanges() async throws {
    let cluster = try await makeCluster(maxLogEntries: 200)
    addTeardownBlock { await cluster.shutdown() }
    try await cluster.join([1])
    let clerk = cluster.clerk()
    var values: [Int: String] = [:]
    for i in 0..<20 {
      values[i] = "v\(i);"
      try await clerk.put(key(i), Array("v\(i);".utf8))
    }
    try await cluster.join([2])
    for gid in GroupID(1)...3 { await cluster.crash(gid, 0) }
    try await cluster.join([3])
    try await cluster.leave([1])
    try await checkAndAppend(clerk, &values, round: 1)
    try await cluster.join([1])
    try await checkAndAppend(clerk, &values, round: 2)
    for gid in GroupID(1)...3 { try await cluster.start(gid, 0) }
    for gid in GroupID(1)...3 { await cluster.crash(gid, 1) }
    try await cluster.leave([2])
    try await checkAndAppend(clerk, &values, round: 3)
    for gid in GroupID(1)...3 { try await cluster.start(gid, 1) }
    try await cluster.waitUntilSettled([1, 3])
    let latest = try await cluster.latestConfiguration().num
    for gid in GroupID(1)...3 {
      let table = try XCTUnwrap(cluster.members[gid]?[0]?.stateMachine.shardTable)
      XCTAssertEqual(
        table.config.num, latest, "member 0 of group \(gid) caught up through every configuration")
    }
    try await check(clerk, values)
  }

  // MARK: - Concurrent clients

  enum Disturbance { case none, restartGroups, unreliable }

  /// Clients append to their own keys and read others' while groups join and leave (and, by
  /// variant, whole groups restart or the network loses messages); every append lands exactly
  /// once, in order, and the whole history is linearizable.
  private func concurrentClients(_ disturbance: Disturbance, seed: UInt64) async throws {
    let cluster = try await makeCluster(seed: seed)
    addTeardownBlock { await cluster.shutdown() }
    try await cluster.join([1])
    if disturbance == .unreliable { cluster.network.faults = ShardedTestCluster.unreliableFaults }
    let history = History()
    let stop = StopFlag()
    let clientCount = 5
    let workers = Task {
      await withTaskGroup(of: (Int, String).self) { group in
        for c in 0..<clientCount {
          let clerk = cluster.clerk(callTimeout: .milliseconds(300))
          group.addTask {
            var mine = ""
            var n = 0
            var random = SeededGenerator(seed: seed &+ UInt64(c))
            while !stop.isSet {
              n += 1
              let value = "c\(c).\(n);"
              if await history.run(clerk, client: c, .append, "key\(c)", value) { mine += value }
              let other = Int.random(in: 0..<clientCount, using: &random)
              await history.run(clerk, client: c, .get, "key\(other)")
            }
            return (c, mine)
          }
        }
        var finals: [Int: String] = [:]
        for await (c, mine) in group { finals[c] = mine }
        return finals
      }
    }
    let steps: [(String, () async throws -> Void)] = [
      ("join 2", { try await cluster.join([2]) }),
      ("join 3", { try await cluster.join([3]) }),
      ("leave 1", { try await cluster.leave([1]) }),
      ("join 1", { try await cluster.join([1]) }),
      ("leave 2", { try await cluster.leave([2]) }),
    ]
    for (step, (_, change)) in steps.enumerated() {
      try await Task.sleep(for: .milliseconds(300))
      try await change()
      if disturbance == .restartGroups {
        let gid = GroupID(step % 3 + 1)
        await cluster.shutdownGroup(gid)
        try await Task.sleep(for: .milliseconds(100))
        try await cluster.startGroup(gid)
      }
    }
    try await Task.sleep(for: .milliseconds(500))
    stop.set()
    let finals = await workers.value
    cluster.network.faults = .none
    // Every acknowledged append is there exactly once, in order (unacknowledged ones may be
    // there too: the history checker decides those).
    let reader = cluster.clerk()
    for c in 0..<clientCount {
      let got = try await reader.get(Array("key\(c)".utf8)).map { String(decoding: $0, as: UTF8.self) } ?? ""
      let acknowledged = finals[c] ?? ""
      for piece in acknowledged.split(separator: ";") {
        XCTAssertEqual(
          got.components(separatedBy: String(piece) + ";").count - 1, 1,
          "append \(piece) appears once in key\(c) (seed \(seed))")
      }
      await history.run(reader, client: 99, .get, "key\(c)")
    }
    history.assertLinearizable()
  }

  func testConcurrentClientsDuringJoinsAndLeaves() async throws {
    try await concurrentClients(.none, seed: 21)
  }

  func testConcurrentClientsDuringWholeGroupRestarts() async throws {
    try await concurrentClients(.restartGroups, seed: 22)
  }

  func testConcurrentClientsOnAnUnreliableNetwork() async throws {
    try await concurrentClients(.unreliable, seed: 23)
  }

  /// Clients mix puts, appends, deletes and gets on a few shared keys over a lossy network while
  /// shards move; the history is linearizable.
  func testRandomMixOnAnUnreliableNetworkIsLinearizable() async throws {
    let seed: UInt64 = 25
    let cluster = try await makeCluster(seed: seed)
    addTeardownBlock { await cluster.shutdown() }
    try await cluster.join([1])
    cluster.network.faults = ShardedTestCluster.unreliableFaults
    let history = History()
    let stop = StopFlag()
    let workers = Task {
      await withTaskGroup(of: Void.self) { group in
        for c in 0..<4 {
          let clerk = cluster.clerk(callTimeout: .milliseconds(300))
          group.addTask {
            var random = SeededGenerator(seed: seed &* 31 &+ UInt64(c))
            var n = 0
            while !stop.isSet {
              n += 1
              let key = "k\(Int.random(in: 0..<4, using: &random))"
              let kind: LinearizabilityChecker.Kind =
                switch Int.random(in: 0..<100, using: &random) {
                case 0..<35: .append
                case 35..<50: .put
                case 50..<55: .delete
                default: .get
                }
              await history.run(clerk, client: c, kind, key, "c\(c).\(n);")
            }
          }
        }
      }
    }
    for change in [
      { try await cluster.join([2]) }, { try await cluster.join([3]) }, { try await cluster.leave([1]) },
    ] {
      try await Task.sleep(for: .milliseconds(400))
      try await change()
    }
    // Keep the clients going until enough operations completed (a lossy network on a loaded
    // machine is slow), within a bound.
    let end = ContinuousClock.now + .seconds(20)
    while history.all.count(where: { $0.returned != nil }) < 40 && ContinuousClock.now < end {
      try await Task.sleep(for: .milliseconds(100))
    }
    stop.set()
    await workers.value
    XCTAssertGreaterThanOrEqual(history.all.count(where: { $0.returned != nil }), 40, "seed \(seed)")
    history.assertLinearizable()
  }

  /// One client at a time on a lossy network: every value read back is the one written.
  func testSequentialClientOnAnUnreliableNetwork() async throws {
    let cluster = try await makeCluster(seed: 24)
    addTeardownBlock { await cluster.shutdown() }
    try await cluster.join([1])
    cluster.network.faults = ShardedTestCluster.unreliableFaults
    let clerk = cluster.clerk(callTimeout: .milliseconds(300))
    var values: [Int: String] = [:]
    for i in 0..<10 {
      values[i] = "v\(i);"
      try await clerk.put(key(i), Array("v\(i);".utf8))
    }
    try await cluster.join([2])
    try await checkAndAppend(clerk, &values, round: 1)
    try await cluster.join([3])
    try await cluster.leave([1])
    try await checkAndAppend(clerk, &values, round: 2)
    cluster.network.faults = .none
    try await check(clerk, values)
  }

  // MARK: - Challenges: garbage collection, unaffected and partial migration

  /// After two rounds of joins and leaves, the bytes stored by all groups stay within a small
  /// factor of the live data (three replicas each): handed-off shards are deleted.
  func testHandedOffShardsAreDeleted() async throws {
    let cluster = try await makeCluster()
    addTeardownBlock { await cluster.shutdown() }
    try await cluster.join([1])
    let clerk = cluster.clerk()
    let value = [UInt8](repeating: UInt8(ascii: "x"), count: 1000)
    var live: UInt64 = 0
    for i in 0..<30 {
      try await clerk.put(key(i), value)
      live += UInt64(key(i).count + value.count)
    }
    for _ in 0..<2 {
      try await cluster.join([2, 3])
      try await cluster.leave([2, 3])
    }
    try await cluster.join([2])
    try await cluster.leave([1])
    try await cluster.waitUntilSettled([1, 2, 3], timeout: .seconds(30))
    try await cluster.waitUntil(timeout: .seconds(20), "every hand-off collected") {
      cluster.members.values.allSatisfy { group in
        group.values.allSatisfy { $0.stateMachine.shardTable.handingOff.isEmpty }
      }
    }
    let stored = try cluster.storedBytes()
    XCTAssertEqual(stored, 3 * live, "exactly three replicas of the live data remain (stored \(stored))")
    for i in 0..<30 {
      let got = try await clerk.get(key(i))
      XCTAssertEqual(got, value)
    }
  }

  /// A group keeps serving the shards it owned after the group it would pull others from is
  /// killed and leaves.
  func testUnaffectedShardsKeepServing() async throws {
    let cluster = try await makeCluster()
    addTeardownBlock { await cluster.shutdown() }
    try await cluster.join([1])
    let clerk = cluster.clerk()
    for i in 0..<20 { try await clerk.put(key(i), Array("v\(i)".utf8)) }
    try await cluster.join([2])
    try await cluster.waitUntilSettled([1, 2])
    let owned = try await cluster.latestConfiguration().shards
    await cluster.shutdownGroup(1)
    try await cluster.leave([1])
    for i in 0..<20 where owned[shardOf(i, cluster)] == 2 {
      let fresh = cluster.clerk(deadline: .seconds(5))
      let got = try await fresh.get(key(i))
      XCTAssertEqual(got, Array("v\(i)".utf8), "key\(i) of group 2's own shard")
      try await fresh.put(key(i), Array("w\(i)".utf8))
    }
  }

  /// A group serves the shards it received from a live group while the transfer from a dead
  /// group cannot finish.
  func testPartialMigrationServesWhatArrived() async throws {
    let cluster = try await makeCluster()
    addTeardownBlock { await cluster.shutdown() }
    try await cluster.join([1, 2, 3])
    let clerk = cluster.clerk()
    for i in 0..<30 { try await clerk.put(key(i), Array("v\(i)".utf8)) }
    try await cluster.waitUntilSettled([1, 2, 3])
    let before = try await cluster.latestConfiguration().shards
    await cluster.shutdownGroup(1)
    try await cluster.leave([1, 3])
    let fromThree = (0..<30).filter { before[shardOf($0, cluster)] == 3 }
    XCTAssertFalse(fromThree.isEmpty)
    for i in fromThree {
      let fresh = cluster.clerk(deadline: .seconds(10))
      let got = try await fresh.get(key(i))
      XCTAssertEqual(got, Array("v\(i)".utf8), "key\(i) moved from group 3")
    }
    // Group 2 is stuck pulling group 1's shards, and says so.
    let latest = try await cluster.latestConfiguration().num
    try await cluster.waitUntil("group 2 at configuration \(latest), pulling group 1's shards") {
      let table = cluster.members[2]?[0]?.stateMachine.shardTable
      return table?.config.num == latest && table?.pulling.isEmpty == false
    }
    let stuck = try XCTUnwrap((0..<30).first { before[shardOf($0, cluster)] == 1 })
    let probe = cluster.clerk(deadline: .milliseconds(800))
    do {
      _ = try await probe.get(key(stuck))
      XCTFail("key\(stuck) cannot be served: its shard's old owner is down")
    } catch {
      XCTAssertTrue(
        error.description.contains("shard \(shardOf(stuck, cluster))"), "the error names the shard: \(error)")
    }
  }
}
