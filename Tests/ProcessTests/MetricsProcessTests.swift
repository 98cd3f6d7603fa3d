import Foundation
import XCTest

/// `kvd --metrics`: a real group member's /metrics parses with the Prometheus project's own
/// exposition parser (Python's prometheus_client), and its counters move with traffic.
final class MetricsProcessTests: XCTestCase {
  /// Parses `url`'s exposition with prometheus_client; returns "name{labels} value" lines.
  private func scrape(_ url: String) throws -> [String: Double] {
    let script = """
      import sys, urllib.request
      from prometheus_client.parser import text_string_to_metric_families
      text = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
      for family in text_string_to_metric_families(text):
          for s in family.samples:
              labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
              print(f"{s.name}{{{labels}}} {s.value}")
      """
    let out = try ProcessCluster.tool("python3", ["-c", script, url], watchdog: .seconds(30))
    guard out.status == 0 else { throw ProcessTestFailure(description: "scrape \(url): \(out.summary)") }
    var samples: [String: Double] = [:]
    for line in out.stdout.split(separator: "\n") {
      guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
        continue
      }
      samples[String(line[..<space])] = value
    }
    return samples
  }

  func testMetricsParseAndMoveWithTraffic() throws {
    let cluster = try ProcessCluster(size: 2)
    defer { cluster.stopAll() }
    let metrics = cluster.nodes[1].api  // a free port of the second slot
    try cluster.start(0, ["-l", "--metrics", metrics])
    let up = try cluster.eventually(within: .seconds(15)) { try cluster.kvctl(0, "leader").status == 0 }
    XCTAssertTrue(up, cluster.logTail(0))
    let url = "http://\(metrics)/metrics"
    let before = try scrape(url)
    XCTAssertEqual(before["shardkv_raft_is_leader{}"], 1, "\(before)")
    for i in 0..<5 {
      XCTAssertEqual(try cluster.kvctl(0, "put", "k\(i)", "v").stdout, "OK\n")
    }
    XCTAssertEqual(try cluster.kvctl(0, "get", "k1").status, 0)
    let after = try scrape(url)
    let puts = "shardkv_kv_requests_total{op=\"put\",result=\"ok\"}"
    XCTAssertEqual((after[puts] ?? 0) - (before[puts] ?? 0), 5, "\(after)")
    XCTAssertGreaterThanOrEqual(after["shardkv_kv_requests_total{op=\"get\",result=\"ok\"}"] ?? 0, 1)
    XCTAssertGreaterThan(
      after["shardkv_raft_proposals_total{}"] ?? 0, before["shardkv_raft_proposals_total{}"] ?? 0)
    XCTAssertGreaterThan(
      after["shardkv_raft_fsync_seconds_count{}"] ?? 0, before["shardkv_raft_fsync_seconds_count{}"] ?? 0)
    XCTAssertNotNil(after["shardkv_kv_request_seconds_count{op=\"put\"}"], "\(after.keys.sorted())")
  }
}
