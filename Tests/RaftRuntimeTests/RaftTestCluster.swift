import Foundation
import Logging
import Raft
import Storage
import Synchronization
import Wire
import XCTest

/// Kills a node at one step of a snapshot install, as kill -9 would: the step and every write
/// after it fail (each write is atomic, so what landed before is exactly a prefix). Steps: 1
/// records the install's intent, 2 restores the state machine, 3 moves the log.
final class SnapshotInstallCrash: Sendable {
  struct Killed: Error {}
  private let state: Mutex<(steps: Int, killed: Bool)> = Mutex((0, false))
  let step: Int

  init(atStep step: Int) { self.step = step }

  var hasKilled: Bool { state.withLock { $0.killed } }

  /// Called before each install step.
  func reach() throws {
    try state.withLock { state throws in
      state.steps += 1
      if state.steps == step { state.killed = true }
      if state.killed { throw Killed() }
    }
  }

  /// Called before every other write.
  func check() throws {
    if hasKilled { throw Killed() }
  }
}

/// A state machine whose restore can be killed by a `SnapshotInstallCrash`.
final class CrashingStateMachine: StateMachine {
  let base: TestStateMachine
  let crash: SnapshotInstallCrash?

  init(_ base: TestStateMachine, crash: SnapshotInstallCrash?) {
    self.base = base
    self.crash = crash
  }

  var appliedIndex: UInt64 { base.appliedIndex }
  func apply(_ entries: [Entry]) throws -> [[UInt8]] {
    try crash?.check()
    return try base.apply(entries)
  }
  func sync() throws { try base.sync() }
  func makeSnapshot() throws -> any SnapshotReader { try base.makeSnapshot() }
  func restore(_ metadata: SnapshotMetadata, from image: any SnapshotReader) throws {
    try crash?.reach()
    try base.restore(metadata, from: image)
  }
}

/// Counts synced writes, to observe group commit; optionally killed mid-install.
final class CountingLogStorage: LogStorage {
  private let base: any LogStorage
  private let counts = Mutex((saves: 0, entries: 0, blocked: 0, last: (index: UInt64(0), term: UInt64(0))))
  private let crash: SnapshotInstallCrash?

  init(_ base: any LogStorage, crash: SnapshotInstallCrash? = nil) {
    self.base = base
    self.crash = crash
  }

  var saves: Int { counts.withLock { $0.saves } }
  var savedEntries: Int { counts.withLock { $0.entries } }
  /// The last entry this storage has written, as (index, term).
  var lastSaved: (index: UInt64, term: UInt64) { counts.withLock { $0.last } }

  /// While set, a save that carries entries blocks (the node's log queue) until the semaphore
  /// is signalled, or 10 s: a slow disk, to watch what the node does meanwhile.
  let entryGate = Mutex<DispatchSemaphore?>(nil)
  /// Saves with entries that are blocked on `entryGate` now.
  var blockedSaves: Int { counts.withLock { $0.blocked } }

  func load() throws -> StoredLog? { try base.load() }
  func save(hardState: HardState?, entries: [Entry], sync: Bool) throws {
    if !entries.isEmpty, let gate = entryGate.withLock({ $0 }) {
      counts.withLock { $0.blocked += 1 }
      _ = gate.wait(timeout: .now() + 10)
      counts.withLock { $0.blocked -= 1 }
    }
    try crash?.check()
    counts.withLock {
      $0.saves += 1
      $0.entries += entries.count
    }
    try base.save(hardState: hardState, entries: entries, sync: sync)
    if let last = entries.last { counts.withLock { $0.last = (last.index, last.term) } }
  }
  func installSnapshot(_ metadata: SnapshotMetadata) throws {
    try crash?.reach()
    try base.installSnapshot(metadata)
  }
  func beginSnapshotInstall(_ metadata: SnapshotMetadata?) throws {
    if metadata == nil { try crash?.check() } else { try crash?.reach() }
    try base.beginSnapshotInstall(metadata)
  }
  func compact(through metadata: SnapshotMetadata) throws {
    try crash?.check()
    try base.compact(through: metadata)
  }
  func loadClusterID() throws -> UInt64 { try base.loadClusterID() }
  func saveClusterID(_ id: UInt64) throws { try base.saveClusterID(id) }
}

/// Real `RaftNode`s on RocksDB in one process, over the fault-injecting in-memory network, in
/// real time (fast ticks). A crash stops a node and closes its database; a restart reopens it.
final class RaftTestCluster: @unchecked Sendable {
  struct Member {
    var node: RaftNode
    var stateMachine: TestStateMachine
    var storage: CountingLogStorage
    var db: RocksDB
    var listener: any TransportListener
  }

  let network: InMemoryNetwork
  let ids: [NodeID]
  let options: RaftNodeOptions
  private let directory = TemporaryDirectory()
  private(set) var members: [NodeID: Member] = [:]

  init(size: Int, seed: UInt64 = 1, options: RaftNodeOptions? = nil) {
    network = InMemoryNetwork(seed: seed)
    ids = (1...size).map { NodeID("n\($0):7000") }
    var defaults = RaftNodeOptions()
    defaults.tickInterval = .milliseconds(10)
    self.options = options ?? defaults
  }

  /// Starts every node of the group, bootstrapped with all of them as voters.
  func startAll() async throws {
    for id in ids { try await start(id, bootstrapVoters: ids) }
  }

  func start(
    _ id: NodeID, bootstrapVoters: [NodeID], crash: SnapshotInstallCrash? = nil
  ) async throws {
    let path = directory.path + "/" + id.rawValue.replacingOccurrences(of: ":", with: "_")
    let db = try RocksDB(
      path: path, columnFamilies: RocksLogStorage.columnFamilies + TestStateMachine.columnFamilies)
    let stateMachine = try TestStateMachine(db: db)
    let storage = CountingLogStorage(try RocksLogStorage(db: db), crash: crash)
    let transport = network.transport(for: id.rawValue)
    var logger = Logger(label: "test")
    logger.logLevel = .error
    let node = try RaftNode(
      id: id, options: options, storage: storage,
      stateMachine: CrashingStateMachine(stateMachine, crash: crash),
      transport: WireRaftTransport(transport: transport, messageTimeout: .milliseconds(200)),
      bootstrapVoters: bootstrapVoters, logger: logger)
    var handlers = RPCHandlers()
    WireRaftTransport.register(node, in: &handlers)
    let listener = try await transport.listen(on: id.rawValue, handlers: handlers)
    await node.start()
    members[id] = Member(
      node: node, stateMachine: stateMachine, storage: storage, db: db, listener: listener)
  }

  /// Stops the node as a crash would: nothing it had not persisted survives.
  func crash(_ id: NodeID) async {
    guard let member = members.removeValue(forKey: id) else { return }
    await member.node.stop()
    await member.listener.close()
    member.db.close()
  }

  func restart(_ id: NodeID, crash: SnapshotInstallCrash? = nil) async throws {
    try await start(id, bootstrapVoters: [], crash: crash)
  }

  func shutdown() async {
    for id in members.keys.sorted() { await crash(id) }
    directory.remove()
  }

  func node(_ id: NodeID) throws -> RaftNode { try XCTUnwrap(members[id]?.node) }

  /// Waits until exactly one running member is leader and every running member agrees;
  /// returns it.
  func waitForLeader(timeout: Duration = .seconds(10)) async throws -> NodeID {
    var found: NodeID?
    try await waitUntil(timeout: timeout, "a single agreed leader") {
      var leaders = Set<NodeID?>()
      var claimed: [NodeID] = []
      // A standby that no one has added yet knows no leader, and need not.
      for (id, member) in self.members where await member.node.membership.contains(id) {
        leaders.insert(await member.node.leader)
        if await member.node.isLeader { claimed.append(id) }
      }
      guard claimed.count == 1, leaders == [claimed[0]] else { return false }
      found = claimed[0]
      return true
    }
    return try XCTUnwrap(found)
  }

  /// Proposes through whichever node leads, retrying on leader changes; returns the result.
  func propose(_ command: [UInt8], timeout: Duration = .seconds(10)) async throws -> [UInt8] {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
      let leader = try node(try await waitForLeader(timeout: deadline - .now))
      do {
        return try await leader.propose(command, timeout: .seconds(2))
      } catch .notLeader, .leadershipLost, .timeout {
        continue
      }
    }
    throw RaftNodeError.timeout
  }

  /// `RaftRuntimeTests.waitUntil`, with the cluster's argument order.
  func waitUntil(
    timeout: Duration = .seconds(10), _ what: String, _ condition: () async throws -> Bool
  ) async throws {
    try await RaftRuntimeTests.waitUntil(what, timeout: timeout, condition)
  }

  /// Waits until every running node's state machine holds exactly `expected`.
  func waitForCommands(_ expected: [[UInt8]], timeout: Duration = .seconds(15)) async throws {
    do {
      try await waitUntil(timeout: timeout, "\(expected.count) commands applied everywhere") {
        try self.members.values.allSatisfy { try $0.stateMachine.commands() == expected }
      }
    } catch {
      // Where each member stood, so a failure says which one fell behind and why.
      for (id, member) in members.sorted(by: { $0.key < $1.key }) {
        let status = await member.node.status
        let commands = (try? member.stateMachine.commands().count).map(String.init) ?? "?"
        XCTFail(
          "\(id): \(commands) commands, state machine at \(member.stateMachine.appliedIndex), "
            + "\(status)")
      }
      throw error
    }
  }
}
