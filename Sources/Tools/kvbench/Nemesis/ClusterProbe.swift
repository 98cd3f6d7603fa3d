import Foundation
import Raft
import ShardCtrler
import ShardKV
import SwiftProtobuf
import Wire

/// Questions to the live cluster: who leads, does it serve, do replicas agree.
struct ClusterProbe: Sendable {
  let topology: NemesisTopology
  let transport: any Transport

  private func call<Reply: SwiftProtobuf.Message>(
    _ address: String, _ method: String, _ request: some SwiftProtobuf.Message, as: Reply.Type,
    timeout: Duration = .milliseconds(500)
  ) async -> Reply? {
    guard let payload: [UInt8] = try? request.serializedBytes() else { return nil }
    guard let bytes = try? await transport.call(address, method: method, payload: payload, timeout: timeout)
    else { return nil }
    return try? Reply(serializedBytes: bytes)
  }

  /// The node the members of `group` name as leader (the first answer that names a member).
  func leader(of group: [Int]) async -> Int? {
    for node in group {
      guard
        let reply = await call(
          topology.nodes[node].api, NodeMethod.leader, Shardkv_LeaderRequest(),
          as: Shardkv_LeaderReply.self)
      else { continue }
      if let leader = topology.node(withPeer: reply.leader), group.contains(leader) { return leader }
    }
    return nil
  }

  /// Every Raft group has a leader, the initial replica groups are registered (sharded), and a
  /// read through the clients' servers succeeds.
  func waitUntilServing(
    initialGroups: [GroupID], within limit: Duration, say: @Sendable (String) -> Void
  ) async -> Bool {
    let deadline = ContinuousClock.now + limit
    for group in topology.raftGroups {
      while await leader(of: group) == nil {
        guard ContinuousClock.now < deadline else { return false }
        try? await Task.sleep(for: .milliseconds(100))
      }
    }
    if !initialGroups.isEmpty {
      let clerk = ControllerClerk(servers: topology.controllers, transport: transport, deadline: .seconds(5))
      var joined = false
      while !joined {
        guard ContinuousClock.now < deadline else { return false }
        do {
          try await clerk.join(
            Dictionary(uniqueKeysWithValues: initialGroups.map { ($0, topology.members(of: $0)) }))
          joined = true
        } catch {
          say("  registering groups \(initialGroups): \(error); again")
        }
      }
    }
    let clerk = KVClerk(servers: topology.clientServers, transport: transport, deadline: .seconds(3))
    while true {
      do {
        // The answer (the key is missing) does not matter: that one came.
        _ = try await clerk.get(Array("k0".utf8))
        return true
      } catch {
        guard ContinuousClock.now < deadline else { return false }
        try? await Task.sleep(for: .milliseconds(100))
      }
    }
  }

  /// `direct_get` of `key` at `node`: .some(value or nil), or nil when the node did not answer.
  func directGet(_ key: String, at node: Int) async -> String?? {
    var request = Shardkv_DirectGetRequest()
    request.key = Data(key.utf8)
    guard
      let reply = await call(
        topology.nodes[node].api, KVMethod.directGet, request, as: Shardkv_DirectGetReply.self,
        timeout: .seconds(2))
    else { return nil }
    switch reply.error {
    case .ok: return .some(String(decoding: reply.value, as: UTF8.self))
    case .noKey: return .some(nil)
    default: return nil
    }
  }

  /// Polls until the members of every replica group hold the same value for every key;
  /// returns the values per group, and a problem per group that never agreed.
  func waitForIdenticalReplicas(
    keys: [String], within limit: Duration
  ) async -> (values: [GroupID: [String: String?]], problems: [String]) {
    let deadline = ContinuousClock.now + limit
    var values: [GroupID: [String: String?]] = [:]
    var problems: [String] = []
    for (gid, members) in topology.keyGroups {
      var disagreement = ""
      while true {
        disagreement = ""
        var agreed: [String: String?] = [:]
        for key in keys {
          var answers: [String?] = []
          for node in members {
            if let answer = await directGet(key, at: node) { answers.append(answer) }
          }
          if answers.count < members.count {
            disagreement = "a member of replica group \(gid) did not answer direct_get"
          } else if Set(answers).count > 1 {
            disagreement =
              "replica group \(gid) disagrees on \(key): "
              + zip(members, answers).map { "node \($0): \($1.map { "\"\($0)\"" } ?? "nil")" }.joined(
                separator: ", ")
          } else if let value = answers.first {
            agreed[key] = .some(value)
          }
          if !disagreement.isEmpty { break }
        }
        if disagreement.isEmpty {
          values[gid] = agreed
          break
        }
        if ContinuousClock.now >= deadline {
          problems.append(disagreement)
          break
        }
        try? await Task.sleep(for: .milliseconds(200))
      }
    }
    return (values, problems)
  }

  /// After a restart on the same data directories: every node answers `status` (routers:
  /// stay up), or the problem with each that did not.
  func waitForStatus(within limit: Duration, processes: NodeProcesses) async -> [String] {
    let deadline = ContinuousClock.now + limit
    var problems: [String] = []
    for (i, node) in topology.nodes.enumerated() {
      while true {
        if !processes.isRunning(i) {
          problems.append("\(node.name) exited when restarted on its data directory (see its log)")
          break
        }
        if let reply = await call(
          node.api, NodeMethod.status, Shardkv_StatusRequest(), as: Shardkv_StatusReply.self),
          reply.error == .ok
        {
          break
        }
        if ContinuousClock.now >= deadline {
          problems.append(
            "\(node.name) did not answer status within \(limit) of restarting on its data directory")
          break
        }
        try? await Task.sleep(for: .milliseconds(100))
      }
    }
    return problems
  }
}
