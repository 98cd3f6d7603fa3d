import Foundation
import XCTest

/// `kvbench check` over history files, and the nemesis's schedule being a function of its seed.
/// (The nemesis itself needs root and minutes: `make nemesis-ci`, run by `make test`.)
final class NemesisProcessTests: XCTestCase {
  private func historyFile(_ lines: [String]) throws -> String {
    let path = FileManager.default.temporaryDirectory.path + "/history-\(UUID().uuidString).jsonl"
    try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
    return path
  }

  private func line(
    _ client: Int, _ op: String, _ key: String, value: String = "", output: String? = nil, _ call: Int,
    _ returned: Int?, result: String = "ok"
  ) -> String {
    let out = output.map { "\"\($0)\"" } ?? "null"
    let ret = returned.map(String.init) ?? "null"
    return
      #"{"client":\#(client),"op":"\#(op)","key":"\#(key)","value":"\#(value)","output":\#(out),"call":\#(call),"return":\#(ret),"result":"\#(result)"}"#
  }

  func testCheckPassesALinearizableHistory() throws {
    let path = try historyFile([
      line(0, "put", "a", value: "1", 0, 10), line(1, "append", "a", value: "2", 5, 20),
      line(2, "get", "a", output: "12", 25, 30), line(0, "delete", "b", 0, 5),
      line(1, "put", "b", value: "x", 31, nil, result: "unknown"), line(2, "get", "b", output: "x", 40, 50),
    ])
    let out = try ProcessCluster.kvbench(["check", path])
    XCTAssertEqual(out.status, 0, out.stdout + out.stderr)
    XCTAssertTrue(out.stdout.contains("check: linearizable"), out.stdout)
  }

  func testCheckFailsAStaleReadAndPrintsTheFailingWindow() throws {
    let path = try historyFile([
      line(0, "put", "a", value: "1", 0, 10), line(0, "put", "a", value: "2", 20, 30),
      line(1, "get", "a", output: "1", 40, 50), line(1, "get", "a", output: "2", 60, 70),
    ])
    let out = try ProcessCluster.kvbench(["check", path])
    XCTAssertEqual(out.status, 1, out.stdout + out.stderr)
    XCTAssertTrue(out.stdout.contains("key a: NOT linearizable"), out.stdout)
    XCTAssertTrue(out.stdout.contains("shortest failing prefix: 3 operations"), out.stdout)
  }

  func testCheckSaysUnknownWhenTheSearchExplodes() throws {
    var lines = (0..<20).map { line($0, "append", "a", value: "\($0);", 0, 100) }
    lines.append(line(99, "get", "a", output: "impossible", 101, 102))
    let out = try ProcessCluster.kvbench(["check", "--steps", "10000", try historyFile(lines)])
    XCTAssertEqual(out.status, 2, out.stdout + out.stderr)
    XCTAssertTrue(out.stdout.contains("key a: unknown"), out.stdout)
  }

  func testCheckRefusesAMalformedFileByLine() throws {
    let path = try historyFile([line(0, "put", "a", value: "1", 0, 10), #"{"client":1,"op":"frobnicate"}"#])
    let out = try ProcessCluster.kvbench(["check", path])
    XCTAssertEqual(out.status, 2, out.stdout + out.stderr)
    XCTAssertTrue(out.stderr.contains(":2:"), out.stderr)
  }

  func testTheFaultScheduleIsAFunctionOfTheSeed() throws {
    func schedule(_ seed: Int, _ shape: String) throws -> String {
      let out = try ProcessCluster.kvbench([
        "nemesis", "--dry-run", "--seed", "\(seed)", "--runs", "2", "--seconds", "60", "--shape", shape,
      ])
      XCTAssertEqual(out.status, 0, out.stderr)
      return out.stdout
    }
    let first = try schedule(7, "both")
    XCTAssertEqual(first, try schedule(7, "both"))
    XCTAssertNotEqual(first, try schedule(8, "both"))
    XCTAssertTrue(first.contains("run 1: seed 7, shape group"), first)
    XCTAssertTrue(first.contains("run 2: seed 8, shape sharded"), first)
    // A minute of faults draws several kinds.
    let kinds = ["kill -9", "SIGSTOP", "partition", "isolate", "bridge", "drop what"]
    XCTAssertGreaterThanOrEqual(kinds.filter { first.contains($0) }.count, 3, first)
  }
}
