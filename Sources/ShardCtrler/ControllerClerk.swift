import Foundation
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

/// A client session with the controller group: it remembers which replica answered last,
/// retries on wrong leader, timeouts and connection failures with backoff across the
/// replicas, and reuses a write's sequence number across its retries (exactly-once).
public actor ControllerClerk {
  public let clientID: UInt64
  private let servers: [String]
  private let transport: any Transport
  private let deadline: Duration
  private let callTimeout: Duration
  private var sequence: UInt64 = 0
  private var preferred = 0

  /// - Parameters:
  ///   - servers: the replicas' API addresses.
  ///   - deadline: how long one operation may take, retries included.
  public init(
    servers: [String], transport: any Transport, deadline: Duration = .seconds(10),
    callTimeout: Duration = .seconds(3), clientID: UInt64 = UInt64.random(in: 1 ... .max)
  ) {
    precondition(!servers.isEmpty, "a clerk needs at least one server")
    self.servers = servers
    self.transport = transport
    self.deadline = deadline
    self.callTimeout = callTimeout
    self.clientID = clientID
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
    var request = Shardkv_Ctrler_CtrlerRequest()
    request.op = op
    request.clientID = clientID
    if case .query = op {
    } else {
      sequence += 1
      request.sequence = sequence
    }
    let payload: [UInt8]
    do {
      payload = try request.serializedBytes()
    } catch {
      throw .rejected("cannot encode the request: \(error)")
    }
    let clock = ContinuousClock()
    let end = clock.now + deadline
    var backoff = Duration.milliseconds(20)
    var lastError = "no attempt"
    while clock.now < end {
      let server = servers[preferred % servers.count]
      do {
        let bytes = try await transport.call(
          server, method: ControllerMethod.request, payload: payload,
          timeout: min(callTimeout, end - clock.now))
        let reply = try Shardkv_Ctrler_CtrlerReply(serializedBytes: bytes)
        switch reply.error {
        case .ok:
          return ShardConfiguration(reply.config)
        case .invalidArgument:
          throw ControllerClientError.rejected(reply.message)
        case .wrongLeader:
          lastError = "\(server): not the leader (\(reply.message))"
          preferred += 1
        case .timeout, .UNRECOGNIZED:
          lastError = "\(server): \(reply.message.isEmpty ? "\(reply.error)" : reply.message)"
        }
      } catch let error as ControllerClientError {
        throw error
      } catch {
        lastError = "\(server): \(error)"
        preferred += 1
      }
      try? await Task.sleep(for: min(backoff, max(.zero, end - clock.now)))
      backoff = min(backoff * 2, .milliseconds(500))
    }
    throw .timeout(lastError: lastError)
  }
}
