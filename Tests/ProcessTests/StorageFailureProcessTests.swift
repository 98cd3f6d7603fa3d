import Foundation
import XCTest

/// A kvd whose storage fails stops serving and exits non-zero, instead of staying up with a
/// frozen Raft node that still answers `leader` and `status`.
final class StorageFailureProcessTests: XCTestCase {
  /// The node's data directory is a small tmpfs (the tests run as root, as CI does); puts of
  /// 100 KB fill it, RocksDB refuses a write, and the process says why and exits.
  func testKvdExitsNonZeroWhenItsDiskIsFull() throws {
    let cluster = try ProcessCluster(size: 1)
    let data = cluster.nodes[0].data
    try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
    let mount = try ProcessCluster.tool("mount", ["-t", "tmpfs", "-o", "size=8m", "tmpfs", data])
    XCTAssertEqual(mount.status, 0, "cannot mount a small tmpfs: \(mount.summary)")
    guard mount.status == 0 else { throw ProcessTestFailure(description: "no tmpfs for the test") }
    addTeardownBlock {
      cluster.stopAll()
      _ = try? ProcessCluster.tool("umount", ["-l", data])
    }
    try cluster.start(0, ["-l"])
    let ready = try cluster.eventually(within: .seconds(20)) {
      try cluster.kvctl(0, "put", "first", "value").status == 0
    }
    XCTAssertTrue(ready, "the node never served: \(cluster.logTail(0))")

    let value = String(repeating: "x", count: 100_000)
    var puts = 0
    for i in 0..<400 where cluster.isRunning(0) {
      _ = try cluster.kvctl(0, "put", "key-\(i)", value)
      puts += 1
    }
    let exited = cluster.eventually(within: .seconds(20)) { !cluster.isRunning(0) }
    XCTAssertTrue(
      exited, "kvd still runs after \(puts) puts of 100 KB on an 8 MB disk: \(cluster.logTail(0))")
    // kvd exits 1 at once; Debian's librocksdb (built with assertions) may abort it first from
    // its own no-space recovery thread (status 6), which is also a failed process.
    let status = try XCTUnwrap(cluster.exitStatus(0), "kvd did not exit")
    XCTAssertTrue(status == 1 || status == 6, "kvd exited with status \(status): \(cluster.logTail(0))")
    let log = try String(contentsOfFile: cluster.logPath(0), encoding: .utf8)
    // Either kvd's own critical line or (when RocksDB's abort came first) RocksDB's.
    XCTAssertTrue(
      log.contains("raft storage failed") || log.contains("writable_file_writer"),
      "kvd did not say why it stopped: \(cluster.logTail(0))")
  }
}
