import ClusterConfig
import Foundation
import Raft
import Router
import ShardCtrler
import ShardKV
import SwiftProtobuf
import Wire

/// `kvctl cluster up|status|down [FILE]`: every node of a cluster file on this machine.
///
/// Each node runs as `kvd --config FILE --node NAME` (it outlives kvctl), with its log in
/// `DATA/NAME.log` and its process id in `DATA/NAME.pid`.
struct ClusterCommands {
  static let defaultFile = "configs/local.toml"

  let file: ClusterFile
  let path: String
  let transport: TCPTransport

  init(path: String, transport: TCPTransport) throws {
    let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
    do {
      file = try ClusterFile.load(path: absolute)
    } catch {
      throw Failure(message: error.description, status: .usage)
    }
    self.path = absolute
    self.transport = transport
  }

  // MARK: - Processes

  func pidPath(_ name: String) -> String { file.dataDirectory + "/\(name).pid" }
  func logPath(_ name: String) -> String { file.dataDirectory + "/\(name).log" }

  /// The node's process id, if its pid file names a live kvd.
  func runningPID(_ name: String) -> Int32? {
    guard let text = try? String(contentsOfFile: pidPath(name), encoding: .utf8),
      let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0, kill(pid, 0) == 0
    else { return nil }
    let command = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
    return command.contains("kvd") && command.contains(name) ? pid : nil
  }

  /// Starts `kvd --config FILE --node NAME` detached, its output appended to the node's log.
  func launch(_ name: String) throws -> Int32 {
    let kvd = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
      .appendingPathComponent("kvd")
    guard FileManager.default.isExecutableFile(atPath: kvd.path) else {
      throw Failure(message: "kvd is not next to kvctl (\(kvd.path)); build it first (swift build)")
    }
    if !FileManager.default.fileExists(atPath: logPath(name)) {
      _ = FileManager.default.createFile(atPath: logPath(name), contents: nil)
    }
    let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath(name)))
    defer { try? log.close() }
    log.seekToEndOfFile()
    let process = Process()
    process.executableURL = kvd
    process.arguments = ["--config", path, "--node", name]
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = log
    process.standardError = log
    try process.run()
    let pid = process.processIdentifier
    try "\(pid)\n".write(toFile: pidPath(name), atomically: true, encoding: .utf8)
    return pid
  }

  // MARK: - up

  func up() async throws -> Outcome {
    guard let router = file.routers.first else {
      throw Failure(message: "\(path): `cluster up` needs a [[router]] to check the cluster through")
    }
    try FileManager.default.createDirectory(atPath: file.dataDirectory, withIntermediateDirectories: true)
    let stopped = file.nodes.filter { runningPID($0.node.name) == nil }
    if stopped.isEmpty {
      print("cluster \(file.name) is already up (\(file.nodes.count) nodes); nothing changed")
    } else {
      for (node, _) in stopped {
        let pid = try launch(node.name)
        print("started \(node.name) (pid \(pid), log \(logPath(node.name)))")
      }
      try await waitForNodes()
      try await registerGroups()
    }
    try await waitUntilServing(through: router.api)
    print(
      """

      Try:
        kvctl -a \(router.api) put greeting hello
        kvctl -a \(router.api) get greeting
        kvctl -a \(router.api) status
        kvctl cluster status \(path)
      """)
    if let resp = router.resp {
      let port = resp.split(separator: ":").last.map(String.init) ?? resp
      print("  redis-cli -p \(port) SET greeting hello")
    }
    print("  kvctl cluster down \(path)")
    print("Router:\t\(router.api)")
    if let resp = router.resp { print("RESP:\t\(resp)") }
    return ok([
      ("cluster", .string(file.name)), ("router", .string(router.api)),
      ("resp", router.resp.map { .string($0) } ?? .null),
    ])
  }

  /// Waits until every node answers `node.status` and the controller has a leader.
  private func waitForNodes() async throws {
    try await until("every node answers", timeout: .seconds(60)) {
      for (node, _) in file.nodes {
        guard
          (try? await transport.call(node.api, method: NodeMethod.status, payload: [], timeout: .seconds(1)))
            != nil
        else { return false }
      }
      return true
    }
  }

  /// Joins every group of the file that the controller does not know yet, one at a time.
  private func registerGroups() async throws {
    let controller = ControllerClerk(
      servers: file.controllers.map(\.api), transport: transport, deadline: .seconds(30))
    let known = try await controller.query().groups
    for group in file.groups where known[group.id] == nil {
      try await controller.join([group.id: group.nodes.map(\.api)])
      print("registered group \(group.id) (\(group.nodes.map(\.name).joined(separator: ", ")))")
    }
  }

  /// Waits until a write and a read of a probe key through the router succeed.
  private func waitUntilServing(through router: String) async throws {
    let clerk = KVClerk(
      servers: [router], transport: transport, deadline: .seconds(5), callTimeout: .seconds(2))
    let key = Array("kvctl-cluster-up-probe".utf8)
    let value = Array("\(Date().timeIntervalSince1970)".utf8)
    try await until("a write and a read through the router \(router) succeed", timeout: .seconds(120)) {
      guard (try? await clerk.put(key, value)) != nil else { return false }
      return (try? await clerk.get(key)) == value
    }
  }

  private func until(
    _ what: String, timeout: Duration, _ condition: () async throws -> Bool
  ) async throws {
    let end = ContinuousClock.now + timeout
    while ContinuousClock.now < end {
      if try await condition() { return }
      try await Task.sleep(for: .milliseconds(250))
    }
    throw Failure(
      message:
        "cluster \(file.name): timed out waiting until \(what); see the logs under \(file.dataDirectory)")
  }

  // MARK: - status

  func status(json: Bool) async throws -> Outcome {
    var rows: [[String: Any]] = []
    for (node, role) in file.nodes {
      var row: [String: Any] = ["name": node.name, "api": node.api, "metrics": node.metrics ?? NSNull()]
      switch role {
      case .controller: row["role"] = "controller"
      case .member(let gid):
        row["role"] = "member"
        row["group"] = gid
      case .router: row["role"] = "router"
      }
      let pid = runningPID(node.name)
      row["pid"] = pid.map { Int($0) } ?? NSNull()
      let reply = try? await transport.call(
        node.api, method: NodeMethod.status, payload: [], timeout: .seconds(1))
      let status = reply.flatMap { try? Shardkv_StatusReply(serializedBytes: $0) }
      row["up"] = status != nil
      if let status, role != .router {
        row["leader"] = status.leader
        row["applied"] = status.appliedIndex
        row["term"] = status.term
      }
      rows.append(row)
    }
    var balance: [String: Int] = [:]
    var configNum: UInt64?
    if let config = try? await ControllerClerk(
      servers: file.controllers.map(\.api), transport: transport, deadline: .seconds(3)
    ).query() {
      configNum = config.num
      for (gid, shards) in config.shardsByGroup { balance["\(gid)"] = shards.count }
    }
    if json {
      let object: [String: Any] = [
        "cluster": file.name, "file": path, "nodes": rows, "config": configNum.map { Int($0) } ?? NSNull(),
        "shards_by_group": balance,
      ]
      let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
      return Outcome(document: .encoded(String(decoding: data, as: UTF8.self)))
    } else {
      print("Cluster:\t\(file.name) (\(path))")
      print("NAME\tROLE\tGROUP\tPID\tSTATE\tLEADER\tAPPLIED\tAPI\tMETRICS")
      for row in rows {
        let group = (row["group"] as? UInt64).map { "\($0)" } ?? "-"
        let pid = (row["pid"] as? Int).map { "\($0)" } ?? "-"
        let state = (row["up"] as? Bool) == true ? "up" : "down"
        let leader = (row["leader"] as? String).map { $0.isEmpty ? "none" : $0 } ?? "-"
        let applied = (row["applied"] as? UInt64).map { "\($0)" } ?? "-"
        let metrics = (row["metrics"] as? String) ?? "-"
        let name = row["name"] as? String ?? ""
        let role = row["role"] as? String ?? ""
        let api = row["api"] as? String ?? ""
        print("\(name)\t\(role)\t\(group)\t\(pid)\t\(state)\t\(leader)\t\(applied)\t\(api)\t\(metrics)")
      }
      if let configNum {
        let shares = balance.keys.sorted().map { "group \($0): \(balance[$0] ?? 0)" }.joined(separator: ", ")
        print("Config:\t\(configNum)")
        print("Shards:\t\(shares.isEmpty ? "no groups" : shares)")
      } else {
        print("Config:\tthe controller does not answer")
      }
    }
    return ok()
  }

  // MARK: - down

  func down(purge: Bool) async throws -> Outcome {
    var signalled: [(String, Int32)] = []
    for (node, _) in file.nodes {
      guard let pid = runningPID(node.name) else { continue }
      kill(pid, SIGTERM)
      signalled.append((node.name, pid))
    }
    let end = ContinuousClock.now + .seconds(10)
    while ContinuousClock.now < end, signalled.contains(where: { kill($0.1, 0) == 0 }) {
      try await Task.sleep(for: .milliseconds(100))
    }
    for (name, pid) in signalled where kill(pid, 0) == 0 {
      kill(pid, SIGKILL)
      print("\(name) did not stop within 10 s of SIGTERM: killed")
    }
    for (node, _) in file.nodes { try? FileManager.default.removeItem(atPath: pidPath(node.name)) }
    print("stopped \(signalled.count) node(s) of cluster \(file.name)")
    if purge {
      try? FileManager.default.removeItem(atPath: file.dataDirectory)
      print("removed \(file.dataDirectory)")
    }
    return ok([
      ("cluster", .string(file.name)), ("stopped", .number(Int64(signalled.count))), ("purged", .bool(purge)),
    ])
  }
}
