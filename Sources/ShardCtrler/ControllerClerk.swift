import Foundation
import Raft
import SwiftProtobuf
import Wire

/// Why a controller operation failed for good.
public enum ControllerClientError: Error, Hashable, Sendable, CustomStringConvertible {
  /// The controller refused the operation (unknown or duplicate group, shard out of range, …).
  case rejected(String)
  /// No replica completed the request before the deadline; a write's outcome is then unknown.
  case timeout(lastError: String)

  public var description: String {
    switch self {
    case .rejected(let message): return message
    case .timeout(let last): return "no answer before the deadline (last error: \(last))"
    }
  }
}

/// A client session with the controller group: Join, Leave, Move, UpdateMembers and Query over
/// a `GroupClient` (leader cache, retries with backoff across the replicas, one sequence number
/// per write across its retries, operations one at a time in call order). It keeps to the
/// replica named in each answer (`served_by`) and follows a wrong-leader answer's `leader_api`,
/// so after one request through a follower it talks to the leader.
public struct ControllerClerk: Sendable {
  private let session: GroupClient

  public var clientID: UInt64 { session.clientID }

  /// - Parameters:
  ///   - servers: the replicas' API addresses.
  ///   - deadline: how long one operation may take, retries included.
  public init(
    servers: [String], transport: any Transport, deadline: Duration = .seconds(10),
    callTimeout: Duration = .seconds(3), clientID: UInt64 = UInt64.random(in: 1 ... .max)
  ) {
    session = GroupClient(
      servers: servers, transport: transport, deadline: deadline, callTimeout: callTimeout, clientID: clientID
    )
  }

  /// Configuration `num`; -1 (or past the latest) asks for the latest.
  public func query(_ num: Int64 = -1) async throws(ControllerClientError) -> ShardConfiguration {
    var query = Shardkv_Ctrler_QueryOp()
    query.num = num
    return try await execute(.query(query))
  }

  @discardableResult
  public func join(_ groups: [GroupID: [String]]) async throws(ControllerClientError) -> ShardConfiguration {
    var join = Shardkv_Ctrler_JoinOp()
    join.groups = groups.mapValues(Shardkv_Ctrler_Members.init)
    return try await execute(.join(join))
  }

  @discardableResult
  public func leave(_ gids: [GroupID]) async throws(ControllerClientError) -> ShardConfiguration {
    var leave = Shardkv_Ctrler_LeaveOp()
    leave.gids = gids
    return try await execute(.leave(leave))
  }

  @discardableResult
  public func move(shard: Int, to gid: GroupID) async throws(ControllerClientError) -> ShardConfiguration {
    guard let shardNumber = UInt32(exactly: shard) else { throw .rejected("shard \(shard) is out of range") }
    var move = Shardkv_Ctrler_MoveOp()
    move.shard = shardNumber
    move.gid = gid
    return try await execute(.move(move))
  }

  @discardableResult
  public func updateMembers(
    of gid: GroupID, to members: [String]
  ) async throws(ControllerClientError)
    -> ShardConfiguration
  {
    var update = Shardkv_Ctrler_UpdateMembersOp()
    update.gid = gid
    update.members = Shardkv_Ctrler_Members(members)
    return try await execute(.updateMembers(update))
  }

  /// Runs one operation to completion; returns the configuration of the reply.
  private func execute(
    _ op: Shardkv_Ctrler_CtrlerRequest.OneOf_Op
  ) async throws(ControllerClientError)
    -> ShardConfiguration
  {
    let isWrite: Bool
    if case .query = op { isWrite = false } else { isWrite = true }
    let clientID = self.clientID
    return try await session.perform(
      method: ControllerMethod.request, isWrite: isWrite,
      encode: { sequence, _ in
        var request = Shardkv_Ctrler_CtrlerRequest()
        request.op = op
        request.clientID = clientID
        request.sequence = sequence
        do {
          return .success(try request.serializedBytes())
        } catch {
          return .failure(.rejected("cannot encode the request: \(error)"))
        }
      },
      interpret: { reply, _ in Self.verdict(reply) },
      giveUp: { .timeout(lastError: $0) },
      notServed: { .rejected("\($0): controller commands need a shard controller replica") }
    ).get()
  }

  @Sendable static func verdict(_ bytes: [UInt8]) -> ReplyVerdict<ShardConfiguration, ControllerClientError> {
    guard let reply = try? Shardkv_Ctrler_CtrlerReply(serializedBytes: bytes) else {
      return .tryNextMember("undecodable reply")
    }
    let why = reply.message.isEmpty ? "\(reply.error)" : reply.message
    switch reply.error {
    case .ok:
      return .done(ShardConfiguration(reply.config), leader: reply.servedBy.isEmpty ? nil : reply.servedBy)
    case .invalidArgument: return .refused(.rejected(reply.message))
    case .wrongLeader:
      return .tryNextMember(
        "not the leader (\(why))", leader: reply.leaderApi.isEmpty ? nil : reply.leaderApi)
    case .timeout, .UNRECOGNIZED: return .tryNextMember(why)
    }
  }
}
