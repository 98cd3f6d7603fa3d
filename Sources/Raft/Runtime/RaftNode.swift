import Logging
import NIOCore
import NIOPosix
import Storage

/// Drives a `RaftCore` with a real clock, a `LogStorage`, a `StateMachine` and a
/// `RaftTransport`.
///
/// For every Ready, in order: install a received snapshot (after every earlier entry is
/// applied); persist entries and hard state in one write (synced unless only the commit index
/// changed); only then send the messages (they may promise what was just persisted), except a
/// leader's, which go out before its write so that its fsync and its followers' overlap (each
/// peer's traffic flows through its own `PeerPipe`); hand committed entries to the state
/// machine; advance the core. The state machine applies on its own serial queue while the next
/// Ready is persisted; proposals resolve and reads are released as their index is applied.
/// Blocking I/O runs on `IOQueue`s, and the actor keeps stepping messages and taking proposals
/// meanwhile, so many proposals share one fsync.
public actor RaftNode {
  public nonisolated let id: NodeID
  /// The event loop the node runs on (its actor's executor), with its peer pipes: messages
  /// that arrive on connections of the same loop reach the node, and its messages leave, without
  /// waking another thread (`EventLoopTaskExecutor`). Blocking work never runs here: it goes to
  /// `DurableState`'s and the snapshot queues.
  private nonisolated let loop: any EventLoop
  private nonisolated let executor: any SerialExecutor
  public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
  private var core: RaftCore
  /// The log and the state machine, each on its own queue (persist, apply, install, compact).
  private let durable: DurableState
  private let transport: any RaftTransport
  private let options: RaftNodeOptions
  private let logger: Logger
  /// Reads and compresses outgoing snapshot pieces.
  private let snapshotIO: IOQueue
  /// Decompresses and stages incoming snapshot pieces.
  private let snapshotReceiveIO: IOQueue
  /// The last batch of committed entries handed to the state machine; each batch's task waits
  /// for the one before, so batches apply in log order.
  private var applyTail: Task<Void, Never>?
  private let metrics = RaftMetrics()
  private var identity: ClusterIdentity
  private var dropLog: DropLog

  /// The tick timer, on the node's event loop, while the node runs.
  private var clock: RepeatedTask?
  private var processing = false
  private var stopped = false
  /// Why the node stopped itself, if it did: its storage failed.
  private var failure: RaftNodeError?
  private var stopWaiters: [CheckedContinuation<RaftNodeError?, Never>] = []

  /// Proposals and reads waiting for Raft to answer them.
  private var pending = PendingRequests()
  private var nextReadID: UInt64 = 0
  private var applied: UInt64
  /// The last log index on disk when this node opened; entries up to it that it applies
  /// afterwards are replayed from its own log.
  private let startupLastIndex: UInt64
  private var replayed = 0
  private var installedSnapshots = 0

  /// One pipe per peer this node has sent to (see `PeerPipe`).
  private var pipes: [NodeID: PeerPipe] = [:]

  /// Images to followers that need them, one transfer per peer at a time.
  private let snapshotSender: SnapshotSender
  /// Images from the leader, staged on disk until installed.
  private let snapshotReceiver: SnapshotReceiver

  /// Opens a node on its storage. A node with nothing stored starts from `bootstrapVoters`
  /// (all members of a new group use the same list; an empty list makes a standby that waits
  /// for a leader to add it). A node with stored state resumes it and ignores the list.
  public init(
    id: NodeID, options: RaftNodeOptions = RaftNodeOptions(), storage: any LogStorage,
    stateMachine: any StateMachine, transport: any RaftTransport, bootstrapVoters: [NodeID],
    logger: Logger = Logger(label: "raft"),
    eventLoop: (any EventLoop)? = nil
  ) throws(RaftNodeError) {
    self.id = id
    let loop = eventLoop ?? MultiThreadedEventLoopGroup.singleton.next()
    self.loop = loop
    self.executor = loop.executor
    self.options = options
    self.durable = DurableState(log: storage, stateMachine: stateMachine, node: id)
    self.transport = transport
    var logger = logger
    logger[metadataKey: "node"] = "\(id)"
    self.logger = logger
    self.dropLog = DropLog(logger: logger)
    self.snapshotIO = IOQueue(label: "raft.snapshot.\(id)")
    self.snapshotReceiveIO = IOQueue(label: "raft.snapshot-receive.\(id)")
    self.snapshotSender = SnapshotSender(from: id, transport: transport, io: snapshotIO)

    let opened = try durable.open(bootstrapVoters: bootstrapVoters, clusterID: options.clusterID)
    let restored = opened.restored
    do {
      self.snapshotReceiver = try SnapshotReceiver(
        directory: options.snapshotStagingDirectory, node: id,
        limits: .init(
          maxPieceBytes: options.maxSnapshotPieceBytes, maxBytesInFlight: options.maxSnapshotBytesInFlight))
    } catch {
      throw .storage("\(error)")
    }
    self.core = RaftCore(
      id: id, config: options.raft, restored: restored, seed: UInt64.random(in: .min ... .max))
    self.applied = restored.applied
    self.startupLastIndex = core.lastIndex
    self.identity = ClusterIdentity(id: opened.clusterID)
  }

  /// Starts the clock.
  public func start() {
    guard clock == nil, !stopped else { return }
    // A timer of the node's own event loop: it fires on the loop's thread, where the node
    // runs, so a tick wakes nothing else (a `Task.sleep` fires on a timer thread, which wakes
    // a pool thread, which wakes the loop: BENCHMARKS.md, issue 11's context switches).
    let interval = TimeAmount(options.tickInterval)
    clock = loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
      self.assumeIsolated { $0.tick() }
    }
    logger.info(
      "raft node started",
      metadata: [
        "term": "\(core.term)", "applied": "\(applied)",
        "members": "\(core.membership.all.map(\.rawValue).joined(separator: ","))",
      ])
  }

  /// Stops the clock and fails every waiting request with `.stopped`.
  public func stop() {
    guard !stopped else { return }
    stopped = true
    clock?.cancel()
    clock = nil
    pending.failAll(.stopped)
    for pipe in pipes.values { Task { await pipe.close() } }
    pipes.removeAll()
    snapshotSender.close()
    snapshotReceiver.close()
    for waiter in stopWaiters { waiter.resume(returning: failure) }
    stopWaiters.removeAll()
  }

  /// Returns once the node has stopped: nil after `stop()`, the error if the node stopped
  /// itself because its storage failed. A node whose disk refuses a write cannot keep Raft's
  /// promises (its votes and acknowledgements must be durable), so it stops, and its process
  /// should exit rather than go on answering with a frozen state.
  public func waitUntilStopped() async -> RaftNodeError? {
    if stopped { return failure }
    return await withCheckedContinuation { stopWaiters.append($0) }
  }

  // MARK: - Observing

  public var status: RaftStatus { core.status }
  public var leader: NodeID? { core.leader }
  public var isLeader: Bool { core.role == .leader }
  public var membership: Membership { core.membership }
  /// Bytes of this leader's proposals waiting to be applied (see `maxUncommittedBytes`).
  public var uncommittedProposalBytes: Int { pending.proposalBytes }
  /// This node's cluster id (`ClusterIdentity`; 0 while it has none).
  public var clusterID: UInt64 { identity.id }
  public var appliedIndex: UInt64 { applied }
  /// Entries this node has applied since it opened that were already in its log on disk: how
  /// much of its own log a restart replayed. Small, because the state machine persists its
  /// applied index with its data and resumes from it.
  public var replayedEntries: Int { replayed }
  /// Snapshots received from a leader and installed since this node opened.
  public var snapshotsInstalled: Int { installedSnapshots }
  /// Members this node has not heard from for longer than the failure threshold.
  public var unreachablePeers: [NodeID] { core.unreachablePeers }
  /// One core tick, in wall time.
  public nonisolated var tickInterval: Duration { options.tickInterval }
  /// The failure threshold, in wall time.
  public nonisolated var unreachableAfter: Duration {
    options.tickInterval * options.raft.unreachableTicks
  }

  // MARK: - Requests

  /// Replicates `command` and returns the state machine's result for it.
  public func propose(_ command: [UInt8], timeout: Duration) async throws(RaftNodeError) -> [UInt8] {
    try await request(timeout: timeout, bytes: command.count) { () throws(RaftNodeError) in
      guard pending.proposalBytes + command.count <= options.maxUncommittedBytes else {
        throw .busy(
          "\(pending.proposalBytes) bytes of proposals wait to commit (limit \(options.maxUncommittedBytes))")
      }
      let index: UInt64
      do throws(RaftError) {
        index = try core.propose(command)
      } catch {
        throw RaftNodeError(error)
      }
      metrics.proposals.increment()
      return .proposal(at: index)
    }
  }

  /// Returns once this node's state machine reflects every write committed before the call
  /// (ReadIndex): reading local state afterwards is linearizable.
  public func linearizableRead(timeout: Duration) async throws(RaftNodeError) {
    _ = try await request(timeout: timeout) { () throws(RaftNodeError) in
      nextReadID += 1
      let readID = nextReadID
      do throws(RaftError) {
        try core.readIndex(context: BigEndian.bytes(readID))
      } catch {
        throw RaftNodeError(error)
      }
      return .read(id: readID)
    }
  }

  /// Makes one membership change and waits until it is applied here.
  public func changeMembership(
    _ change: MembershipChange, timeout: Duration
  )
    async throws(RaftNodeError)
  {
    _ = try await request(timeout: timeout) { () throws(RaftNodeError) in
      let index: UInt64
      do throws(RaftError) {
        index = try core.proposeMembershipChange(change)
      } catch {
        throw RaftNodeError(error)
      }
      logger.info("proposing membership change", metadata: ["change": "\(change)"])
      return .proposal(at: index)
    }
  }

  /// Adds `peer` as a voter the safe way: as a learner first, promoted once its log has caught
  /// up with the commit index (by snapshot if needed). Adding a voter again succeeds at once.
  public func addMember(_ peer: NodeID, timeout: Duration) async throws(RaftNodeError) {
    let deadline = ContinuousClock.now + timeout
    while true {
      guard !stopped else { throw .stopped }
      guard core.role == .leader else { throw .notLeader(leader: core.leader) }
      let members = core.membership
      if members.isVoter(peer) { return }
      if !members.isLearner(peer) {
        try await retryingBusy(until: deadline) { () async throws(RaftNodeError) in
          try await self.changeMembership(.addLearner(peer), timeout: deadline - .now)
        }
        continue
      }
      if let progress = core.progress(of: peer), progress.match >= core.commitIndex {
        try await retryingBusy(until: deadline) { () async throws(RaftNodeError) in
          try await self.changeMembership(.promote(peer), timeout: deadline - .now)
        }
        continue
      }
      try await pause(until: deadline)
    }
  }

  /// Removes `peer` (voter or learner). Removing a non-member succeeds at once.
  public func removeMember(_ peer: NodeID, timeout: Duration) async throws(RaftNodeError) {
    let deadline = ContinuousClock.now + timeout
    guard core.membership.contains(peer) else { return }
    try await retryingBusy(until: deadline) { () async throws(RaftNodeError) in
      try await self.changeMembership(.remove(peer), timeout: deadline - .now)
    }
  }

  public func transferLeadership(to target: NodeID) throws(RaftNodeError) {
    do {
      try core.transferLeadership(to: target)
    } catch {
      throw RaftNodeError(error)
    }
    scheduleProcessing()
  }

  // MARK: - Network input

  /// Steps messages that arrived from a peer in one batch carrying `clusterID`. A batch of
  /// another cluster is dropped whole; each message the core refuses is dropped alone. Both
  /// are logged (rate-limited) and change nothing.
  public func receive(_ messages: [Message], clusterID: UInt64) {
    guard !stopped else { return }
    guard identity.admits(clusterID) else {
      metrics.droppedInput.increment(by: messages.count)
      dropLog.note(
        "cluster id",
        "\(messages.count) messages from \(messages.first?.from.rawValue ?? "?") carry cluster id "
          + "\(clusterID), this node's is \(identity.id)")
      return
    }
    for message in messages {
      metrics.received(message.kind).increment()
      // An image arrives only as chunks (`receiveSnapshotChunk`, which stages it before the
      // core sees the message); a bare snapshot message would be accepted with nothing to
      // install and stop the node.
      guard message.kind != .snapshot else {
        metrics.droppedInput.increment()
        dropLog.note("snapshot", "snapshot message from \(message.from) outside a chunk transfer")
        continue
      }
      switch core.step(message) {
      case .accepted:
        adoptClusterID(clusterID)
      case .dropped(let error):
        metrics.droppedInput.increment()
        dropLog.note(error.category, "\(message.kind) from \(message.from): \(error)")
      }
    }
    scheduleProcessing()
  }

  /// After the core accepted input carrying `incoming`: a node without a cluster id takes it.
  private func adoptClusterID(_ incoming: UInt64) {
    guard let id = identity.adoption(of: incoming) else { return }
    do {
      try durable.saveClusterID(id)
      identity.adopt(id)
      logger.info("adopted cluster id", metadata: ["cluster_id": "\(id)"])
    } catch {
      logger.error("cannot save the cluster id", metadata: ["error": "\(error)"])
    }
  }

  /// Takes one chunk of a snapshot transfer: its piece is staged on disk, off the actor
  /// (`SnapshotReceiver`); on the last one the core decides whether to install the image.
  public func receiveSnapshotChunk(_ chunk: SnapshotChunk) async throws(RaftNodeError) {
    guard !stopped else { throw .stopped }
    guard chunk.to == id else { throw .badSnapshot("chunk addressed to \(chunk.to)") }
    guard identity.admits(chunk.clusterID) else {
      metrics.droppedInput.increment()
      dropLog.note("cluster id", "snapshot chunk from \(chunk.from) carries cluster id \(chunk.clusterID)")
      throw .badSnapshot("cluster id \(chunk.clusterID) is not this node's")
    }
    // Only a sender the core would hear may send an image: a member, or a leader the
    // snapshot's configuration names together with this node (every chunk carries it).
    let vouched = chunk.metadata.map { IndexedMembership(index: $0.index, membership: $0.membership) }
    guard chunk.from != id, core.hears(chunk.from, vouchedFor: vouched) else {
      metrics.droppedInput.increment()
      dropLog.note("not member", "snapshot chunk from non-member \(chunk.from)")
      throw .badSnapshot("\(chunk.from) is not a member")
    }
    let receiver = snapshotReceiver
    let receipt: SnapshotReceiver.Receipt
    do {
      receipt = try await snapshotReceiveIO.run { try receiver.receive(chunk) }
    } catch let error as SnapshotStagingError {
      if case .inFlightLimit = error {
        metrics.droppedInput.increment()
        dropLog.note("snapshot size", "snapshot transfer from \(chunk.from) passes the in-flight limit")
      }
      throw .badSnapshot(error.description)
    } catch {
      throw .badSnapshot("\(error)")
    }
    guard !stopped else {
      receiver.close()  // stop() emptied the staging directory while this chunk was staged.
      throw .stopped
    }
    guard case .staged(let image) = receipt else { return }
    var message = Message(kind: .snapshot, from: chunk.from, to: id, term: chunk.term)
    message.snapshot = Snapshot(metadata: image.metadata, data: BigEndian.bytes(image.id))
    switch core.step(message) {
    case .accepted:
      adoptClusterID(chunk.clusterID)
      receiver.markOffered(image.id)
    case .dropped(let error):
      receiver.discard(image.id)
      metrics.droppedInput.increment()
      dropLog.note(error.category, "snapshot from \(chunk.from): \(error)")
      throw .badSnapshot("\(error)")
    }
    scheduleProcessing()
  }

  // MARK: - The loop

  private func tick() {
    guard !stopped else { return }
    core.tick()
    metrics.term.record(core.term)
    metrics.commitIndex.record(core.commitIndex)
    metrics.appliedIndex.record(applied)
    metrics.isLeader.record(core.role == .leader ? 1 : 0)
    pending.expire(now: .now)
    scheduleProcessing()
  }

  private func scheduleProcessing() {
    guard !processing, !stopped, core.hasReady else { return }
    processing = true
    Task { await self.processReadies() }
  }

  private func processReadies() async {
    while !stopped, let ready = core.ready() {
      snapshotReceiver.discardOffered(keeping: ready.snapshot.flatMap { BigEndian.uint64(from: $0.data) })
      do {
        try await handle(ready)
        core.advance(ready)
        try await compactIfNeeded()
      } catch {
        storageFailed(error)
      }
    }
    processing = false
  }

  private func handle(_ ready: Ready) async throws {
    if let change = ready.roleChange { noteRoleChange(change) }
    if let snapshot = ready.snapshot {
      guard let imageID = BigEndian.uint64(from: snapshot.data) else {
        throw RaftNodeError.badSnapshot("accepted snapshot names no staged image")
      }
      let receiver = snapshotReceiver
      // Whatever happens below, the image is not needed again: the core has moved past it.
      defer { receiver.discard(imageID) }
      let image = try receiver.open(imageID)
      let metadata = snapshot.metadata
      // Everything committed before the snapshot is applied first (it is older state).
      await applyTail?.value
      guard !stopped else { return }
      // Crash-safe: see `DurableState.installSnapshot` and its restart rule.
      try await durable.installSnapshot(metadata, from: image)
      applied = metadata.index
      installedSnapshots += 1
      metrics.snapshotsInstalled.increment()
      logger.info("installed snapshot", metadata: ["index": "\(metadata.index)"])
    }
    if ready.messagesBeforePersisting { await send(ready.messages) }
    if ready.hardState != nil || !ready.entries.isEmpty {
      let hardState = ready.hardState
      let entries = ready.entries
      let sync = ready.mustSync
      let started = ContinuousClock.now
      try await durable.persist(hardState: hardState, entries: entries, sync: sync)
      if sync { metrics.fsync.record(since: started) }
    }
    if !ready.messagesBeforePersisting { await send(ready.messages) }
    if !ready.committedEntries.isEmpty { startApplying(ready.committedEntries) }
    for read in ready.readStates {
      guard let readID = BigEndian.uint64(from: read.context) else { continue }
      pending.confirmRead(id: readID, at: read.index)
    }
    pending.releaseReads(appliedThrough: applied)
  }

  // MARK: - Applying

  /// Hands committed entries to the state machine without waiting for them: the next Ready
  /// is persisted meanwhile. Batches apply in order (each waits for the one before), and the
  /// core may be advanced at once: it only needs to know they were handed out.
  private func startApplying(_ entries: [Entry]) {
    let previous = applyTail
    applyTail = Task {
      await previous?.value
      await self.apply(entries)
    }
  }

  private func apply(_ entries: [Entry]) async {
    guard !stopped else { return }
    let results: [[UInt8]]
    do {
      results = try await durable.apply(entries)
    } catch {
      storageFailed(error)
      return
    }
    replayed += entries.count { $0.index <= startupLastIndex }
    pending.resolve(applied: entries, results: results)
    if let last = entries.last { applied = max(applied, last.index) }
    metrics.appliedEntries.increment(by: entries.count)
    pending.releaseReads(appliedThrough: applied)
  }

  private func storageFailed(_ error: any Error) {
    // After stop() the owner may close the storage under in-flight work: not a failure.
    guard !stopped else { return }
    logger.critical("raft storage failed; stopping the node", metadata: ["error": "\(error)"])
    failure = (error as? RaftNodeError) ?? .storage("\(error)")
    stop()
  }

  private func noteRoleChange(_ change: Ready.RoleChange) {
    switch change.role {
    case .leader:
      logger.info("became leader", metadata: ["term": "\(change.term)"])
    case .follower:
      logger.info(
        "following", metadata: ["term": "\(change.term)", "leader": "\(change.leader?.rawValue ?? "none")"])
    case .candidate, .preCandidate:
      logger.debug("campaigning", metadata: ["term": "\(change.term)"])
    }
    // Requests started under the old role can no longer be confirmed by it (see
    // `PendingRequests`).
    if change.role != .leader { pending.failProposals(above: core.commitIndex) }
    pending.failUnconfirmedReads()
  }

  private func compactIfNeeded() async throws {
    let length = core.lastIndex + 1 - core.firstIndex
    guard length > UInt64(options.maxLogEntries) else { return }
    let target = applied > UInt64(options.retainedEntries) ? applied - UInt64(options.retainedEntries) : 0
    guard target >= core.firstIndex, let metadata = core.snapshotMetadata(at: target) else { return }
    try await durable.compact(through: metadata)
    core.compact(through: target)
    logger.debug("compacted log", metadata: ["through": "\(target)"])
  }

  // MARK: - Sending

  /// Hands messages to their peers' pipes, in order (each pipe keeps the order it is given).
  private func send(_ messages: [Message]) async {
    guard !stopped else { return }
    var byPeer: [NodeID: [Message]] = [:]
    var peers: [NodeID] = []
    for message in messages {
      metrics.sent(message.kind).increment()
      if message.kind == .snapshot {
        startSnapshotTransfer(to: message.to, term: message.term)
        continue
      }
      if byPeer[message.to] == nil { peers.append(message.to) }
      byPeer[message.to, default: []].append(message)
    }
    for peer in peers {
      guard let batch = byPeer[peer] else { continue }
      await pipe(to: peer).send(batch, clusterID: identity.id)
    }
  }

  private func pipe(to peer: NodeID) -> PeerPipe {
    if let pipe = pipes[peer] { return pipe }
    let pipe = PeerPipe(
      peer: peer, loop: loop, transport: transport, limits: options.pipe,
      heartbeat: options.tickInterval * options.raft.heartbeatTicks
    ) { [weak self] peer, error in
      await self?.peerFailed(peer, error)
    }
    pipes[peer] = pipe
    return pipe
  }

  private func peerFailed(_ peer: NodeID, _ error: any Error) {
    guard !stopped else { return }
    core.reportUnreachable(peer)
    logger.trace("send failed", metadata: ["peer": "\(peer)", "error": "\(error)"])
    scheduleProcessing()
  }

  /// Starts sending an image to `peer` unless a transfer to it is under way (the core asks
  /// again if it still needs one after this one ends).
  private func startSnapshotTransfer(to peer: NodeID, term: UInt64) {
    snapshotSender.start(
      to: peer, term: term, clusterID: identity.id,
      image: { try await self.outgoingImage() },
      finished: { await self.snapshotTransferEnded(to: peer, $0) })
  }

  /// A consistent image of the state machine and where it stands: taken on the state
  /// machine's queue, after every batch handed to it so far.
  private func outgoingImage() async throws -> SnapshotSender.Image {
    let reader = try await durable.makeSnapshot()
    guard let metadata = core.snapshotMetadata(at: reader.index) else {
      throw RaftNodeError.badSnapshot("no metadata for index \(reader.index)")
    }
    return SnapshotSender.Image(reader: reader, metadata: metadata)
  }

  private func snapshotTransferEnded(to peer: NodeID, _ result: Result<SnapshotMetadata, any Error>) {
    switch result {
    case .success(let metadata):
      logger.info("sent snapshot", metadata: ["peer": "\(peer)", "index": "\(metadata.index)"])
      metrics.snapshotsSent.increment()
      core.reportSnapshot(to: peer, succeeded: true)
    case .failure(let error):
      logger.warning("snapshot transfer failed", metadata: ["peer": "\(peer)", "error": "\(error)"])
      core.reportSnapshot(to: peer, succeeded: false)
    }
    scheduleProcessing()
  }

  // MARK: - Waiting

  /// What a request waits for: the entry at an index to be applied, or a read to be confirmed
  /// and its index applied.
  private enum Awaited {
    case proposal(at: UInt64)
    case read(id: UInt64)
  }

  /// Starts a request and suspends until Raft answers it. `start` hands the request to the
  /// core and says what it waits for; it runs in one actor turn with the hold
  /// and with starting the Ready loop, inside the continuation's body.
  ///
  /// Why there: an `await` may suspend even when it calls this actor (it does when the caller
  /// runs with a task executor preference), and the actor may run other jobs meanwhile. Had the
  /// core been handed the request before such a suspension, a Ready loop running in it could
  /// take the core's answer (a single voter confirms a read at once) before anyone waits for
  /// it, and the caller would wait for its timeout.
  private func request(
    timeout: Duration, bytes: Int = 0,
    _ start: () throws(RaftNodeError) -> Awaited
  ) async throws(RaftNodeError) -> [UInt8] {
    let result: Result<[UInt8], RaftNodeError> = await withCheckedContinuation { continuation in
      guard !stopped else { return continuation.resume(returning: .failure(.stopped)) }
      let awaited: Awaited
      do throws(RaftNodeError) {
        awaited = try start()
      } catch {
        return continuation.resume(returning: .failure(error))
      }
      let request = PendingRequests.Request(
        term: core.term, deadline: .now + timeout, bytes: bytes,
        complete: { continuation.resume(returning: $0) })
      switch awaited {
      case .proposal(let index): pending.addProposal(request, at: index)
      case .read(let id): pending.addRead(request, id: id)
      }
      scheduleProcessing()
    }
    return try result.get()
  }

  private func pause(until deadline: ContinuousClock.Instant) async throws(RaftNodeError) {
    guard ContinuousClock.now < deadline else { throw .timeout }
    try? await Task.sleep(for: options.tickInterval)
  }

  /// Runs a membership step, waiting out "another change is pending" until the deadline.
  private func retryingBusy(
    until deadline: ContinuousClock.Instant,
    _ body: () async throws(RaftNodeError) -> Void
  ) async throws(RaftNodeError) {
    while true {
      do {
        try await body()
        return
      } catch .rejected(.membershipChangePending), .rejected(.leaderNotReady) {
        try await pause(until: deadline)
      } catch .rejected(.alreadyMember) {
        return
      }
    }
  }
}
