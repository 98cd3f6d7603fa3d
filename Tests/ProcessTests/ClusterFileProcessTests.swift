import Foundation
import XCTest

/// `kvctl cluster up|status|down` on a tiny cluster file (1 controller, 2 groups of 1, a
/// router), in a temporary directory: every node runs as `kvd --config FILE --node NAME`.
final class ClusterFileProcessTests: XCTestCase {
  func testClusterUpStatusDownAndResume() throws {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("cluster-\(UUID().uuidString)")
      .path
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    let ports = try ProcessCluster.freePorts(9)
    let address = { (i: Int) in "127.0.0.1:\(ports[i])" }
    let file = root + "/tiny.toml"
    try """
    name = "test"
    shards = 8
    data = "data"

    [timing]
    heartbeat_ms = 50
    election_ms = 300

    [[controller]]
    name = "c1"
    api = "\(address(0))"
    peer = "\(address(1))"

    [[group]]
    id = 1
    [[group.node]]
    name = "g1"
    api = "\(address(2))"
    peer = "\(address(3))"

    [[group]]
    id = 2
    [[group.node]]
    name = "g2"
    api = "\(address(4))"
    peer = "\(address(5))"

    [[router]]
    name = "r1"
    api = "\(address(6))"
    resp = "\(address(7))"
    """.write(toFile: file, atomically: true, encoding: .utf8)
    func kvctl(_ args: String...) throws -> ProcessCluster.Output {
      try ProcessCluster.kvctl(args, watchdog: .seconds(180))
    }
    func pids() -> [Int32] {
      ["c1", "g1", "g2", "r1"].compactMap {
        (try? String(contentsOfFile: root + "/data/\($0).pid", encoding: .utf8))
          .flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
      }
    }
    func logs() -> String {
      ["c1", "g1", "g2", "r1"].map { name in
        let text = (try? String(contentsOfFile: root + "/data/\(name).log", encoding: .utf8)) ?? ""
        return "--- \(name).log\n" + text.split(separator: "\n").suffix(15).joined(separator: "\n")
      }.joined(separator: "\n")
    }
    defer {
      _ = try? kvctl("cluster", "down", file, "--purge")
      for pid in pids() { kill(pid, SIGKILL) }
      try? FileManager.default.removeItem(atPath: root)
    }

    var out = try kvctl("cluster", "up", file)
    XCTAssertEqual(out.status, 0, out.summary + logs())
    let lines = out.stdout.split(separator: "\n").map(String.init)
    XCTAssertEqual(lines.suffix(2), ["Router:\t\(address(6))", "RESP:\t\(address(7))"], out.summary)
    let started = pids()
    XCTAssertEqual(started.count, 4)

    // Up again: it is up, nothing changes. With --json the narration goes to stderr and stdout
    // is one document.
    out = try kvctl("cluster", "up", file, "--json")
    XCTAssertEqual(out.status, 0, out.summary)
    XCTAssertTrue(out.stderr.contains("already up"), out.summary)
    let upDocument = try XCTUnwrap(
      JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any], out.summary)
    XCTAssertEqual(upDocument["router"] as? String, address(6), out.stdout)
    XCTAssertEqual(pids(), started)

    out = try kvctl("-a", address(6), "put", "greeting", "hello")
    XCTAssertEqual(out.stdout, "OK\n", out.summary)
    out = try kvctl("cluster", "status", file, "--json")
    XCTAssertEqual(out.status, 0, out.summary)
    let status = try XCTUnwrap(
      JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any], out.summary)
    let nodes = try XCTUnwrap(status["nodes"] as? [[String: Any]])
    XCTAssertEqual(nodes.count, 4)
    XCTAssertTrue(nodes.allSatisfy { $0["up"] as? Bool == true }, out.stdout)
    XCTAssertEqual(status["shards_by_group"] as? [String: Int], ["1": 4, "2": 4], out.stdout)
    out = try kvctl("cluster", "status", file)
    XCTAssertTrue(out.stdout.contains("g1\tmember\t1\t"), out.summary)

    // Down: no process left behind.
    out = try kvctl("cluster", "down", file, "--json")
    XCTAssertEqual(out.status, 0, out.summary)
    let downDocument = try XCTUnwrap(
      JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any], out.summary)
    XCTAssertEqual(downDocument["stopped"] as? Int, 4, out.stdout)
    XCTAssertTrue(started.allSatisfy { kill($0, 0) != 0 }, "every node stopped")
    out = try kvctl("cluster", "status", file, "--json")
    XCTAssertFalse(out.stdout.contains("\"up\":true"), out.stdout)

    // Up again resumes the data.
    out = try kvctl("cluster", "up", file)
    XCTAssertEqual(out.status, 0, out.summary + logs())
    out = try kvctl("-a", address(6), "get", "greeting")
    XCTAssertEqual(out.stdout, "Key:\tgreeting\nValue:\thello\n", out.summary)

    // Bad input: a broken file names the line and the field; a missing one says so.
    try "name = \"x\"\nshards = 0\n".write(toFile: root + "/bad.toml", atomically: true, encoding: .utf8)
    out = try kvctl("cluster", "status", root + "/bad.toml")
    XCTAssertNotEqual(out.status, 0)
    XCTAssertTrue(out.stderr.contains("bad.toml:2: shards:"), out.summary)
    out = try kvctl("cluster", "up", root + "/missing.toml")
    XCTAssertNotEqual(out.status, 0)
    XCTAssertTrue(out.stderr.contains("cannot read"), out.summary)

    out = try kvctl("cluster", "down", file, "--purge")
    XCTAssertEqual(out.status, 0, out.summary)
    XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/data"))
  }
}
