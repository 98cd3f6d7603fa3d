import XCTest

@testable import Raft

/// Leadership transfer (thesis §3.10): the leader brings the target's log up to date, then
/// sends it TimeoutNow; the target campaigns at once, skipping pre-vote and the leader lease.
/// Proposals are refused meanwhile; an attempt that does not finish within an election timeout
/// is abandoned.
final class LeadershipTransferTests: XCTestCase {
  func testTransferMakesAnUpToDateTargetLeaderWithoutWaitingForATimeout() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      let sim = makeSimulation(seed: seed, nodes: 5)
      sim.one(command("t-0"), expected: 5)
      guard let leader = sim.requireLeader() else { continue }
      let term = sim.core(leader)!.term
      let target = sim.rng.element(of: sim.ids.filter { $0 != leader })!
      do {
        try sim.transfer(from: leader, to: target)
      } catch {
        sim.fail("transfer refused: \(error)")
        continue
      }
      // Far less than the shortest election timeout: only TimeoutNow can explain it.
      let took = sim.run(until: { sim.core(target)!.role == .leader }, maxSteps: sim.config.electionTicks / 2)
      sim.expect(took, "\(target) did not become leader promptly")
      sim.expect(sim.core(target)!.term == term + 1, "the transfer took term \(sim.core(target)!.term)")
      sim.run(5)
      sim.expect(sim.core(leader)!.role == .follower, "the old leader did not step down")
      sim.expect(
        sim.core(leader)!.leader == target,
        "the old leader follows \(String(describing: sim.core(leader)!.leader))")
      sim.one(command("t-1"), expected: 5)
      sim.expect(sim.leader == target, "leadership moved on from \(target)")
      sim.checkAcknowledgedAppliedEverywhere(sim.ids)
    }
  }

  /// A target that lags (beyond the leader's compaction point, so it needs a snapshot) is
  /// caught up before it is told to campaign, so it wins with every committed entry; proposals
  /// are refused while the transfer runs.
  func testTransferToALaggingTargetCatchesItUpFirst() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      let sim = makeSimulation(seed: seed, nodes: 3, compactAbove: 10)
      sim.one(command("lag-0"), expected: 3)
      guard let leader = sim.requireLeader() else { continue }
      let target = sim.ids.first { $0 != leader }!
      sim.isolate(target)
      for i in 1...40 { sim.one(command("lag-\(i)"), expected: 2) }
      sim.expect(
        sim.core(leader)!.firstIndex > sim.core(target)!.lastIndex + 1,
        "the leader did not compact past \(target)")
      // Note how far the target's log is when TimeoutNow reaches it.
      var targetLastAtTimeoutNow: UInt64?
      var snapshotsToTarget = 0
      sim.network.filter = { m in
        if m.to == target && m.kind == .snapshot { snapshotsToTarget += 1 }
        if m.to == target && m.kind == .timeoutNow && targetLastAtTimeoutNow == nil {
          targetLastAtTimeoutNow = sim.core(target)!.lastIndex
        }
        return true
      }
      sim.reconnect(target)
      let leaderLast = sim.core(leader)!.lastIndex
      let committed = sim.core(leader)!.commitIndex
      do {
        try sim.transfer(from: leader, to: target)
      } catch {
        sim.fail("transfer refused: \(error)")
        continue
      }
      sim.expect(
        sim.propose(command("lag-refused"), at: leader) == nil, "a proposal was accepted during the transfer")
      let done = sim.run(until: { sim.core(target)!.role == .leader }, maxSteps: sim.config.electionTicks)
      sim.expect(done, "the lagging target did not become leader within an election timeout")
      sim.expect(snapshotsToTarget >= 1, "the lagging target was not sent a snapshot")
      sim.expect(
        targetLastAtTimeoutNow == leaderLast,
        "TimeoutNow reached \(target) at log end \(String(describing: targetLastAtTimeoutNow)), the leader's was \(leaderLast)"
      )
      sim.expect(sim.core(target)!.lastIndex > committed, "the new leader lacks entries")
      sim.network.filter = nil
      sim.one(command("lag-end"), expected: 3)
      sim.checkAcknowledgedAppliedEverywhere(sim.ids)
    }
  }

  /// A transfer to a target that cannot be reached is abandoned after an election timeout:
  /// the leader keeps its term and accepts proposals again.
  func testTransferToAnUnreachableTargetIsAbandonedAfterAnElectionTimeout() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      let sim = makeSimulation(seed: seed, nodes: 5)
      sim.one(command("u-0"), expected: 5)
      guard let leader = sim.requireLeader() else { continue }
      let term = sim.core(leader)!.term
      let target = sim.ids.first { $0 != leader }!
      sim.isolate(target)
      do {
        try sim.transfer(from: leader, to: target)
      } catch {
        sim.fail("transfer refused: \(error)")
        continue
      }
      do {
        try sim.node(leader).core!.propose(command("u-refused"))
        sim.fail("a proposal was accepted during the transfer")
      } catch {
        sim.expect(error == .transferInProgress, "refused with \(error)")
      }
      let resumed = sim.run(
        until: { sim.propose(command("u-resumed"), at: leader) != nil },
        maxSteps: sim.config.electionTicks + 1)
      sim.expect(resumed, "the leader still refuses proposals after an election timeout")
      sim.expect(
        sim.leader == leader && sim.core(leader)!.term == term, "the abandoned transfer changed leadership")
      sim.reconnect(target)
      sim.one(command("u-end"), expected: 5)
      sim.expect(sim.leader == leader, "the target took over after the transfer was abandoned")
    }
  }

  func testTransferRefusesInvalidTargets() {
    for seed in SimEnvironment.seeds([1]) {
      let sim = makeSimulation(seed: seed, nodes: 3, standby: 2)
      sim.one(command("i-0"), expected: 3)
      guard let leader = sim.requireLeader() else { continue }
      sim.changeMembership(.addLearner("n4"))
      let follower = sim.ids.first { $0 != leader && sim.core(leader)!.membership.isVoter($0) }!
      func attempt(_ target: NodeID, at id: NodeID) -> RaftError? {
        do {
          try sim.transfer(from: id, to: target)
          return nil
        } catch {
          return error
        }
      }
      sim.expect(attempt(leader, at: leader) == .invalidTransferTarget(leader), "transfer to itself")
      sim.expect(attempt("n4", at: leader) == .invalidTransferTarget("n4"), "transfer to a learner")
      sim.expect(attempt("n5", at: leader) == .invalidTransferTarget("n5"), "transfer to a non-member")
      sim.expect(attempt(follower, at: follower) == .notLeader(leader: leader), "transfer from a follower")
      sim.expect(sim.leader == leader, "a refused transfer changed leadership")
    }
  }
}
