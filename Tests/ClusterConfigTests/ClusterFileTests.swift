import Foundation
import XCTest

@testable import ClusterConfig

final class ClusterFileTests: XCTestCase {
  private static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

  private let valid = """
    name = "t"
    shards = 8
    data = "data/t"

    [timing]
    heartbeat_ms = 50
    election_ms = 300

    [[controller]]
    name = "c1"
    api = "127.0.0.1:1001"
    peer = "127.0.0.1:1002"

    [[group]]
    id = 7
    [[group.node]]
    name = "a"
    api = "127.0.0.1:1101"
    peer = "127.0.0.1:1102"
    [[group.node]]
    name = "b"
    api = "127.0.0.1:1201"
    peer = "127.0.0.1:1202"

    [[router]]
    name = "r"
    api = "127.0.0.1:1301"
    resp = "127.0.0.1:1302"
    metrics = "127.0.0.1:1303"
    """

  func testTheShippedFilesParse() throws {
    let local = try ClusterFile.load(path: Self.repository.appendingPathComponent("configs/local.toml").path)
    XCTAssertEqual(local.controllers.count, 3)
    XCTAssertEqual(local.groups.map { $0.nodes.count }, [3, 3, 3])
    XCTAssertEqual(local.routers.count, 1)
    XCTAssertNotNil(local.routers[0].resp)
    XCTAssertTrue(local.nodes.allSatisfy { $0.node.metrics != nil }, "every local node serves metrics")
    XCTAssertEqual(
      local.dataDirectory, Self.repository.appendingPathComponent("kvd-data/local").standardizedFileURL.path)
    let tiny = try ClusterFile.load(path: Self.repository.appendingPathComponent("configs/tiny.toml").path)
    XCTAssertEqual(tiny.controllers.count, 1)
    XCTAssertEqual(tiny.groups.map { $0.nodes.count }, [1, 1])
  }

  func testEveryNodeGetsItsFlagsAndRelativePathsFollowTheFile() throws {
    let file = try ClusterFile.parse(valid, directory: "/etc/shardkv")
    XCTAssertEqual(file.dataDirectory, "/etc/shardkv/data/t")
    XCTAssertEqual(
      file.kvdArguments(for: "c1"),
      [
        "--controller", "-a", "127.0.0.1:1001", "-p", "127.0.0.1:1002", "--peers", "127.0.0.1:1002",
        "--shards", "8",
        "--data", "/etc/shardkv/data/t/c1", "--heartbeat-ms", "50", "--election-ms", "300",
      ])
    XCTAssertEqual(
      file.kvdArguments(for: "b"),
      [
        "-a", "127.0.0.1:1201", "-p", "127.0.0.1:1202", "--peers", "127.0.0.1:1102,127.0.0.1:1202", "--group",
        "7",
        "--controllers", "127.0.0.1:1001", "--data", "/etc/shardkv/data/t/b", "--heartbeat-ms", "50",
        "--election-ms", "300",
      ])
    XCTAssertEqual(
      file.kvdArguments(for: "r"),
      [
        "--router", "-a", "127.0.0.1:1301", "--controllers", "127.0.0.1:1001", "--resp", "127.0.0.1:1302",
        "--metrics", "127.0.0.1:1303", "--heartbeat-ms", "50", "--election-ms", "300",
      ])
    XCTAssertNil(file.kvdArguments(for: "nobody"))
    XCTAssertNil(file.tls)
    XCTAssertEqual(file.node(named: "a")?.role, .member(group: 7))
  }

  func testATLSSectionGivesEveryNodeTheTLSFlags() throws {
    let file = try ClusterFile.parse(
      valid + "\n[tls]\nca = \"certs/ca.pem\"\ncert = \"/abs/node.pem\"\nkey = \"certs/node-key.pem\"\n",
      directory: "/etc/shardkv")
    let api = ["--api-cert", "/abs/node.pem", "--api-key", "/etc/shardkv/certs/node-key.pem"]
    let apiCA = ["--api-ca", "/etc/shardkv/certs/ca.pem"]
    let peer = [
      "--peer-cert", "/abs/node.pem", "--peer-key", "/etc/shardkv/certs/node-key.pem", "--peer-ca",
      "/etc/shardkv/certs/ca.pem",
    ]
    for name in ["c1", "a"] {
      let arguments = try XCTUnwrap(file.kvdArguments(for: name))
      XCTAssertEqual(Array(arguments.suffix(12)), peer + api + apiCA, name)
    }
    XCTAssertEqual(file.kvdArguments(for: "r").map { Array($0.suffix(6)) }, api + apiCA)
    XCTAssertFalse(file.kvdArguments(for: "r")?.contains("--peer-cert") ?? true)
  }

  /// Each broken variant of the valid file is refused with the line and the field.
  func testInvalidFilesNameTheLineAndTheField() {
    func error(_ text: String) -> String {
      do {
        _ = try ClusterFile.parse(text, directory: "/x", path: "f.toml")
        return "accepted"
      } catch {
        return error.description
      }
    }
    let cases: [(String, String, String)] = [
      (valid.replacingOccurrences(of: "shards = 8", with: "shards = 0"), "f.toml:2: shards:", "1...65536"),
      (valid.replacingOccurrences(of: "id = 7", with: "id = 0"), "f.toml:15: group[1].id:", "> 0"),
      (
        valid.replacingOccurrences(of: "api = \"127.0.0.1:1201\"", with: "api = \"nowhere\""),
        "f.toml:22: group[1].node[2].api:", "HOST:PORT"
      ),
      (
        valid.replacingOccurrences(of: "resp = \"127.0.0.1:1302\"", with: "resp = \"127.0.0.1:1201\""),
        "f.toml:", "address 127.0.0.1:1201 is also used by b"
      ),
      (
        valid.replacingOccurrences(of: "election_ms", with: "electon_ms"), "f.toml:7: timing.electon_ms:",
        "unknown field"
      ),
      (
        valid.replacingOccurrences(of: "name = \"b\"", with: "name = \"a\""), "f.toml:",
        "node name a is used twice"
      ),
      (
        valid.replacingOccurrences(of: "peer = \"127.0.0.1:1002\"\n", with: ""),
        "f.toml:9: controller[1].peer:", "required"
      ),
      (valid.replacingOccurrences(of: "name = \"t\"\n", with: ""), "f.toml:1: name:", "required"),
      ("name = \"t\"\nshards = [", "f.toml:2:", "end-of-file"),
      (valid + "\n[tls]\nca = \"ca.pem\"\ncert = \"n.pem\"\n", "f.toml:30: tls.key:", "required"),
      (
        valid + "\n[tls]\nca = \"ca.pem\"\ncert = \"n.pem\"\nkey = \"k.pem\"\ncrt = \"x\"\n",
        "f.toml:34: tls.crt:", "unknown field"
      ),
    ]
    for (text, prefix, fragment) in cases {
      let message = error(text)
      XCTAssertTrue(message.hasPrefix(prefix), "expected \(prefix)…, got: \(message)")
      XCTAssertTrue(message.contains(fragment), "expected …\(fragment)…, got: \(message)")
    }
  }
}
