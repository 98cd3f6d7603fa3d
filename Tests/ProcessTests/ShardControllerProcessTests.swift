import Foundation
import XCTest

/// Three real `kvd --controller` replicas on loopback, driven through kvctl: every group
/// join, leave and shard move prints OK, and `config --json` shows its effect.
final class ShardControllerProcessTests: XCTestCase {
  func config(_ cluster: ProcessCluster, _ i: Int) throws -> String {
    let out = try cluster.kvctl(i, "config", "--json", timeout: 10)
    XCTAssertEqual(out.status, 0, out.stderr)
    return out.stdout.trimmingCharacters(in: .newlines)
  }

  func testGroupJoinsLeavesAndMovesThroughKvctl() throws {
    let cluster = try ProcessCluster(size: 3)
    defer { cluster.stopAll() }
    let peers = cluster.nodes.map(\.peer).joined(separator: ",")
    for i in 0..<3 { try cluster.start(i, ["--controller", "--peers", peers, "--shards", "4"]) }

    XCTAssertEqual(try config(cluster, 0), #"{"num":0,"shards":[0,0,0,0],"groups":{}}"#)

    var out = try cluster.kvctl(1, "group", "join", "1", "a:1,a:2,a:3", timeout: 10)
    XCTAssertEqual(out.stdout, "OK\n", out.stderr)
    XCTAssertEqual(
      try config(cluster, 2), #"{"num":1,"shards":[1,1,1,1],"groups":{"1":["a:1","a:2","a:3"]}}"#)

    out = try cluster.kvctl(0, "group", "join", "2", "b:1", timeout: 10)
    XCTAssertEqual(out.stdout, "OK\n", out.stderr)
    XCTAssertEqual(
      try config(cluster, 1), #"{"num":2,"shards":[1,1,2,2],"groups":{"1":["a:1","a:2","a:3"],"2":["b:1"]}}"#)

    out = try cluster.kvctl(2, "shard", "move", "0", "2", timeout: 10)
    XCTAssertEqual(out.stdout, "OK\n", out.stderr)
    XCTAssertEqual(
      try config(cluster, 0), #"{"num":3,"shards":[2,1,2,2],"groups":{"1":["a:1","a:2","a:3"],"2":["b:1"]}}"#)

    out = try cluster.kvctl(0, "group", "leave", "1", timeout: 10)
    XCTAssertEqual(out.stdout, "OK\n", out.stderr)
    XCTAssertEqual(try config(cluster, 2), #"{"num":4,"shards":[2,2,2,2],"groups":{"2":["b:1"]}}"#)

    // History stays queryable, and the table form names the groups.
    out = try cluster.kvctl(1, "config", "1", "--json", timeout: 10)
    XCTAssertEqual(out.stdout, #"{"num":1,"shards":[1,1,1,1],"groups":{"1":["a:1","a:2","a:3"]}}"# + "\n")
    out = try cluster.kvctl(1, "config", timeout: 10)
    XCTAssertTrue(out.stdout.hasPrefix("Config 4: 4 shards, 1 groups\n"), out.stdout)

    // Mistakes are refused on stderr with a non-zero exit, and change nothing.
    out = try cluster.kvctl(0, "group", "leave", "9", timeout: 10)
    XCTAssertNotEqual(out.status, 0)
    XCTAssertTrue(out.stderr.contains("group 9 is not in the configuration"), out.stderr)
    out = try cluster.kvctl(0, "shard", "move", "4", "2", timeout: 10)
    XCTAssertNotEqual(out.status, 0)
    XCTAssertTrue(out.stderr.contains("shard 4 is out of range"), out.stderr)
    out = try cluster.kvctl(0, "group", "join", "x", "a:1", timeout: 10)
    XCTAssertEqual(out.status, 2)
    XCTAssertTrue(out.stderr.contains("GID must be a number"), out.stderr)
    XCTAssertEqual(try config(cluster, 0), #"{"num":4,"shards":[2,2,2,2],"groups":{"2":["b:1"]}}"#)

    // A data command sent to a controller replica fails at once, saying why: rejected (4), the
    // wrong kind of node, not a missing key (1).
    out = try cluster.kvctl(0, "put", "k", "v", timeout: 30)
    XCTAssertEqual(out.status, 4)
    XCTAssertTrue(out.stderr.contains("is it a shard controller rather than a KV group member?"), out.stderr)

    // Node commands work on controller replicas too.
    out = try cluster.kvctl(0, "leader", timeout: 10)
    XCTAssertTrue(cluster.nodes.map { $0.peer + "\n" }.contains(out.stdout), out.stdout + out.stderr)
    out = try cluster.kvctl(0, "dropped", timeout: 10)
    XCTAssertEqual(out.status, 0, out.stderr)

    // The history survives kill -9 of every replica.
    for i in 0..<3 { cluster.kill9(i) }
    for i in 0..<3 { try cluster.start(i, ["--controller", "--peers", peers, "--shards", "4"]) }
    XCTAssertEqual(try config(cluster, 1), #"{"num":4,"shards":[2,2,2,2],"groups":{"2":["b:1"]}}"#)
  }

  func testControllerBootstrappedAloneGrowsByJoiningStandbys() throws {
    let cluster = try ProcessCluster(size: 3)
    defer { cluster.stopAll() }
    try cluster.start(0, ["--controller", "-l", "--shards", "2"])
    for i in 1..<3 { try cluster.start(i, ["--controller", "-c", cluster.nodes[0].peer]) }
    var out = try cluster.kvctl(0, "group", "join", "7", "g:1", timeout: 10)
    XCTAssertEqual(out.stdout, "OK\n", out.stderr)
    for i in 1..<3 {
      out = try cluster.kvctl(0, "join", cluster.nodes[i].peer, timeout: 20)
      XCTAssertEqual(out.stdout, "OK\n", out.stderr)
    }
    // A joined replica serves the same history (its query is a linearizable read through
    // the leader) and holds it locally: it survives the first replica's death.
    let expected = #"{"num":1,"shards":[7,7],"groups":{"7":["g:1"]}}"#
    XCTAssertEqual(try config(cluster, 2), expected)
    cluster.kill9(0)
    XCTAssertEqual(try config(cluster, 1), expected)
    out = try cluster.kvctl(1, "group", "join", "8", "h:1", timeout: 15)
    XCTAssertEqual(out.stdout, "OK\n", out.stderr)
    XCTAssertEqual(try config(cluster, 2), #"{"num":2,"shards":[7,8],"groups":{"7":["g:1"],"8":["h:1"]}}"#)
  }
}
