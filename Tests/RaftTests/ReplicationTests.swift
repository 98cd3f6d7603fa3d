import XCTest

@testable import Raft

/// Log replication and commitment (the labs' 2B/3B).
final class ReplicationTests: XCTestCase {
  func testBasicAgreement() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      let sim = makeSimulation(seed: seed, nodes: 3)
      sim.waitForLeader()
      var last: UInt64 = 0
      for i in 1...5 where !sim.halted {
        let bytes = command("basic-\(i)")
        guard let index = sim.one(bytes, expected: 3) else { break }
        sim.expect(index > last, "agreement \(i) at \(index), not after \(last)")
        last = index
      }
      // The leader's no-op takes index 1, so the five commands fill 2...6.
      sim.expect(last == 6, "five agreements ended at index \(last), expected 6")
    }
  }

  func testAgreementDespiteDisconnectedFollower() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      let sim = makeSimulation(seed: seed, nodes: 3)
      sim.one(command("a-101"), expected: 3)
      guard let leader = sim.requireLeader() else { continue }
      let follower = sim.ids.first { $0 != leader }!
      sim.isolate(follower)
      for i in 102...105 { sim.one(command("a-\(i)"), expected: 2) }
      sim.reconnect(follower)
      sim.one(command("a-106"), expected: 3)
      sim.checkAcknowledgedAppliedEverywhere(sim.ids)
    }
  }

  func testNoCommitWithoutMajority() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      let sim = makeSimulation(seed: seed, nodes: 5)
      sim.one(command("m-10"), expected: 5)
      guard let leader = sim.requireLeader() else { continue }
      let followers = sim.ids.filter { $0 != leader }
      followers.prefix(3).forEach(sim.isolate)
      guard let index = sim.propose(command("m-20"), at: leader) else {
        sim.fail("leader \(leader) refused a proposal")
        continue
      }
      sim.run(4 * sim.config.electionTicks)
      sim.expect(sim.nCommitted(index).count == 0, "\(index) committed without a majority")
      followers.prefix(3).forEach(sim.reconnect)
      sim.one(command("m-30"), expected: 5)
      sim.one(command("m-1000"), expected: 5)
    }
  }

  func testConcurrentProposalsAllCommitInOneOrder() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      let sim = makeSimulation(seed: seed, nodes: 3)
      guard let leader = sim.waitForLeader() else { continue }
      sim.run(5)
      var indices: [UInt64: [UInt8]] = [:]
      for i in 0..<5 {
        let bytes = command("c-\(i)")
        guard let index = sim.propose(bytes, at: leader) else { break }
        sim.expect(indices[index] == nil, "two proposals got index \(index)")
        indices[index] = bytes
      }
      sim.expect(indices.count == 5, "the leader refused concurrent proposals")
      sim.run(until: { indices.keys.allSatisfy { sim.nCommitted($0).count == 3 } }, maxSteps: 100)
      for (index, bytes) in indices {
        let (count, cmd) = sim.nCommitted(index)
        sim.expect(
          count == 3 && cmd == bytes,
          "proposal at \(index) applied on \(count) nodes as \(String(describing: cmd))")
      }
    }
  }

  func testRejoinOfPartitionedLeaderDiscardsItsUncommittedEntries() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      let sim = makeSimulation(seed: seed, nodes: 3)
      sim.one(command("r-101"), expected: 3)
      guard let leader1 = sim.requireLeader() else { continue }
      sim.isolate(leader1)
      // Proposals the old leader accepts but can never commit.
      let orphans = (102...104).map { command("r-orphan-\($0)") }
      for bytes in orphans { sim.propose(bytes, at: leader1) }
      sim.one(command("r-103"), expected: 2)
      guard let leader2 = sim.leader, leader2 != leader1 else {
        sim.fail("no new leader in the majority")
        continue
      }
      sim.isolate(leader2)
      sim.reconnect(leader1)
      sim.one(command("r-104"), expected: 2)
      sim.reconnect(leader2)
      sim.one(command("r-105"), expected: 3)
      for id in sim.ids {
        let applied = Set(sim.node(id).stateMachine.commands.values)
        for bytes in orphans {
          sim.expect(!applied.contains(bytes), "\(id) applied the old leader's uncommitted entry")
        }
      }
      sim.checkAcknowledgedAppliedEverywhere(sim.ids)
    }
  }

  /// The labs' TestBackup: a leader must skip a long run of conflicting entries quickly. With
  /// the term-skipping hint the number of rejected appends is bounded by the number of terms
  /// in the conflict, not by its 50+ entries.
  func testFastBackupOverManyConflictingEntries() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      let sim = makeSimulation(seed: seed, nodes: 5)
      sim.one(command("b-start"), expected: 5)
      guard let leader1 = sim.requireLeader() else { continue }
      let others = sim.ids.filter { $0 != leader1 }
      // The leader and one follower are left alone with 50 entries that never commit.
      others[1...3].forEach(sim.isolate)
      for i in 0..<50 { sim.propose(command("b-lost1-\(i)"), at: leader1) }
      sim.run(3 * sim.config.electionTicks)
      sim.isolate(leader1)
      sim.isolate(others[0])
      // The other three commit 50 entries of a newer term.
      others[1...3].forEach(sim.reconnect)
      for i in 0..<50 { sim.one(command("b-ok1-\(i)"), expected: 3) }
      // Their leader and one follower: 50 more entries that never commit.
      guard let leader2 = sim.requireLeader() else { continue }
      let third = others[1...3].first { $0 != leader2 }!
      sim.isolate(third)
      for i in 0..<50 { sim.propose(command("b-lost2-\(i)"), at: leader2) }
      sim.run(3 * sim.config.electionTicks)
      // The original pair plus the third: they must converge on the third's log.
      sim.network.healAll()
      [leader2, others[1...3].first { $0 != leader2 && $0 != third }!].forEach(sim.isolate)
      let rejectionsBefore = sim.appendRejections
      for i in 0..<50 { sim.one(command("b-ok2-\(i)"), expected: 3) }
      let rejections = sim.appendRejections - rejectionsBefore
      // Two stale followers, each conflicting over a few terms: a handful of rejections each.
      sim.expect(rejections <= 16, "\(rejections) rejected appends while backing up over 50 entries")
      sim.network.healAll()
      sim.one(command("b-last"), expected: 5)
      sim.checkAcknowledgedAppliedEverywhere(sim.ids)
    }
  }

  /// The labs' RPC-count test: agreements cost a bounded number of messages, and an idle
  /// leader sends only heartbeats.
  func testBoundedMessageCountForAgreements() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      let sim = makeSimulation(seed: seed, nodes: 3)
      guard let leader = sim.waitForLeader() else { continue }
      let electionMessages = sim.network.sent
      sim.expect(electionMessages <= 30, "\(electionMessages) messages to elect a leader")
      sim.run(5)
      let heartbeatKinds: Set<MessageKind> = [.heartbeat, .heartbeatResponse]
      let startSent = sim.network.sent
      let startHeartbeats = sim.network.count(heartbeatKinds)
      let startStep = sim.now
      let agreements = 10
      for i in 0..<agreements { sim.one(command("rpc-\(i)"), expected: 3) }
      sim.expect(sim.leader == leader, "leader changed on a reliable network")
      let steps = sim.now - startStep
      let replication = (sim.network.sent - startSent) - (sim.network.count(heartbeatKinds) - startHeartbeats)
      // Per agreement and follower: the append and its answer, the round that carries the new
      // commit index, and at most one heartbeat-triggered empty append (with its answer) sent
      // while the entry was in flight.
      sim.expect(
        replication <= agreements * 2 * 7,
        "\(replication) replication messages for \(agreements) agreements")
      let heartbeats = sim.network.count(heartbeatKinds) - startHeartbeats
      let heartbeatBound = (steps / sim.config.heartbeatTicks + 1) * 2 * 2
      sim.expect(heartbeats <= heartbeatBound, "\(heartbeats) heartbeat messages in \(steps) steps")
      // Idle: heartbeats only.
      let idleStart = sim.network.sent - sim.network.count(heartbeatKinds)
      sim.run(3 * sim.config.electionTicks)
      let idle = sim.network.sent - sim.network.count(heartbeatKinds) - idleStart
      sim.expect(idle == 0, "\(idle) non-heartbeat messages while idle")
    }
  }

  /// A follower in the pipelined (replicate) state whose appends or answers are lost must be
  /// repaired by the heartbeat exchange alone, without waiting for the next proposal.
  func testLostAppendsAreRepairedWithoutNewProposals() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      let sim = makeSimulation(seed: seed, nodes: 3)
      sim.one(command("lost-0"), expected: 3)
      guard let leader = sim.requireLeader() else { continue }
      let follower = sim.ids.first { $0 != leader }!
      // Drop every append to the follower, and then every answer from it, once each.
      var dropAppend = true
      sim.network.filter = { m in
        if dropAppend && m.kind == .append && m.to == follower && !m.entries.isEmpty {
          dropAppend = false
          return false
        }
        return true
      }
      guard let index = sim.requirePropose(command("lost-1"), at: leader) else { continue }
      let caughtUp = sim.run(until: { sim.node(follower).stateMachine.applied >= index }, maxSteps: 60)
      sim.expect(caughtUp, "\(follower) never got entry \(index) after its append was lost")
      // Both followers' answers for the next entry are lost: nothing commits it but the
      // heartbeat exchange.
      let next = sim.core(leader)!.lastIndex + 1
      var dropAnswers = 2
      sim.network.filter = { m in
        if dropAnswers > 0 && m.kind == .appendResponse && m.to == leader && m.index >= next {
          dropAnswers -= 1
          return false
        }
        return true
      }
      guard let index2 = sim.requirePropose(command("lost-2"), at: leader) else { continue }
      let committed = sim.run(
        until: { sim.ids.allSatisfy { sim.node($0).stateMachine.applied >= index2 } }, maxSteps: 60)
      sim.expect(committed, "entry \(index2) never committed after the answers were lost")
    }
  }

  /// A follower cut off while the leader pipelines to it fills its in-flight window with
  /// appends that are all lost; after healing, heartbeats alone must unblock it.
  func testFullInflightWindowOfLostAppendsIsRecoveredByHeartbeats() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      let sim = makeSimulation(
        seed: seed, nodes: 3,
        config: RaftConfig(electionTicks: 10, heartbeatTicks: 2, maxInflightMessages: 4, unreachableTicks: 10)
      )
      sim.one(command("window-0"), expected: 3)
      guard let leader = sim.requireLeader() else { continue }
      let follower = sim.ids.first { $0 != leader }!
      sim.isolate(follower)
      for i in 1...10 { sim.one(command("window-\(i)"), expected: 2) }
      sim.reconnect(follower)
      let target = sim.core(leader)!.commitIndex
      let caughtUp = sim.run(until: { sim.node(follower).stateMachine.applied >= target }, maxSteps: 100)
      sim.expect(caughtUp, "\(follower) stuck at \(sim.node(follower).stateMachine.applied) of \(target)")
    }
  }

  func testPersistenceAcrossCrashOfEveryNode() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      let sim = makeSimulation(seed: seed, nodes: 3)
      sim.one(command("p-11"), expected: 3)
      for id in sim.ids { sim.crash(id) }
      for id in sim.ids { sim.restart(id) }
      sim.one(command("p-12"), expected: 3)
      guard let leader1 = sim.requireLeader() else { continue }
      sim.crash(leader1)
      sim.restart(leader1)
      sim.one(command("p-13"), expected: 3)
      guard let leader2 = sim.requireLeader() else { continue }
      sim.crash(leader2)
      sim.one(command("p-14"), expected: 2)
      sim.restart(leader2)
      sim.run(
        until: { sim.node(leader2).stateMachine.applied >= sim.core(sim.leader ?? leader2)!.commitIndex },
        maxSteps: 100)
      guard let leader3 = sim.requireLeader() else { continue }
      let other = sim.ids.first { $0 != leader3 }!
      sim.crash(other)
      sim.one(command("p-15"), expected: 2)
      sim.restart(other)
      sim.one(command("p-16"), expected: 3)
      // Everything at once, several times over.
      for round in 0..<3 {
        for id in sim.ids { sim.crash(id) }
        for id in sim.ids { sim.restart(id) }
        sim.one(command("p-round-\(round)"), expected: 3)
      }
      sim.checkAcknowledgedAppliedEverywhere(sim.ids)
    }
  }
}
