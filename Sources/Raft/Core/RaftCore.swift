import Seeded

/// What a node finds on its disk when it starts: the compaction point (for a brand-new node, a
/// position at index 0 carrying the bootstrap membership), the entries after it, the hard
/// state, and how far its durable state machine has applied.
public struct RestoredState: Hashable, Sendable {
  public var hardState: HardState
  public var snapshot: SnapshotMetadata
  public var entries: [Entry]
  public var applied: UInt64

  public init(hardState: HardState, snapshot: SnapshotMetadata, entries: [Entry], applied: UInt64) {
    self.hardState = hardState
    self.snapshot = snapshot
    self.entries = entries
    self.applied = applied
  }

  /// A new node whose group starts with `voters` (all of them bootstrap identically), or an
  /// empty standby that waits for a leader to add it when `voters` is empty.
  public static func bootstrap(voters: [NodeID]) -> RestoredState {
    RestoredState(
      hardState: HardState(),
      snapshot: SnapshotMetadata(index: 0, term: 0, membership: Membership(voters: voters)),
      entries: [], applied: 0)
  }
}

/// A Raft node as a pure, deterministic state machine, in the style of etcd's raft library.
///
/// No clock, no threads, no I/O: time enters as `tick()`, the network as `step(_:)`, clients as
/// `propose(_:)` and `readIndex(context:)`. The owner collects the effects with `ready()` and
/// acknowledges them with `advance(_:)` (see `Ready` for the order of work). Every decision
/// walks peers in sorted order and draws randomness only from the seeded generator, so the
/// same inputs always give the same outputs.
///
/// Safety rules kept here: a node persists its term and vote before answering (the answers
/// travel in the same Ready as the hard state); a leader counts its own log toward a quorum
/// only once it is persisted (`advance`); only entries of the current term are committed by
/// counting; membership is in force from the moment its entry is appended, and changes are
/// made one at a time.
public struct RaftCore: Sendable {
  public let id: NodeID
  public let config: RaftConfig

  public private(set) var term: UInt64
  public private(set) var role: RaftRole = .follower
  public private(set) var leader: NodeID?
  /// The membership of the newest membership entry in the log.
  public private(set) var membership: Membership

  private var vote: NodeID?
  private var log: RaftLog
  /// Election jitter. The core takes its randomness from here, never from the system, so one
  /// seed replays a whole simulation.
  private var rng: SeededGenerator

  /// Logical time: ticks since this core was created.
  private var now = 0
  private var electionElapsed = 0
  private var heartbeatElapsed = 0
  private var randomizedElectionTimeout: Int
  private var votes: [NodeID: Bool] = [:]
  /// Leader only: one entry per member other than this node.
  private var progress: [NodeID: Progress] = [:]
  /// When this node last heard from each peer, across roles, for failure detection.
  private var lastHeard: [NodeID: Int] = [:]
  private var transferTarget: NodeID?

  private struct PendingRead: Sendable {
    var round: UInt64
    var index: UInt64
    var context: [UInt8]
    var requester: NodeID
  }
  private var readRound: UInt64 = 0
  /// True while `readRound` has reads but its heartbeats are not sent yet: every read that
  /// arrives until the next Ready joins that round, so a burst of reads costs one heartbeat
  /// per follower (the round is broadcast when the Ready is collected, after all of them).
  private var readRoundUnsent = false
  private var pendingReads: [PendingRead] = []
  /// Reads that arrived before this leader committed an entry of its term.
  private var deferredReads: [(context: [UInt8], requester: NodeID)] = []

  private var messages: [Message] = []
  private var readStates: [ReadState] = []
  private var snapshotToInstall: Snapshot?
  private var persistedHardState: HardState
  private var reportedRole: Ready.RoleChange
  private var readyNumber: UInt64 = 0
  private var outstandingReady: UInt64?

  public init(id: NodeID, config: RaftConfig = RaftConfig(), restored: RestoredState, seed: UInt64) {
    self.id = id
    self.config = config
    self.rng = SeededGenerator(seed: seed ^ UInt64(truncatingIfNeeded: id.rawValue.hashValueStable))
    self.log = RaftLog(
      snapshot: restored.snapshot, entries: restored.entries,
      committed: restored.hardState.commit, applied: restored.applied)
    self.term = restored.hardState.term
    self.vote = restored.hardState.vote
    self.persistedHardState = restored.hardState
    self.membership = log.membership(at: log.lastIndex)
    self.randomizedElectionTimeout = config.electionTicks
    self.reportedRole = Ready.RoleChange(role: .follower, leader: nil, term: restored.hardState.term)
    for peer in membership.all where peer != id { lastHeard[peer] = 0 }
    resetRandomizedElectionTimeout()
  }

  // MARK: - Observing

  public var commitIndex: UInt64 { log.committed }
  public var appliedIndex: UInt64 { log.applied }
  public var firstIndex: UInt64 { log.firstIndex }
  public var lastIndex: UInt64 { log.lastIndex }
  public var hardState: HardState { HardState(term: term, vote: vote, commit: log.committed) }
  /// The in-memory log since the last compaction (tests and diagnostics).
  public var entries: [Entry] { log.entries }

  /// Where a snapshot of the state machine taken at `index` stands, if the core still knows
  /// that index's term (it must be committed and not below the compaction point).
  public func snapshotMetadata(at index: UInt64) -> SnapshotMetadata? {
    guard index <= log.committed, let term = log.term(at: index) else { return nil }
    return SnapshotMetadata(index: index, term: term, membership: log.membership(at: index))
  }

  /// Members other than this node that it has not heard from for longer than
  /// `config.unreachableTicks`, sorted. A leader that stepped down keeps its last view.
  public var unreachablePeers: [NodeID] {
    membership.all.filter { peer in
      peer != id && now - (lastHeard[peer] ?? now) > config.unreachableTicks
    }
  }

  public var status: RaftStatus {
    let peers = membership.all.filter { $0 != id }.map { peer -> PeerStatus in
      let pr = progress[peer]
      return PeerStatus(
        id: peer, isVoter: membership.isVoter(peer), match: pr?.match, next: pr?.next,
        state: pr?.state, ticksSinceContact: now - (lastHeard[peer] ?? now))
    }
    return RaftStatus(
      id: id, role: role, term: term, leader: leader, commit: log.committed, applied: log.applied,
      firstIndex: log.firstIndex, lastIndex: log.lastIndex, membership: membership, peers: peers)
  }

  /// The leader's replication position for `peer`.
  public func progress(of peer: NodeID) -> Progress? { progress[peer] }

  // MARK: - Inputs

  /// Advances logical time by one tick.
  public mutating func tick() {
    now += 1
    if role == .leader {
      tickLeader()
    } else {
      electionElapsed += 1
      if membership.isVoter(id) && electionElapsed >= randomizedElectionTimeout {
        electionElapsed = 0
        campaign(preVote: config.preVote, transfer: false)
      }
    }
  }

  /// Proposes commands; returns the index of the last one. Only a leader accepts them.
  @discardableResult
  public mutating func propose(_ commands: [[UInt8]]) throws(RaftError) -> UInt64 {
    guard role == .leader else { throw .notLeader(leader: leader) }
    guard transferTarget == nil else { throw .transferInProgress }
    guard !commands.isEmpty else { return log.lastIndex }
    var index = log.lastIndex
    let entries = commands.map { command -> Entry in
      index += 1
      return Entry(term: term, index: index, payload: .command(command))
    }
    appendAsLeader(entries)
    return index
  }

  @discardableResult
  public mutating func propose(_ command: [UInt8]) throws(RaftError) -> UInt64 {
    try propose([command])
  }

  /// Proposes a single-server membership change; returns its entry's index.
  @discardableResult
  public mutating func proposeMembershipChange(
    _ change: MembershipChange
  ) throws(RaftError)
    -> UInt64
  {
    guard role == .leader else { throw .notLeader(leader: leader) }
    guard transferTarget == nil else { throw .transferInProgress }
    guard log.lastMembershipIndex() <= log.committed else { throw .membershipChangePending }
    guard log.term(at: log.committed) == term else { throw .leaderNotReady }
    let next = try membership.applying(change)
    let index = log.lastIndex + 1
    appendAsLeader([Entry(term: term, index: index, payload: .membership(next))])
    return index
  }

  /// Asks for a linearizable read. The answer is a `ReadState` with the same context in a
  /// later Ready: serve the read once the state machine has applied its index. A follower
  /// forwards the request to its leader; if the leader changes, no answer comes and the
  /// owner's deadline decides.
  public mutating func readIndex(context: [UInt8]) throws(RaftError) {
    if role == .leader {
      handleReadRequest(context: context, from: id)
    } else if let leader {
      var m = Message(kind: .readIndex, from: id, to: leader, term: term)
      m.context = context
      send(m)
    } else {
      throw .notLeader(leader: nil)
    }
  }

  /// Hands leadership to `target`: once its log is complete, it is told to campaign at once.
  /// Proposals are refused meanwhile; the attempt is abandoned after an election timeout.
  public mutating func transferLeadership(to target: NodeID) throws(RaftError) {
    guard role == .leader else { throw .notLeader(leader: leader) }
    guard target != id, membership.isVoter(target) else { throw .invalidTransferTarget(target) }
    if transferTarget == target { return }
    transferTarget = target
    electionElapsed = 0
    if progress[target]?.match == log.lastIndex {
      send(Message(kind: .timeoutNow, from: id, to: target, term: term))
    } else {
      sendAppends(to: target)
    }
  }

  /// Drops log entries through `index` (clamped to the applied index): the durable state
  /// machine already holds their effect. Followers that need them get a snapshot instead.
  public mutating func compact(through index: UInt64) {
    log.compact(through: min(index, log.applied))
  }

  /// The runtime's report on a snapshot transfer it carried out for `peer`.
  public mutating func reportSnapshot(to peer: NodeID, succeeded: Bool) {
    guard role == .leader, var pr = progress[peer], pr.state == .snapshot else { return }
    pr.becomeProbe()
    pr.probeSent = succeeded
    progress[peer] = pr
  }

  /// The runtime could not deliver to `peer`: stop pipelining to it.
  public mutating func reportUnreachable(_ peer: NodeID) {
    guard role == .leader, var pr = progress[peer], pr.state == .replicate else { return }
    pr.becomeProbe()
    progress[peer] = pr
  }

  /// Feeds one message from the network. A message that fails `RaftMessageValidator`, comes
  /// from a sender this node does not recognise (see `checkSender`) or contradicts its
  /// committed log is dropped: it changes nothing (not the term, the leader, nor the peers
  /// heard from) and the outcome says why.
  @discardableResult
  public mutating func step(_ m: Message) -> StepOutcome {
    do {
      try RaftMessageValidator.validate(m, limits: config.inputLimits)
      try checkSender(of: m)
      try checkAgainstState(m)
    } catch {
      return .dropped(error)
    }
    stepValidated(m)
    return .accepted
  }

  /// A node hears the members of its newest configuration and of its committed one (the
  /// newest may be an uncommitted entry that a new leader truncates: a node holding it must
  /// still hear that leader).
  ///
  /// It also hears a leader or candidate it does not know yet, when the message carries a
  /// configuration that names this node and is newer than this node's committed one: a
  /// member that missed the entry adding the current leader (it was down or cut off), or a
  /// standby being added, would otherwise never hear the only node that can catch it up, nor
  /// give the vote that a configuration naming it may need to elect anyone (Raft thesis §4.1:
  /// servers do not ignore a leader or candidate outside their configuration). The sender need
  /// not be named: a leader removing itself leads a configuration without itself until that
  /// configuration commits (thesis §4.2.2). A removed node cannot pass this way: its
  /// configuration is older than the committed one that removed it. (Forging a configuration
  /// is as easy as forging a member's name: authenticating peers is mutual TLS's job, not this
  /// filter's.)
  private func checkSender(of m: Message) throws(RaftInputError) {
    guard m.to == id else { throw .wrongRecipient(m.to) }
    guard m.from != id else { throw .fromSelf }
    guard hears(m.from, vouchedFor: carriedMembership(of: m)) else { throw .notMember(m.from) }
  }

  /// Whether this node takes Raft traffic from `sender`, given the configuration the message
  /// carries, if any (see `checkSender`). The runtime asks it for each snapshot chunk.
  public func hears(_ sender: NodeID, vouchedFor carried: IndexedMembership?) -> Bool {
    if membership.contains(sender) || log.membership(at: log.committed).contains(sender) { return true }
    guard let carried else { return false }
    return carried.index > log.membershipIndex(at: log.committed) && carried.membership.contains(id)
  }

  /// The configuration a message vouches for: attached to appends, heartbeats and vote
  /// requests, part of a snapshot's metadata.
  private func carriedMembership(of m: Message) -> IndexedMembership? {
    switch m.kind {
    case .append, .heartbeat, .vote, .preVote:
      return m.senderMembership
    case .snapshot:
      return m.snapshot.map {
        IndexedMembership(index: $0.metadata.index, membership: $0.metadata.membership)
      }
    default:
      return nil
    }
  }

  /// Checks that need this node's state: nothing committed is overwritten, and a response
  /// acknowledges only what this node sent.
  private func checkAgainstState(_ m: Message) throws(RaftInputError) {
    switch m.kind {
    case .append where m.term >= term:
      for entry in m.entries where entry.index <= log.committed {
        if let existing = log.term(at: entry.index), existing != entry.term {
          throw .conflictsWithCommitted(index: entry.index)
        }
      }
    case .appendResponse where m.term == term && !m.reject && m.index > log.lastIndex:
      throw .unsolicitedResponse(
        "append acknowledged through \(m.index), past the last index \(log.lastIndex)")
    case .heartbeatResponse where m.term == term && m.readRound > readRound:
      throw .unsolicitedResponse("read round \(m.readRound) not started")
    case .readIndexResponse where m.from != leader:
      throw .unsolicitedResponse("read index from \(m.from), which is not the leader")
    default:
      break
    }
  }

  private mutating func stepValidated(_ m: Message) {
    lastHeard[m.from] = now

    if m.term > term {
      if m.kind == .preVote || m.kind == .vote {
        // Leader lease: while this node hears from a live leader, a candidate that merely
        // timed out (a removed or partitioned node) must not depose it.
        let inLease = config.checkQuorum && leader != nil && electionElapsed < config.electionTicks
        if inLease && !m.isTransfer { return }
      }
      switch m.kind {
      case .preVote:
        break  // A pre-vote never changes this node's term.
      case .preVoteResponse where !m.reject:
        break  // A granted pre-vote carries the term the candidate will campaign in.
      case .append, .heartbeat, .snapshot:
        becomeFollower(term: m.term, leader: m.from)
      default:
        becomeFollower(term: m.term, leader: nil)
      }
    } else if m.term < term {
      if (config.checkQuorum || config.preVote) && (m.kind == .append || m.kind == .heartbeat) {
        // Tell a stale leader about the newer term so that it steps down.
        send(Message(kind: .appendResponse, from: id, to: m.from, term: term))
      } else if m.kind == .preVote {
        var r = Message(kind: .preVoteResponse, from: id, to: m.from, term: term)
        r.reject = true
        send(r)
      }
      return
    }

    switch m.kind {
    case .preVote, .vote:
      handleVoteRequest(m)
    case .preVoteResponse, .voteResponse:
      handleVoteResponse(m)
    case .append, .heartbeat, .snapshot:
      if role == .leader { return }  // Impossible at an equal term: one leader per term.
      if role != .follower { becomeFollower(term: m.term, leader: m.from) }
      leader = m.from
      electionElapsed = 0
      switch m.kind {
      case .append: handleAppend(m)
      case .heartbeat: handleHeartbeat(m)
      default: handleSnapshot(m)
      }
    case .appendResponse:
      if role == .leader { handleAppendResponse(m) }
    case .heartbeatResponse:
      if role == .leader { handleHeartbeatResponse(m) }
    case .timeoutNow:
      if role == .follower && membership.isVoter(id) {
        campaign(preVote: false, transfer: true)
      }
    case .readIndex:
      if role == .leader { handleReadRequest(context: m.context, from: m.from) }
    case .readIndexResponse:
      if m.from == leader { readStates.append(ReadState(index: m.index, context: m.context)) }
    }
  }

  // MARK: - Ready / advance

  public var hasReady: Bool {
    outstandingReady == nil
      && (!messages.isEmpty || readRoundUnsent || !readStates.isEmpty || snapshotToInstall != nil
        || hardState != persistedHardState || log.stableIndex < log.lastIndex
        || log.applying < log.committed || currentRole != reportedRole)
  }

  /// Collects the work for the owner, or nil when there is none or the previous Ready has not
  /// been advanced yet (one Ready is outstanding at a time; inputs may still arrive meanwhile).
  public mutating func ready() -> Ready? {
    guard hasReady else { return nil }
    if readRoundUnsent && role == .leader { broadcastHeartbeats() }
    readyNumber += 1
    let hs = hardState
    // Messages of a leader whose term and vote are already on disk promise nothing about its
    // own disk: appends and heartbeats carry entries, not acknowledgements, and the leader
    // counts its own entries toward a quorum only once they are persisted (`advance`), so it
    // may send them while its write is under way (Raft thesis §10.2.1). Every other node's
    // answers (vote grants, append acknowledgements) wait for the write.
    let termAndVoteDurable = hs.term == persistedHardState.term && hs.vote == persistedHardState.vote
    // A message answered in an earlier term than the current one is dropped: the write that
    // backs it may never happen. A follower that acknowledged entries of term T and then,
    // before its write, took term T+1 from a leader whose entries replace them would otherwise
    // tell T's leader it holds entries its disk never gets — a quorum that is not one. (A
    // vote granted in an older term is dropped for the same reason.) Dropping is always safe:
    // the network may lose any message, and everyone in an older term is out of date anyway.
    messages.removeAll { $0.term < term }
    let unstable = log.unstableEntries
    let committed = log.entriesToApply
    let roleNow = currentRole
    let ready = Ready(
      number: readyNumber,
      hardState: hs != persistedHardState ? hs : nil,
      mustSync: !unstable.isEmpty || !termAndVoteDurable,
      messagesBeforePersisting: role == .leader && termAndVoteDurable,
      entries: unstable,
      snapshot: snapshotToInstall,
      messages: messages,
      committedEntries: committed,
      readStates: readStates,
      roleChange: roleNow != reportedRole ? roleNow : nil)
    messages.removeAll()
    readStates.removeAll()
    snapshotToInstall = nil
    if let last = committed.last { log.applying = last.index }
    persistedHardState = hs
    reportedRole = roleNow
    outstandingReady = readyNumber
    return ready
  }

  /// Acknowledges that the owner has done all of `ready`'s work.
  public mutating func advance(_ ready: Ready) {
    precondition(outstandingReady == ready.number, "Raft: advance out of order")
    outstandingReady = nil
    if let last = ready.entries.last, log.matches(index: last.index, term: last.term) {
      log.stableIndex = max(log.stableIndex, last.index)
    }
    if let last = ready.committedEntries.last, last.index > log.applied {
      log.applied = last.index
    }
    if role == .leader, maybeCommit() {
      broadcastAppends()
    }
  }

  // MARK: - Roles

  private var currentRole: Ready.RoleChange {
    Ready.RoleChange(role: role, leader: leader, term: term)
  }

  private mutating func reset(term newTerm: UInt64) {
    if newTerm != term {
      term = newTerm
      vote = nil
    }
    leader = nil
    electionElapsed = 0
    heartbeatElapsed = 0
    resetRandomizedElectionTimeout()
    votes.removeAll()
    progress.removeAll()
    transferTarget = nil
    pendingReads.removeAll()
    deferredReads.removeAll()
    readRoundUnsent = false
  }

  private mutating func resetRandomizedElectionTimeout() {
    randomizedElectionTimeout =
      config.electionTicks + Int.random(in: 0..<config.electionTicks, using: &rng)
  }

  private mutating func becomeFollower(term newTerm: UInt64, leader newLeader: NodeID?) {
    reset(term: newTerm)
    role = .follower
    leader = newLeader
  }

  private mutating func becomeLeader() {
    reset(term: term)
    role = .leader
    leader = id
    syncProgressWithMembership()
    // A no-op of the new term lets the leader commit (and so serve reads) without waiting
    // for a client write.
    appendAsLeader([Entry(term: term, index: log.lastIndex + 1, payload: .noop)])
  }

  private mutating func campaign(preVote: Bool, transfer: Bool) {
    let voteTerm: UInt64
    let kind: MessageKind
    if preVote {
      let keepTerm = term
      reset(term: keepTerm)
      role = .preCandidate
      voteTerm = term + 1
      kind = .preVote
    } else {
      reset(term: term + 1)
      role = .candidate
      vote = id
      voteTerm = term
      kind = .vote
    }
    votes[id] = true
    if tallyVotes() { return }
    for peer in membership.voters where peer != id {
      var m = Message(kind: kind, from: id, to: peer, term: voteTerm)
      m.index = log.lastIndex
      m.logTerm = log.lastTerm
      m.isTransfer = transfer
      send(m)
    }
  }

  /// Acts on the votes so far; true if the campaign ended.
  private mutating func tallyVotes() -> Bool {
    let granted = membership.voters.filter { votes[$0] == true }.count
    let rejected = membership.voters.filter { votes[$0] == false }.count
    if granted >= membership.quorum {
      if role == .preCandidate {
        campaign(preVote: false, transfer: false)
      } else {
        becomeLeader()
      }
      return true
    }
    if membership.voters.count - rejected < membership.quorum {
      becomeFollower(term: term, leader: nil)
      return true
    }
    return false
  }

  private mutating func handleVoteRequest(_ m: Message) {
    let canVote =
      vote == m.from || (vote == nil && leader == nil) || (m.kind == .preVote && m.term > term)
    let responseKind: MessageKind = m.kind == .vote ? .voteResponse : .preVoteResponse
    if canVote && log.isUpToDate(lastIndex: m.index, lastTerm: m.logTerm) {
      // A pre-vote grant answers in the candidate's future term so that it counts.
      send(Message(kind: responseKind, from: id, to: m.from, term: m.term))
      if m.kind == .vote {
        electionElapsed = 0
        vote = m.from
      }
    } else {
      var r = Message(kind: responseKind, from: id, to: m.from, term: term)
      r.reject = true
      send(r)
    }
  }

  private mutating func handleVoteResponse(_ m: Message) {
    let expected: RaftRole = m.kind == .voteResponse ? .candidate : .preCandidate
    guard role == expected, membership.isVoter(m.from), votes[m.from] == nil else { return }
    votes[m.from] = !m.reject
    _ = tallyVotes()
  }

  // MARK: - Follower side

  private mutating func handleAppend(_ m: Message) {
    var r = Message(kind: .appendResponse, from: id, to: m.from, term: term)
    if m.index < log.committed {
      r.index = log.committed
      send(r)
      return
    }
    if log.matches(index: m.index, term: m.logTerm) {
      let lastNew = m.index + UInt64(m.entries.count)
      do {
        if let from = try log.append(m.entries), from <= lastNew {
          refreshMembership()
        }
      } catch {
        // Unreachable after `checkAgainstState` and the validator; refusing is the safe answer.
        return
      }
      commit(to: min(m.commit, lastNew))
      r.index = lastNew
    } else {
      // Point the leader at the newest entry that could match: the last one whose term is
      // not above the leader's entry at m.index, so a whole conflicting term is skipped.
      let hint = log.lastIndex(withTermAtMost: m.logTerm, atOrBelow: min(m.index, log.lastIndex))
      r.index = m.index
      r.reject = true
      r.rejectHint = hint
      r.conflictTerm = log.term(at: hint) ?? 0
    }
    send(r)
  }

  private mutating func handleHeartbeat(_ m: Message) {
    // The leader sends min(match, commit), which this log is known to contain.
    commit(to: min(m.commit, log.lastIndex))
    var r = Message(kind: .heartbeatResponse, from: id, to: m.from, term: term)
    r.readRound = m.readRound
    send(r)
  }

  private mutating func handleSnapshot(_ m: Message) {
    guard let snapshot = m.snapshot else { return }
    let meta = snapshot.metadata
    var r = Message(kind: .appendResponse, from: id, to: m.from, term: term)
    if meta.index <= log.committed {
      r.index = log.committed
    } else if log.matches(index: meta.index, term: meta.term) {
      commit(to: meta.index)
      r.index = log.committed
    } else {
      log.restore(meta)
      snapshotToInstall = snapshot
      refreshMembership()
      r.index = log.lastIndex
    }
    send(r)
  }

  private mutating func commit(to index: UInt64) {
    if index > log.committed { log.committed = index }
  }

  // MARK: - Leader side

  private mutating func tickLeader() {
    electionElapsed += 1
    if electionElapsed >= config.electionTicks {
      electionElapsed = 0
      if config.checkQuorum {
        let active = membership.voters.filter { $0 == id || progress[$0]?.recentActive == true }
        for peer in progress.keys.sorted() { progress[peer]?.recentActive = false }
        if active.count < membership.quorum {
          becomeFollower(term: term, leader: nil)
          return
        }
      }
      transferTarget = nil
    }
    for peer in progress.keys.sorted() {
      if let pr = progress[peer], pr.state == .snapshot,
        now - pr.snapshotSentAt >= 2 * config.electionTicks
      {
        progress[peer]?.becomeProbe()
      }
    }
    heartbeatElapsed += 1
    if heartbeatElapsed >= config.heartbeatTicks {
      heartbeatElapsed = 0
      broadcastHeartbeats()
    }
  }

  private mutating func appendAsLeader(_ entries: [Entry]) {
    // The leader's own entries start at lastIndex + 1, above the commit index: never refused.
    do { try log.append(entries) } catch { return }
    if entries.contains(where: { if case .membership = $0.payload { true } else { false } }) {
      refreshMembership()
    }
    broadcastAppends()
  }

  /// Re-derives the membership from the log after it changed; a leader tracks progress for
  /// exactly the members other than itself.
  private mutating func refreshMembership() {
    membership = log.membership(at: log.lastIndex)
    for peer in membership.all where peer != id && lastHeard[peer] == nil {
      lastHeard[peer] = now
    }
    if role == .leader { syncProgressWithMembership() }
  }

  private mutating func syncProgressWithMembership() {
    let members = Set(membership.all.filter { $0 != id })
    for peer in progress.keys.sorted() where !members.contains(peer) {
      progress[peer] = nil
    }
    for peer in members.sorted() where progress[peer] == nil {
      progress[peer] = Progress(next: log.lastIndex + 1)
    }
  }

  /// Advances the commit index to the highest index a quorum of voters has persisted, if it
  /// belongs to the current term (Raft §5.4.2). True if it moved.
  private mutating func maybeCommit() -> Bool {
    let voters = membership.voters
    guard !voters.isEmpty else { return false }
    let matches = voters.map { $0 == id ? log.stableIndex : (progress[$0]?.match ?? 0) }
      .sorted(by: >)
    let candidate = matches[membership.quorum - 1]
    guard candidate > log.committed, log.term(at: candidate) == term else { return false }
    log.committed = candidate
    if !deferredReads.isEmpty {
      let reads = deferredReads
      deferredReads.removeAll()
      for read in reads { handleReadRequest(context: read.context, from: read.requester) }
    }
    return true
  }

  /// After a commit advance: a leader that has committed its own removal steps down.
  private mutating func stepDownIfRemoved() {
    if role == .leader && !membership.isVoter(id) && log.committed >= log.lastMembershipIndex() {
      becomeFollower(term: term, leader: nil)
    }
  }

  private mutating func broadcastAppends() {
    for peer in progress.keys.sorted() {
      sendAppends(to: peer, allowEmpty: true)
    }
    stepDownIfRemoved()
  }

  /// Heartbeats carrying the current read round: an answer confirms every read that arrived
  /// before this call.
  private mutating func broadcastHeartbeats() {
    readRoundUnsent = false
    for peer in progress.keys.sorted() {
      guard let pr = progress[peer] else { continue }
      var m = Message(kind: .heartbeat, from: id, to: peer, term: term)
      m.commit = min(pr.match, log.committed)
      m.readRound = readRound
      send(m)
    }
  }

  /// Sends what `peer` is missing, as far as its flow-control state allows.
  private mutating func sendAppends(to peer: NodeID, allowEmpty: Bool = false) {
    var first = true
    while sendAppend(to: peer, allowEmpty: allowEmpty && first) { first = false }
  }

  /// Sends one append (or a snapshot request); true if another one may follow at once.
  private mutating func sendAppend(to peer: NodeID, allowEmpty: Bool) -> Bool {
    guard var pr = progress[peer] else { return false }
    defer { progress[peer] = pr }
    switch pr.state {
    case .probe where pr.probeSent: return false
    case .replicate where pr.inflight.count >= config.maxInflightMessages: return false
    case .snapshot: return false
    default: break
    }
    let prevIndex = pr.next - 1
    guard let prevTerm = log.term(at: prevIndex) else {
      // The follower needs entries that were compacted away: it gets a snapshot of the
      // state machine at the applied index, which the runtime fills in.
      guard let meta = snapshotMetadata(at: log.applied) else { return false }
      pr.state = .snapshot
      pr.inflight.removeAll()
      pr.snapshotSentAt = now
      var m = Message(kind: .snapshot, from: id, to: peer, term: term)
      m.snapshot = Snapshot(metadata: meta)
      send(m)
      return false
    }
    let entries = log.slice(
      from: pr.next, through: log.lastIndex, maxBytes: config.maxBytesPerMessage)
    if entries.isEmpty && !allowEmpty { return false }
    var m = Message(kind: .append, from: id, to: peer, term: term)
    m.index = prevIndex
    m.logTerm = prevTerm
    m.entries = entries
    m.commit = log.committed
    send(m)
    switch pr.state {
    case .replicate:
      if let last = entries.last {
        pr.next = last.index + 1
        pr.inflight.append(last.index)
        return true
      }
      return false
    default:
      pr.probeSent = true
      return false
    }
  }

  private mutating func handleAppendResponse(_ m: Message) {
    guard var pr = progress[m.from] else { return }
    pr.recentActive = true
    if m.reject {
      var probe = m.rejectHint
      if m.conflictTerm > 0 {
        probe = log.lastIndex(withTermAtMost: m.conflictTerm, atOrBelow: m.rejectHint)
      }
      let accepted: Bool
      if pr.state == .replicate {
        accepted = m.index > pr.match
        if accepted { pr.becomeProbe() }
      } else {
        // In probe state only the answer to the outstanding probe counts.
        accepted = pr.next - 1 == m.index
        if accepted {
          pr.next = max(min(m.index, probe + 1), pr.match + 1)
          pr.probeSent = false
        }
      }
      progress[m.from] = pr
      if accepted { sendAppends(to: m.from) }
      return
    }
    // A successful answer with m.index == 0 is only a term notice from a follower.
    let updated = pr.update(acknowledged: m.index)
    if updated {
      switch pr.state {
      case .probe, .snapshot: pr.becomeReplicate()
      case .replicate: break
      }
    }
    progress[m.from] = pr
    if updated && maybeCommit() {
      broadcastAppends()
    } else {
      sendAppends(to: m.from)
    }
    if let target = transferTarget, target == m.from, progress[target]?.match == log.lastIndex {
      send(Message(kind: .timeoutNow, from: id, to: target, term: term))
    }
  }

  private mutating func handleHeartbeatResponse(_ m: Message) {
    guard var pr = progress[m.from] else { return }
    pr.recentActive = true
    pr.probeSent = false
    // A full window may hold only lost appends: free one slot so that the append below goes
    // out (etcd's FreeFirstOne), or the follower would never be sent anything again.
    if pr.state == .replicate && pr.inflight.count >= config.maxInflightMessages {
      pr.inflight.removeFirst()
    }
    if m.readRound > pr.readAck { pr.readAck = m.readRound }
    progress[m.from] = pr
    // Empty appends allowed: in the replicate state `next` is past everything sent, so when
    // an append or its answer was lost only an (empty) append at `next` makes the follower
    // report where it stands (accept, or reject and send it back to probing).
    if pr.match < log.lastIndex { sendAppends(to: m.from, allowEmpty: true) }
    releaseConfirmedReads()
  }

  private mutating func handleReadRequest(context: [UInt8], from requester: NodeID) {
    guard log.term(at: log.committed) == term else {
      deferredReads.append((context, requester))
      return
    }
    if membership.voters == [id] {
      deliverRead(ReadState(index: log.committed, context: context), to: requester)
      return
    }
    if !readRoundUnsent {
      readRound += 1
      readRoundUnsent = true
    }
    pendingReads.append(
      PendingRead(round: readRound, index: log.committed, context: context, requester: requester))
  }

  /// Releases every read whose round a quorum of voters has acknowledged: they all answered
  /// a heartbeat sent after the read arrived, so no other leader existed at that moment.
  private mutating func releaseConfirmedReads() {
    guard !pendingReads.isEmpty, !membership.voters.isEmpty else { return }
    let acks = membership.voters.map { $0 == id ? readRound : (progress[$0]?.readAck ?? 0) }
      .sorted(by: >)
    let confirmed = acks[membership.quorum - 1]
    while let read = pendingReads.first, read.round <= confirmed {
      pendingReads.removeFirst()
      deliverRead(ReadState(index: read.index, context: read.context), to: read.requester)
    }
  }

  private mutating func deliverRead(_ read: ReadState, to requester: NodeID) {
    if requester == id {
      readStates.append(read)
    } else {
      var m = Message(kind: .readIndexResponse, from: id, to: requester, term: term)
      m.index = read.index
      m.context = read.context
      send(m)
    }
  }

  private mutating func send(_ m: Message) {
    var m = m
    // A peer that has not acknowledged the newest configuration may not know this leader yet,
    // and any voter may not know a candidate (see `checkSender`): the configuration travels
    // with what they are sent.
    let carries: Bool
    switch m.kind {
    case .append, .heartbeat:
      carries = role == .leader && (progress[m.to]?.match ?? 0) < log.lastMembershipIndex()
    case .vote, .preVote: carries = true
    default: carries = false
    }
    if carries {
      m.senderMembership = IndexedMembership(index: log.lastMembershipIndex(), membership: membership)
    }
    messages.append(m)
  }
}

extension String {
  /// FNV-1a over the UTF-8 bytes: unlike `hashValue`, the same in every process, so a node's
  /// jitter depends only on the seed and its name.
  var hashValueStable: UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in utf8 {
      hash ^= UInt64(byte)
      hash = hash &* 0x100_0000_01b3
    }
    return hash
  }
}
