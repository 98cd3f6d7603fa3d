import Foundation
import Seeded
import XCTest

/// kvctl for daily use (issue 14) against real `kvd` processes: endpoint lists with a dead
/// first endpoint, values from files and stdin, the exit statuses, `--json` on every command,
/// `--` before a value spelled like an option, and a join that needs a large snapshot.
final class KVCtlProcessTests: XCTestCase {
  private static let timing = ["--heartbeat-ms", "50", "--election-ms", "300"]

  /// One node bootstrapped alone (`-l`), with these extra flags, answering `leader`.
  private func singleNode(_ flags: [String] = []) throws -> ProcessCluster {
    let cluster = try ProcessCluster(size: 1)
    addTeardownBlock { cluster.stopAll() }
    try cluster.start(0, ["-l"] + Self.timing + flags)
    guard cluster.eventually(within: .seconds(10), { (try? cluster.kvctl(0, "leader").status) == 0 }) else {
      throw ProcessTestFailure(description: "no leader\n" + cluster.logTails([0]))
    }
    return cluster
  }

  /// An address nothing listens on.
  private func deadAddress() throws -> String {
    "127.0.0.1:\(try ProcessCluster.freePorts(1)[0])"
  }

  private func kvctl(_ args: [String], stdin: Data? = nil) throws -> ProcessCluster.Output {
    try ProcessCluster.kvctl(args, watchdog: .seconds(120), stdin: stdin)
  }

  /// stdout as the one JSON object it must be.
  private func document(_ out: ProcessCluster.Output, _ what: String) throws -> [String: Any] {
    let text = out.stdout.trimmingCharacters(in: .newlines)
    XCTAssertFalse(text.contains("\n"), "\(what): more than one line on stdout: \(out.summary)")
    guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
      throw ProcessTestFailure(description: "\(what): stdout is not one JSON object: \(out.summary)")
    }
    return object
  }

  // MARK: - Endpoints

  func testADeadFirstEndpointCostsAConnectAttemptNotTheDeadline() throws {
    let cluster = try singleNode()
    let live = cluster.nodes[0].api
    let dead = try deadAddress()
    let clock = ContinuousClock()
    for (what, args) in [
      ("put", ["put", "k", "v"]), ("get", ["get", "k"]), ("status", ["status"]), ("leader", ["leader"]),
      ("direct_get", ["direct_get", "k"]), ("shards", ["shards"]),
    ] {
      let start = clock.now
      let out = try kvctl(["-a", "\(dead),\(live)", "--timeout", "20"] + args)
      let took = clock.now - start
      XCTAssertEqual(out.status, 0, "\(what): \(out.summary)")
      XCTAssertLessThan(took, .seconds(5), "\(what) took \(took) with the first endpoint dead")
    }
    let got = try kvctl(["--endpoints", "\(dead),\(live)", "get", "k"])
    XCTAssertEqual(got.stdout, "Key:\tk\nValue:\tv\n", got.summary)
    // An endpoint that does not answer connects at all (a black-holed address, or one that is
    // unreachable at once) costs at most --connect-timeout.
    let start = clock.now
    let blackholed = try kvctl([
      "-a", "10.255.255.1:9,\(live)", "--connect-timeout", "0.5", "--timeout", "20", "get", "k",
    ])
    XCTAssertEqual(blackholed.status, 0, blackholed.summary)
    XCTAssertLessThan(clock.now - start, .seconds(5))
    // Every endpoint dead: unavailable (3), after the deadline.
    let none = try kvctl(["-a", "\(dead),\(try deadAddress())", "--timeout", "1", "get", "k"])
    XCTAssertEqual(none.status, 3, none.summary)
  }

  // MARK: - Values from files and stdin

  func testAMillionRandomBytesFromAFileRoundTripByteForByte() throws {
    let cluster = try singleNode()
    let seed = UInt64.random(in: 1...UInt64.max)
    var generator = SeededGenerator(seed: seed)
    let value = Data((0..<1_000_000).map { _ in UInt8(truncatingIfNeeded: generator.next()) })
    let input = cluster.root + "/value.bin"
    let output = cluster.root + "/copy.bin"
    XCTAssertTrue(FileManager.default.createFile(atPath: input, contents: value))
    let put = try cluster.kvctl(0, "put", "blob", "--file", input, timeout: 20)
    XCTAssertEqual(put.stdout, "OK\n", "seed \(seed): \(put.summary)")
    let get = try cluster.kvctl(0, "get", "blob", "--out", output, timeout: 20)
    XCTAssertEqual(get.status, 0, get.summary)
    XCTAssertEqual(get.stdout, "Key:\tblob\nBytes:\t1000000\n")
    XCTAssertEqual(FileManager.default.contents(atPath: output), value, "seed \(seed): the bytes differ")
    // --json carries them in base64; direct_get --out reads the node's own copy.
    let json = try document(try cluster.kvctl(0, "get", "blob", "--json", timeout: 20), "get --json")
    XCTAssertEqual(json["encoding"] as? String, "base64")
    XCTAssertEqual((json["value"] as? String).flatMap { Data(base64Encoded: $0) }, value, "seed \(seed)")
    let direct = try cluster.kvctl(0, "direct_get", "blob", "--out", output)
    XCTAssertEqual(direct.status, 0, direct.summary)
    XCTAssertEqual(FileManager.default.contents(atPath: output), value, "seed \(seed)")
  }

  func testValuesFromStdin() throws {
    let cluster = try singleNode()
    let api = cluster.nodes[0].api
    var out = try kvctl(["-a", api, "put", "k", "-"], stdin: Data("two\nlines\u{0}".utf8))
    XCTAssertEqual(out.stdout, "OK\n", out.summary)
    out = try kvctl(["-a", api, "append", "k", "-"], stdin: Data(" more".utf8))
    XCTAssertEqual(out.stdout, "OK\n", out.summary)
    // Not a terminal: the raw bytes, as stored.
    out = try kvctl(["-a", api, "get", "k"])
    XCTAssertEqual(out.stdout, "Key:\tk\nValue:\ttwo\nlines\u{0} more\n", out.summary)
    let json = try document(try kvctl(["-a", api, "-w", "json", "get", "k"]), "get -w json")
    XCTAssertEqual(json["value"] as? String, "two\nlines\u{0} more")
    XCTAssertEqual(json["encoding"] as? String, "utf8")
  }

  func testNonPrintableValuesAreEscapedOnATerminal() throws {
    let cluster = try singleNode()
    let api = cluster.nodes[0].api
    XCTAssertEqual(try kvctl(["-a", api, "put", "k", "-"], stdin: Data([0x61, 0x00, 0x0A, 0xFF])).status, 0)
    // script(1) gives kvctl a terminal.
    let kvctlPath = ProcessCluster.binaries.appendingPathComponent("kvctl").path
    let out = try ProcessCluster.tool("script", ["-qec", "\(kvctlPath) -a \(api) get k", "/dev/null"])
    XCTAssertTrue(out.stdout.contains("Value:\ta\\x00\\n\\xff"), out.summary)
  }

  // MARK: - Exit statuses

  func testEveryExitStatus() throws {
    let cluster = try singleNode(["--max-value-bytes", "1000"])
    let api = cluster.nodes[0].api
    // 0, and a stored value ERROR is not a missing key.
    var out = try cluster.kvctl(0, "put", "e", "ERROR")
    XCTAssertEqual(out.status, 0, out.summary)
    out = try cluster.kvctl(0, "get", "e")
    XCTAssertEqual(out.stdout, "Key:\te\nValue:\tERROR\n")
    XCTAssertEqual(out.status, 0)
    var json = try document(try cluster.kvctl(0, "get", "e", "--json"), "get e")
    XCTAssertEqual(json["found"] as? Bool, true)
    XCTAssertEqual(json["value"] as? String, "ERROR")
    // 1: a missing key, with the lab's output.
    out = try cluster.kvctl(0, "get", "missing")
    XCTAssertEqual(out.stdout, "Key:\tmissing\nValue:\tERROR\n")
    XCTAssertEqual(out.status, 1)
    let missing = try cluster.kvctl(0, "get", "missing", "--json")
    XCTAssertEqual(missing.status, 1)
    json = try document(missing, "get missing")
    XCTAssertEqual(json["found"] as? Bool, false)
    XCTAssertNil(json["value"])
    XCTAssertEqual(try cluster.kvctl(0, "direct_get", "missing").status, 1)
    // 2: usage.
    for args in [
      ["frobnicate"], ["put", "k"], ["get"], ["--timeout", "soon", "get", "k"], ["--bogus", "get", "k"],
      ["put", "k", "--file", cluster.root + "/no-such-file"], ["-w", "yaml", "get", "k"],
    ] {
      out = try kvctl(["-a", api] + args)
      XCTAssertEqual(out.status, 2, "\(args): \(out.summary)")
    }
    XCTAssertEqual(try kvctl(["get", "k"]).status, 2, "no -a")
    // 3: unavailable.
    out = try kvctl(["-a", try deadAddress(), "--timeout", "1", "get", "k"])
    XCTAssertEqual(out.status, 3, out.summary)
    out = try kvctl(["-a", try deadAddress(), "--timeout", "1", "leader"])
    XCTAssertEqual(out.status, 3, out.summary)
    // 4: rejected: an empty key, a value over the node's limit.
    out = try cluster.kvctl(0, "put", "", "v")
    XCTAssertEqual(out.status, 4, out.summary)
    let big = cluster.root + "/big"
    XCTAssertTrue(FileManager.default.createFile(atPath: big, contents: Data(count: 2000)))
    out = try cluster.kvctl(0, "put", "k", "--file", big)
    XCTAssertEqual(out.status, 4, out.summary)
    XCTAssertTrue(out.stderr.contains("invalid argument"), out.summary)
    json = try document(try cluster.kvctl(0, "put", "k", "--file", big, "--json"), "rejected put")
    XCTAssertEqual(json["error"] as? String, "rejected")
    XCTAssertEqual(json["exit_code"] as? Int, 4)
    // The help names them all.
    out = try kvctl(["--help"])
    for line in [
      "0  success", "1  get/direct_get: the key does not exist", "2  usage error", "3  unavailable",
      "4  rejected",
    ] {
      XCTAssertTrue(out.stdout.contains(line), "--help lacks '\(line)'")
    }
  }

  // MARK: - Options and values

  func testAnyValueCanBeStoredAfterDoubleDash() throws {
    let cluster = try singleNode()
    for value in ["--json", "-h", "--timeout", "-a", "--"] {
      let out = try cluster.kvctl(0, "put", "k", "--", value)
      XCTAssertEqual(out.stdout, "OK\n", "\(value): \(out.summary)")
      let got = try cluster.kvctl(0, "get", "--", "k")
      XCTAssertEqual(got.stdout, "Key:\tk\nValue:\t\(value)\n", got.summary)
    }
    // Before --, --json is the option.
    let json = try document(try cluster.kvctl(0, "get", "k", "--json"), "get --json")
    XCTAssertEqual(json["value"] as? String, "--")
  }

  func testCompletionScriptsComeFromTheCommandTable() throws {
    for shell in ["bash", "zsh", "fish"] {
      let out = try kvctl(["--generate-completion-script", shell])
      XCTAssertEqual(out.status, 0, out.summary)
      for word in ["kvctl", "rebalance", "direct_get", "--endpoints", "--file", "--out", "--timeout"] {
        XCTAssertTrue(
          out.stdout.contains(shell == "fish" && word.hasPrefix("--") ? "-l \(word.dropFirst(2))" : word),
          "\(shell) script lacks \(word)")
      }
    }
    // bash itself accepts the script and completes from it.
    let script = try kvctl(["--generate-completion-script", "bash"]).stdout
    let path = FileManager.default.temporaryDirectory.path + "/kvctl-completion-\(UUID().uuidString).bash"
    try script.write(toFile: path, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: path) }
    let probe = """
      source \(path)
      COMP_WORDS=(kvctl -a x:1 reb); COMP_CWORD=3; _kvctl; echo "${COMPREPLY[@]}"
      COMP_WORDS=(kvctl group ""); COMP_CWORD=2; _kvctl; echo "${COMPREPLY[@]}"
      COMP_WORDS=(kvctl -w ""); COMP_CWORD=2; _kvctl; echo "${COMPREPLY[@]}"
      """
    let out = try ProcessCluster.tool("bash", ["-c", probe])
    XCTAssertEqual(out.status, 0, out.summary)
    let lines = out.stdout.split(separator: "\n").map(String.init)
    XCTAssertEqual(lines.first, "rebalance", out.summary)
    XCTAssertTrue(lines.count == 3 && lines[1].hasPrefix("join leave --no-wait"), out.summary)
    XCTAssertEqual(lines.last, "json simple", out.summary)
    XCTAssertEqual(try kvctl(["--generate-completion-script", "tcsh"]).status, 2)
  }

  // MARK: - JSON everywhere

  /// Every command but `cluster` (see ClusterFileProcessTests) prints one JSON document with
  /// --json: on a sharded cluster (a controller, two groups of one, a router) and a standalone
  /// group of two for join and remove.
  func testEveryCommandPrintsOneJSONDocument() throws {
    let cluster = try ProcessCluster(roles: [1, 1, 1, 1, 1, 1])
    addTeardownBlock { cluster.stopAll() }
    let (controller, group1, group2, router, standalone, standby) = (0, 1, 2, 3, 4, 5)
    try cluster.start(
      controller, ["--controller", "--peers", cluster.peers([0]), "--shards", "4"] + Self.timing)
    for (i, gid) in [(group1, 1), (group2, 2)] {
      try cluster.start(
        i,
        ["--peers", cluster.peers([i]), "--group", "\(gid)", "--controllers", cluster.apis([0])] + Self.timing
      )
    }
    try cluster.start(
      router, arguments: ["--router", "-a", cluster.nodes[router].api, "--controllers", cluster.apis([0])])
    try cluster.start(standalone, ["-l"] + Self.timing)
    try cluster.start(standby, ["-c", cluster.nodes[standalone].peer] + Self.timing)
    guard
      cluster.eventually(
        within: .seconds(20),
        {
          [controller, group1, group2, standalone].allSatisfy {
            (try? cluster.kvctl($0, "leader").status) == 0
          }
        })
    else {
      throw ProcessTestFailure(description: "no leaders\n" + cluster.logTails(Array(0..<6)))
    }
    var json = try document(
      try cluster.kvctl(controller, "group", "join", "1", cluster.apis([group1]), "--json"), "group join")
    XCTAssertEqual(json["ok"] as? Bool, true, "\(json)")
    let checks: [(Int, [String], String)] = [
      (router, ["put", "k", "v"], "ok"), (router, ["append", "k", "w"], "ok"),
      (router, ["get", "k"], "value"),
      (group1, ["leader"], "leader"), (group1, ["dropped"], "dropped"),
      (group1, ["direct_get", "k"], "found"),
      (group1, ["status"], "role"), (router, ["status"], "groups"), (group1, ["locate", "k"], "shard"),
      (controller, ["locate", "k"], "group"), (group1, ["shards"], "shards"), (controller, ["config"], "num"),
      (router, ["migrations"], "moves"), (controller, ["group", "join", "2", cluster.apis([group2])], "ok"),
      (controller, ["rebalance", "--dry-run"], "moves"), (controller, ["shard", "move", "0", "2"], "ok"),
      (controller, ["group", "leave", "2", "--no-wait"], "ok"), (router, ["del", "k"], "ok"),
      (standalone, ["join", cluster.nodes[standby].peer], "members"),
      (standalone, ["remove", cluster.nodes[standby].peer], "members"),
    ]
    for (node, args, field) in checks {
      let out = try cluster.kvctl(node, arguments: args + ["--json"], timeout: 15)
      XCTAssertEqual(out.status, 0, "\(args): \(out.summary)")
      json = try document(out, args.joined(separator: " "))
      XCTAssertNotNil(json[field], "\(args): no \(field) in \(out.stdout)")
    }
    // A failure is a document too.
    let failed = try cluster.kvctl(group1, "frobnicate", "--json")
    XCTAssertEqual(failed.status, 2)
    XCTAssertEqual(try document(failed, "unknown command")["error"] as? String, "usage")
  }

  // MARK: - Join with a large snapshot

  func testJoinOfANodeThatNeedsA50MBSnapshotSucceeds() throws {
    let cluster = try ProcessCluster(size: 2)
    addTeardownBlock { cluster.stopAll() }
    // A short log, so that the joining node cannot catch up from it and needs a snapshot
    // (compacted once, after about 40 of the 50 values, not after every few).
    let log = ["--max-log-entries", "40", "--retained-entries", "5"]
    try cluster.start(0, ["-l"] + Self.timing + log)
    guard cluster.eventually(within: .seconds(10), { (try? cluster.kvctl(0, "leader").status) == 0 }) else {
      throw ProcessTestFailure(description: "no leader\n" + cluster.logTails([0]))
    }
    let seed = UInt64.random(in: 1...UInt64.max)
    var generator = SeededGenerator(seed: seed)
    let file = cluster.root + "/value.bin"
    var last = Data()
    for i in 0..<50 {
      last = Data((0..<1_000_000).map { _ in UInt8(truncatingIfNeeded: generator.next()) })
      XCTAssertTrue(FileManager.default.createFile(atPath: file, contents: last))
      let out = try cluster.kvctl(0, "put", "blob\(i)", "--file", file, timeout: 20)
      XCTAssertEqual(out.stdout, "OK\n", "seed \(seed): \(out.summary)")
    }
    try cluster.start(1, ["-c", cluster.nodes[0].peer] + Self.timing + log)
    // Default timeout, on a terminal (script(1)), so that progress shows.
    let kvctlPath = ProcessCluster.binaries.appendingPathComponent("kvctl").path
    let join = try ProcessCluster.tool(
      "script",
      ["-qec", "\(kvctlPath) -a \(cluster.nodes[0].api) join \(cluster.nodes[1].peer)", "/dev/null"],
      watchdog: .seconds(120))
    XCTAssertEqual(join.status, 0, join.summary + cluster.logTails([0, 1]))
    XCTAssertTrue(join.stdout.contains("OK"), join.summary)
    XCTAssertTrue(join.stdout.contains("learner"), "no progress shown: \(join.summary)")
    XCTAssertTrue(join.stdout.contains("\(cluster.nodes[1].peer): voter"), join.summary)
    XCTAssertTrue(
      cluster.logTail(1, lines: 200).contains("installed snapshot"), cluster.logTails([1], lines: 60))
    // The image came through the joined node's staging directory, which its install emptied.
    let staging = cluster.nodes[1].data + "/snapshot-staging"
    XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: staging), [])
    let copy = cluster.root + "/copy.bin"
    let got = try cluster.kvctl(1, "direct_get", "blob49", "--out", copy)
    XCTAssertEqual(got.status, 0, got.summary)
    XCTAssertEqual(FileManager.default.contents(atPath: copy), last, "seed \(seed)")
  }
}
