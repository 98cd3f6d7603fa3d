import Foundation
import Logging
import Raft
import ShardKV
import SwiftProtobuf
import Wire

/// JOIN_CLUSTER from the joining node's side: ask the router named by `-c` which group to join
/// (and where the controller is) before opening the group's state, then, once listening, ask
/// it to add this node, retrying until the group's leader has done so.
struct ClusterJoin: Sendable {
  enum Plan: Sendable {
    case joining(group: UInt64, controllers: [String])
    /// The address answers, or not at all, as something other than a router: the node waits as
    /// a standby for `kvctl join` (the standalone group's way).
    case notARouter
    case refused(String)
  }

  let router: String
  let peer: String
  let api: String
  let transport: any Transport
  let logger: Logger

  /// Which group to join (`group`, or the router's choice when 0).
  func pick(group: UInt64) async -> Plan {
    var status: Shardkv_StatusReply?
    // A router that is still starting gets a few seconds; an address that answers at all (a
    // standalone member's peer address answers "unknown method") is decided at once.
    attempts: for _ in 0..<10 {
      do {
        let bytes = try await transport.call(
          router, method: NodeMethod.status, payload: [], timeout: .seconds(1))
        status = try? Shardkv_StatusReply(serializedBytes: bytes)
        break attempts
      } catch .remote {
        break attempts
      } catch {
        try? await Task.sleep(for: .milliseconds(500))
      }
    }
    guard let status, status.service == "router" else { return .notARouter }
    do {
      let reply = try await call(group: group, pickOnly: true, timeout: .seconds(10))
      guard reply.error == .ok else { return .refused(reply.message) }
      return .joining(group: reply.group, controllers: reply.controllers)
    } catch {
      return .refused("\(error)")
    }
  }

  /// Asks the router to add this node to `group` until it has (JOIN_CLUSTER is idempotent).
  func join(group: UInt64) async {
    while !Task.isCancelled {
      do {
        let reply = try await call(group: group, pickOnly: false, timeout: .seconds(90))
        switch reply.error {
        case .ok:
          logger.info(
            "joined group \(group) through router \(router)",
            metadata: ["members": "\(reply.members.joined(separator: ","))"])
          return
        case .invalidArgument, .UNRECOGNIZED:
          logger.error("JOIN_CLUSTER refused by \(router): \(reply.message)")
          return
        case .unavailable:
          logger.warning("JOIN_CLUSTER not done yet: \(reply.message); retrying")
        }
      } catch {
        logger.warning("JOIN_CLUSTER through \(router) failed: \(error); retrying")
      }
      try? await Task.sleep(for: .seconds(1))
    }
  }

  private func call(
    group: UInt64, pickOnly: Bool, timeout: Duration
  ) async throws -> Shardkv_Router_JoinClusterReply {
    var request = Shardkv_Router_JoinClusterRequest()
    request.peer = peer
    request.api = api
    request.group = group
    request.pickOnly = pickOnly
    let bytes = try await transport.call(
      router, method: KVMethod.joinCluster, payload: try request.serializedBytes(), timeout: timeout)
    return try Shardkv_Router_JoinClusterReply(serializedBytes: bytes)
  }
}
