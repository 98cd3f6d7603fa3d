import Foundation
import Wire

/// How `kvctl status` prints a node's status: a table for people, one JSON object for scripts.
enum StatusFormat {
  static func roleName(_ role: Shardkv_NodeRole) -> String {
    switch role {
    case .follower: return "follower"
    case .preCandidate: return "pre-candidate"
    case .candidate: return "candidate"
    case .leader: return "leader"
    case .learner: return "learner"
    case .standby: return "standby"
    case .unspecified, .UNRECOGNIZED: return "unknown"
    }
  }

  static func table(_ s: Shardkv_StatusReply) -> String {
    var lines = [
      "Node:\t\(s.node)",
      "Role:\t\(roleName(s.role))",
      "Term:\t\(s.term)",
      "Leader:\t\(s.leader.isEmpty ? "none" : s.leader)",
      "Commit:\t\(s.commitIndex)",
      "Applied:\t\(s.appliedIndex)",
      "Members:",
      "  PEER\tVOTER\tMATCH\tNEXT\tLAST-CONTACT-MS",
    ]
    for m in s.members {
      let contact = m.lastContactMs >= 0 ? "\(m.lastContactMs)" : "-"
      lines.append("  \(m.peer)\t\(m.voter ? "yes" : "no")\t\(m.matchIndex)\t\(m.nextIndex)\t\(contact)")
    }
    return lines.joined(separator: "\n")
  }

  static func json(_ s: Shardkv_StatusReply) -> String {
    let members: [[String: Any]] = s.members.map {
      [
        "peer": $0.peer, "voter": $0.voter, "match": $0.matchIndex, "next": $0.nextIndex,
        "last_contact_ms": $0.lastContactMs,
      ]
    }
    let object: [String: Any] = [
      "node": s.node, "role": roleName(s.role), "term": s.term, "leader": s.leader,
      "commit": s.commitIndex, "applied": s.appliedIndex, "members": members,
    ]
    guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else {
      return "{}"
    }
    return String(decoding: data, as: UTF8.self)
  }

  /// A router's view: `Router:`, `Config:`, the controllers, then one line per group.
  static func table(_ s: Shardkv_Router_RouterStatusReply) -> String {
    let downControllers = Set(s.unreachableControllers)
    var lines = [
      "Router:\t\(s.api)",
      "Config:\t\(s.configNum)",
      "Shards:\t\(s.shardCount)",
      "Controllers:\t"
        + s.controllers.map { downControllers.contains($0) ? "\($0) (unreachable)" : $0 }.joined(
          separator: ","),
      "GROUP\tSHARDS\tLEADER\tMEMBERS",
    ]
    for group in s.groups {
      let down = Set(group.unreachable)
      let members = group.members.map { down.contains($0) ? "\($0) (unreachable)" : $0 }
      lines.append(
        "\(group.group)\t\(group.shards.count)\t\(group.leader.isEmpty ? "-" : group.leader)\t"
          + members.joined(separator: ","))
    }
    return lines.joined(separator: "\n")
  }

  static func json(_ s: Shardkv_Router_RouterStatusReply) -> String {
    let groups: [[String: Any]] = s.groups.map {
      [
        "group": $0.group, "members": $0.members, "leader": $0.leader, "unreachable": $0.unreachable,
        "shards": $0.shards.map { Int($0) },
      ]
    }
    let object: [String: Any] = [
      "router": s.api, "config": s.configNum, "shards": s.shardCount, "controllers": s.controllers,
      "unreachable_controllers": s.unreachableControllers, "groups": groups,
    ]
    guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else {
      return "{}"
    }
    return String(decoding: data, as: UTF8.self)
  }
}
