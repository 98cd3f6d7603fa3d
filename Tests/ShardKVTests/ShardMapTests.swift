import XCTest

@testable import ShardKV

final class ShardMapTests: XCTestCase {
  func testTheHashIsPinned() {
    // These values are part of every cluster's on-disk layout: they must never change.
    XCTAssertEqual(ShardMap.hash64(Array("".utf8)), 0xF52A_15E9_A9B5_E89B)
    XCTAssertEqual(ShardMap(shardCount: 64).shard(of: Array("hello".utf8)), 5)
    XCTAssertEqual(ShardMap(shardCount: 64).shard(of: Array("user:1".utf8)), 12)
  }

  func testShardsAreRangesOfTheHashSpace() {
    let map = ShardMap(shardCount: 10)
    for i in 0..<1_000 {
      let key = Array("key-\(i)".utf8)
      let hash = ShardMap.hash64(key)
      let shard = map.shard(of: key)
      // shard i owns [i * 2^64 / S, (i + 1) * 2^64 / S).
      let lower = UInt64(shard).multipliedFullWidth(by: UInt64.max / 10 + 1)
      XCTAssertTrue(lower.high == 0 && lower.low <= hash, "key-\(i)")
      XCTAssertTrue((0..<10).contains(shard))
    }
  }

  func testKeysSpreadEvenlyAcrossShards() {
    let map = ShardMap(shardCount: 64)
    var counts = [Int](repeating: 0, count: 64)
    for i in 0..<64_000 { counts[map.shard(of: Array("k\(i)".utf8))] += 1 }
    // 1,000 expected per shard; a broken mix would leave shards empty or doubled.
    XCTAssertGreaterThan(counts.min() ?? 0, 800)
    XCTAssertLessThan(counts.max() ?? .max, 1_200)
  }

  func testHashTagsGroupKeys() {
    let map = ShardMap(shardCount: 1024)
    let a = map.shard(of: Array("user:{42}:name".utf8))
    XCTAssertEqual(a, map.shard(of: Array("user:{42}:email".utf8)))
    XCTAssertEqual(a, map.shard(of: Array("42".utf8)))
    // An empty tag or an unclosed brace hashes the whole key.
    XCTAssertEqual(ShardMap.hashedPart(of: Array("a{}b".utf8)).count, 4)
    XCTAssertEqual(ShardMap.hashedPart(of: Array("a{b".utf8)).count, 3)
    XCTAssertEqual(Array(ShardMap.hashedPart(of: Array("{x}{y}".utf8))), Array("x".utf8))
  }
}
