import Foundation
import XCTest

/// `kvbench kv`'s etcd-benchmark shapes against a real one-node group: `--total` ends each
/// timed phase after exactly that many requests, and `--connections` makes the clients share
/// that many TCP connections.
final class KVBenchProcessTests: XCTestCase {
  /// A one-node group with its metrics served; returns it and its metrics URL.
  private func startGroup() throws -> (ProcessCluster, metrics: String) {
    let cluster = try ProcessCluster(size: 1)
    let metrics = try ProcessCluster.freePorts(1)[0]
    try cluster.start(0, ["-l", "--metrics", "127.0.0.1:\(metrics)"])
    let up = try cluster.eventually(within: .seconds(15)) { try cluster.kvctl(0, "leader").status == 0 }
    guard up else { throw ProcessTestFailure(description: "no leader: \(cluster.logTail(0))") }
    return (cluster, "http://127.0.0.1:\(metrics)/metrics")
  }

  /// The group's count of successful requests of `op` (its Prometheus counter).
  private func served(_ op: String, metrics: String) throws -> Int {
    let script = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())"
    let out = try ProcessCluster.tool("python3", ["-c", script, metrics], watchdog: .seconds(30))
    guard out.status == 0 else { throw ProcessTestFailure(description: "scrape: \(out.summary)") }
    let name = "shardkv_kv_requests_total{op=\"\(op)\",result=\"ok\"} "
    guard let line = out.stdout.split(separator: "\n").first(where: { $0.hasPrefix(name) }),
      let value = Double(line.dropFirst(name.count))
    else { return 0 }
    return Int(value)
  }

  func testTotalEndsEachPhaseAfterThatManyRequests() throws {
    let (cluster, metrics) = try startGroup()
    defer { cluster.stopAll() }
    let out = try ProcessCluster.kvbench([
      "kv", "--servers", cluster.nodes[0].api, "--clients", "3", "--total", "41", "--ops", "put,get",
      "--key-size", "8", "--value-size", "16",
    ])
    XCTAssertEqual(out.status, 0, out.summary)
    XCTAssertTrue(out.stdout.contains("41 requests per timed phase"), out.summary)
    // Puts: one preflight, one warm-up per client, then exactly --total; gets: exactly --total.
    XCTAssertEqual(try served("put", metrics: metrics), 1 + 3 + 41, out.summary)
    XCTAssertEqual(try served("get", metrics: metrics), 41, out.summary)
  }

  func testClientsShareTheGivenConnections() async throws {
    let (cluster, _) = try startGroup()
    defer { cluster.stopAll() }
    let api = cluster.nodes[0].api
    guard let port = api.split(separator: ":").last.flatMap({ Int($0) }) else {
      throw ProcessTestFailure(description: "no port in \(api)")
    }
    // Paced so that the run lasts a few seconds while the connections are counted.
    let args = [
      "kv", "--servers", api, "--clients", "6", "--connections", "2", "--total", "120", "--rate", "40",
      "--ops", "put", "--key-size", "8", "--value-size", "16",
    ]
    let run = Task.detached { try ProcessCluster.kvbench(args) }
    // The most client-side connections to the member's API port seen at once while it runs.
    var most = 0
    var seen = false
    let deadline = ContinuousClock.now + .seconds(60)
    while ContinuousClock.now < deadline {
      let count = try Self.establishedConnections(toPort: port)
      most = max(most, count)
      if count > 0 { seen = true } else if seen { break }
      try await Task.sleep(for: .milliseconds(50))
    }
    let out = try await run.value
    XCTAssertEqual(out.status, 0, out.summary)
    XCTAssertTrue(out.stdout.contains("clients share 2 connections"), out.summary)
    XCTAssertTrue(seen, "no connection from kvbench was ever seen: \(out.summary)")
    XCTAssertEqual(most, 2, "6 clients over --connections 2: \(out.summary)")
  }

  /// Established IPv4 TCP connections whose remote port is `port` (client ends of connections
  /// to a local listener), from /proc/net/tcp (read to its end: `String(contentsOfFile:)` reads
  /// only the first page of a /proc file).
  private static func establishedConnections(toPort port: Int) throws -> Int {
    guard let file = FileHandle(forReadingAtPath: "/proc/net/tcp") else {
      throw ProcessTestFailure(description: "cannot open /proc/net/tcp")
    }
    defer { try? file.close() }
    let table = String(decoding: try file.readToEnd() ?? Data(), as: UTF8.self)
    let remote = String(format: ":%04X", port)
    return table.split(separator: "\n").dropFirst().filter { line in
      let fields = line.split(separator: " ")
      // sl local_address rem_address st ...; st 01 is ESTABLISHED.
      return fields.count > 3 && fields[2].hasSuffix(remote) && fields[3] == "01"
    }.count
  }
}
