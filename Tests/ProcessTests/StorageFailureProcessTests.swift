import Foundation
import XCTest

/// A kvd whose storage fails stops serving and exits non-zero, instead of staying up with a
/// frozen Raft node that still answers `leader` and `status`.
final class StorageFailureProcessTests: XCTestCase {
  /// The node's data directory is a small tmpfs (the tests run as root, as CI does); puts of
  /// 100 KB fill it, RocksDB refuses a write, and the process exits with status 1 and says why.
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
    XCTAssertEqual(cluster.exitStatus(0), 1, cluster.logTail(0))
    XCTAssertTrue(
      cluster.logTail(0).contains("storage failure"), "kvd did not say why it stopped: \(cluster.logTail(0))")
  }
}
