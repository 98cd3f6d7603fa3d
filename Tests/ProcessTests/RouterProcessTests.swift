import Foundation
import XCTest

/// A real cluster behind a real router: a controller, two groups, `kvd --router --resp`; kvctl
/// data and admin commands through the router, the real redis-cli and redis-benchmark against
/// its RESP port, and a node that joins a group through the router (JOIN_CLUSTER).
final class RouterProcessTests: XCTestCase {
  private static let timing = ["--heartbeat-ms", "50", "--election-ms", "300"]

  func testRouterServesKvctlRedisAndJoinCluster() throws {
    // Nodes: 0 controller; 1, 2, 3 group 1; 4 group 2; 5 the router (its peer port is the RESP
    // port); 6 a node that joins group 2 through the router; 7's port serves the router's
    // metrics.
    let cluster = try ProcessCluster(size: 8)
    defer { cluster.stopAll() }
    let controller = cluster.nodes[0].api
    try cluster.start(0, ["--controller", "--peers", cluster.nodes[0].peer, "--shards", "8"] + Self.timing)
    for i in 1...3 {
      try cluster.start(
        i, ["--peers", cluster.peers([1, 2, 3]), "--group", "1", "--controllers", controller] + Self.timing)
    }
    try cluster.start(4, ["-l", "--group", "2", "--controllers", controller] + Self.timing)
    let router = cluster.nodes[5].api
    let resp = cluster.nodes[5].peer
    let respPort = String(resp.split(separator: ":").last ?? "")
    let routerMetrics = cluster.nodes[7].api  // slot 7 only lends the router a free port
    try cluster.start(
      5,
      arguments: [
        "--router", "-a", router, "--controllers", controller, "--resp", resp, "--metrics", routerMetrics,
      ])
    let up = try cluster.eventually(within: .seconds(20)) {
      try [0, 1, 4, 5].allSatisfy { try cluster.kvctl($0, "status").status == 0 }
    }
    XCTAssertTrue(up, cluster.logTails([0, 1, 4, 5]))

    // Admin through the router.
    var out = try cluster.kvctl(address: router, "group", "join", "1", cluster.apis([1, 2, 3]), timeout: 15)
    XCTAssertEqual(out.stdout, "OK\n", out.summary + cluster.logTails([0, 5]))
    out = try cluster.kvctl(address: router, "group", "join", "2", cluster.apis([4]), timeout: 15)
    XCTAssertEqual(out.stdout, "OK\n", out.summary)
    out = try cluster.kvctl(address: router, "config", "--json", timeout: 10)
    XCTAssertTrue(out.stdout.hasPrefix("{\"num\":2,"), out.summary)

    // Data through the router, with the same output as against a member.
    for i in 0..<20 {
      out = try cluster.kvctl(address: router, "put", "key\(i)", "value\(i)", timeout: 20)
      XCTAssertEqual(out.stdout, "OK\n", out.summary + cluster.logTails([1, 4, 5]))
    }
    out = try cluster.kvctl(address: router, "get", "key7", timeout: 10)
    XCTAssertEqual(out.stdout, "Key:\tkey7\nValue:\tvalue7\n", out.summary)
    out = try cluster.kvctl(address: router, "del", "key7", timeout: 10)
    XCTAssertEqual(out.stdout, "OK\n", out.summary)
    out = try cluster.kvctl(address: router, "get", "key7", timeout: 10)
    XCTAssertEqual(out.status, 1, out.summary)
    XCTAssertEqual(out.stdout, "Key:\tkey7\nValue:\tERROR\n", out.summary)
    out = try cluster.kvctl(address: router, "locate", "key3", timeout: 10)
    XCTAssertTrue(out.stdout.hasPrefix("Shard:\t"), out.summary)
    out = try cluster.kvctl(address: router, "migrations", timeout: 10)
    XCTAssertEqual(out.status, 0, out.summary)
    XCTAssertTrue(out.stdout.hasPrefix("Config:\t2\n"), out.summary)
    out = try cluster.kvctl(address: router, "status", timeout: 10)
    XCTAssertTrue(out.stdout.contains("Router:\t\(router)"), out.summary)
    XCTAssertTrue(out.stdout.contains("Config:\t2"), out.summary)

    // The real redis-cli.
    func redis(_ args: String...) throws -> ProcessCluster.Output {
      try ProcessCluster.tool(
        "redis-cli", ["-h", "127.0.0.1", "-p", respPort] + args, watchdog: .seconds(30))
    }
    XCTAssertEqual(try redis("PING").stdout, "PONG\n")
    XCTAssertEqual(try redis("SET", "greeting", "hello world").stdout, "OK\n")
    XCTAssertEqual(try redis("GET", "greeting").stdout, "hello world\n")
    XCTAssertEqual(try redis("APPEND", "greeting", "!").stdout, "12\n")
    XCTAssertEqual(try redis("STRLEN", "greeting").stdout, "12\n")
    XCTAssertEqual(try redis("EXISTS", "greeting", "key1", "nothing").stdout, "2\n")
    XCTAssertEqual(try redis("MSET", "{u}a", "1", "{u}b", "2").stdout, "OK\n")
    XCTAssertEqual(try redis("MGET", "{u}a", "{u}b", "nothing").stdout, "1\n2\n\n")
    XCTAssertEqual(try redis("DEL", "{u}a", "{u}b", "nothing").stdout, "2\n")
    XCTAssertEqual(try redis("GET", "key1").stdout, "value1\n", "RESP and kvctl see the same data")
    XCTAssertTrue(try redis("SET", "k", "v", "EX", "10").stdout.contains("ERR"), "SET options are refused")
    XCTAssertTrue(try redis("NOSUCHCOMMAND").stdout.contains("ERR unknown command"))
    XCTAssertTrue(try redis("GET").stdout.contains("ERR wrong number of arguments"))
    XCTAssertTrue(try redis("INFO").stdout.contains("redis_version"))

    // The real redis-benchmark finishes without an error.
    out = try ProcessCluster.tool(
      "redis-benchmark",
      ["-h", "127.0.0.1", "-p", respPort, "-t", "set,get", "-n", "20000", "-P", "16", "-q"],
      watchdog: .seconds(240))
    XCTAssertEqual(out.status, 0, out.summary + cluster.logTails([5]))
    XCTAssertTrue(out.stdout.contains("SET:") && out.stdout.contains("GET:"), out.summary)
    XCTAssertFalse(out.stdout.contains("ERR") || out.stderr.contains("ERR"), out.summary)

    // The router counts what it forwarded.
    let metricsOut = try ProcessCluster.tool(
      "curl", ["-s", "http://\(routerMetrics)/metrics"], watchdog: .seconds(10))
    let forwards = metricsOut.stdout.split(separator: "\n").first {
      $0.hasPrefix("shardkv_router_forwards_total ")
    }
    XCTAssertGreaterThan(
      forwards.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0, 40000,
      "\(metricsOut.summary.prefix(2000))")

    // JOIN_CLUSTER: a new node asks the router to add it to group 2.
    try cluster.start(6, ["-c", router, "--group", "2"] + Self.timing)
    let joined = try cluster.eventually(within: .seconds(30)) {
      try cluster.kvctl(address: router, "config", "--json").stdout.contains(cluster.nodes[6].api)
    }
    XCTAssertTrue(joined, "the controller lists the new member: \(cluster.logTails([4, 5, 6]))")
    // It holds group 2's data: some key of group 2 is readable from its own store.
    let config = try cluster.kvctl(address: router, "config", "--json").stdout
    let groupTwoKey = try (0..<20).filter { $0 != 7 }.map { "key\($0)" }.first { key in
      try cluster.kvctl(address: router, "locate", key).stdout.hasSuffix("Group:\t2\n")
    }
    let key = try XCTUnwrap(groupTwoKey, "some key lives in group 2: \(config)")
    let replicated = try cluster.eventually(within: .seconds(20)) {
      try cluster.kvctl(6, "direct_get", key).stdout == "Key:\t\(key)\nValue:\tvalue\(key.dropFirst(3))\n"
    }
    XCTAssertTrue(replicated, "the joined node holds \(key): \(cluster.logTails([4, 6]))")
  }
}
