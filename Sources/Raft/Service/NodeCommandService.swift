import SwiftProtobuf
import Wire

/// RPC method names of the node commands every replica serves, whatever its state machine
/// (KV group or controller). Client-facing ones are served on the API address; `forwarded*`
/// ones on the peer address, where a follower hands a membership change to its leader (and
/// they are never forwarded again, so a stale hint cannot make a loop).
public enum NodeMethod {
  public static let leader = "node.leader"
  public static let dropped = "node.dropped"
  public static let status = "node.status"
  public static let join = "node.join"
  public static let remove = "node.remove"

  public static let forwardedJoin = "forwarded.node.join"
  public static let forwardedRemove = "forwarded.node.remove"
}

/// The operator's face of one Raft replica: `leader`, `dropped` and `status` answer from this
/// node's own view; `join` and `remove` change the membership through the leader (a follower
/// forwards them over the peer address).
public struct NodeCommandService: Sendable {
  public let node: RaftNode
  /// Reaches other members at their peer addresses, to forward to the leader.
  public let peers: any Transport
  /// How long a forwarded call may take.
  public var forwardTimeout: Duration = .seconds(5)
  /// How long `join` may take, catching the new member up included, when the request does not
  /// say how long its sender waits (`timeout_ms`, which the node follows up to
  /// `maximumMembershipTimeout`).
  public var membershipTimeout: Duration = .seconds(30)
  /// The longest a client's `timeout_ms` may make a membership change run.
  public var maximumMembershipTimeout: Duration = .seconds(3600)
  /// Reported in `status` (0 for a standalone group or the controller).
  public var groupID: UInt64 = 0
  /// What the replicated state machine is, reported in `status`: "kv" or "controller".
  public var service: String

  public init(node: RaftNode, peers: any Transport, service: String) {
    self.node = node
    self.peers = peers
    self.service = service
  }

  /// The methods of the API address.
  public func registerClientMethods(in handlers: inout RPCHandlers) {
    let service = self
    handlers.register(NodeMethod.join) {
      try await service.changeMembership($0, join: true, forwarded: false)
    }
    handlers.register(NodeMethod.remove) {
      try await service.changeMembership($0, join: false, forwarded: false)
    }
    handlers.register(NodeMethod.leader) { _ in try await service.leader() }
    handlers.register(NodeMethod.dropped) { _ in try await service.dropped() }
    handlers.register(NodeMethod.status) { _ in try await service.status() }
  }

  /// The methods of the peer address that take membership changes forwarded by followers.
  public func registerForwardedMethods(in handlers: inout RPCHandlers) {
    let service = self
    handlers.register(NodeMethod.forwardedJoin) {
      try await service.changeMembership($0, join: true, forwarded: true)
    }
    handlers.register(NodeMethod.forwardedRemove) {
      try await service.changeMembership($0, join: false, forwarded: true)
    }
  }

  /// Sends `payload` to `leader`'s peer address under `method`, or returns nil when the
  /// leader cannot be reached (the caller then answers "wrong leader" with the hint).
  /// - Parameter timeout: how long the leader may take (default `forwardTimeout`).
  public func forward(
    _ payload: [UInt8], method: String, to leader: NodeID, timeout: Duration? = nil
  ) async -> [UInt8]? {
    try? await peers.call(
      leader.rawValue, method: method, payload: payload, timeout: timeout ?? forwardTimeout)
  }

  /// How a runtime error reads to a client: the error code, the leader hint and a message.
  public static func outcome(
    of error: RaftNodeError
  ) -> (error: Shardkv_NodeError, leaderHint: String, message: String) {
    switch error {
    case .notLeader(let leader): return (.wrongLeader, leader?.rawValue ?? "", error.description)
    case .timeout, .leadershipLost, .stopped, .busy: return (.timeout, "", error.description)
    case .rejected, .storage, .badSnapshot: return (.invalidArgument, "", error.description)
    }
  }

  // MARK: - Commands

  func changeMembership(_ payload: [UInt8], join: Bool, forwarded: Bool) async throws -> [UInt8] {
    var reply = Shardkv_MembershipReply()
    // JoinRequest and RemoveRequest have the same shape; each decodes as the other.
    guard let request = try? Shardkv_JoinRequest(serializedBytes: payload), !request.peer.isEmpty,
      (try? PeerAddress(parsing: request.peer)) != nil
    else {
      reply.error = .invalidArgument
      reply.message = "expected a peer address HOST:PORT"
      return try reply.serializedBytes()
    }
    let peer = NodeID(request.peer)
    // Work on the change for as long as the client waits, and no longer.
    let timeout =
      request.timeoutMs > 0
      ? min(.milliseconds(Int64(request.timeoutMs)), maximumMembershipTimeout) : membershipTimeout
    do {
      if join {
        try await node.addMember(peer, timeout: timeout)
      } else {
        try await node.removeMember(peer, timeout: timeout)
      }
      reply.error = .ok
      reply.members = await node.membership.all.map(\.rawValue)
    } catch .notLeader(let leader?) where !forwarded {
      let method = join ? NodeMethod.forwardedJoin : NodeMethod.forwardedRemove
      if let answer = await forward(payload, method: method, to: leader, timeout: timeout) { return answer }
      reply.error = .wrongLeader
      reply.leaderHint = leader.rawValue
      reply.message = "could not reach the leader \(leader)"
    } catch {
      (reply.error, reply.leaderHint, reply.message) = Self.outcome(of: error)
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

  func status() async throws -> [UInt8] {
    let status = await node.status
    let tick = node.tickInterval
    var reply = Shardkv_StatusReply()
    reply.node = status.id.rawValue
    reply.groupID = groupID
    reply.service = service
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
