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
  /// A member asks its leader to record the member's API address in the member directory
  /// (payload `MemberAddress`, reply `PublishReply`). Peer address only: API clients cannot
  /// rewrite where hints send other clients.
  public static let forwardedPublish = "forwarded.node.publish"
}

/// The operator's face of one Raft replica: `leader`, `dropped` and `status` answer from this
/// node's own view; `join` and `remove` change the membership through the leader (a follower
/// forwards them over the peer address).
///
/// It also keeps this member's API address in the group's replicated member directory
/// (`publishAddress`, `MemberDirectory`), and reads the leader's from there for hints: a
/// WRONG_LEADER answer names the leader's peer address (`leader_hint`, for people) and its API
/// address (`leader_api`, for clients and routers, which only ever dial API addresses).
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
  /// This node's API address, which it publishes in the member directory and names in its
  /// replies (`served_by`). Empty: publish nothing.
  public var apiAddress: String
  /// The service's member directory; nil: no hints carry API addresses.
  public var addressBook: (any MemberAddressBook)?

  public init(
    node: RaftNode, peers: any Transport, service: String, apiAddress: String = "",
    addressBook: (any MemberAddressBook)? = nil
  ) {
    self.node = node
    self.peers = peers
    self.service = service
    self.apiAddress = apiAddress
    self.addressBook = addressBook
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
    handlers.register(NodeMethod.forwardedPublish) { try await service.recordPublication($0) }
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

  /// The API address of `leader` as this node's member directory has it, or "" when unknown.
  public func apiHint(for leader: NodeID?) -> String {
    guard let leader else { return "" }
    return addressBook?.apiAddress(of: leader) ?? ""
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
      reply.leaderApi = apiHint(for: leader)
      reply.message = "could not reach the leader \(leader)"
    } catch {
      (reply.error, reply.leaderHint, reply.message) = Self.outcome(of: error)
      if case .notLeader(let leader) = error { reply.leaderApi = apiHint(for: leader) }
    }
    return try reply.serializedBytes()
  }

  // MARK: - The member directory

  /// What one look at this member's directory entry came to.
  enum Publication: Equatable {
    /// Nothing to do: the entry is right, there is no directory or no API address, or this
    /// node is not a member (a standby waits to be added).
    case current
    /// Recorded through the leader just now.
    case published
    /// Not recorded (no leader, the leader unreachable, not committed in time): try again.
    case failed(String)
    /// The node is stopped: give up.
    case stopped
  }

  /// Keeps this member's API address in the group's member directory until the task is
  /// cancelled or the node stops, the way an etcd member publishes its client URLs: whenever
  /// the applied directory lacks this member or names another API address (first start, a
  /// restart on another address, a removal and a re-add), the member has the leader record it
  /// through the log (it proposes itself when it leads). Checks every `interval`; after a
  /// failure it tries again sooner, backing off from 20 ms up to `interval`.
  public func publishAddress(every interval: Duration = .seconds(1)) -> Task<Void, Never> {
    let service = self
    return Task {
      var backoff = Duration.milliseconds(20)
      while !Task.isCancelled {
        switch await service.publishIfNeeded() {
        case .current, .published:
          backoff = .milliseconds(20)
          try? await Task.sleep(for: interval)
        case .failed:
          try? await Task.sleep(for: backoff)
          backoff = min(backoff * 2, interval)
        case .stopped:
          return
        }
      }
    }
  }

  /// One look at this member's directory entry, and a publication if it is missing or wrong.
  func publishIfNeeded() async -> Publication {
    guard let book = addressBook, MemberDirectory.isRecordable(apiAddress),
      MemberDirectory.isRecordable(node.id.rawValue), book.apiAddress(of: node.id) != apiAddress
    else { return .current }
    guard await node.membership.contains(node.id) else { return .current }
    var entry = Shardkv_MemberAddress()
    entry.peer = node.id.rawValue
    entry.api = apiAddress
    do {
      _ = try await node.propose(try book.publicationCommand(entry), timeout: forwardTimeout)
      return .published
    } catch RaftNodeError.notLeader(let leader?) {
      guard let payload: [UInt8] = try? entry.serializedBytes(),
        let bytes = await forward(payload, method: NodeMethod.forwardedPublish, to: leader),
        let reply = try? Shardkv_PublishReply(serializedBytes: bytes)
      else { return .failed("could not reach the leader \(leader)") }
      return reply.error == .ok ? .published : .failed(reply.message)
    } catch RaftNodeError.stopped {
      return .stopped
    } catch {
      return .failed("\(error)")
    }
  }

  /// The leader's side of `forwarded.node.publish`: records a member's API address, unless
  /// the directory has it already. Only a current member's address is recorded, so the
  /// directory never gains strangers (a removed member's entry goes with the next membership
  /// entry). Never forwarded again.
  func recordPublication(_ payload: [UInt8]) async throws -> [UInt8] {
    var reply = Shardkv_PublishReply()
    guard let book = addressBook,
      let entry = try? Shardkv_MemberAddress(serializedBytes: payload),
      MemberDirectory.isRecordable(entry.peer), MemberDirectory.isRecordable(entry.api)
    else {
      reply.error = .invalidArgument
      reply.message = "expected a member's peer and API addresses (HOST:PORT)"
      return try reply.serializedBytes()
    }
    let member = NodeID(entry.peer)
    guard await node.membership.contains(member) else {
      reply.error = .invalidArgument
      reply.message = "\(member) is not a member of this group"
      return try reply.serializedBytes()
    }
    guard book.apiAddress(of: member) != entry.api else { return try reply.serializedBytes() }
    do {
      _ = try await node.propose(try book.publicationCommand(entry), timeout: forwardTimeout)
    } catch let error as RaftNodeError {
      let outcome = Self.outcome(of: error)
      reply.error = outcome.error
      reply.message = outcome.message
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
