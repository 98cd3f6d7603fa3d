import Foundation
import TOMLKit

/// A cluster described in one TOML file: its name, shard count, data directory and timing, the
/// controller's nodes, each replica group's nodes and the routers. `kvd --config FILE --node
/// NAME` runs one of its nodes; `kvctl cluster up|status|down FILE` operates all of them on
/// this machine.
///
/// ```toml
/// name = "local"
/// shards = 64
/// data = "../kvd-data/local"      # relative paths are relative to this file's directory
///
/// [timing]                        # optional; kvd's defaults otherwise
/// heartbeat_ms = 100
/// election_ms = 500
///
/// [[controller]]
/// name = "c1"
/// api = "127.0.0.1:23001"
/// peer = "127.0.0.1:22001"
/// metrics = "127.0.0.1:29001"     # optional: Prometheus metrics at /metrics
///
/// [[group]]
/// id = 1
/// [[group.node]]
/// name = "g1n1"
/// api = "127.0.0.1:20101"
/// peer = "127.0.0.1:21101"
///
/// [[router]]
/// name = "r1"
/// api = "127.0.0.1:20900"
/// resp = "127.0.0.1:6380"         # optional
///
/// [tls]                           # optional: mutual TLS on every peer and API address
/// ca = "certs/ca.pem"             # relative to this file's directory
/// cert = "certs/node.pem"
/// key = "certs/node-key.pem"
/// ```
///
/// Invariants checked by `parse`: node names are unique, every address is HOST:PORT and used
/// once, group ids are unique and non-zero, there is at least one controller node and every
/// group has at least one node.
public struct ClusterFile: Hashable, Sendable {
  public struct Node: Hashable, Sendable {
    public var name: String
    public var api: String
    /// Empty for a router.
    public var peer: String
    /// Where the node serves Prometheus metrics (`--metrics`), if anywhere.
    public var metrics: String?
    /// Routers only.
    public var resp: String?
  }

  public struct Group: Hashable, Sendable {
    public var id: UInt64
    public var nodes: [Node]
  }

  public struct Timing: Hashable, Sendable {
    public var heartbeatMs: Int?
    public var electionMs: Int?
    public var failureMs: Int?
  }

  /// One CA and one certificate for every node: each gets `--peer-cert/--peer-key/--peer-ca`
  /// and `--api-cert/--api-key/--api-ca` (a router the `--api-*` ones). Absolute paths.
  public struct TLS: Hashable, Sendable {
    public var ca: String
    public var cert: String
    public var key: String
  }

  /// What a node is in the file.
  public enum Role: Hashable, Sendable {
    case controller
    case member(group: UInt64)
    case router
  }

  public var name: String
  public var shards: Int
  /// Absolute.
  public var dataDirectory: String
  public var timing: Timing
  public var controllers: [Node]
  public var groups: [Group]
  public var routers: [Node]
  public var tls: TLS?

  /// Every node with its role, in file order: controllers, groups, routers.
  public var nodes: [(node: Node, role: Role)] {
    controllers.map { ($0, .controller) }
      + groups.flatMap { group in group.nodes.map { ($0, Role.member(group: group.id)) } }
      + routers.map { ($0, .router) }
  }

  public func node(named name: String) -> (node: Node, role: Role)? {
    nodes.first { $0.node.name == name }
  }

  /// The directory holding node `name`'s data and log.
  public func directory(of name: String) -> String { dataDirectory + "/" + name }

  /// The kvd arguments that run node `name`, every flag derived from the file.
  public func kvdArguments(for name: String) -> [String]? {
    guard let (node, role) = node(named: name) else { return nil }
    var arguments: [String] = []
    let controllerAPIs = controllers.map(\.api).joined(separator: ",")
    switch role {
    case .controller:
      arguments = [
        "--controller", "-a", node.api, "-p", node.peer, "--peers",
        controllers.map(\.peer).joined(separator: ","),
        "--shards", "\(shards)", "--data", directory(of: name),
      ]
    case .member(let gid):
      let members = groups.first { $0.id == gid }?.nodes ?? []
      arguments = [
        "-a", node.api, "-p", node.peer, "--peers", members.map(\.peer).joined(separator: ","), "--group",
        "\(gid)",
        "--controllers", controllerAPIs, "--data", directory(of: name),
      ]
    case .router:
      arguments = ["--router", "-a", node.api, "--controllers", controllerAPIs]
      if let resp = node.resp { arguments += ["--resp", resp] }
    }
    if let metrics = node.metrics { arguments += ["--metrics", metrics] }
    if let value = timing.heartbeatMs { arguments += ["--heartbeat-ms", "\(value)"] }
    if let value = timing.electionMs { arguments += ["--election-ms", "\(value)"] }
    if let value = timing.failureMs { arguments += ["--failure-ms", "\(value)"] }
    if let tls {
      if role != .router {
        arguments += ["--peer-cert", tls.cert, "--peer-key", tls.key, "--peer-ca", tls.ca]
      }
      arguments += ["--api-cert", tls.cert, "--api-key", tls.key, "--api-ca", tls.ca]
    }
    return arguments
  }

  // MARK: - Loading

  /// Reads and checks the file at `path`.
  public static func load(path: String) throws(ClusterFileError) -> ClusterFile {
    let text: String
    do {
      text = try String(contentsOfFile: path, encoding: .utf8)
    } catch {
      throw .unreadable(path: path, reason: "\(error.localizedDescription)")
    }
    let directory = URL(fileURLWithPath: path).deletingLastPathComponent().standardizedFileURL.path
    return try parse(text, directory: directory, path: path)
  }

  /// Parses `text`; relative paths are taken relative to `directory`.
  public static func parse(
    _ text: String, directory: String, path: String = "<text>"
  ) throws(ClusterFileError)
    -> ClusterFile
  {
    let table: TOMLTable
    do {
      table = try TOMLTable(string: text)
    } catch let error as TOMLParseError {
      throw .syntax(
        path: path, line: error.source.begin.line, column: error.source.begin.column,
        message: error.description)
    } catch {
      throw .syntax(path: path, line: 0, column: 0, message: "\(error)")
    }
    var reader = ClusterFileReader(text: text, path: path)
    return try reader.read(table, directory: directory)
  }
}

/// Why a cluster file cannot be used; every case names the file, and the line and field when
/// there is one.
public enum ClusterFileError: Error, Hashable, Sendable, CustomStringConvertible {
  case unreadable(path: String, reason: String)
  case syntax(path: String, line: Int, column: Int, message: String)
  /// `field` is the dotted path of the field (e.g. `group[2].node[1].api`).
  case invalid(path: String, line: Int?, field: String, message: String)

  public var description: String {
    switch self {
    case .unreadable(let path, let reason): return "\(path): cannot read: \(reason)"
    case .syntax(let path, let line, let column, let message):
      return "\(path):\(line):\(column): \(message)"
    case .invalid(let path, let line, let field, let message):
      return "\(path)\(line.map { ":\($0)" } ?? ""): \(field): \(message)"
    }
  }
}
