import XCTest

@testable import Raft

/// A deterministic cluster of `RaftCore`s: simulated clock, network, disks and state machines,
/// all driven by one seed, with Raft's safety invariants checked as it runs.
///
/// Time moves in steps. Each step ticks every live node once (in id order), then delivers the
/// messages due at that step (in send order). After every input a node's Ready is processed
/// at once and atomically: install the snapshot, persist entries and hard state, send, apply,
/// release reads, advance. With `asyncReadies`, a Ready may instead stay outstanding for a
/// few steps while the core takes more input (as the runtime's does while it awaits its disk);
/// a crash then completes only a prefix of its work.
///
/// Invariants, checked after every input a node handles and after every step: one leader per
/// term; log matching (checked on every durable write: an entry with the same index and term
/// always has the same payload and the same previous term, which by induction makes the
/// prefixes equal); leader completeness (every entry known committed is in the log or
/// snapshot of every leader of a term at least the term it was seen committed in); state
/// machine safety (one command per applied index across all nodes and snapshots); durability
/// (a restarted node's commit index is at least the one it persisted, and its committed prefix
/// matches; a persisted commit never exceeds the persisted log); hard state sanity (term never
/// decreases, no second vote in a term); reads (a released read index is not below any entry
/// known committed when the read was asked). `deepChecks` adds, after every step, that each
/// idle core's log is exactly its disk's and holds the committed entries at its committed
/// indices, and leader completeness over each leader's whole log.
final class RaftSimulation {
  let seed: UInt64
  let replay: String
  var config: RaftConfig
  let network: SimNetwork
  var rng: SimRandom
  /// Compact a node's log through its applied index once it holds more entries than this.
  var compactAbove: Int?

  private(set) var nodes: [NodeID: SimNode] = [:]
  /// Every node ever created, sorted.
  private(set) var ids: [NodeID] = []
  private(set) var now = 0
  private(set) var failures: [String] = []
  var halted: Bool { !failures.isEmpty }

  // Invariant state.
  private(set) var leaderOfTerm: [UInt64: NodeID] = [:]
  private struct EntryKey: Hashable {
    var index: UInt64
    var term: UInt64
  }
  private var durableEntries: [EntryKey: (payload: EntryPayload, previousTerm: UInt64)] = [:]
  /// Entries known committed: index → (entry term, the observer's term when first seen).
  private(set) var committed: [UInt64: (term: UInt64, seenInTerm: UInt64)] = [:]
  /// Entries applied anywhere, by index: the single payload allowed at that index.
  private(set) var applied: [UInt64: EntryPayload] = [:]
  /// The highest index known committed anywhere.
  private(set) var highestCommitted: UInt64 = 0
  /// Check every invariant over every live node's whole in-memory log after each step (costly
  /// for long logs; meant for compacting, randomized runs).
  var deepChecks = false
  /// The chance that a node's owner leaves a Ready outstanding for 1...3 steps instead of
  /// doing its work at once; a crash meanwhile completes only part of that work.
  var asyncReadies = 0.0

  // Reads.
  /// For each read asked for: the highest index known committed when it was asked. A released
  /// read index below it would serve a state missing a write that completed before the read.
  private(set) var readFloor: [[UInt8]: UInt64] = [:]
  private(set) var readsReleased = 0

  // Client bookkeeping.
  /// Commands proposed, with the index the leader gave them.
  private(set) var proposed: [[UInt8]: UInt64] = [:]
  /// Commands seen applied (so acknowledged to a client), with their index.
  private(set) var acknowledged: [[UInt8]: UInt64] = [:]

  // Statistics.
  private(set) var appendRejections = 0
  private(set) var snapshotsInstalled = 0

  init(
    seed: UInt64, voters: Int, standby: Int = 0, config: RaftConfig = .simulation,
    network: NetworkOptions = .reliable, compactAbove: Int? = nil, replay: String
  ) {
    self.seed = seed
    self.replay = replay
    self.config = config
    self.network = SimNetwork(options: network)
    self.rng = SimRandom(seed: seed)
    self.compactAbove = compactAbove
    let voterIDs = (1...voters).map { NodeID("n\($0)") }
    let standbyIDs = (0..<standby).map { NodeID("n\(voters + 1 + $0)") }
    for id in voterIDs { addNode(id, bootstrapVoters: voterIDs) }
    for id in standbyIDs { addNode(id, bootstrapVoters: []) }
  }

  // MARK: - Failures

  /// Records a failure, naming the seed and how to replay it.
  func fail(_ what: String, file: StaticString = #filePath, line: UInt = #line) {
    failures.append(what)
    guard failures.count <= 3 else { return }
    XCTFail(
      "seed \(seed) (step \(now)): \(what) — replay with RAFT_SIM_SEED=\(seed) swift test --filter \(replay)",
      file: file, line: line)
  }

  func expect(
    _ condition: @autoclosure () -> Bool, _ what: @autoclosure () -> String,
    file: StaticString = #filePath, line: UInt = #line
  ) {
    if !condition() { fail(what(), file: file, line: line) }
  }

  // MARK: - Nodes

  /// Creates a node (a voter of `bootstrapVoters`, or an empty standby when that is empty)
  /// and starts it.
  func addNode(_ id: NodeID, bootstrapVoters: [NodeID]) {
    precondition(nodes[id] == nil)
    nodes[id] = SimNode(id: id, bootstrapVoters: bootstrapVoters)
    ids = nodes.keys.sorted()
    start(id)
  }

  func node(_ id: NodeID) -> SimNode { nodes[id]! }
  func core(_ id: NodeID) -> RaftCore? { nodes[id]?.core }
  /// The nodes that are up, sorted (kept up to date by start and crash: it is read constantly).
  private(set) var liveIDs: [NodeID] = []

  private func start(_ id: NodeID) {
    let node = nodes[id]!
    precondition(node.core == nil)
    let core = RaftCore(id: id, config: config, restored: node.restoredState, seed: rng.next())
    node.core = core
    liveIDs = ids.filter { nodes[$0]!.isUp }
    if core.commitIndex < node.log.hardState.commit {
      fail("\(id) restarted with commit \(core.commitIndex) below its persisted \(node.log.hardState.commit)")
    }
    if core.commitIndex < node.stateMachine.applied {
      fail("\(id) restarted with commit \(core.commitIndex) below its applied \(node.stateMachine.applied)")
    }
    if core.firstIndex <= core.commitIndex {
      for entry in core.entries where entry.index <= core.commitIndex {
        if let known = committed[entry.index], known.term != entry.term {
          fail(
            "\(id) restarted with committed entry \(entry.index) of term \(entry.term), expected \(known.term)"
          )
        }
      }
    }
    process(id)
  }

  func crash(_ id: NodeID) {
    guard let node = nodes[id], node.isUp else { return }
    if let pending = node.pendingReady {
      // The owner was part-way through this Ready: some prefix of its work is done (each
      // part is atomic, as the runtime's are), the rest is lost.
      node.pendingReady = nil
      perform(pending.ready, on: node, parts: rng.int(in: 0...4))
    }
    // A commit index written without a sync may be lost with the machine.
    if node.log.hardState != node.log.syncedHardState && rng.chance(0.5) {
      node.log.hardState = node.log.syncedHardState
    }
    node.core = nil
    liveIDs = ids.filter { nodes[$0]!.isUp }
    node.crashes += 1
    network.discard(involving: id)
  }

  func restart(_ id: NodeID) {
    guard let node = nodes[id], !node.isUp else { return }
    start(id)
  }

  func isolate(_ id: NodeID) { network.isolate(id) }
  func reconnect(_ id: NodeID) { network.reconnect(id) }
  func partition(_ groups: [[NodeID]]) { network.partition(groups) }

  /// Ends every fault: partitions, isolation, crashes, an unreliable network.
  func healAll(restartCrashed: Bool = true) {
    network.healAll()
    network.options = .reliable
    if restartCrashed { for id in ids where !nodes[id]!.isUp { restart(id) } }
  }

  // MARK: - Running

  func step() {
    guard !halted else { return }
    now += 1
    for id in liveIDs {
      if let pending = nodes[id]!.pendingReady, pending.dueAt <= now {
        nodes[id]!.pendingReady = nil
        perform(pending.ready, on: nodes[id]!, parts: 5)
      }
      nodes[id]!.core!.tick()
      process(id)
    }
    for message in network.takeDue(now: now) {
      deliver(message)
    }
    if let limit = compactAbove {
      for id in liveIDs where nodes[id]!.pendingReady == nil { compactIfNeeded(id, limit: limit) }
    }
    checkStepInvariants()
  }

  func run(_ steps: Int) {
    for _ in 0..<steps where !halted { step() }
  }

  /// Steps until `condition` holds (checked before each step); false on timeout.
  @discardableResult
  func run(until condition: () -> Bool, maxSteps: Int) -> Bool {
    for _ in 0..<maxSteps {
      if halted { return false }
      if condition() { return true }
      step()
    }
    return condition()
  }

  private func deliver(_ message: Message) {
    guard let target = nodes[message.to], target.isUp else {
      if message.kind == .snapshot { reportSnapshot(message, succeeded: false) }
      return
    }
    guard network.survives(message, rng: &rng) else {
      if message.kind == .snapshot { reportSnapshot(message, succeeded: false) }
      return
    }
    if message.kind == .appendResponse && message.reject { appendRejections += 1 }
    target.core!.step(message)
    process(message.to)
    if message.kind == .snapshot { reportSnapshot(message, succeeded: true) }
  }

  /// Tells the sender how its snapshot transfer went, as a runtime's transport would.
  private func reportSnapshot(_ message: Message, succeeded: Bool) {
    guard let sender = nodes[message.from], sender.isUp else { return }
    sender.core!.reportSnapshot(to: message.to, succeeded: succeeded)
    process(message.from)
  }

  private func compactIfNeeded(_ id: NodeID, limit: Int) {
    guard let core = nodes[id]!.core, core.entries.count > limit else { return }
    compact(id)
  }

  /// Compacts a live node's log (core and disk) through its applied index.
  func compact(_ id: NodeID) {
    let node = nodes[id]!
    guard let core = node.core else { return }
    let index = core.appliedIndex
    guard index > node.log.snapshot.index, let metadata = core.snapshotMetadata(at: index) else { return }
    node.core!.compact(through: index)
    node.log.compact(metadata)
    expect(
      node.core!.firstIndex == index + 1,
      "\(id) compacted through \(index) but its first index is \(node.core!.firstIndex)")
  }

  // MARK: - The Ready protocol

  /// Processes every Ready the node has, in the documented order. With `asyncReadies` a Ready
  /// may instead stay outstanding for a few steps (as while the runtime awaits its disk),
  /// during which the core keeps taking ticks and messages.
  func process(_ id: NodeID) {
    let node = nodes[id]!
    guard node.core != nil else { return }
    while !halted, node.pendingReady == nil, let ready = node.core!.ready() {
      if asyncReadies > 0 && rng.chance(asyncReadies) {
        node.pendingReady = (ready, now + rng.int(in: 1...3))
        break
      }
      perform(ready, on: node, parts: 5)
    }
    observeCommit(node)
    checkLeader(node)
  }

  /// Does the first `parts` parts of a Ready's work (all five: and advances the core).
  private func perform(_ ready: Ready, on node: SimNode, parts: Int) {
    let id = node.id
    if parts >= 1 {
      // 1. Snapshot.
      if let snapshot = ready.snapshot { install(snapshot, on: node) }
    }
    // 2 and 3: entries and hard state in one write, then the messages; a leader's messages
    // may go first (as the runtime sends them while its write is under way).
    let early = ready.messagesBeforePersisting
    if parts >= 2 { early ? send(ready, from: node) : persist(ready, on: node) }
    if parts >= 3 { early ? persist(ready, on: node) : send(ready, from: node) }
    if parts >= 4 {
      // 4. Apply.
      for entry in ready.committedEntries { apply(entry, on: node) }
    }
    if parts >= 5 {
      // 5. Reads. A follower may learn a read index beyond its own commit (its owner waits
      // until it has applied that far); a leader's is its own commit index.
      for read in ready.readStates {
        if node.core!.role == .leader {
          expect(
            read.index <= node.core!.commitIndex,
            "\(id) released a read at \(read.index) beyond its commit \(node.core!.commitIndex)")
        }
        if let floor = readFloor[read.context] {
          expect(
            read.index >= floor,
            "stale read: \(id) released read \(String(decoding: read.context, as: UTF8.self)) at \(read.index), but \(floor) was committed before it was asked"
          )
        }
        readsReleased += 1
        node.readStates.append(read)
      }
      node.core!.advance(ready)
    }
  }

  private func persist(_ ready: Ready, on node: SimNode) {
    if !ready.entries.isEmpty { persist(ready.entries, on: node) }
    if let hs = ready.hardState { persist(hs, on: node) }
    if ready.mustSync {
      node.log.syncedHardState = node.log.hardState
    } else {
      let synced = node.log.syncedHardState
      let hs = ready.hardState ?? synced
      expect(
        ready.entries.isEmpty && hs.term == synced.term && hs.vote == synced.vote,
        "\(node.id) skips the sync of a write holding entries or a new term or vote")
    }
  }

  /// Sends a Ready's messages, checking that each is backed by what the sender has on disk at
  /// this moment: its term (pre-votes excepted: they ask about a term not yet taken), a granted
  /// vote by the persisted vote, an accepted append by the persisted entries.
  private func send(_ ready: Ready, from node: SimNode) {
    let id = node.id
    let disk = node.log
    for var message in ready.messages {
      expect(message.from == id, "\(id) sent a message from \(message.from)")
      if message.kind != .preVote && message.kind != .preVoteResponse {
        expect(
          message.term <= disk.syncedHardState.term,
          "\(id) sends \(message.kind) of term \(message.term) with term \(disk.syncedHardState.term) on disk"
        )
      }
      if message.kind == .voteResponse && !message.reject {
        expect(
          disk.syncedHardState.term == message.term && disk.syncedHardState.vote == message.to,
          "\(id) grants its vote to \(message.to) in term \(message.term) with \(disk.syncedHardState) on disk"
        )
      }
      if message.kind == .appendResponse && !message.reject {
        expect(
          message.index <= disk.lastIndex,
          "\(id) acknowledges entries through \(message.index) with \(disk.lastIndex) on disk")
      }
      if message.kind == .snapshot, var snapshot = message.snapshot {
        let index = snapshot.metadata.index
        expect(
          node.stateMachine.applied >= index,
          "\(id) sends a snapshot at \(index) but has applied only \(node.stateMachine.applied)")
        snapshot.data = node.stateMachine.image(through: index)
        message.snapshot = snapshot
      }
      network.send(message, now: now, rng: &rng)
    }
  }

  private func install(_ snapshot: Snapshot, on node: SimNode) {
    let meta = snapshot.metadata
    guard let image = SnapshotImage.decode(snapshot.data) else {
      return fail("\(node.id) got an undecodable snapshot at \(meta.index)")
    }
    var commands: [UInt64: [UInt8]] = [:]
    for (index, bytes) in image {
      expect(index <= meta.index, "snapshot at \(meta.index) holds command \(index)")
      if let known = applied[index], known != .command(bytes) {
        fail("snapshot at \(meta.index) holds \(bytes) at \(index), but \(known) was applied there")
      }
      commands[index] = bytes
    }
    for (index, payload) in applied where index <= meta.index {
      if case .command(let bytes) = payload, commands[index] != bytes {
        fail("snapshot at \(meta.index) lacks command \(index) applied elsewhere")
      }
    }
    expect(
      meta.index > node.stateMachine.applied,
      "\(node.id) installs snapshot \(meta.index) at or below applied \(node.stateMachine.applied)")
    node.stateMachine.commands = commands
    node.stateMachine.applied = meta.index
    node.log.install(meta)
    snapshotsInstalled += 1
    recordCommitted(index: meta.index, term: meta.term, seenInTerm: node.core!.term, by: node.id)
  }

  private func persist(_ entries: [Entry], on node: SimNode) {
    let first = entries[0].index
    if first <= node.log.hardState.commit, let old = node.log.entry(at: first), old != entries[0] {
      fail("\(node.id) overwrites committed entry \(first)")
    }
    if let problem = node.log.persist(entries) { return fail("\(node.id): \(problem)") }
    for entry in entries {
      let previousTerm = node.log.term(at: entry.index - 1) ?? 0
      let key = EntryKey(index: entry.index, term: entry.term)
      if let known = durableEntries[key] {
        if known.payload != entry.payload || known.previousTerm != previousTerm {
          fail(
            "log matching: \(node.id) stores (\(entry.index), term \(entry.term)) = \(entry.payload) after term \(previousTerm), another node has \(known.payload) after term \(known.previousTerm)"
          )
        }
      } else {
        durableEntries[key] = (entry.payload, previousTerm)
      }
    }
  }

  private func persist(_ hs: HardState, on node: SimNode) {
    let old = node.log.hardState
    expect(hs.term >= old.term, "\(node.id) term went back from \(old.term) to \(hs.term)")
    if hs.term == old.term, let oldVote = old.vote {
      expect(
        hs.vote == oldVote,
        "\(node.id) voted for \(oldVote) and then \(String(describing: hs.vote)) in term \(hs.term)")
    }
    expect(hs.commit >= old.commit, "\(node.id) commit went back from \(old.commit) to \(hs.commit)")
    expect(
      hs.commit <= node.log.lastIndex,
      "\(node.id) persists commit \(hs.commit) beyond its stored log \(node.log.lastIndex)")
    node.log.hardState = hs
  }

  private func apply(_ entry: Entry, on node: SimNode) {
    let sm = node.stateMachine
    guard entry.index == sm.applied + 1 else {
      return fail("\(node.id) applies \(entry.index) after \(sm.applied)")
    }
    expect(
      entry.index <= node.log.hardState.commit,
      "\(node.id) applies \(entry.index) before persisting commit \(node.log.hardState.commit)")
    if let known = applied[entry.index] {
      if known != entry.payload {
        fail(
          "state machine safety: \(node.id) applies \(entry.payload) at \(entry.index), another node applied \(known)"
        )
      }
    } else {
      applied[entry.index] = entry.payload
    }
    if case .command(let bytes) = entry.payload {
      node.stateMachine.commands[entry.index] = bytes
      if acknowledged[bytes] == nil { acknowledged[bytes] = entry.index }
    }
    node.stateMachine.applied = entry.index
  }

  // MARK: - Invariants

  /// Notes the entries the node now knows are committed, and checks them against leaders.
  private func observeCommit(_ node: SimNode) {
    guard let core = node.core else { return }
    let commit = core.commitIndex
    guard commit > node.observedCommit else { return }
    let from = max(node.observedCommit + 1, core.firstIndex)
    if from <= commit {
      let base = core.firstIndex
      let entries = core.entries
      for index in from...commit {
        let term = entries[Int(index - base)].term
        recordCommitted(index: index, term: term, seenInTerm: core.term, by: node.id)
      }
    }
    node.observedCommit = commit
  }

  private func recordCommitted(index: UInt64, term: UInt64, seenInTerm: UInt64, by id: NodeID) {
    if let known = committed[index] {
      if known.term != term {
        fail("\(id) committed index \(index) with term \(term), but term \(known.term) was committed there")
      }
      return
    }
    committed[index] = (term, seenInTerm)
    highestCommitted = max(highestCommitted, index)
    for leaderID in liveIDs {
      guard let leader = nodes[leaderID]!.core, leader.role == .leader, leader.term >= seenInTerm
      else { continue }
      checkHas(leader, index: index, term: term)
    }
  }

  private func checkHas(_ leader: RaftCore, index: UInt64, term: UInt64) {
    if index < leader.firstIndex { return }  // Compacted: folded into its state machine.
    if index == leader.firstIndex - 1 {
      if leader.snapshotMetadata(at: index)?.term != term {
        fail(
          "leader completeness: \(leader.id) (term \(leader.term)) has a different compaction term at committed \(index)"
        )
      }
      return
    }
    let entry = index <= leader.lastIndex ? leader.entries[Int(index - leader.firstIndex)] : nil
    if entry?.term != term {
      fail(
        "leader completeness: leader \(leader.id) of term \(leader.term) lacks committed entry \(index) (term \(term))"
      )
    }
  }

  /// One leader per term, and a new leader holds every entry known committed (checked after
  /// every input a node handles, so a leadership lasting less than a step is still seen).
  private func checkLeader(_ node: SimNode) {
    guard let core = node.core, core.role == .leader else { return }
    if let other = leaderOfTerm[core.term] {
      if other != core.id { fail("two leaders in term \(core.term): \(other) and \(core.id)") }
      return
    }
    leaderOfTerm[core.term] = core.id
    for (index, known) in committed.sorted(by: { $0.key < $1.key }) where known.seenInTerm <= core.term {
      checkHas(core, index: index, term: known.term)
    }
  }

  private func checkStepInvariants() {
    for id in liveIDs { checkLeader(nodes[id]!) }
    if deepChecks { checkWholeLogs() }
  }

  /// The deep checks, over every live node's whole in-memory log:
  /// - the core's log is exactly what its disk holds (the Ready protocol lost nothing), so
  ///   the log matching check made on every durable write covers the in-memory logs too;
  /// - every entry a node holds at or below its commit index is the one known committed;
  /// - leader completeness: every leader holds every entry known committed (from its
  ///   compaction point on) at a term not above its own.
  private func checkWholeLogs() {
    for id in liveIDs where !halted {
      let node = nodes[id]!
      let core = node.core!
      if node.pendingReady == nil
        && (core.firstIndex != node.log.snapshot.index + 1 || core.entries != node.log.entries)
      {
        fail(
          "\(id): in-memory log [\(core.firstIndex), \(core.lastIndex)] differs from its disk [\(node.log.snapshot.index + 1), \(node.log.lastIndex)]"
        )
        continue
      }
      for entry in core.entries {
        guard entry.index <= core.commitIndex else { break }
        if let known = committed[entry.index], known.term != entry.term {
          fail("\(id) holds term \(entry.term) at committed \(entry.index), committed was term \(known.term)")
        }
      }
      if core.role == .leader && highestCommitted >= core.firstIndex - 1 {
        for index in (core.firstIndex - 1)...highestCommitted {
          if let known = committed[index], known.seenInTerm <= core.term {
            checkHas(core, index: index, term: known.term)
          }
        }
      }
    }
  }

  // MARK: - Clients

  /// The live leader of the highest term, if any.
  var leader: NodeID? {
    liveIDs.filter { nodes[$0]!.core!.role == .leader }.max {
      nodes[$0]!.core!.term < nodes[$1]!.core!.term
    }
  }

  /// The live leader of the highest term; when there is none, a failure: a scenario that needs
  /// a leader must not pass quietly without one.
  func requireLeader(file: StaticString = #filePath, line: UInt = #line) -> NodeID? {
    guard let leader else {
      fail("no leader", file: file, line: line)
      return nil
    }
    return leader
  }

  /// `propose`, with a failure when no live leader (or the given node) takes the command.
  @discardableResult
  func requirePropose(
    _ bytes: [UInt8], at id: NodeID? = nil, file: StaticString = #filePath, line: UInt = #line
  ) -> UInt64? {
    guard let index = propose(bytes, at: id) else {
      fail(
        "\(id.map { "\($0)" } ?? "no leader") refused \(String(decoding: bytes, as: UTF8.self))", file: file,
        line: line)
      return nil
    }
    return index
  }

  /// Runs until `candidates` (default: the live, connected nodes) have a leader, which is
  /// then returned, or fails.
  @discardableResult
  func waitForLeader(
    among candidates: [NodeID]? = nil, maxSteps: Int = 200, file: StaticString = #filePath,
    line: UInt = #line
  ) -> NodeID? {
    var found: NodeID?
    let ok = run(
      until: {
        let pool = candidates ?? liveIDs.filter { !network.isolated.contains($0) }
        // A leader no member of its group has overtaken (a removed node may campaign on in
        // terms of its own, ignored by the group).
        found = pool.filter { nodes[$0]!.core?.role == .leader }.first { id in
          let core = nodes[id]!.core!
          return pool.allSatisfy { other in
            !core.membership.contains(other) || (nodes[other]!.core?.term ?? 0) <= core.term
          }
        }
        return found != nil
      }, maxSteps: maxSteps)
    if !ok {
      fail("no leader among \(candidates ?? liveIDs) within \(maxSteps) steps", file: file, line: line)
      return nil
    }
    return found
  }

  /// Proposes `bytes` at `id` (default: the current leader); returns the index it got.
  @discardableResult
  func propose(_ bytes: [UInt8], at id: NodeID? = nil) -> UInt64? {
    guard let target = id ?? leader, nodes[target]!.isUp else { return nil }
    guard let index = try? nodes[target]!.core!.propose(bytes) else { return nil }
    proposed[bytes] = index
    process(target)
    return index
  }

  /// How many live nodes have applied `index`, and the command there (nil for a non-command).
  func nCommitted(_ index: UInt64) -> (count: Int, command: [UInt8]?) {
    var count = 0
    var command: [UInt8]?
    for id in liveIDs where nodes[id]!.stateMachine.applied >= index {
      count += 1
      command = nodes[id]!.stateMachine.commands[index]
    }
    return (count, command)
  }

  /// The classic labs' `one()`: submits `bytes` to whichever node is leader until it is
  /// applied at one index by at least `expected` live nodes. Returns that index, or fails.
  @discardableResult
  func one(
    _ bytes: [UInt8], expected: Int, maxSteps: Int = 400, file: StaticString = #filePath,
    line: UInt = #line
  ) -> UInt64? {
    let deadline = now + maxSteps
    while now < deadline && !halted {
      guard let index = propose(bytes) else {
        step()
        continue
      }
      let retryAt = min(deadline, now + 4 * config.electionTicks)
      while now < retryAt && !halted {
        let (count, cmd) = nCommitted(index)
        if count >= expected && cmd == bytes { return index }
        if count > 0 && cmd != bytes { break }  // Lost to another leader: resubmit.
        step()
      }
    }
    if !halted {
      fail(
        "\(String(decoding: bytes, as: UTF8.self)) did not reach \(expected) nodes within \(maxSteps) steps",
        file: file, line: line)
    }
    return nil
  }

  /// Proposes all of `commands` at once (to whichever node leads), resubmitting any that is
  /// lost to another leader or stalls, until each is applied at one index by at least
  /// `expected` live nodes. False (and a failure) on timeout.
  @discardableResult
  func commitAll(
    _ commands: [[UInt8]], expected: Int, maxSteps: Int = 1000, file: StaticString = #filePath,
    line: UInt = #line
  ) -> Bool {
    let deadline = now + maxSteps
    var attempts: [(index: UInt64, at: Int)?] = Array(repeating: nil, count: commands.count)
    var done = Array(repeating: false, count: commands.count)
    while now < deadline && !halted {
      for (k, bytes) in commands.enumerated() where !done[k] {
        if let attempt = attempts[k] {
          let (count, cmd) = nCommitted(attempt.index)
          if count >= expected && cmd == bytes {
            done[k] = true
            continue
          }
          if (count > 0 && cmd != bytes) || now - attempt.at > 4 * config.electionTicks { attempts[k] = nil }
        }
        if attempts[k] == nil, let index = propose(bytes) { attempts[k] = (index, now) }
      }
      if !done.contains(false) { return true }
      step()
    }
    if !halted {
      fail(
        "\(done.count { !$0 }) of \(commands.count) proposals did not reach \(expected) nodes within \(maxSteps) steps",
        file: file, line: line)
    }
    return false
  }

  /// Every acknowledged command is applied at its index by every node in `members`.
  func checkAcknowledgedAppliedEverywhere(_ members: [NodeID]) {
    for id in members {
      let sm = nodes[id]!.stateMachine
      for (bytes, index) in acknowledged.sorted(by: { $0.value < $1.value }) where sm.commands[index] != bytes
      {
        fail(
          "\(id) (applied \(sm.applied)) lacks acknowledged \(String(decoding: bytes, as: UTF8.self)) at \(index)"
        )
        return
      }
    }
  }

  /// Heals every fault and checks that a leader appears and commits on every live member
  /// within a bounded time, then that every member catches up.
  func checkLiveness(tag: String, maxSteps: Int = 400, file: StaticString = #filePath, line: UInt = #line) {
    healAll()
    guard let leaderID = waitForLeader(maxSteps: maxSteps, file: file, line: line) else { return }
    let members = nodes[leaderID]!.core!.membership
    guard
      one(command("liveness-\(tag)"), expected: members.quorum, maxSteps: maxSteps, file: file, line: line)
        != nil
    else { return }
    let caughtUp = run(
      until: {
        guard let l = leader, let lc = nodes[l]!.core else { return false }
        return lc.membership.all.allSatisfy { nodes[$0]!.stateMachine.applied >= lc.commitIndex }
          && lc.appliedIndex == lc.commitIndex
      }, maxSteps: maxSteps)
    if !caughtUp {
      let view = liveIDs.map { id -> String in
        let core = nodes[id]!.core!
        return
          "\(id): applied \(nodes[id]!.stateMachine.applied) commit \(core.commitIndex) last \(core.lastIndex) first \(core.firstIndex) term \(core.term) role \(core.role) members \(core.membership.all) pending \(nodes[id]!.pendingReady != nil) progress \(String(describing: nodes[leader ?? id]!.core!.progress(of: id)))"
      }
      fail("members did not catch up after healing: \(view)", file: file, line: line)
      return
    }
    if let l = leader { checkAcknowledgedAppliedEverywhere(nodes[l]!.core!.membership.all) }
  }
}

extension RaftSimulation {
  /// Has `id` ask for a linearizable read; false if the core refused at once.
  @discardableResult
  func readIndex(at id: NodeID, context: [UInt8]) -> Bool {
    guard let node = nodes[id], node.isUp else { return false }
    readFloor[context] = highestCommitted
    do {
      try node.core!.readIndex(context: context)
    } catch {
      return false
    }
    process(id)
    return true
  }

  /// Asks leader `id` to hand leadership to `target`.
  func transfer(from id: NodeID, to target: NodeID) throws(RaftError) {
    try nodes[id]!.core!.transferLeadership(to: target)
    process(id)
  }

  /// Proposes `change` at `id`; returns the index of its entry.
  @discardableResult
  func proposeMembershipChange(_ change: MembershipChange, at id: NodeID) throws(RaftError) -> UInt64 {
    let index = try nodes[id]!.core!.proposeMembershipChange(change)
    process(id)
    return index
  }

  /// How many membership entries have been applied (at distinct indices).
  var membershipEntriesApplied: Int {
    applied.values.count { if case .membership = $0 { true } else { false } }
  }

  /// One line per node: its role, term, leader, log, commit and membership (failure traces).
  var stateDescription: String {
    ids.map { id in
      guard let core = nodes[id]!.core else { return "\(id): down" }
      let members = core.membership
      return "\(id): \(core.role) term \(core.term) leader \(core.leader.map(\.rawValue) ?? "-") "
        + "log [\(core.firstIndex), \(core.lastIndex)] last term \(core.entries.last?.term ?? 0) "
        + "commit \(core.commitIndex) voters \(members.voters) learners \(members.learners)"
        + (network.isolated.contains(id) ? " (isolated)" : "")
    }.joined(separator: "\n")
  }

  /// The read `id` released for `context`, if any.
  func releasedRead(at id: NodeID, context: [UInt8]) -> ReadState? {
    nodes[id]?.readStates.first { $0.context == context }
  }

  /// Proposes `change` at whichever node leads until it is committed, proposing a command
  /// every other step when `load` is set. Returns the index of the committed change entry.
  @discardableResult
  func changeMembership(
    _ change: MembershipChange, load: String? = nil, maxSteps: Int = 400, file: StaticString = #filePath,
    line: UInt = #line
  ) -> UInt64? {
    let deadline = now + maxSteps
    var pending: (index: UInt64, term: UInt64)?
    var counter = 0
    while now < deadline && !halted {
      if let load, now % 2 == 0 {
        propose(command("\(load)-\(counter)"))
        counter += 1
      }
      if let (index, term) = pending {
        if let known = committed[index] {
          if known.term == term { return index }
          pending = nil  // Lost to another leader: propose again.
        }
      } else if let l = leader, nodes[l]!.isUp {
        let term = nodes[l]!.core!.term
        if let index = try? nodes[l]!.core!.proposeMembershipChange(change) {
          pending = (index, term)
          process(l)
        }
      }
      step()
    }
    if !halted {
      fail("membership change \(change) not committed within \(maxSteps) steps", file: file, line: line)
    }
    return nil
  }
}
