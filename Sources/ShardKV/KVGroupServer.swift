import Foundation
import Raft
import SwiftProtobuf
import Wire

/// RPC method names of a KV group member. Client-facing methods are served on the API
/// address; `forwarded*` ones on the peer address, where a follower hands a request to its
/// leader (and they are never forwarded again, so a stale hint cannot make a loop).
public enum KVMethod {
  public static let request = "kv.request"
  public static let leader = "node.leader"
  public static let dropped = "node.dropped"
  public static let directGet = "node.direct_get"
  public static let status = "node.status"
  public static let join = "node.join"
  public static let remove = "node.remove"

  public static let forwardedRequest = "forwarded.kv.request"
  public static let forwardedJoin = "forwarded.node.join"
  public static let forwardedRemove = "forwarded.node.remove"
}

/// Serves one group member: client operations (writes through the Raft log, reads through
/// ReadIndex), node commands for operators, and forwarding to the leader.
public struct KVGroupServer: Sendable {
  public let node: RaftNode
  public let stateMachine: KVStateMachine
  /// Reaches other members at their peer addresses, to forward to the leader.
  public let peers: any Transport
  public var requestTimeout: Duration = .seconds(5)
  public var membershipTimeout: Duration = .seconds(30)

  public init(node: RaftNode, stateMachine: KVStateMachine, peers: any Transport) {
    self.node = node
    self.stateMachine = stateMachine
    self.peers = peers
  }

  /// The methods of the API address.
  public func registerClientMethods(in handlers: inout RPCHandlers) {
    let server = self
    handlers.register(KVMethod.request) { try await server.handleRequest($0, forwarded: false) }
    handlers.register(KVMethod.join) { try await server.handleMembership($0, join: true, forwarded: false) }
    handlers.register(KVMethod.remove) {
      try await server.handleMembership($0, join: false, forwarded: false)
    }
    handlers.register(KVMethod.leader) { _ in try await server.leader() }
    handlers.register(KVMethod.dropped) { _ in try await server.dropped() }
    handlers.register(KVMethod.directGet) { try server.directGet($0) }
    handlers.register(KVMethod.status) { _ in try await server.status() }
  }

  /// The methods of the peer address that take requests forwarded by followers.
  public func registerForwardedMethods(in handlers: inout RPCHandlers) {
    let server = self
    handlers.register(KVMethod.forwardedRequest) { try await server.handleRequest($0, forwarded: true) }
    handlers.register(KVMethod.forwardedJoin) {
      try await server.handleMembership($0, join: true, forwarded: true)
    }
    handlers.register(KVMethod.forwardedRemove) {
      try await server.handleMembership($0, join: false, forwarded: true)
    }
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
    do {
      return try await peers.call(leader.rawValue, method: method, payload: payload, timeout: requestTimeout)
    } catch {
      var reply = KVStateMachine.reply(.wrongLeader, "could not reach the leader: \(error)")
      reply.leaderHint = leader.rawValue
      return try reply.serializedBytes()
    }
  }

  static func reply(for error: RaftNodeError) -> Shardkv_KvReply {
    switch error {
    case .notLeader(let leader):
      var reply = KVStateMachine.reply(.wrongLeader, error.description)
      reply.leaderHint = leader?.rawValue ?? ""
      return reply
    case .timeout, .leadershipLost, .stopped:
      return KVStateMachine.reply(.timeout, error.description)
    case .rejected, .storage, .badSnapshot:
      return KVStateMachine.reply(.invalidArgument, error.description)
    }
  }

  // MARK: - Node commands

  func handleMembership(_ payload: [UInt8], join: Bool, forwarded: Bool) async throws -> [UInt8] {
    var reply = Shardkv_MembershipReply()
    guard let request = try? Shardkv_JoinRequest(serializedBytes: payload), !request.peer.isEmpty,
      (try? PeerAddress(parsing: request.peer)) != nil
    else {
      reply.error = .invalidArgument
      reply.message = "expected a peer address HOST:PORT"
      return try reply.serializedBytes()
    }
    let peer = NodeID(request.peer)
    do {
      if join {
        try await node.addMember(peer, timeout: membershipTimeout)
      } else {
        try await node.removeMember(peer, timeout: membershipTimeout)
      }
      reply.error = .ok
      reply.members = await node.membership.all.map(\.rawValue)
    } catch .notLeader(let leader?) where !forwarded {
      return try await forward(
        payload, method: join ? KVMethod.forwardedJoin : KVMethod.forwardedRemove, to: leader)
    } catch {
      let kv = Self.reply(for: error)
      reply.error = kv.error
      reply.leaderHint = kv.leaderHint
      reply.message = kv.message
    }
    return try reply.serializedBytes()
  }

  func leader() async throws -> [UInt8] {
    var reply = Shardkv_LeaderReply()
    let status = await node.status
    reply.leader = status.leader?.rawValue ?? ""
    reply.term = status.term
    return try reply.serializedBytes()
  }

  func dropped() async throws -> [UInt8] {
    var reply = Shardkv_DroppedReply()
    reply.peers = await node.unreachablePeers.map(\.rawValue)
    reply.leaderHint = await node.leader?.rawValue ?? ""
    return try reply.serializedBytes()
  }

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

  func status() async throws -> [UInt8] {
    let status = await node.status
    let tick = node.tickInterval
    var reply = Shardkv_StatusReply()
    reply.node = status.id.rawValue
    if !status.membership.contains(status.id) {
      reply.role = .standby
    } else if status.membership.isLearner(status.id) {
      reply.role = .learner
    } else {
      switch status.role {
      case .follower: reply.role = .follower
      case .preCandidate: reply.role = .preCandidate
      case .candidate: reply.role = .candidate
      case .leader: reply.role = .leader
      }
    }
    reply.term = status.term
    reply.leader = status.leader?.rawValue ?? ""
    reply.commitIndex = status.commit
    reply.appliedIndex = status.applied
    reply.members = status.peers.map { peer in
      var member = Shardkv_MemberStatus()
      member.peer = peer.id.rawValue
      member.voter = peer.isVoter
      member.matchIndex = peer.match ?? 0
      member.nextIndex = peer.next ?? 0
      let elapsed = tick * peer.ticksSinceContact
      member.lastContactMs =
        elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
      return member
    }
    if status.membership.contains(status.id) {
      var me = Shardkv_MemberStatus()
      me.peer = status.id.rawValue
      me.voter = status.membership.isVoter(status.id)
      me.matchIndex = status.lastIndex
      me.lastContactMs = 0
      reply.members.append(me)
      reply.members.sort { $0.peer < $1.peer }
    }
    return try reply.serializedBytes()
  }
}
