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
///
/// Every answer names the replica that produced it (`served_by`: the leader for a write, the
/// replica that served a query), and a WRONG_LEADER answer names the leader's API address when
/// the member directory has it (`leader_api`), so a client goes to the leader in one hop.
public struct ControllerServer: Sendable {
  public let node: RaftNode
  public let stateMachine: ControllerStateMachine
  public var requestTimeout: Duration = .seconds(5)
  public var nodeCommands: NodeCommandService

  /// - Parameter apiAddress: this replica's API address, published in the member directory
  ///   and named in replies; empty: neither.
  public init(
    node: RaftNode, stateMachine: ControllerStateMachine, peers: any Transport, apiAddress: String = ""
  ) {
    self.node = node
    self.stateMachine = stateMachine
    nodeCommands = NodeCommandService(
      node: node, peers: peers, service: "controller", apiAddress: apiAddress, addressBook: stateMachine)
  }

  /// This replica's API address (empty when not given).
  public var apiAddress: String { nodeCommands.apiAddress }

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
        reply.servedBy = apiAddress
        return try reply.serializedBytes()
      }
      var command = Shardkv_Ctrler_Command()
      command.request = request
      command.shardCount = UInt32(clamping: stateMachine.shardCount)
      command.stampMs = UInt64(max(0, Date().timeIntervalSince1970 * 1000))
      return try servedHere(try await node.propose(try command.serializedBytes(), timeout: requestTimeout))
    } catch RaftNodeError.notLeader(let leader?) where !forwarded {
      if let answer = await nodeCommands.forward(
        payload, method: ControllerMethod.forwardedRequest, to: leader)
      {
        return answer
      }
      var reply = ControllerStateMachine.reply(.wrongLeader, "could not reach the leader \(leader)")
      reply.leaderHint = leader.rawValue
      reply.leaderApi = nodeCommands.apiHint(for: leader)
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
      if case .notLeader(let leader) = error { reply.leaderApi = nodeCommands.apiHint(for: leader) }
      return try reply.serializedBytes()
    }
  }

  /// A write's reply (the state machine's, possibly a retried write's stored one) naming this
  /// replica, the leader that executed or re-answered it, as `served_by`.
  private func servedHere(_ bytes: [UInt8]) throws -> [UInt8] {
    guard !apiAddress.isEmpty, var reply = try? Shardkv_Ctrler_CtrlerReply(serializedBytes: bytes) else {
      return bytes
    }
    reply.servedBy = apiAddress
    return try reply.serializedBytes()
  }
}
