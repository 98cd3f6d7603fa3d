import Foundation
import XCTest

/// `kvctl rebalance` against a real cluster behind a real router: a controller with 8 shards,
/// two one-member groups, 100 keys of uneven sizes, every shard moved to group 1 by hand; then a
/// dry run (changes nothing), a full run by size (balanced within the threshold, every key
/// readable), and a run interrupted with SIGINT (exit 130, every key readable).
final class RebalanceProcessTests: XCTestCase {
  private static let timing = ["--heartbeat-ms", "50", "--election-ms", "300"]
  private static let keyCount = 100

  private static func key(_ i: Int) -> String { "rb:\(i)" }

  /// Uneven values: 200 B to about 29 KB.
  private static func value(_ i: Int) -> String {
    String(repeating: Character(UnicodeScalar(UInt8(97 + i % 26))), count: 200 + (i * 7919) % 97 * 300)
  }

  /// `config --json` through the router: the configuration number and each shard's owner.
  private struct Configuration {
    var num: Int
    var shards: [Int]
  }

  /// `shards --json` of one member: its configuration number and, per shard, state and bytes.
  private struct Holdings {
    var config: Int
    var shards: [Int: (state: String, bytes: Int)]
  }

  func testRebalanceBySizeDryRunAndInterrupt() throws {
    // Nodes: 0 controller, 1 group 1, 2 group 2, 3 the router.
    let cluster = try ProcessCluster(size: 4)
    defer { cluster.stopAll() }
    let controller = cluster.nodes[0].api
    try cluster.start(0, ["--controller", "--peers", cluster.nodes[0].peer, "--shards", "8"] + Self.timing)
    try cluster.start(1, ["-l", "--group", "1", "--controllers", controller] + Self.timing)
    try cluster.start(2, ["-l", "--group", "2", "--controllers", controller] + Self.timing)
    let router = cluster.nodes[3].api
    try cluster.start(3, arguments: ["--router", "-a", router, "--controllers", controller])
    let up = try cluster.eventually(within: .seconds(20)) {
      try [0, 1, 2, 3].allSatisfy { try cluster.kvctl($0, "status").status == 0 }
    }
    guard up else { throw failure("the cluster did not start", cluster) }

    // Group 1 takes every shard and the keys; group 2 joins; every shard goes back to group 1.
    try requireOK(
      try cluster.kvctl(address: router, "group", "join", "1", cluster.apis([1]), timeout: 15), cluster)
    try putAll(cluster, router)
    try requireOK(
      try cluster.kvctl(address: router, "group", "join", "2", cluster.apis([2]), timeout: 15), cluster)
    try moveEverythingToGroupOne(cluster, router)

    // A dry run prints the plan and changes nothing.
    let before = try settle(cluster, router)
    var out = try cluster.kvctl(address: router, "rebalance", "--by", "size", "--dry-run", timeout: 15)
    XCTAssertEqual(out.status, 0, out.summary)
    XCTAssertTrue(out.stdout.contains("Dry run: nothing was changed."), out.summary)
    XCTAssertGreaterThan(planLines(out.stdout).count, 0, out.summary)
    XCTAssertEqual(try configuration(cluster, router).num, before.num, "a dry run changes nothing")

    // A full run by size, through a pipe: the plan, one progress line per move, exit 0.
    out = try cluster.kvctl(
      address: router, "rebalance", "--by", "size", "--max-concurrent", "1", "--yes", timeout: 15)
    XCTAssertEqual(out.status, 0, out.summary + cluster.logTails([0, 1, 2, 3]))
    let planned = planLines(out.stdout)
    let header = try XCTUnwrap(
      out.stdout.split(separator: "\n").first { $0.hasPrefix("Plan by size") }, out.summary)
    XCTAssertTrue(header.contains(": \(planned.count) move"), "\(header) announces \(planned.count) moves")
    XCTAssertGreaterThan(planned.count, 0, out.summary)
    let progress = out.stdout.split(separator: "\n").filter { $0.hasPrefix("moved shard ") }
    XCTAssertEqual(progress.count, planned.count, "one progress line per move: \(out.summary)")
    for (line, move) in zip(progress, planned) {
      XCTAssertTrue(line.hasPrefix("moved " + move + " in "), "\(line) reports \(move)")
    }
    XCTAssertTrue(out.stdout.contains("Done: \(planned.count) move"), out.summary)
    XCTAssertTrue(out.stdout.contains("Balance before -> after:"), out.summary)

    // The configuration is balanced by size: each group within 5% of the mean.
    let after = try settle(cluster, router)
    XCTAssertEqual(after.num, before.num + planned.count, "one configuration per move")
    let loads = try [1, 2].map { try holdings(cluster, node: $0).shards.values.reduce(0) { $0 + $1.bytes } }
    let mean = Double(loads.reduce(0, +)) / 2
    for (gid, load) in zip([1, 2], loads) {
      XCTAssertLessThanOrEqual(
        abs(Double(load) - mean), 0.05 * mean, "group \(gid) holds \(load) bytes, the mean is \(mean)")
    }
    try checkEveryKey(cluster, router)

    // Again unbalanced; a paced run interrupted with SIGINT after its first move finishes every
    // move in flight, starts no other, says so, and exits 130.
    try moveEverythingToGroupOne(cluster, router)
    let start = try settle(cluster, router)
    let interrupted = try interruptAfterFirstMove(
      [
        "-a", router, "--timeout", "15", "rebalance", "--by", "size", "--max-concurrent", "1", "--yes",
        "--rate",
        "0.1",
      ], cluster)
    XCTAssertEqual(interrupted.status, 130, interrupted.summary + cluster.logTails([0, 1, 2, 3]))
    let total = planLines(interrupted.stdout).count
    let done = interrupted.stdout.split(separator: "\n").filter { $0.hasPrefix("moved shard ") }.count
    XCTAssertGreaterThanOrEqual(done, 1, interrupted.summary)
    XCTAssertLessThan(done, total, "the interrupt left moves not started: \(interrupted.summary)")
    XCTAssertTrue(
      interrupted.stdout.contains("Interrupted: \(done) of \(total) moves done"), interrupted.summary)
    let end = try settle(cluster, router)
    XCTAssertEqual(end.num, start.num + done, "only the moves reported done were made")
    try checkEveryKey(cluster, router)
  }

  // MARK: - Steps

  private func putAll(_ cluster: ProcessCluster, _ router: String) throws {
    let invocations = (0..<Self.keyCount).map {
      ["-a", router, "--timeout", "20", "put", Self.key($0), Self.value($0)]
    }
    let outs = try ProcessCluster.kvctlAll(invocations, parallel: 4) { _, out in out.stdout != "OK\n" }
    for (i, out) in outs.enumerated() where out.stdout != "OK\n" {
      throw failure("put \(Self.key(i)): \(out.summary)", cluster)
    }
    guard outs.count == Self.keyCount else { throw failure("only \(outs.count) puts ran", cluster) }
  }

  private func checkEveryKey(_ cluster: ProcessCluster, _ router: String) throws {
    let invocations = (0..<Self.keyCount).map { ["-a", router, "--timeout", "20", "get", Self.key($0)] }
    let outs = try ProcessCluster.kvctlAll(invocations, parallel: 4)
    XCTAssertEqual(outs.count, Self.keyCount)
    for (i, out) in outs.enumerated() {
      XCTAssertEqual(
        out.stdout, "Key:\t\(Self.key(i))\nValue:\t\(Self.value(i))\n",
        "get \(Self.key(i)) through the router: exit \(out.status), stderr \(out.stderr)")
    }
  }

  /// `shard move S 1` for every shard group 2 owns, then waits for both groups to settle.
  private func moveEverythingToGroupOne(_ cluster: ProcessCluster, _ router: String) throws {
    let config = try settle(cluster, router)
    for (shard, gid) in config.shards.enumerated() where gid != 1 {
      try requireOK(
        try cluster.kvctl(address: router, "shard", "move", "\(shard)", "1", timeout: 15), cluster)
    }
    let moved = try settle(cluster, router)
    XCTAssertEqual(moved.shards, Array(repeating: 1, count: 8))
  }

  /// Runs kvctl with `arguments` (stdout and stderr to files), sends it SIGINT once its stdout
  /// shows a finished move, and waits for it to exit.
  private func interruptAfterFirstMove(
    _ arguments: [String], _ cluster: ProcessCluster
  ) throws
    -> ProcessCluster.Output
  {
    let base = FileManager.default.temporaryDirectory.path + "/kvctl-rebalance-\(UUID().uuidString)"
    let (stdoutPath, stderrPath) = (base + ".out", base + ".err")
    guard
      FileManager.default.createFile(atPath: stdoutPath, contents: nil),
      FileManager.default.createFile(atPath: stderrPath, contents: nil)
    else { throw ProcessTestFailure(description: "cannot create \(base).out/.err") }
    defer {
      try? FileManager.default.removeItem(atPath: stdoutPath)
      try? FileManager.default.removeItem(atPath: stderrPath)
    }
    let out = try FileHandle(forWritingTo: URL(fileURLWithPath: stdoutPath))
    let err = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
    let process = Process()
    process.executableURL = ProcessCluster.binaries.appendingPathComponent("kvctl")
    process.arguments = arguments
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = out
    process.standardError = err
    try process.run()
    try? out.close()
    try? err.close()
    func read(_ path: String) -> String {
      String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self)
    }
    let moved = cluster.eventually(within: .seconds(60)) {
      read(stdoutPath).contains("moved shard ") || !process.isRunning
    }
    var note = ""
    if moved && process.isRunning {
      kill(process.processIdentifier, SIGINT)
    } else {
      note = moved ? "[test: kvctl exited before the interrupt]\n" : "[test: no move finished within 60 s]\n"
    }
    let exited = cluster.eventually(within: .seconds(60)) { !process.isRunning }
    if !exited {
      kill(process.processIdentifier, SIGKILL)
      note += "[test: kvctl was still running 60 s after SIGINT and was killed]\n"
    }
    process.waitUntilExit()
    return ProcessCluster.Output(
      stdout: read(stdoutPath), stderr: read(stderrPath) + note, status: process.terminationStatus)
  }

  // MARK: - Observations

  /// The plan's move lines: `shard S: G1 -> G2 (N keys, M MB)`.
  private func planLines(_ stdout: String) -> [String] {
    stdout.split(separator: "\n").map(String.init).filter { line in
      line.range(of: #"^shard \d+: \d+ -> \d+ \(\d+ keys, \d+\.\d\d MB\)$"#, options: .regularExpression)
        != nil
    }
  }

  private func configuration(_ cluster: ProcessCluster, _ router: String) throws -> Configuration {
    let out = try cluster.kvctl(address: router, "config", "--json", timeout: 10)
    guard out.status == 0,
      let object = try? JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any],
      let num = (object["num"] as? NSNumber)?.intValue,
      let shards = (object["shards"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }),
      shards.count == 8
    else { throw failure("config --json: \(out.summary)", cluster) }
    return Configuration(num: num, shards: shards)
  }

  private func holdings(_ cluster: ProcessCluster, node: Int) throws -> Holdings {
    let out = try cluster.kvctl(node, "shards", "--json", timeout: 10)
    guard out.status == 0,
      let object = try? JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any],
      let config = (object["config"] as? NSNumber)?.intValue, let list = object["shards"] as? [[String: Any]]
    else { throw failure("shards --json on node \(node): \(out.summary)", cluster) }
    var shards: [Int: (state: String, bytes: Int)] = [:]
    for entry in list {
      guard let shard = (entry["shard"] as? NSNumber)?.intValue, let state = entry["state"] as? String,
        let bytes = (entry["bytes"] as? NSNumber)?.intValue
      else { throw failure("shards --json on node \(node): \(out.stdout)", cluster) }
      shards[shard] = (state, bytes)
    }
    return Holdings(config: config, shards: shards)
  }

  /// Waits until both groups have applied the latest configuration and each holds exactly the
  /// shards it owns there, all serving; returns that configuration.
  private func settle(_ cluster: ProcessCluster, _ router: String) throws -> Configuration {
    var latest: Configuration?
    var why = "not checked"
    let settled = try cluster.eventually(within: .seconds(60)) {
      let config = try configuration(cluster, router)
      latest = config
      for gid in [1, 2] {
        let held = try holdings(cluster, node: gid)
        let owned = Set(config.shards.indices.filter { config.shards[$0] == gid })
        guard held.config == config.num, Set(held.shards.keys) == owned,
          held.shards.values.allSatisfy({ $0.state == "serving" })
        else {
          why =
            "group \(gid) at configuration \(held.config) holds \(held.shards); configuration \(config.num) gives it \(owned.sorted())"
          return false
        }
      }
      return true
    }
    guard settled, let latest else { throw failure("the groups did not settle: \(why)", cluster) }
    return latest
  }

  private func requireOK(_ out: ProcessCluster.Output, _ cluster: ProcessCluster) throws {
    guard out.status == 0, out.stdout == "OK\n" else { throw failure("expected OK: \(out.summary)", cluster) }
  }

  private func failure(_ message: String, _ cluster: ProcessCluster) -> ProcessTestFailure {
    ProcessTestFailure(description: message + "\n" + cluster.logTails([0, 1, 2, 3]))
  }
}
