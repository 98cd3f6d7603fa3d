import Foundation
import Raft
import SwiftProtobuf
import Wire

/// RPC method names of a KV group member (the node commands are `NodeMethod`'s). Client-facing
/// methods are served on the API address; `forwarded*` ones on the peer address, where a
/// follower hands a request to its leader (and they are never forwarded again, so a stale hint
/// cannot make a loop).
public enum KVMethod {
  public static let request = "kv.request"
  public static let directGet = "node.direct_get"

  public static let forwardedRequest = "forwarded.kv.request"
}

/// Serves one group member: client operations (writes through the Raft log, reads through
/// ReadIndex), `direct_get`, the node commands every replica serves, and forwarding to the
/// leader.
public struct KVGroupServer: Sendable {
  public let node: RaftNode
  public let stateMachine: KVStateMachine
  /// Reaches other members at their peer addresses, to forward to the leader.
  public let peers: any Transport
  public var requestTimeout: Duration = .seconds(5)
  /// `leader`, `dropped`, `status`, `join` and `remove`.
  public var nodeCommands: NodeCommandService

  public init(node: RaftNode, stateMachine: KVStateMachine, peers: any Transport) {
    self.node = node
    self.stateMachine = stateMachine
    self.peers = peers
    nodeCommands = NodeCommandService(node: node, peers: peers)
  }

  /// The methods of the API address.
  public func registerClientMethods(in handlers: inout RPCHandlers) {
    let server = self
    handlers.register(KVMethod.request) { try await server.handleRequest($0, forwarded: false) }
    handlers.register(KVMethod.directGet) { try server.directGet($0) }
    nodeCommands.registerClientMethods(in: &handlers)
  }

  /// The methods of the peer address that take requests forwarded by followers.
  public func registerForwardedMethods(in handlers: inout RPCHandlers) {
    let server = self
    handlers.register(KVMethod.forwardedRequest) { try await server.handleRequest($0, forwarded: true) }
    nodeCommands.registerForwardedMethods(in: &handlers)
  }

  // MARK: - Client operations

  func handleRequest(_ payload: [UInt8], forwarded: Bool) async throws -> [UInt8] {
    guard let request = try? Shardkv_KvRequest(serializedBytes: payload) else {
      return try KVStateMachine.reply(.invalidArgument, "malformed request").serializedBytes()
    }
    let limits = stateMachine.options.limits
    let value: [UInt8] = request.op == .get || request.op == .delete ? [] : [UInt8](request.value)
    if let problem = limits.violation(key: [UInt8](request.key), value: value) {
      return try KVStateMachine.reply(.invalidArgument, problem).serializedBytes()
    }
    do {
      switch request.op {
      case .get:
        try await node.linearizableRead(timeout: requestTimeout)
        var reply: Shardkv_KvReply
        if let found = try stateMachine.localValue(for: [UInt8](request.key)) {
          reply = KVStateMachine.reply(.ok)
          reply.value = Data(found)
        } else {
          reply = KVStateMachine.reply(.noKey)
        }
        return try reply.serializedBytes()
      case .put, .append, .delete:
        var command = Shardkv_Group_Command()
        command.request = request
        command.stampMs = UInt64(max(0, Date().timeIntervalSince1970 * 1000))
        return try await node.propose(try command.serializedBytes(), timeout: requestTimeout)
      default:
        return try KVStateMachine.reply(.invalidArgument, "unknown operation \(request.op.rawValue)")
          .serializedBytes()
      }
    } catch RaftNodeError.notLeader(let leader?) where !forwarded {
      return try await forward(payload, method: KVMethod.forwardedRequest, to: leader)
    } catch let error as RaftNodeError {
      return try Self.reply(for: error).serializedBytes()
    }
  }

  private func forward(_ payload: [UInt8], method: String, to leader: NodeID) async throws -> [UInt8] {
    if let answer = await nodeCommands.forward(payload, method: method, to: leader) { return answer }
    var reply = KVStateMachine.reply(.wrongLeader, "could not reach the leader \(leader)")
    reply.leaderHint = leader.rawValue
    return try reply.serializedBytes()
  }

  static func reply(for error: RaftNodeError) -> Shardkv_KvReply {
    let outcome = NodeCommandService.outcome(of: error)
    var reply = KVStateMachine.reply(outcome.error, outcome.message)
    reply.leaderHint = outcome.leaderHint
    return reply
  }

  // MARK: - Diagnostics

  func directGet(_ payload: [UInt8]) throws -> [UInt8] {
    var reply = Shardkv_DirectGetReply()
    guard let request = try? Shardkv_DirectGetRequest(serializedBytes: payload), !request.key.isEmpty else {
      reply.error = .invalidArgument
      return try reply.serializedBytes()
    }
    if let value = try stateMachine.localValue(for: [UInt8](request.key)) {
      reply.error = .ok
      reply.value = Data(value)
    } else {
      reply.error = .noKey
    }
    reply.appliedIndex = stateMachine.appliedIndex
    return try reply.serializedBytes()
  }
}
