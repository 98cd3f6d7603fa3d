import Raft
import XCTest

@testable import ShardCtrler

/// Property tests of the rebalancer over seeded random sequences of joins, leaves and moves.
/// `CTRL_SEEDS=N` runs more sequences; a failure names its seed.
final class RebalancerTests: XCTestCase {
  static var seedCount: Int {
    ProcessInfo.processInfo.environment["CTRL_SEEDS"].flatMap { Int($0) } ?? 300
  }

  /// The fewest moves any balanced assignment over `groups` needs, computed from counts alone:
  /// every shard of a departed (or no) group moves, and every group gives up what it holds
  /// beyond its target, where the ⌈S/G⌉ targets best go to the groups that hold more than ⌊S/G⌋.
  func lowerBound(_ shards: [GroupID], groups: Set<GroupID>) -> Int {
    guard !groups.isEmpty else { return shards.filter { $0 != 0 }.count }
    let floor = shards.count / groups.count
    let extra = shards.count % groups.count
    var counts: [GroupID: Int] = [:]
    var orphans = 0
    for gid in shards {
      if groups.contains(gid) { counts[gid, default: 0] += 1 } else { orphans += 1 }
    }
    let excess = counts.values.reduce(0) { $0 + max(0, $1 - floor) }
    let aboveFloor = counts.values.filter { $0 > floor }.count
    return orphans + excess - min(extra, aboveFloor)
  }

  func assertBalanced(
    _ config: ShardConfiguration, _ context: @autoclosure () -> String, file: StaticString = #filePath,
    line: UInt = #line
  ) {
    let groupCount = config.groups.count
    guard groupCount > 0 else {
      XCTAssertTrue(config.shards.allSatisfy { $0 == 0 }, "no groups, yet shards assigned: \(context())")
      return
    }
    let floor = config.shardCount / groupCount
    let ceil = floor + (config.shardCount % groupCount == 0 ? 0 : 1)
    for (gid, owned) in config.shardsByGroup {
      XCTAssertTrue(
        (floor...ceil).contains(owned.count),
        "group \(gid) holds \(owned.count), want \(floor)...\(ceil): \(context())", file: file, line: line)
    }
    for gid in config.shards {
      XCTAssertNotNil(
        config.groups[gid], "shard owned by absent group \(gid): \(context())", file: file, line: line)
    }
  }

  func testJoinsAndLeavesStayBalancedAndMoveTheFewestShards() throws {
    for seed in 0..<UInt64(Self.seedCount) {
      var random = SeededGenerator(seed: seed)
      let shardCount = [1, 3, 10, 16, 64, 100].randomElement(using: &random) ?? 64
      var config = ShardConfiguration.initial(shardCount: shardCount)
      var nextGID: GroupID = 1
      for step in 0..<40 {
        let context = "seed \(seed) step \(step) (replay with CTRL_SEEDS=\(seed + 1))"
        let before = config
        let roll = Int.random(in: 0..<10, using: &random)
        if roll < 5 || config.groups.isEmpty {
          var joining: [GroupID: [String]] = [:]
          for _ in 0..<Int.random(in: 1...3, using: &random) {
            joining[nextGID] = ["10.0.0.\(nextGID):7000"]
            nextGID += 1
          }
          config = try config.joining(joining)
        } else if roll < 9 && config.groups.count > 1 {
          let present = config.groups.keys.sorted()
          let count = Int.random(in: 1...min(2, present.count - 1), using: &random)
          config = try config.leaving(Array(present.shuffled(using: &random).prefix(count)))
        } else {
          let shard = Int.random(in: 0..<shardCount, using: &random)
          let gid = config.groups.keys.sorted().randomElement(using: &random) ?? 1
          config = try config.moving(shard: shard, to: gid)
          continue  // a move unbalances on purpose; the next join or leave must repair it
        }
        XCTAssertEqual(config.num, before.num + 1, context)
        assertBalanced(config, context)
        let moves = Rebalancer.plan(from: before, to: config)
        XCTAssertEqual(
          moves.count, lowerBound(before.shards, groups: Set(config.groups.keys)),
          "moved more shards than needed: \(context)")
        // Only from over-full (or departed) groups to under-full ones: no group gains and
        // loses in one step.
        let losers = Set(moves.map(\.from))
        let gainers = Set(moves.map(\.to))
        XCTAssertTrue(losers.isDisjoint(with: gainers), "a group both gained and lost: \(context)")
      }
    }
  }

  func testResultDoesNotDependOnInputOrder() {
    for seed in 0..<UInt64(Self.seedCount) {
      var random = SeededGenerator(seed: seed)
      let shardCount = Int.random(in: 1...80, using: &random)
      let groupPool = (1...12).map(GroupID.init)
      let shards = (0..<shardCount).map { _ in
        Bool.random(using: &random) ? 0 : groupPool.randomElement(using: &random) ?? 0
      }
      let groups = Array(groupPool.shuffled(using: &random).prefix(Int.random(in: 1...12, using: &random)))
      let expected = Rebalancer.rebalance(shards, over: groups)
      for _ in 0..<5 {
        XCTAssertEqual(
          Rebalancer.rebalance(shards, over: groups.shuffled(using: &random)), expected, "seed \(seed)")
        XCTAssertEqual(
          Rebalancer.rebalance(shards, over: Set(groups)), expected, "seed \(seed): from a Set")
      }
      // Joining the same groups given in any dictionary order gives the same configuration.
      var base = ShardConfiguration.initial(shardCount: shardCount)
      base.shards = Array(repeating: 0, count: shardCount)
      let joining = Dictionary(uniqueKeysWithValues: groups.map { ($0, ["g\($0)"]) })
      XCTAssertEqual(
        try? base.joining(joining),
        try? base.joining(Dictionary(joining.shuffled(using: &random)) { a, _ in a }))
    }
  }

  func testFirstJoinSpreadsEveryShardAndMoreGroupsThanShardsLeaveSomeEmpty() throws {
    let first = try ShardConfiguration.initial(shardCount: 10).joining([1: ["a"]])
    XCTAssertEqual(first.shards, Array(repeating: 1, count: 10))
    let many = try first.joining(Dictionary(uniqueKeysWithValues: (2...12).map { (GroupID($0), ["g\($0)"]) }))
    XCTAssertEqual(Set(many.shards).count, 10)
    XCTAssertEqual(many.shardsByGroup.values.filter(\.isEmpty).count, 2)
    XCTAssertThrowsError(try many.leaving(Array(many.groups.keys))) {
      XCTAssertEqual($0 as? ConfigurationError, .lastGroups)
    }
    let one = try many.leaving(Array(many.groups.keys.sorted().dropFirst()))
    XCTAssertEqual(one.shards, Array(repeating: 1, count: 10))
  }

  func testInvalidOperationsAreRejectedAndChangeNothing() throws {
    let config = try ShardConfiguration.initial(shardCount: 8).joining([1: ["a"], 2: ["b"]])
    XCTAssertThrowsError(try config.joining([1: ["x"]])) {
      XCTAssertEqual($0 as? ConfigurationError, .groupExists(1))
    }
    XCTAssertThrowsError(try config.joining([3: ["c", "b"]])) {
      XCTAssertEqual($0 as? ConfigurationError, .memberOfAnotherGroup("b", 2))
    }
    XCTAssertThrowsError(try config.joining([3: []])) {
      XCTAssertEqual($0 as? ConfigurationError, .noMembers(3))
    }
    XCTAssertThrowsError(try config.joining([0: ["z"]])) {
      XCTAssertEqual($0 as? ConfigurationError, .reservedGroup)
    }
    XCTAssertThrowsError(try config.joining([:])) { XCTAssertEqual($0 as? ConfigurationError, .nothingToDo) }
    XCTAssertThrowsError(try config.leaving([9])) {
      XCTAssertEqual($0 as? ConfigurationError, .unknownGroup(9))
    }
    XCTAssertThrowsError(try config.moving(shard: 8, to: 1)) {
      XCTAssertEqual($0 as? ConfigurationError, .shardOutOfRange(8, shardCount: 8))
    }
    XCTAssertThrowsError(try config.moving(shard: 0, to: 7)) {
      XCTAssertEqual($0 as? ConfigurationError, .unknownGroup(7))
    }
    XCTAssertThrowsError(try config.updatingMembers(of: 5, to: ["q"])) {
      XCTAssertEqual($0 as? ConfigurationError, .unknownGroup(5))
    }
    // A no-op change creates no configuration; UpdateMembers moves no shard.
    XCTAssertEqual(try config.moving(shard: 0, to: config.shards[0]), config)
    let updated = try config.updatingMembers(of: 1, to: ["a", "a2"])
    XCTAssertEqual(updated.num, config.num + 1)
    XCTAssertEqual(updated.shards, config.shards)
    XCTAssertEqual(updated.groups[1], ["a", "a2"])
  }

  func testPlanListsExactlyTheChangedShards() throws {
    let one = try ShardConfiguration.initial(shardCount: 4).joining([1: ["a"]])
    let two = try one.joining([2: ["b"]])
    let moves = Rebalancer.plan(from: one, to: two)
    XCTAssertEqual(moves.count, 2)
    XCTAssertTrue(moves.allSatisfy { $0.from == 1 && $0.to == 2 })
    XCTAssertEqual(moves.map(\.shard), two.shards.enumerated().filter { $0.element == 2 }.map(\.offset))
  }

  func testJSONLineIsTheDocumentedShape() throws {
    let config = try ShardConfiguration.initial(shardCount: 3).joining([10: ["h:1", "h:2"], 2: ["x\"y"]])
    XCTAssertEqual(
      config.jsonLine, #"{"num":1,"shards":[2,2,10],"groups":{"2":["x\"y"],"10":["h:1","h:2"]}}"#)
  }
}
