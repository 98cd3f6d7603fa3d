import Raft
import Wire
import XCTest

@testable import ShardCtrler

/// The classic shardctrler suite, against a three-replica controller over the in-memory
/// network: each scenario runs on a reliable network, then all of them again on an unreliable
/// one and across restarts of every replica.
final class ControllerClusterTests: XCTestCase {
  enum Mode { case reliable, unreliable, restarts }

  /// Runs `scenario` on a fresh cluster in `mode`; `pause` restarts every replica in the
  /// restart mode and does nothing otherwise.
  func run(
    _ mode: Mode, _ scenario: (ControllerTestCluster, _ pause: () async throws -> Void) async throws -> Void
  ) async throws {
    let cluster = ControllerTestCluster()
    if mode == .unreliable { cluster.makeUnreliable() }
    try await cluster.startAll()
    do {
      try await scenario(cluster) {
        if mode == .restarts { try await cluster.restartAll() }
      }
      cluster.network.heal()
      cluster.network.faults = .none
      try await cluster.assertReplicasAgree()
    } catch {
      await cluster.shutdown()
      throw error
    }
    await cluster.shutdown()
  }

  static var scenarios:
    [(String, (ControllerTestCluster, _ pause: () async throws -> Void) async throws -> Void)]
  {
    [
      ("basic leave and join", basicLeaveAndJoin),
      ("historical queries", historicalQueries),
      ("move", move),
      ("concurrent leaves and joins", concurrentLeavesAndJoins),
      ("minimal transfers after joins", minimalTransfersAfterJoins),
      ("minimal transfers after leaves", minimalTransfersAfterLeaves),
      ("multi-group join and leave", multiGroupJoinAndLeave),
      ("concurrent multi-group operations", concurrentMultiGroupOperations),
    ]
  }

  func testBasicLeaveAndJoin() async throws { try await run(.reliable, Self.basicLeaveAndJoin) }
  func testHistoricalQueries() async throws { try await run(.reliable, Self.historicalQueries) }
  func testMove() async throws { try await run(.reliable, Self.move) }
  func testConcurrentLeavesAndJoins() async throws { try await run(.reliable, Self.concurrentLeavesAndJoins) }
  func testMinimalTransfersAfterJoins() async throws {
    try await run(.reliable, Self.minimalTransfersAfterJoins)
  }
  func testMinimalTransfersAfterLeaves() async throws {
    try await run(.reliable, Self.minimalTransfersAfterLeaves)
  }
  func testMultiGroupJoinAndLeave() async throws { try await run(.reliable, Self.multiGroupJoinAndLeave) }
  func testConcurrentMultiGroupOperations() async throws {
    try await run(.reliable, Self.concurrentMultiGroupOperations)
  }

  func testEveryScenarioOnAnUnreliableNetwork() async throws {
    for (name, scenario) in Self.scenarios {
      print("scenario on an unreliable network: \(name)")
      try await run(.unreliable, scenario)
    }
  }

  func testEveryScenarioAcrossRestarts() async throws {
    for (name, scenario) in Self.scenarios {
      print("scenario across restarts: \(name)")
      try await run(.restarts, scenario)
    }
  }

  func testInvalidOperationsAreRejectedWithAClearMessage() async throws {
    let cluster = ControllerTestCluster()
    try await cluster.startAll()
    addTeardownBlock { await cluster.shutdown() }
    let clerk = cluster.clerk()
    try await clerk.join([1: ["a"]])
    await assertRejected({ try await clerk.join([1: ["b"]]) }, "group 1 has already joined")
    await assertRejected({ try await clerk.join([2: []]) }, "group 2 needs at least one member")
    await assertRejected({ try await clerk.join([2: ["b", "a"]]) }, "a is already a member of group 1")
    await assertRejected({ try await clerk.leave([7]) }, "group 7 is not in the configuration")
    // The last group cannot leave: its shards would have no one to hand their data to.
    await assertRejected(
      { try await clerk.leave([1]) },
      "cannot remove every group: their shards would have no owner to hand their data to")
    await assertRejected({ try await clerk.move(shard: 10, to: 1) }, "shard 10 is out of range 0..<10")
    await assertRejected({ try await clerk.move(shard: 0, to: 9) }, "group 9 is not in the configuration")
    // Rejections create no configuration; a query past the latest returns the latest.
    let latest = try await clerk.query(-1)
    XCTAssertEqual(latest.num, 1)
    let pastLatest = try await clerk.query(99)
    XCTAssertEqual(pastLatest, latest)
    // UpdateMembers records the new list and moves nothing.
    let updated = try await clerk.updateMembers(of: 1, to: ["a", "b"])
    XCTAssertEqual(updated.num, 2)
    XCTAssertEqual(updated.shards, latest.shards)
    let recorded = try await clerk.query(-1)
    XCTAssertEqual(recorded.groups[1], ["a", "b"])
  }

  func testRetriedWriteExecutesOnce() async throws {
    let cluster = ControllerTestCluster()
    try await cluster.startAll()
    addTeardownBlock { await cluster.shutdown() }
    // Every reply is lost half the time: the clerk retries with the same sequence, and the
    // controller must answer the retry from its session rather than joining twice (which
    // would fail with "already joined").
    cluster.network.faults = NetworkFaults(dropProbability: 0.3)
    let clerk = cluster.clerk()
    for gid in GroupID(1)...10 {
      let config = try await clerk.join([gid: ["g\(gid)"]])
      XCTAssertNotNil(config.groups[gid])
    }
    cluster.network.faults = .none
    let last = try await clerk.query(-1)
    XCTAssertEqual(last.num, 10)
  }

  private func assertRejected(
    _ operation: () async throws -> ShardConfiguration, _ message: String,
    file: StaticString = #filePath, line: UInt = #line
  ) async {
    do {
      _ = try await operation()
      XCTFail("expected rejection: \(message)", file: file, line: line)
    } catch let error as ControllerClientError {
      XCTAssertEqual(error, .rejected(message), file: file, line: line)
    } catch {
      XCTFail("unexpected \(error)", file: file, line: line)
    }
  }

  // MARK: - Scenarios

  static func basicLeaveAndJoin(
    _ cluster: ControllerTestCluster, _ pause: () async throws -> Void
  ) async throws {
    let clerk = cluster.clerk()
    let first = try await clerk.query(-1)
    XCTAssertEqual(first.num, 0)
    assertValid(first, groups: [])
    try await clerk.join([1: ["x", "y", "z"]])
    let one = try await clerk.query(-1)
    assertValid(one, groups: [1])
    try await clerk.join([2: ["a", "b", "c"]])
    try await pause()
    let both = try await clerk.query(-1)
    assertValid(both, groups: [1, 2])
    XCTAssertEqual(both.groups[1], ["x", "y", "z"])
    XCTAssertEqual(both.groups[2], ["a", "b", "c"])
    try await clerk.leave([1])
    let two = try await clerk.query(-1)
    assertValid(two, groups: [2])
  }

  static func historicalQueries(
    _ cluster: ControllerTestCluster, _ pause: () async throws -> Void
  ) async throws {
    let clerk = cluster.clerk()
    var history: [ShardConfiguration] = [try await clerk.query(-1)]
    for gid in GroupID(1)...4 {
      history.append(try await clerk.join([gid: ["g\(gid)"]]))
    }
    history.append(try await clerk.leave([2]))
    try await pause()
    // Every replica, asked through any address, returns the same past configurations.
    for address in cluster.apiAddresses {
      let single = ControllerClerk(
        servers: [address], transport: cluster.network.transport(for: "history-\(address)"),
        deadline: .seconds(30))
      for config in history {
        let answer = try await single.query(Int64(config.num))
        XCTAssertEqual(answer, config, "config \(config.num) via \(address)")
      }
    }
  }

  static func move(_ cluster: ControllerTestCluster, _ pause: () async throws -> Void) async throws {
    let clerk = cluster.clerk()
    try await clerk.join([1: ["a"]])
    try await clerk.join([2: ["b"]])
    let shardCount = cluster.shardCount
    for shard in 0..<shardCount {
      try await clerk.move(shard: shard, to: shard < shardCount / 2 ? 1 : 2)
    }
    try await pause()
    let moved = try await clerk.query(-1)
    for shard in 0..<shardCount {
      XCTAssertEqual(moved.shards[shard], shard < shardCount / 2 ? 1 : 2, "shard \(shard)")
    }
    // A move to the current owner changes nothing and creates no configuration.
    let same = try await clerk.move(shard: 0, to: 1)
    XCTAssertEqual(same.num, moved.num)
  }

  static func concurrentLeavesAndJoins(
    _ cluster: ControllerTestCluster, _ pause: () async throws -> Void
  ) async throws {
    let clerks = (0..<10).map { _ in cluster.clerk() }
    try await withThrowingTaskGroup(of: Void.self) { group in
      for (i, clerk) in clerks.enumerated() {
        let gid = GroupID(i + 100)
        group.addTask {
          try await clerk.join([gid + 1000: ["x\(gid)"]])
          try await clerk.join([gid: ["a\(gid)"]])
          try await clerk.leave([gid + 1000])
        }
      }
      try await group.waitForAll()
    }
    try await pause()
    let final = try await cluster.clerk().query(-1)
    assertValid(final, groups: Set((0..<10).map { GroupID($0 + 100) }))
  }

  static func minimalTransfersAfterJoins(
    _ cluster: ControllerTestCluster, _ pause: () async throws -> Void
  ) async throws {
    let clerk = cluster.clerk()
    for gid in GroupID(1)...5 { try await clerk.join([gid: ["g\(gid)"]]) }
    let before = try await clerk.query(-1)
    try await pause()
    for gid in GroupID(6)...7 { try await clerk.join([gid: ["g\(gid)"]]) }
    let after = try await clerk.query(-1)
    assertValid(after, groups: Set(1...7))
    // Joins only take shards away from old groups: none moves between two old groups.
    for (shard, owner) in after.shards.enumerated() where owner <= 5 {
      XCTAssertEqual(owner, before.shards[shard], "shard \(shard) moved between old groups")
    }
  }

  static func minimalTransfersAfterLeaves(
    _ cluster: ControllerTestCluster, _ pause: () async throws -> Void
  ) async throws {
    let clerk = cluster.clerk()
    for gid in GroupID(1)...7 { try await clerk.join([gid: ["g\(gid)"]]) }
    let before = try await clerk.query(-1)
    try await pause()
    try await clerk.leave([6, 7])
    let after = try await clerk.query(-1)
    assertValid(after, groups: Set(1...5))
    // Leaves only move the leaving groups' shards.
    for (shard, owner) in before.shards.enumerated() where owner <= 5 {
      XCTAssertEqual(after.shards[shard], owner, "shard \(shard) of a staying group moved")
    }
  }

  static func multiGroupJoinAndLeave(
    _ cluster: ControllerTestCluster, _ pause: () async throws -> Void
  ) async throws {
    let clerk = cluster.clerk()
    try await clerk.join([1: ["x"], 2: ["y"]])
    let pair = try await clerk.query(-1)
    assertValid(pair, groups: [1, 2])
    try await clerk.join([3: ["z"], 4: ["w"], 5: ["v"]])
    try await pause()
    let five = try await clerk.query(-1)
    assertValid(five, groups: [1, 2, 3, 4, 5])
    XCTAssertEqual(five.num, 2, "one configuration per multi-group operation")
    let left = try await clerk.leave([1, 3, 5])
    assertValid(left, groups: [2, 4])
    for (shard, owner) in five.shards.enumerated() where owner == 2 || owner == 4 {
      XCTAssertEqual(left.shards[shard], owner, "shard \(shard) of a staying group moved")
    }
  }

  static func concurrentMultiGroupOperations(
    _ cluster: ControllerTestCluster, _ pause: () async throws -> Void
  ) async throws {
    let clerks = (0..<6).map { _ in cluster.clerk() }
    try await withThrowingTaskGroup(of: Void.self) { group in
      for (i, clerk) in clerks.enumerated() {
        let base = GroupID(10 * (i + 1))
        group.addTask {
          try await clerk.join([base: ["a\(base)"], base + 1: ["b\(base)"], base + 2: ["c\(base)"]])
          try await clerk.leave([base + 1, base + 2])
          try await clerk.join([base + 3: ["d\(base)"]])
        }
      }
      try await group.waitForAll()
    }
    try await pause()
    var expected: Set<GroupID> = []
    for i in GroupID(1)...6 {
      expected.insert(10 * i)
      expected.insert(10 * i + 3)
    }
    let final = try await cluster.clerk().query(-1)
    assertValid(final, groups: expected)
  }
}
