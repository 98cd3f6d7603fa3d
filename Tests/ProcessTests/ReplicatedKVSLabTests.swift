import Foundation
import XCTest

/// The replicated-KVS lab's acceptance tests against real processes: one node started with
/// `-l`, the others as standbys joined through the first node's API address.
final class ReplicatedKVSLabTests: XCTestCase {
  /// Starts node 0 with -l and the rest as standbys, joins them, returns when all are members.
  private func startJoinedGroup(_ cluster: ProcessCluster, members: Int) throws {
    try cluster.start(0, ["-l"])
    for i in 1..<cluster.nodes.count { try cluster.start(i, ["-c", cluster.nodes[0].peer]) }
    XCTAssertTrue(cluster.eventually(within: .seconds(10)) { (try? cluster.kvctl(0, "leader").status) == 0 })
    for i in 1..<members {
      let joined = try cluster.kvctl(0, "join", cluster.nodes[i].peer, timeout: 20)
      XCTAssertEqual(joined.stdout, "OK\n", joined.stderr)
    }
  }

  private func leader(_ cluster: ProcessCluster, asking i: Int) -> String? {
    guard let out = try? cluster.kvctl(i, "leader", timeout: 2), out.status == 0 else { return nil }
    return out.stdout.trimmingCharacters(in: .newlines)
  }

  func testDroppedListsEachKilledFollowerWithinTwoSeconds() throws {
    let cluster = try ProcessCluster(size: 3)
    defer { cluster.stopAll() }
    try startJoinedGroup(cluster, members: 3)
    XCTAssertEqual(try cluster.kvctl(0, "dropped").stdout, "")
    cluster.kill9(1)
    XCTAssertTrue(
      try cluster.eventually(within: .seconds(2)) {
        try cluster.kvctl(0, "dropped").stdout == "Dropped:\t\(cluster.nodes[1].peer)\n"
      }, "the leader did not report the first killed follower")
    cluster.kill9(2)
    let both = [cluster.nodes[1].peer, cluster.nodes[2].peer].sorted().map { "Dropped:\t\($0)\n" }.joined()
    XCTAssertTrue(
      try cluster.eventually(within: .seconds(2)) { try cluster.kvctl(0, "dropped").stdout == both },
      "the leader (stepped down by now) did not report both killed followers")
  }

  func testSurvivorsAgreeOnANewLeaderAfterEachLeaderIsKilled() throws {
    let cluster = try ProcessCluster(size: 5)
    defer { cluster.stopAll() }
    try startJoinedGroup(cluster, members: 5)
    var alive = Set(0..<5)
    for round in 1...2 {
      let current = try XCTUnwrap(leader(cluster, asking: alive.min() ?? 0))
      let victim = try XCTUnwrap(cluster.nodes.firstIndex { $0.peer == current })
      cluster.kill9(victim)
      alive.remove(victim)
      var agreed: String?
      let ok = cluster.eventually(within: .seconds(5)) {
        let views = Set(alive.map { leader(cluster, asking: $0) })
        guard views.count == 1, let view = views.first, let name = view, name != current else { return false }
        agreed = name
        return true
      }
      XCTAssertTrue(ok, "round \(round): the \(alive.count) survivors did not agree on a new leader")
      XCTAssertNotNil(agreed)
    }
  }

  func testWritesReachEveryMemberAndANewlyJoinedOne() throws {
    let cluster = try ProcessCluster(size: 4)
    defer { cluster.stopAll() }
    try startJoinedGroup(cluster, members: 3)
    for i in 0..<20 {
      XCTAssertEqual(try cluster.kvctl(0, "put", "key\(i)", "value\(i)").stdout, "OK\n")
    }
    func hasAll(_ node: Int) throws -> Bool {
      for i in 0..<20
      where try cluster.kvctl(node, "direct_get", "key\(i)").stdout != "Key:\tkey\(i)\nValue:\tvalue\(i)\n" {
        return false
      }
      return true
    }
    for node in 0..<3 {
      XCTAssertTrue(try cluster.eventually(within: .seconds(5)) { try hasAll(node) }, "node \(node)")
    }
    XCTAssertEqual(try cluster.kvctl(0, "join", cluster.nodes[3].peer, timeout: 20).stdout, "OK\n")
    XCTAssertTrue(try cluster.eventually(within: .seconds(5)) { try hasAll(3) }, "the joined node")
    // Joining a member again is fine.
    XCTAssertEqual(try cluster.kvctl(0, "join", cluster.nodes[3].peer).stdout, "OK\n")
  }

  func testStaticGroupKeepsEveryAcknowledgedWriteAcrossKill9OfAllNodes() throws {
    let cluster = try ProcessCluster(size: 3)
    defer { cluster.stopAll() }
    let peers = cluster.nodes.map(\.peer).joined(separator: ",")
    for i in 0..<3 { try cluster.start(i, ["--peers", peers]) }
    var acknowledged: [Int] = []
    for i in 0..<20 where try cluster.kvctl(i % 3, "put", "k\(i)", "v\(i)", timeout: 10).stdout == "OK\n" {
      acknowledged.append(i)
    }
    XCTAssertEqual(acknowledged.count, 20)
    for i in 0..<3 { cluster.kill9(i) }
    for i in 0..<3 { try cluster.start(i, ["--peers", peers]) }
    for i in acknowledged {
      let out = try cluster.kvctl(i % 3, "get", "k\(i)", timeout: 10)
      XCTAssertEqual(out.stdout, "Key:\tk\(i)\nValue:\tv\(i)\n", out.stderr)
    }
  }

  func testBadInputGetsClearErrors() throws {
    let cluster = try ProcessCluster(size: 1)
    defer { cluster.stopAll() }
    try cluster.start(0, ["-l"])
    XCTAssertTrue(cluster.eventually(within: .seconds(10)) { (try? cluster.kvctl(0, "leader").status) == 0 })
    let unknown = try cluster.kvctl(0, "frobnicate")
    XCTAssertNotEqual(unknown.status, 0)
    XCTAssertTrue(unknown.stderr.contains("unknown command"), unknown.stderr)
    let empty = try cluster.kvctl(0, "put", "", "v")
    XCTAssertNotEqual(empty.status, 0)
    XCTAssertTrue(empty.stderr.contains("empty"), empty.stderr)
    let missing = try cluster.kvctl(0, "get", "nope")
    XCTAssertEqual(missing.stdout, "Key:\tnope\nValue:\tERROR\n")
    XCTAssertEqual(missing.status, 1)
    let unreachable = try ProcessCluster.kvctl(["-a", "127.0.0.1:1", "--timeout", "1", "leader"])
    XCTAssertNotEqual(unreachable.status, 0)
    XCTAssertEqual(unreachable.stdout, "")
    // A busy port is a clear startup error.
    let clash = Process()
    clash.executableURL = ProcessCluster.binaries.appendingPathComponent("kvd")
    let spare = try ProcessCluster.freePorts(1)[0]
    clash.arguments = [
      "-a", cluster.nodes[0].api, "-p", "127.0.0.1:\(spare)", "--data", cluster.root + "/clash",
    ]
    let err = Pipe()
    clash.standardError = err
    clash.standardOutput = FileHandle.nullDevice
    try clash.run()
    let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    clash.waitUntilExit()
    XCTAssertNotEqual(clash.terminationStatus, 0)
    XCTAssertTrue(message.contains("kvd:"), message)
    // The node kept serving.
    XCTAssertEqual(try cluster.kvctl(0, "put", "a", "b").stdout, "OK\n")
  }
}
