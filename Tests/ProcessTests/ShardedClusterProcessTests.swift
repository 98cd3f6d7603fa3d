import Foundation
import XCTest

/// Sharded replica groups against real processes: shard controller replicas and KV groups on
/// loopback, driven through kvctl while shards move between groups as groups join and leave,
/// with group leaders, and then every process, killed with kill -9.
///
/// Roles: `cluster.roles[0]` are the controller replicas, `cluster.roles[g]` the members of
/// the group with GID g.
final class ShardedClusterProcessTests: XCTestCase {
  /// Raft timing short enough for a dozen processes on two cores to settle fast.
  private static let timing = ["--heartbeat-ms", "50", "--election-ms", "300"]

  /// `config --json`: {"num":N,"shards":[GID,...],"groups":{"GID":["API",...]}}.
  struct Configuration: Equatable {
    var num: Int
    var shards: [Int]
    var groups: [Int: [String]]
  }

  /// One entry of `shards --json`.
  struct ShardState {
    var shard: Int
    var state: String
    var keys: Int
    var bytes: Int
  }

  /// `shards --json`: {"group":G,"config":N,"shards":[{"shard":S,"state":...,"keys":K,"bytes":B},...]}.
  struct MemberShards {
    var group: Int
    var config: Int
    var shards: [ShardState]
  }

  /// One kvctl call on a node and the output it must give.
  struct Check {
    var node: Int
    var what: String
    var args: [String]
    var stdout: String
    var status: Int32

    func passes(_ out: ProcessCluster.Output) -> Bool {
      out.stdout == stdout && out.status == status
    }
  }

  func testShardsMoveBetweenGroupsUnderKillsAndRestarts() throws {
    let cluster = try ProcessCluster(roles: [3, 3, 3, 3])
    defer { cluster.stopAll() }
    let members = Array(cluster.roles[1...].joined())
    try startShardedCluster(cluster, shards: 8)

    // 1. Group 1 takes every shard; every member of every group (also of groups that are not in
    // the configuration yet) takes writes for any key.
    try groupJoin(cluster, 1)
    XCTAssertEqual(try requireConfiguration(cluster).shards, Array(repeating: 1, count: 8))
    try put(cluster, 0..<100, through: members)

    // 2. Group 2 joins: writes go on while half the shards move to it, and the leaders of both
    // groups die in the middle of it and come back a moment later.
    try groupJoin(cluster, 2)
    try put(cluster, 100..<125, through: members)
    let leader1 = try leader(cluster, of: cluster.roles[1])
    let leader2 = try leader(cluster, of: cluster.roles[2])
    cluster.kill9(leader1)
    cluster.kill9(leader2)
    try put(cluster, 125..<150, through: members)
    try cluster.restart(leader1)
    try cluster.restart(leader2)
    try put(cluster, 150..<200, through: members)

    // 3. Group 3 joins, then group 1 leaves; group 3's leader dies and comes back meanwhile.
    try groupJoin(cluster, 3)
    try put(cluster, 200..<250, through: members)
    let controllers = cluster.roles[0]
    let left = try cluster.kvctl(controllers[1], "group", "leave", "1", timeout: 15)
    try requireOK(left, "group leave 1", cluster, logsOf: controllers)
    XCTAssertTrue(
      left.stderr.contains("group 1 holds nothing"), "the leave waits for the drain: \(left.summary)")
    try put(cluster, 250..<265, through: members)
    let leader3 = try leader(cluster, of: cluster.roles[3])
    cluster.kill9(leader3)
    try put(cluster, 265..<285, through: members)
    try cluster.restart(leader3)
    try put(cluster, 285..<300, through: members)

    // 4. Every process dies at once, and all restart on their data.
    cluster.stopAll()
    for i in cluster.nodes.indices { try cluster.restart(i) }

    // 5. The moves finish: groups 2 and 3 serve the latest configuration, group 1 holds nothing.
    let (config, reports) = try settle(cluster, serving: [2, 3], drained: [1])
    guard config.shards.count == 8 else {
      throw failure(
        "config --json has \(config.shards.count) shards, not 8: \(config)", cluster, logsOf: controllers)
    }
    XCTAssertEqual(config.num, 4, "join 1, join 2, join 3, leave 1: \(config)")
    XCTAssertEqual(config.groups, [2: apiList(cluster, 2), 3: apiList(cluster, 3)])
    XCTAssertEqual(Set(config.shards), [2, 3], "\(config)")
    let keys = (0..<300).map(Self.key)
    checkHoldings(cluster, config, reports, serving: [2, 3], keys: keys)

    // 6. Every key reads back and is located in its group; every fourth key is stored by
    // exactly that group's members (step 5 counted every key on every member).
    verifyKeys(cluster, 0..<300, config: config)
  }

  /// `-l` and standby start work with `--group`: a group bootstrapped by one node takes a
  /// standby through `kvctl join`, which receives the data and the shard table; a data
  /// directory keeps its group, and `group join` refuses nodes that answer as something else.
  func testBootstrapAloneStandbyJoinAndGroupChecks() throws {
    let cluster = try ProcessCluster(roles: [1, 2, 1])
    defer { cluster.stopAll() }
    let controller = cluster.roles[0][0]
    let (first, standby) = (cluster.roles[1][0], cluster.roles[1][1])
    let standalone = cluster.roles[2][0]
    let controllerAPI = cluster.apis([controller])
    try cluster.start(controller, ["--controller", "--peers", cluster.peers([controller]), "--shards", "4"])
    try cluster.start(first, ["-l", "--group", "1", "--controllers", controllerAPI] + Self.timing)
    try cluster.start(standby, ["--group", "1", "--controllers", controllerAPI] + Self.timing)
    try cluster.start(standalone, ["-l"] + Self.timing)
    for node in [controller, first, standby, standalone] {
      let answers = try cluster.eventually(within: .seconds(15)) {
        try cluster.kvctl(node, "status").status == 0
      }
      guard answers else { throw failure("node \(node) does not answer status", cluster, logsOf: [node]) }
    }

    // group join checks what each node says it is, and refuses (exit 4, rejected) a wrong one.
    var out = try cluster.kvctl(controller, "group", "join", "2", cluster.apis([first]), timeout: 15)
    XCTAssertEqual(out.status, 4, out.summary)
    XCTAssertTrue(out.stderr.contains("is a member of group 1, not of group 2"), out.summary)
    out = try cluster.kvctl(controller, "group", "join", "2", cluster.apis([standalone]), timeout: 15)
    XCTAssertEqual(out.status, 4, out.summary)
    XCTAssertTrue(out.stderr.contains("is a standalone store"), out.summary)
    out = try cluster.kvctl(controller, "group", "join", "2", controllerAPI, timeout: 15)
    XCTAssertEqual(out.status, 4, out.summary)
    XCTAssertTrue(out.stderr.contains("is a shard controller replica"), out.summary)
    out = try cluster.kvctl(controller, "group", "join", "1", cluster.apis([first]), timeout: 15)
    try requireOK(out, "group join 1", cluster, logsOf: [controller, first])

    let keys = (0..<10).map { "k\($0)" }
    for key in keys {
      try requireOK(
        try cluster.kvctl(first, "put", key, "v-\(key)", timeout: 20), "put \(key)", cluster, logsOf: [first])
    }
    out = try cluster.kvctl(first, "join", cluster.nodes[standby].peer, timeout: 30)
    try requireOK(out, "join the standby", cluster, logsOf: [first, standby])
    let caughtUp = try cluster.eventually(within: .seconds(20)) {
      try keys.allSatisfy { key in
        try cluster.kvctl(standby, "direct_get", key).stdout == "Key:\t\(key)\nValue:\tv-\(key)\n"
      }
    }
    XCTAssertTrue(caughtUp, "the standby holds every key: \(cluster.logTails([first, standby]))")
    out = try cluster.kvctl(standby, "shards", "--json")
    XCTAssertTrue(out.stdout.hasPrefix("{\"group\":1,\"config\":1,"), out.summary)
    XCTAssertEqual(out.stdout.components(separatedBy: "\"state\":\"serving\"").count - 1, 4, out.summary)

    // The standby's data directory belongs to group 1: started as a standalone store, it refuses.
    cluster.kill9(standby)
    try cluster.start(standby, Self.timing)
    let exited = cluster.eventually(within: .seconds(10)) { !cluster.isRunning(standby) }
    XCTAssertTrue(exited, "a group member's data opened as a standalone store must refuse to start")
    XCTAssertTrue(
      cluster.logTail(standby).contains("belongs to group 1"),
      "the refusal says why: \(cluster.logTail(standby))")
  }

  func testWrongGroupRedirectAndLocate() throws {
    let cluster = try ProcessCluster(roles: [1, 1, 1])
    defer { cluster.stopAll() }
    try startShardedCluster(cluster, shards: 4)
    let controller = cluster.roles[0][0]
    let member1 = cluster.roles[1][0]
    let member2 = cluster.roles[2][0]
    try groupJoin(cluster, 1)
    try groupJoin(cluster, 2)
    let config = try requireConfiguration(cluster)
    guard config.shards.count == 4 else {
      throw failure(
        "config --json has \(config.shards.count) shards, not 4: \(config)", cluster, logsOf: [controller])
    }
    XCTAssertEqual(config.num, 2, "\(config)")
    XCTAssertEqual(Set(config.shards), [1, 2], "\(config)")
    XCTAssertEqual(config.groups, [1: apiList(cluster, 1), 2: apiList(cluster, 2)])

    // Every put goes through group 1's member, also for keys of group 2's shards.
    let keys = (0..<20).map { "user\($0)" }
    var owners: [String: Int] = [:]
    for key in keys {
      let out = try cluster.kvctl(member1, "put", key, "value-\(key)", timeout: 20)
      try requireOK(
        out, "put \(key) through group 1's member", cluster, logsOf: [member1, member2, controller])
      let shard = Self.shard(of: key, count: 4)
      owners[key] = config.shards[shard]
      for node in [member1, member2, controller] {
        let located = try cluster.kvctl(node, "locate", key, timeout: 10)
        XCTAssertEqual(
          located.stdout, "Shard:\t\(shard)\nGroup:\t\(config.shards[shard])\n",
          "locate \(key) on node \(node) (configuration \(config.shards)): \(located.summary)")
        XCTAssertEqual(located.status, 0, located.summary)
      }
    }
    XCTAssertTrue(owners.values.contains(2), "no key is in group 2's shards: the redirect went untested")
    XCTAssertTrue(owners.values.contains(1), "no key is in group 1's shards")

    // Each member serves exactly the shards the configuration gives its group.
    let (settled, reports) = try settle(cluster, serving: [1, 2], drained: [], within: .seconds(20))
    XCTAssertEqual(settled, config, "the configuration changed under the test")
    checkHoldings(cluster, settled, reports, serving: [1, 2], keys: keys)

    // Reads through group 2's member follow the redirect the other way.
    for key in keys {
      let out = try cluster.kvctl(member2, "get", key, timeout: 10)
      XCTAssertEqual(
        out.stdout, "Key:\t\(key)\nValue:\tvalue-\(key)\n", "get \(key) on group 2's member: \(out.summary)")
    }

    // A delete through the wrong group reaches the owner.
    let victim = try XCTUnwrap(keys.first { owners[$0] == 2 })
    let deleted = try cluster.kvctl(member1, "del", victim, timeout: 10)
    try requireOK(deleted, "del \(victim) through group 1's member", cluster, logsOf: [member1, member2])
    let gone = try cluster.kvctl(member2, "get", victim, timeout: 10)
    XCTAssertEqual(gone.stdout, "Key:\t\(victim)\nValue:\tERROR\n", gone.summary)
    XCTAssertEqual(gone.status, 1, gone.summary)

    // An empty key has no shard.
    let empty = try cluster.kvctl(member1, "locate", "", timeout: 5)
    XCTAssertNotEqual(empty.status, 0, empty.summary)
    XCTAssertFalse(
      empty.stderr.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "no message: \(empty.summary)")
  }

  // MARK: - Steps

  /// Starts the controller replicas (role 0, with `--shards shards`) and one KV group per
  /// further role (GID = the role's index); returns once each has elected a leader.
  private func startShardedCluster(_ cluster: ProcessCluster, shards: Int) throws {
    let controllers = cluster.roles[0]
    for i in controllers {
      try cluster.start(
        i, ["--controller", "--peers", cluster.peers(controllers), "--shards", "\(shards)"] + Self.timing)
    }
    for gid in 1..<cluster.roles.count {
      let members = cluster.roles[gid]
      let flags =
        ["--peers", cluster.peers(members), "--group", "\(gid)", "--controllers", cluster.apis(controllers)]
        + Self.timing
      for i in members { try cluster.start(i, flags) }
    }
    for role in cluster.roles { _ = try leader(cluster, of: role) }
  }

  /// `group join GID <the group's API addresses>` on a controller replica; must print OK.
  private func groupJoin(_ cluster: ProcessCluster, _ gid: Int) throws {
    let controllers = cluster.roles[0]
    let out = try cluster.kvctl(
      controllers[gid % controllers.count], "group", "join", "\(gid)", cluster.apis(cluster.roles[gid]),
      timeout: 15)
    try requireOK(out, "group join \(gid)", cluster, logsOf: controllers)
  }

  /// The node that `members` follow as their leader (it must be one of them, and running), as
  /// the first running member that knows one says; waits up to 15 s for one.
  private func leader(_ cluster: ProcessCluster, of members: [Int]) throws -> Int {
    var found: Int?
    var answers: [String] = []
    var exited = false
    let known = try cluster.eventually(within: .seconds(15)) {
      answers = []
      guard members.contains(where: { cluster.isRunning($0) }) else {
        exited = true
        return true
      }
      for i in members where cluster.isRunning(i) {
        let out = try cluster.kvctl(i, "leader", timeout: 2)
        let peer = out.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let node = out.status == 0 ? cluster.node(peer: peer) : nil
        if let node, members.contains(node), cluster.isRunning(node) {
          found = node
          return true
        }
        answers.append("node \(i): \(out.summary)")
      }
      return false
    }
    guard known, !exited, let found else {
      let why = exited ? "every one of them has exited" : "last answers:\n" + answers.joined(separator: "\n")
      throw failure("nodes \(members) have no running leader among them: \(why)", cluster, logsOf: members)
    }
    return found
  }

  /// Puts k<i> = v<i> for each i in `keys`, round-robin over those of `members` that are
  /// running, four at a time; every put must print OK (the first that does not ends the step).
  private func put(_ cluster: ProcessCluster, _ keys: Range<Int>, through members: [Int]) throws {
    let live = members.filter { cluster.isRunning($0) }
    guard !live.isEmpty else { throw ProcessTestFailure(description: "no member of \(members) is running") }
    let checks = keys.map { i in
      Check(
        node: live[i % live.count], what: "put \(Self.key(i)) \(Self.value(i))",
        args: ["put", Self.key(i), Self.value(i)],
        stdout: "OK\n", status: 0)
    }
    let outs = try run(cluster, checks, timeout: 30, parallel: 4, giveUpAfter: 1)
    for (check, out) in zip(checks, outs) where !check.passes(out) {
      let gid = group(cluster, of: check.node)
      throw failure(
        "\(check.what) through node \(check.node) (group \(gid)): expected OK, got \(out.summary)", cluster,
        logsOf: cluster.roles[gid] + [cluster.roles[0][0]])
    }
  }

  /// Waits (`limit` at most) until every member of the `serving` groups reports the controller's
  /// latest configuration and only serving shards, and every member of the `drained` groups
  /// holds no shard at all; returns that configuration and the members' reports.
  private func settle(
    _ cluster: ProcessCluster, serving: [Int], drained: [Int], within limit: Duration = .seconds(60)
  ) throws -> (Configuration, [Int: MemberShards]) {
    let controller = cluster.roles[0][0]
    let nodes = (serving + drained).flatMap { cluster.roles[$0] }
    var config: Configuration?
    var reports: [Int: MemberShards] = [:]
    var why = "not checked"
    var laggards: Set<Int> = []
    let settled = try cluster.eventually(within: limit) {
      let out = try cluster.kvctl(controller, "config", "--json", timeout: 5)
      guard out.status == 0, let latest = Self.parseConfiguration(out.stdout) else {
        why = "config --json on controller node \(controller): \(out.summary)"
        laggards = [controller]
        return false
      }
      config = latest
      reports = [:]
      laggards = []
      var problems: [String] = []
      let outs = try ProcessCluster.kvctlAll(
        nodes.map { cluster.kvctlArguments($0, "shards", "--json", timeout: 5) }, watchdog: .seconds(35))
      for (node, out) in zip(nodes, outs) {
        let gid = group(cluster, of: node)
        guard out.status == 0, let report = Self.parseMemberShards(out.stdout) else {
          problems.append("node \(node) of group \(gid): shards --json gave \(out.summary)")
          laggards.insert(node)
          continue
        }
        reports[node] = report
        if report.group != gid {
          problems.append("node \(node) of group \(gid) reports group \(report.group): \(out.stdout)")
          laggards.insert(node)
        } else if drained.contains(gid) {
          if !report.shards.isEmpty {
            problems.append("node \(node) of group \(gid), which left, still holds shards: \(out.stdout)")
            laggards.insert(node)
          }
        } else if report.config != latest.num || report.shards.contains(where: { $0.state != "serving" }) {
          problems.append(
            "node \(node) of group \(gid) is not serving configuration \(latest.num): \(out.stdout)")
          laggards.insert(node)
        }
      }
      why = problems.joined(separator: "\n")
      if !problems.isEmpty { usleep(200_000) }
      return problems.isEmpty
    }
    guard settled, let config else {
      throw failure(
        "the shard moves did not finish within \(limit) (latest configuration: "
          + "\(config.map { "\($0)" } ?? "none")):\n\(why)", cluster,
        logsOf: Array(laggards.sorted().prefix(4)) + [controller])
    }
    return (config, reports)
  }

  /// Each member of the `serving` groups lists exactly the shards the configuration gives its
  /// group, each holding as many keys as the test wrote of `keys` to that shard.
  private func checkHoldings(
    _ cluster: ProcessCluster, _ config: Configuration, _ reports: [Int: MemberShards], serving: [Int],
    keys: [String]
  ) {
    let keysPerShard = Dictionary(grouping: keys) { Self.shard(of: $0, count: config.shards.count) }
      .mapValues(\.count)
    for gid in serving {
      let assigned = Set(config.shards.indices.filter { config.shards[$0] == gid })
      XCTAssertFalse(assigned.isEmpty, "configuration \(config) gives group \(gid) no shard")
      for node in cluster.roles[gid] {
        guard let report = reports[node] else {
          XCTFail("no shards --json report from node \(node) of group \(gid)")
          continue
        }
        let listed = report.shards.map(\.shard)
        XCTAssertEqual(
          Set(listed), assigned, "node \(node) of group \(gid): shards listed vs. configuration \(config)")
        XCTAssertEqual(listed.count, Set(listed).count, "node \(node) lists a shard twice: \(listed)")
        for entry in report.shards {
          XCTAssertEqual(
            entry.keys, keysPerShard[entry.shard] ?? 0,
            "keys in shard \(entry.shard) on node \(node) of group \(gid) (the test wrote that many there)")
          XCTAssertGreaterThanOrEqual(entry.bytes, 0, "bytes of shard \(entry.shard) on node \(node)")
        }
      }
    }
  }

  /// Every key k<i> of `keys` reads back v<i> through `get` on some member, `locate` names its
  /// shard and the group the configuration gives that shard, and `direct_get` finds every
  /// fourth key on every member of that group and on no member of any other group. (That
  /// every member holds every key of its shards is checked by count, `checkHoldings`; a
  /// `direct_get` of every key on every member was 2,700 kvctl processes, over two minutes of
  /// CI.)
  private func verifyKeys(_ cluster: ProcessCluster, _ keys: Range<Int>, config: Configuration) {
    let members = Array(cluster.roles[1...].joined())
    func owner(_ i: Int) -> Int {
      config.shards[Self.shard(of: Self.key(i), count: config.shards.count)]
    }
    let gets = keys.map { i in
      Check(
        node: members[i % members.count], what: "get \(Self.key(i))", args: ["get", Self.key(i)],
        stdout: "Key:\t\(Self.key(i))\nValue:\t\(Self.value(i))\n", status: 0)
    }
    let locates = keys.map { i in
      Check(
        node: members[(i + 1) % members.count], what: "locate \(Self.key(i))", args: ["locate", Self.key(i)],
        stdout: "Shard:\t\(Self.shard(of: Self.key(i), count: config.shards.count))\nGroup:\t\(owner(i))\n",
        status: 0)
    }
    let directGets = keys.filter { $0 % 4 == 0 }.flatMap { i in
      members.map { node in
        let owned = group(cluster, of: node) == owner(i)
        return Check(
          node: node, what: "direct_get \(Self.key(i)) (owner: group \(owner(i)))",
          args: ["direct_get", Self.key(i)],
          stdout: "Key:\t\(Self.key(i))\nValue:\t\(owned ? Self.value(i) : "ERROR")\n", status: owned ? 0 : 1)
      }
    }
    var problems: [String] = []
    var problemNodes: Set<Int> = []
    for (kind, checks, timeout, parallel) in [
      ("get", gets, 15, 6), ("locate", locates, 10, 6), ("direct_get", directGets, 5, 8),
    ] {
      do {
        let outs = try run(cluster, checks, timeout: timeout, parallel: parallel, giveUpAfter: 20)
        for (check, out) in zip(checks, outs) where !check.passes(out) {
          problems.append(
            "\(check.what) on node \(check.node) (group \(group(cluster, of: check.node))): expected "
              + "\(check.stdout.debugDescription) and exit status \(check.status), got \(out.summary)")
          problemNodes.insert(check.node)
        }
        if outs.count < checks.count {
          problems.append("(gave up after 20 failures: \(checks.count - outs.count) \(kind) checks not run)")
        }
      } catch {
        problems.append("\(kind): kvctl could not be run: \(error)")
      }
    }
    if !problems.isEmpty {
      XCTFail(
        "\(problems.count) problems with the keys; the first ones:\n"
          + problems.prefix(40).joined(separator: "\n") + "\n"
          + cluster.logTails(Array(problemNodes.sorted().prefix(4))))
    }
  }

  /// Runs the checks' kvctl calls, `parallel` at a time, until `giveUpAfter` of them have failed;
  /// returns the outputs of those run (a prefix of `checks`), in order.
  private func run(
    _ cluster: ProcessCluster, _ checks: [Check], timeout: Int, parallel: Int, giveUpAfter limit: Int
  ) throws -> [ProcessCluster.Output] {
    var failures = 0
    return try ProcessCluster.kvctlAll(
      checks.map { ["-a", cluster.nodes[$0.node].api, "--timeout", "\(timeout)"] + $0.args },
      parallel: parallel,
      watchdog: .seconds(timeout + 30)
    ) { index, out in
      if !checks[index].passes(out) { failures += 1 }
      return failures >= limit
    }
  }

  // MARK: - Helpers

  private static func key(_ i: Int) -> String {
    "k" + String(repeating: "0", count: max(0, 3 - String(i).count)) + String(i)
  }

  private static func value(_ i: Int) -> String {
    "v\(i)"
  }

  /// The shard of `key` among `count` shards, computed here independently of the server: the
  /// ShardMap contract (FNV-1a 64 over the key's bytes, the SplitMix64 finalizer, then the high
  /// 64 bits of hash × count). The test's keys have no hash tags.
  private static func shard(of key: String, count: Int) -> Int {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in key.utf8 {
      hash ^= UInt64(byte)
      hash = hash &* 0x100_0000_01b3
    }
    hash = (hash ^ (hash >> 30)) &* 0xBF58_476D_1CE4_E5B9
    hash = (hash ^ (hash >> 27)) &* 0x94D0_49BB_1331_11EB
    hash ^= hash >> 31
    return Int(hash.multipliedFullWidth(by: UInt64(count)).high)
  }

  /// The GID of the group `node` is a member of (0 for a controller replica).
  private func group(_ cluster: ProcessCluster, of node: Int) -> Int {
    cluster.roles.firstIndex { $0.contains(node) } ?? -1
  }

  /// The API addresses of group `gid`'s members, in the order `group join` was given them.
  private func apiList(_ cluster: ProcessCluster, _ gid: Int) -> [String] {
    cluster.roles[gid].map { cluster.nodes[$0].api }
  }

  private func failure(
    _ message: String, _ cluster: ProcessCluster, logsOf nodes: [Int]
  ) -> ProcessTestFailure {
    ProcessTestFailure(description: message + "\n" + cluster.logTails(nodes))
  }

  private func requireOK(
    _ out: ProcessCluster.Output, _ what: String, _ cluster: ProcessCluster, logsOf nodes: [Int]
  ) throws {
    guard out.stdout == "OK\n", out.status == 0 else {
      throw failure("\(what): expected OK, got \(out.summary)", cluster, logsOf: nodes)
    }
  }

  /// The latest configuration, from a controller replica's `config --json`.
  private func requireConfiguration(_ cluster: ProcessCluster) throws -> Configuration {
    let controllers = cluster.roles[0]
    let out = try cluster.kvctl(controllers[0], "config", "--json", timeout: 10)
    guard out.status == 0, let config = Self.parseConfiguration(out.stdout) else {
      throw failure("config --json: \(out.summary)", cluster, logsOf: controllers)
    }
    return config
  }

  // MARK: - JSON

  /// The JSON object that `text` holds on one line, or nil.
  private static func jsonObject(_ text: String) -> [String: Any]? {
    let line = text.hasSuffix("\n") ? String(text.dropLast()) : text
    guard !line.contains("\n"), let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) else {
      return nil
    }
    return object as? [String: Any]
  }

  private static func int(_ value: Any?) -> Int? {
    if let int = value as? Int { return int }
    return (value as? NSNumber)?.intValue
  }

  private static func parseConfiguration(_ text: String) -> Configuration? {
    guard
      let object = jsonObject(text), let num = int(object["num"]), let shardList = object["shards"] as? [Any],
      let groupObject = object["groups"] as? [String: Any]
    else { return nil }
    let shards = shardList.compactMap { int($0) }
    guard !shards.isEmpty, shards.count == shardList.count else { return nil }
    var groups: [Int: [String]] = [:]
    for (gid, value) in groupObject {
      guard let id = Int(gid), let list = value as? [Any] else { return nil }
      let addresses = list.compactMap { $0 as? String }
      guard addresses.count == list.count else { return nil }
      groups[id] = addresses
    }
    return Configuration(num: num, shards: shards, groups: groups)
  }

  private static func parseMemberShards(_ text: String) -> MemberShards? {
    guard
      let object = jsonObject(text), let group = int(object["group"]), let config = int(object["config"]),
      let list = object["shards"] as? [Any]
    else { return nil }
    var shards: [ShardState] = []
    for item in list {
      guard
        let entry = item as? [String: Any], let shard = int(entry["shard"]),
        let state = entry["state"] as? String,
        ["serving", "pulling", "handing_off"].contains(state), let keys = int(entry["keys"]),
        let bytes = int(entry["bytes"])
      else { return nil }
      shards.append(ShardState(shard: shard, state: state, keys: keys, bytes: bytes))
    }
    return MemberShards(group: group, config: config, shards: shards)
  }
}
