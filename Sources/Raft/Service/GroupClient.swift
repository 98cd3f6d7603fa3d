import Wire

/// What one reply means to a client of a replicated group.
public enum ReplyVerdict<Value: Sendable, Failure: Error>: Sendable {
  /// The operation is complete. `leader`, when a member of the current servers, is where the
  /// session sends its next operation (the member that executed it, named in the reply), so a
  /// client that reached the leader through a follower stops paying the extra hop.
  case done(Value, leader: String? = nil)
  /// The group refused it for good; retrying cannot help.
  case refused(Failure)
  /// This member cannot serve it now (not the leader, cut off from the quorum, timed out):
  /// try another member. `leader`, the leader's API address as the member named it
  /// (`leader_api`), is tried next, at once, when it is one of the current servers; otherwise
  /// the next member in turn.
  case tryNextMember(String, leader: String? = nil)
  /// Try the same member again after the backoff (for example, a shard still moving).
  case retryLater(String)
  /// The request belongs to other servers (another replica group): send it there, with the
  /// same sequence number, from now on.
  case redirect(servers: [String], String)
}

/// A client session with one replicated group (a KV group or the shard controller): the
/// retry discipline both clerks share.
///
/// It remembers which member answered last (the one the reply names as having served it: the
/// leader for a write); a wrong-leader answer that names the leader's API address sends the
/// next attempt straight there; otherwise, on a wrong leader, a timeout or a failed call it
/// moves to the next member, backing off from 20 ms up to 500 ms. A write keeps its sequence
/// number across every retry, so the group executes it exactly once. It gives up with the
/// caller's failure once `deadline` has passed since the operation's turn began.
///
/// Only addresses among the current servers are followed (a reply's `served_by` or leader
/// hint naming anything else is ignored): the server list is what the caller trusts (the
/// operator's list or the controller's configuration), and a hint only shortens the way
/// through it.
///
/// Invariant: a session has at most one request outstanding, so operations run one at a time
/// in call order. The group keeps only the last reply per session and answers an older
/// sequence number as superseded without executing it; if operations interleaved at their
/// suspension points, a later sequence could reach the log first and an earlier write would be
/// acknowledged yet never applied. (Use several sessions for concurrency.)
public actor GroupClient {
  public nonisolated let clientID: UInt64
  private var servers: [String]
  private let transport: any Transport
  private let deadline: Duration
  private let callTimeout: Duration
  private var sequence: UInt64 = 0
  private var preferred = 0
  /// The member that answered last in each server list used before (a sharded client switches
  /// lists as its keys' groups change, and should come back to each group's leader).
  private var preferredByServers: [[String]: Int] = [:]
  /// Leader hints followed at once in a row before the backoff applies again: members that
  /// name each other (a leadership change under way) cannot make a busy loop.
  public static let maxHintsFollowedAtOnce = 3
  /// Whether an operation is under way, and the callers queued behind it.
  private var busy = false
  private var queued: [CheckedContinuation<Void, Never>] = []

  /// - Parameters:
  ///   - servers: the members' API addresses (at least one).
  ///   - deadline: how long one operation may take, retries included.
  ///   - callTimeout: how long one attempt at one member may take.
  public init(
    servers: [String], transport: any Transport, deadline: Duration, callTimeout: Duration, clientID: UInt64
  ) {
    precondition(!servers.isEmpty, "a group client needs at least one server")
    self.servers = servers
    self.transport = transport
    self.deadline = deadline
    self.callTimeout = callTimeout
    self.clientID = clientID
  }

  /// Moves to another server list, starting at the member that last answered there.
  private func switchServers(to others: [String]) {
    preferredByServers[servers] = preferred
    servers = others
    preferred = preferredByServers[others] ?? 0
  }

  /// Runs one operation once every earlier one has finished.
  ///
  /// - Parameters:
  ///   - isWrite: a write takes the next sequence number; a read is sent with sequence 0.
  ///   - route: the servers to try first for this operation (the session keeps them for the
  ///     next ones); nil keeps the current ones.
  ///   - reroute: asked for other servers when every current one has failed to answer in
  ///     turn (a sharded client re-reads the configuration); nil or the same list keeps them.
  ///   - encode: the request's bytes for a sequence number and the time this attempt may take
  ///     (at most `callTimeout`, less near the deadline), which a request can carry so that
  ///     the server stops working on it when the client stops waiting.
  ///   - interpret: what a reply from one of `servers` means; an undecodable reply should say
  ///     `.tryNextMember`.
  ///   - giveUp: the failure to report after the deadline, given the last error seen.
  ///   - notServed: the failure to report at once when a member does not serve `method` at
  ///     all (the address belongs to another kind of node); waiting cannot change that.
  public func perform<Value: Sendable, Failure: Error>(
    method: String, isWrite: Bool, route: [String]? = nil,
    reroute: (@Sendable () async -> [String]?)? = nil,
    encode: @Sendable (_ sequence: UInt64, _ attempt: Duration) -> Result<[UInt8], Failure>,
    interpret: @Sendable (_ reply: [UInt8], _ servers: [String]) async -> ReplyVerdict<Value, Failure>,
    giveUp: @Sendable (_ lastError: String) -> Failure,
    notServed: @Sendable (_ detail: String) -> Failure
  ) async -> Result<Value, Failure> {
    if busy {
      await withCheckedContinuation { queued.append($0) }
    } else {
      busy = true
    }
    // Hand the turn straight to the next caller (busy stays set), or free it.
    defer {
      if queued.isEmpty {
        busy = false
      } else {
        queued.removeFirst().resume()
      }
    }
    var number: UInt64 = 0
    if isWrite {
      sequence += 1
      number = sequence
    }
    let clock = ContinuousClock()
    let end = clock.now + deadline
    var backoff = Duration.milliseconds(20)
    var lastError = "no attempt"
    // The last reason a server gave: more telling than a later call that merely timed out.
    var lastAnswer: String?
    var redirects = 0
    var hintsFollowed = 0
    if let route, !route.isEmpty, route != servers { switchServers(to: route) }
    while clock.now < end {
      let server = servers[preferred % servers.count]
      let attempt = min(callTimeout, end - clock.now)
      let payload: [UInt8]
      switch encode(number, attempt) {
      case .success(let bytes): payload = bytes
      case .failure(let failure): return .failure(failure)
      }
      do {
        let bytes = try await transport.call(server, method: method, payload: payload, timeout: attempt)
        switch await interpret(bytes, servers) {
        case .done(let value, let leader):
          if let leader, let index = servers.firstIndex(of: leader) { preferred = index }
          return .success(value)
        case .refused(let failure): return .failure(failure)
        case .tryNextMember(let why, let leader):
          lastError = "\(server): \(why)"
          lastAnswer = lastError
          if let leader, leader != server, let index = servers.firstIndex(of: leader) {
            // One hop to the leader the member named, without waiting.
            preferred = index
            hintsFollowed += 1
            if hintsFollowed <= Self.maxHintsFollowedAtOnce { continue }
          } else {
            preferred += 1
          }
        case .retryLater(let why):
          lastError = "\(server): \(why)"
          lastAnswer = lastError
        case .redirect(let others, let why):
          lastError = "\(server): \(why)"
          lastAnswer = lastError
          if !others.isEmpty && others != servers {
            switchServers(to: others)
            // Follow the first few redirects at once; servers that keep sending each other
            // the request (configurations in flux) wait out the backoff.
            redirects += 1
            if redirects <= 3 { continue }
          }
        }
      } catch RPCError.remote(code: .unknownMethod, _) {
        return .failure(notServed("\(server) does not serve \(method)"))
      } catch {
        lastError = lastAnswer.map { "\($0); then \(server): \(error)" } ?? "\(server): \(error)"
        preferred += 1
        // Every member failed in turn: the group may be gone (its shards moved on).
        if preferred % servers.count == 0, let reroute, let others = await reroute(),
          !others.isEmpty, others != servers
        {
          switchServers(to: others)
        }
      }
      try? await Task.sleep(for: min(backoff, max(.zero, end - clock.now)))
      backoff = min(backoff * 2, .milliseconds(500))
    }
    return .failure(giveUp(lastError))
  }
}
