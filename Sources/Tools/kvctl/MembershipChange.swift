import Foundation
import Raft
import Wire

/// `join PEER` and `remove PEER`. The request says how long kvctl waits (`timeout_ms`), so the
/// node works on the change exactly that long and answers just before kvctl would give up:
/// a join whose new member needs a large snapshot is not abandoned by one side while the other
/// goes on. On a terminal, `join` shows the new member's progress on stderr as it goes:
/// learner, catching up N entries, voter.
enum MembershipChange {
  /// How long `join` waits unless --timeout says otherwise: catching up a member may mean
  /// sending it a snapshot of the whole group's data.
  static let defaultJoinTimeout: Duration = .seconds(600)

  /// Returns the member list after the change.
  static func join(
    _ peer: String, through endpoints: Endpoints, timeout: Duration
  ) async throws(Failure) -> [String] {
    let progress = isatty(STDERR_FILENO) == 1 ? Task { await show(peer, through: endpoints) } : nil
    defer { progress?.cancel() }
    let members = try await change(NodeMethod.join, peer, through: endpoints, timeout: timeout)
    if progress != nil {
      progress?.cancel()
      await progress?.value
      FileHandle.standardError.write(Data("\r\u{1B}[K\(peer): voter\n".utf8))
    }
    return members
  }

  static func remove(
    _ peer: String, through endpoints: Endpoints, timeout: Duration
  ) async throws(Failure) -> [String] {
    try await change(NodeMethod.remove, peer, through: endpoints, timeout: timeout)
  }

  /// Sends the change; a wrong-leader answer that names the leader's API address (a follower
  /// that could not forward it) is sent once more, straight to that address when `-a` lists it.
  private static func change(
    _ method: String, _ peer: String, through endpoints: Endpoints, timeout: Duration
  ) async throws(Failure) -> [String] {
    let clock = ContinuousClock()
    let end = clock.now + timeout
    let verb = method == NodeMethod.join ? "join" : "remove"
    let first = try await send(method, peer, through: endpoints, timeout: timeout)
    var reply = first.reply
    if reply.error == .wrongLeader, reply.leaderApi != first.from, endpoints.prefer(reply.leaderApi),
      clock.now < end
    {
      reply = try await send(method, peer, through: endpoints, timeout: end - clock.now).reply
    }
    guard reply.error == .ok else {
      throw Failure(
        message: "\(verb) \(peer): \(reply.message.isEmpty ? "\(reply.error)" : reply.message)",
        status: exitCode(reply.error))
    }
    return reply.members
  }

  /// One call of `method` through `endpoints`, telling the node how long kvctl waits.
  private static func send(
    _ method: String, _ peer: String, through endpoints: Endpoints, timeout: Duration
  ) async throws(Failure) -> (reply: Shardkv_MembershipReply, from: String) {
    var request = Shardkv_JoinRequest()
    request.peer = peer
    // The node stops a little before kvctl does, so that its answer (and the reason) arrives.
    let margin = min(timeout / 10, .seconds(2))
    let (seconds, attoseconds) = (timeout - margin).components
    request.timeoutMs = UInt32(clamping: max(1, seconds * 1000 + attoseconds / 1_000_000_000_000_000))
    return try await endpoints.call(
      method, request, as: Shardkv_MembershipReply.self, timeout: timeout, slow: true)
  }

  /// Redraws one line on stderr with what the node kvctl talks to knows of `peer`, until
  /// cancelled.
  private static func show(_ peer: String, through endpoints: Endpoints) async {
    let poller = Endpoints(
      [endpoints.current], transport: endpoints.transport, deadline: .seconds(1), attemptTimeout: .seconds(1))
    var shown = ""
    while !Task.isCancelled {
      if let (status, _) = try? await poller.call(
        NodeMethod.status, Shardkv_StatusRequest(), as: Shardkv_StatusReply.self)
      {
        let line = "\(peer): " + describe(peer, in: status)
        if line != shown {
          FileHandle.standardError.write(Data("\r\u{1B}[K\(line)".utf8))
          shown = line
        }
      }
      try? await Task.sleep(for: .milliseconds(200))
    }
  }

  /// `waiting to be added`, `learner`, `learner, catching up N entries` (the leader knows how
  /// far behind it is) or `voter`.
  static func describe(_ peer: String, in status: Shardkv_StatusReply) -> String {
    guard let member = status.members.first(where: { $0.peer == peer }) else { return "waiting to be added" }
    if member.voter { return "voter" }
    guard status.role == .leader, let leader = status.members.first(where: { $0.peer == status.node }) else {
      return "learner"
    }
    let behind = leader.matchIndex > member.matchIndex ? leader.matchIndex - member.matchIndex : 0
    return "learner, catching up \(behind) entries"
  }
}
