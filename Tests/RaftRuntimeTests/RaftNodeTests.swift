import Dispatch
import NIOCore
import NIOPosix
import Raft
import Storage
import Wire
import XCTest

final class RaftNodeTests: XCTestCase {
  private func command(_ i: Int) -> [UInt8] { Array("cmd-\(i)".utf8) }

  func testThreeNodesElectALeaderAndApplyEveryProposalOnceInOrder() async throws {
    let cluster = RaftTestCluster(size: 3)
    try await cluster.startAll()
    var expected: [[UInt8]] = []
    for i in 1...50 {
      let result = try await cluster.propose(command(i))
      expected.append(command(i))
      // The test state machine answers with the number of commands applied so far.
      XCTAssertEqual(BigEndian.uint64(from: result), UInt64(i))
    }
    try await cluster.waitForCommands(expected)
    await cluster.shutdown()
  }

  func testConcurrentProposalsShareFsyncs() async throws {
    let cluster = RaftTestCluster(size: 3)
    try await cluster.startAll()
    let leaderID = try await cluster.waitForLeader()
    let leader = try cluster.node(leaderID)
    _ = try await leader.propose(command(0), timeout: .seconds(5))
    let storage = try XCTUnwrap(cluster.members[leaderID]?.storage)
    let savesBefore = storage.saves
    let count = 400
    try await withThrowingTaskGroup(of: Void.self) { group in
      for i in 1...count {
        let proposal = Array("cmd-\(i)".utf8)
        group.addTask { _ = try await leader.propose(proposal, timeout: .seconds(10)) }
      }
      try await group.waitForAll()
    }
    let saves = storage.saves - savesBefore
    // Without group commit every proposal would cost at least one synced write.
    XCTAssertLessThan(saves, count, "\(saves) synced writes for \(count) proposals")
    await cluster.shutdown()
  }

  /// The leader sends a new entry before its own write: both followers persist it while the
  /// leader's disk is still writing (its save blocked), so the two fsyncs overlap.
  func testTheLeaderSendsNewEntriesBeforeItsOwnWriteEnds() async throws {
    // Elections after 1-2 s: the leader's Ready loop waits for the blocked write, so it sends
    // no heartbeats meanwhile.
    var options = RaftNodeOptions()
    options.tickInterval = .milliseconds(10)
    options.raft = RaftConfig(electionTicks: 100, heartbeatTicks: 2, unreachableTicks: 100)
    let cluster = RaftTestCluster(size: 3, options: options)
    try await cluster.startAll()
    let leaderID = try await cluster.waitForLeader()
    let leader = try cluster.node(leaderID)
    _ = try await leader.propose(command(0), timeout: .seconds(5))
    let leaderStorage = try XCTUnwrap(cluster.members[leaderID]?.storage)
    let followers = try cluster.ids.filter { $0 != leaderID }.map {
      try XCTUnwrap(cluster.members[$0]?.storage)
    }
    let status = await leader.status
    let entry = (index: status.lastIndex + 1, term: status.term)
    let gate = DispatchSemaphore(value: 0)
    leaderStorage.entryGate.withLock { $0 = gate }
    let payload = command(1)
    let proposal = Task { try await leader.propose(payload, timeout: .seconds(10)) }
    try await waitUntil("the leader's write to block") { leaderStorage.blockedSaves == 1 }
    try await waitUntil(
      "both followers to persist entry \(entry) while the leader writes it", timeout: .seconds(1)
    ) {
      followers.allSatisfy { $0.lastSaved == entry }
    }
    XCTAssertEqual(leaderStorage.blockedSaves, 1, "the leader's write ended before the check")
    leaderStorage.entryGate.withLock { $0 = nil }
    gate.signal()
    _ = try await proposal.value
    await cluster.shutdown()
  }

  func testProposalToAFollowerNamesTheLeader() async throws {
    let cluster = RaftTestCluster(size: 3)
    try await cluster.startAll()
    let leaderID = try await cluster.waitForLeader()
    let followerID = try XCTUnwrap(cluster.ids.first { $0 != leaderID })
    let follower = try cluster.node(followerID)
    do {
      _ = try await follower.propose(command(1), timeout: .seconds(1))
      XCTFail("a follower accepted a proposal")
    } catch .notLeader(let hint) {
      XCTAssertEqual(hint, leaderID)
    }
    await cluster.shutdown()
  }

  func testLeaderCrashElectsANewLeaderAndCommittedEntriesSurvive() async throws {
    let cluster = RaftTestCluster(size: 3)
    try await cluster.startAll()
    var expected: [[UInt8]] = []
    for i in 1...20 {
      _ = try await cluster.propose(command(i))
      expected.append(command(i))
    }
    let oldLeader = try await cluster.waitForLeader()
    await cluster.crash(oldLeader)
    let newLeader = try await cluster.waitForLeader()
    XCTAssertNotEqual(newLeader, oldLeader)
    for i in 21...40 {
      _ = try await cluster.propose(command(i))
      expected.append(command(i))
    }
    try await cluster.restart(oldLeader)
    try await cluster.waitForCommands(expected)
    await cluster.shutdown()
  }

  func testEveryNodeRestartsFromItsOwnDisk() async throws {
    let cluster = RaftTestCluster(size: 3)
    try await cluster.startAll()
    var expected: [[UInt8]] = []
    for i in 1...30 {
      _ = try await cluster.propose(command(i))
      expected.append(command(i))
    }
    try await cluster.waitForCommands(expected)
    // Read once a node is down: until then it may still apply (a slow crash loop lets the
    // last two elect a leader and commit its no-op).
    var appliedBefore: [NodeID: UInt64] = [:]
    for id in cluster.ids {
      let stateMachine = try XCTUnwrap(cluster.members[id]?.stateMachine)
      await cluster.crash(id)
      appliedBefore[id] = stateMachine.appliedIndex
    }
    for id in cluster.ids { try await cluster.restart(id) }
    // The state machines resume where they were, not from index 0: a restarted node applies
    // only entries after its state machine's index (its own log may hold committed entries
    // beyond it, which it applies at once), and applies none twice (TestStateMachine refuses
    // an entry out of order).
    for id in cluster.ids {
      let before = try XCTUnwrap(appliedBefore[id])
      XCTAssertGreaterThan(before, 30, "every command was applied before the crash")
      let node = try cluster.node(id)
      let replayed = await node.replayedEntries  // first: `applied` only grows past what it counts
      let applied = await node.appliedIndex
      XCTAssertGreaterThanOrEqual(applied, before)
      XCTAssertLessThanOrEqual(UInt64(replayed), applied - before, "\(id) applied entries again")
    }
    for i in 31...40 {
      _ = try await cluster.propose(command(i))
      expected.append(command(i))
    }
    try await cluster.waitForCommands(expected)
    await cluster.shutdown()
  }

  func testFarBehindNodeCatchesUpBySnapshotAndTheLogStaysBounded() async throws {
    var options = RaftNodeOptions()
    options.tickInterval = .milliseconds(10)
    options.maxLogEntries = 40
    options.retainedEntries = 10
    let cluster = RaftTestCluster(size: 3, options: options)
    try await cluster.startAll()
    let leaderID = try await cluster.waitForLeader()
    let laggard = try XCTUnwrap(cluster.ids.first { $0 != leaderID })
    await cluster.crash(laggard)
    var expected: [[UInt8]] = []
    for i in 1...200 {
      _ = try await cluster.propose(command(i))
      expected.append(command(i))
    }
    let status = try await cluster.node(leaderID).status
    XCTAssertLessThanOrEqual(status.lastIndex + 1 - status.firstIndex, 41)
    XCTAssertGreaterThan(status.firstIndex, 1, "the leader compacted its log")
    try await cluster.restart(laggard)
    try await cluster.waitForCommands(expected)
    XCTAssertGreaterThanOrEqual(cluster.members[laggard]?.stateMachine.restoreCount ?? 0, 1)
    await cluster.shutdown()
  }

  /// The runtime's real install sequence, killed before each of its three writes (and not at
  /// all): on restart the log and the state machine agree at once (the state machine's
  /// applied index is the compaction point or an entry of the log), and catching up never
  /// applies an entry the state machine already holds (the test state machine refuses one,
  /// which stops the node and fails the wait).
  func testKillAtEveryStepOfSnapshotInstallNeverReappliesAnEntry() async throws {
    for step in 1...4 {
      var options = RaftNodeOptions()
      options.tickInterval = .milliseconds(10)
      options.maxLogEntries = 40
      options.retainedEntries = 10
      let cluster = RaftTestCluster(size: 3, options: options)
      addTeardownBlock { await cluster.shutdown() }
      try await cluster.startAll()
      let leaderID = try await cluster.waitForLeader()
      let laggard = try XCTUnwrap(cluster.ids.first { $0 != leaderID })
      await cluster.crash(laggard)
      var expected: [[UInt8]] = []
      for i in 1...100 {
        _ = try await cluster.propose(command(i))
        expected.append(command(i))
      }
      let crash = step <= 3 ? SnapshotInstallCrash(atStep: step) : nil
      try await cluster.restart(laggard, crash: crash)
      if let crash {
        try await cluster.waitUntil("the kill at install step \(step)") { crash.hasKilled }
        let stopped = try await cluster.node(laggard).waitUntilStopped()
        guard case .storage = stopped else {
          return XCTFail("step \(step): a node whose disk failed reports \(String(describing: stopped))")
        }
        await cluster.crash(laggard)
        try await cluster.restart(laggard)
      }
      // Applied first: every entry it names was on disk before it was applied.
      let member = try XCTUnwrap(cluster.members[laggard])
      let applied = member.stateMachine.appliedIndex
      let stored = try XCTUnwrap(try member.storage.load())
      XCTAssertNil(stored.pendingSnapshot, "step \(step): the interrupted install is still pending")
      XCTAssertTrue(
        stored.snapshot.index >= applied || stored.entries.contains { $0.index == applied },
        "step \(step): the state machine stands at \(applied), the log at \(stored.snapshot.index)"
          + "...\(stored.entries.last?.index ?? stored.snapshot.index)")
      for i in 101...110 {
        _ = try await cluster.propose(command(i))
        expected.append(command(i))
      }
      try await cluster.waitForCommands(expected)
      await cluster.shutdown()
    }
  }

  func testLinearizableReadsOnLeaderAndFollowerSeeEveryCommittedWrite() async throws {
    let cluster = RaftTestCluster(size: 3)
    try await cluster.startAll()
    for i in 1...10 { _ = try await cluster.propose(command(i)) }
    let leaderID = try await cluster.waitForLeader()
    let leaderApplied = try await cluster.node(leaderID).appliedIndex
    for id in cluster.ids {
      try await cluster.node(id).linearizableRead(timeout: .seconds(5))
      let applied = try XCTUnwrap(cluster.members[id]?.stateMachine.appliedIndex)
      XCTAssertGreaterThanOrEqual(applied, leaderApplied, "\(id) read before applying")
      XCTAssertEqual(try cluster.members[id]?.stateMachine.commands().count, 10)
    }
    await cluster.shutdown()
  }

  /// A single voter confirms a read at once. Called from a task that prefers an event loop (as
  /// every RPC handler is), `await node.linearizableRead` suspends before the node holds the
  /// read; a Ready loop started before the hold took the core's answer and the read waited for
  /// its timeout (kvd: every `get` on a one-node group).
  func testASingleVotersReadFromAnEventLoopTaskIsAnswered() async throws {
    let cluster = RaftTestCluster(size: 1)
    try await cluster.startAll()
    _ = try await cluster.waitForLeader()
    _ = try await cluster.propose(command(1))
    let node = try cluster.node(cluster.ids[0])
    for attempt in 1...4 {
      let executor = EventLoopTaskExecutor(MultiThreadedEventLoopGroup.singleton.next())
      let write = command(1 + attempt)
      let outcome = await Task(executorPreference: executor) { () -> String in
        do {
          try await node.linearizableRead(timeout: .seconds(2))
          _ = try await node.propose(write, timeout: .seconds(2))
          return "answered"
        } catch {
          return "\(error)"
        }
      }.value
      XCTAssertEqual(outcome, "answered", "attempt \(attempt)")
    }
    await cluster.shutdown()
  }

  func testAPartitionedLeaderServesNoRead() async throws {
    let cluster = RaftTestCluster(size: 3)
    try await cluster.startAll()
    _ = try await cluster.propose(command(1))
    let oldLeader = try await cluster.waitForLeader()
    cluster.network.isolate(oldLeader.rawValue)
    let isolated = try cluster.node(oldLeader)
    do {
      try await isolated.linearizableRead(timeout: .seconds(1))
      XCTFail("an isolated leader confirmed a read")
    } catch .timeout, .leadershipLost, .notLeader {
      // Expected: it cannot reach a quorum.
    }
    cluster.network.heal()
    await cluster.shutdown()
  }

  func testAStandbyJoinsAsLearnerAndIsPromotedOnceCaughtUp() async throws {
    let cluster = RaftTestCluster(size: 4)
    let voters = Array(cluster.ids.prefix(3))
    let standby = cluster.ids[3]
    for id in voters { try await cluster.start(id, bootstrapVoters: voters) }
    try await cluster.start(standby, bootstrapVoters: [])
    var expected: [[UInt8]] = []
    for i in 1...30 {
      _ = try await cluster.propose(command(i))
      expected.append(command(i))
    }
    let leader = try await cluster.waitForLeader()
    try await cluster.node(leader).addMember(standby, timeout: .seconds(10))
    let membership = try await cluster.node(leader).membership
    XCTAssertTrue(membership.isVoter(standby))
    // Adding it again is a no-op that succeeds.
    try await cluster.node(leader).addMember(standby, timeout: .seconds(5))
    try await cluster.waitForCommands(expected)
    await cluster.shutdown()
  }

  func testALeaderThatRemovesItselfStepsDownAndTheRestGoOn() async throws {
    let cluster = RaftTestCluster(size: 3)
    try await cluster.startAll()
    _ = try await cluster.propose(command(1))
    let leader = try await cluster.waitForLeader()
    try await cluster.node(leader).removeMember(leader, timeout: .seconds(5))
    try await cluster.waitUntil("the removed leader to step down") {
      await !(try cluster.node(leader).isLeader)
    }
    await cluster.crash(leader)
    let newLeader = try await cluster.waitForLeader()
    XCTAssertNotEqual(newLeader, leader)
    let membership = try await cluster.node(newLeader).membership
    XCTAssertFalse(membership.contains(leader))
    _ = try await cluster.propose(command(2))
    await cluster.shutdown()
  }

  func testLeadershipTransferMovesTheLeader() async throws {
    let cluster = RaftTestCluster(size: 3)
    try await cluster.startAll()
    _ = try await cluster.propose(command(1))
    let leader = try await cluster.waitForLeader()
    let target = try XCTUnwrap(cluster.ids.first { $0 != leader })
    try await cluster.node(leader).transferLeadership(to: target)
    try await cluster.waitUntil("leadership to move to \(target)") {
      await (try cluster.node(target)).isLeader
    }
    await cluster.shutdown()
  }

  func testUnreachablePeersAreReportedAfterTheThreshold() async throws {
    let cluster = RaftTestCluster(size: 3)
    try await cluster.startAll()
    let leader = try await cluster.waitForLeader()
    // Every follower is heard from (at once on an idle machine; this waits out a busy one).
    try await cluster.waitUntil("the leader to hear from every follower") {
      await (try cluster.node(leader)).unreachablePeers.isEmpty
    }
    let victim = try XCTUnwrap(cluster.ids.first { $0 != leader })
    await cluster.crash(victim)
    try await cluster.waitUntil("the leader to report \(victim)") {
      await (try cluster.node(leader)).unreachablePeers == [victim]
    }
    await cluster.shutdown()
  }

  func testMalformedPeerTrafficIsRefusedAndTheNodeKeepsServing() async throws {
    let cluster = RaftTestCluster(size: 3)
    try await cluster.startAll()
    let leader = try await cluster.waitForLeader()
    let probe = cluster.network.transport(for: "intruder:1")
    for method in [WireRaftTransport.messagesMethod, WireRaftTransport.snapshotMethod] {
      do {
        _ = try await probe.call(
          leader.rawValue, method: method, payload: [0xFF, 0x01, 0x02], timeout: .seconds(2))
        XCTFail("garbage accepted by \(method)")
      } catch .remote {
        // Expected: a clear error for the caller.
      }
    }
    _ = try await cluster.propose(command(1))
    await cluster.shutdown()
  }
}
