import Foundation
import Raft
import SwiftProtobuf
import Wire

/// RPC method names of a controller replica (besides `NodeMethod`'s node commands).
public enum ControllerMethod {
  public static let request = "ctrler.request"
  public static let forwardedRequest = "forwarded.ctrler.request"
}

/// Serves one controller replica: writes (Join, Leave, Move, UpdateMembers) through the Raft
/// log, Query through ReadIndex (linearizable), the node commands, and forwarding from a
/// follower to its leader.
public struct ControllerServer: Sendable {
  public let node: RaftNode
  public let stateMachine: ControllerStateMachine
  public var requestTimeout: Duration = .seconds(5)
  public var nodeCommands: NodeCommandService

  public init(node: RaftNode, stateMachine: ControllerStateMachine, peers: any Transport) {
    self.node = node
    self.stateMachine = stateMachine
    nodeCommands = NodeCommandService(node: node, peers: peers, service: "controller")
  }

  /// The methods of the API address.
  public func registerClientMethods(in handlers: inout RPCHandlers) {
    let server = self
    handlers.register(ControllerMethod.request) { try await server.handleRequest($0, forwarded: false) }
    nodeCommands.registerClientMethods(in: &handlers)
  }

  /// The methods of the peer address that take requests forwarded by followers.
  public func registerForwardedMethods(in handlers: inout RPCHandlers) {
    let server = self
    handlers.register(ControllerMethod.forwardedRequest) {
      try await server.handleRequest($0, forwarded: true)
    }
    nodeCommands.registerForwardedMethods(in: &handlers)
  }

  func handleRequest(_ payload: [UInt8], forwarded: Bool) async throws -> [UInt8] {
    guard let request = try? Shardkv_Ctrler_CtrlerRequest(serializedBytes: payload) else {
      return try ControllerStateMachine.reply(.invalidArgument, "malformed request").serializedBytes()
    }
    guard let op = request.op else {
      return try ControllerStateMachine.reply(.invalidArgument, "the request names no operation")
        .serializedBytes()
    }
    do {
      if case .query(let query) = op {
        try await node.linearizableRead(timeout: requestTimeout)
        var reply = ControllerStateMachine.reply(.ok)
        reply.config = stateMachine.configuration(query.num).message
        return try reply.serializedBytes()
      }
      var command = Shardkv_Ctrler_Command()
      command.request = request
      command.shardCount = UInt32(clamping: stateMachine.shardCount)
      command.stampMs = UInt64(max(0, Date().timeIntervalSince1970 * 1000))
      return try await node.propose(try command.serializedBytes(), timeout: requestTimeout)
    } catch RaftNodeError.notLeader(let leader?) where !forwarded {
      if let answer = await nodeCommands.forward(
        payload, method: ControllerMethod.forwardedRequest, to: leader)
      {
        return answer
      }
      var reply = ControllerStateMachine.reply(.wrongLeader, "could not reach the leader \(leader)")
      reply.leaderHint = leader.rawValue
      return try reply.serializedBytes()
    } catch let error as RaftNodeError {
      let outcome = NodeCommandService.outcome(of: error)
      let code: Shardkv_Ctrler_CtrlerError =
        switch outcome.error {
        case .wrongLeader: .wrongLeader
        case .timeout: .timeout
        case .ok, .invalidArgument, .UNRECOGNIZED: .invalidArgument
        }
      var reply = ControllerStateMachine.reply(code, outcome.message)
      reply.leaderHint = outcome.leaderHint
      return try reply.serializedBytes()
    }
  }
}
