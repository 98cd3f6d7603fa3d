import XCTest

@testable import Raft

/// Single-server membership changes: a learner is added, caught up (by snapshot once the log
/// it needs is compacted) and promoted; voters and learners are removed under load; a leader
/// that removes itself steps down.
final class MembershipTests: XCTestCase {
  private func isMembership(_ entry: Entry) -> Bool {
    if case .membership = entry.payload { true } else { false }
  }

  /// Snapshot messages the network has carried to `id` (counted by a pass-through filter).
  private func countSnapshots(to id: NodeID, in sim: RaftSimulation) -> () -> Int {
    final class Counter: @unchecked Sendable { var value = 0 }
    let counter = Counter()
    sim.network.filter = { m in
      if m.kind == .snapshot && m.to == id { counter.value += 1 }
      return true
    }
    return { counter.value }
  }

  func testLearnerIsCaughtUpBySnapshotThenPromotedUnderLoadAndCountsTowardQuorum() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      let sim = makeSimulation(seed: seed, nodes: 3, standby: 1, compactAbove: 20)
      let newcomer: NodeID = "n4"
      for i in 0..<60 where !sim.halted { sim.one(command("ml-\(i)"), expected: 3) }
      guard let leader = sim.requireLeader() else { continue }
      sim.expect(sim.core(leader)!.firstIndex > 2, "the leader never compacted its log")
      let snapshots = countSnapshots(to: newcomer, in: sim)

      // Add it as a learner while clients keep writing.
      guard sim.changeMembership(.addLearner(newcomer), load: "ml-add") != nil else { continue }
      let target = sim.core(sim.leader!)!.commitIndex
      let caughtUp = sim.run(
        until: {
          if sim.now % 2 == 0 { sim.propose(command("ml-load-\(sim.now)")) }
          return sim.node(newcomer).stateMachine.applied >= target
        }, maxSteps: 200)
      sim.expect(caughtUp, "learner \(newcomer) did not catch up to \(target)")
      sim.expect(snapshots() >= 1, "the learner was caught up without a snapshot")
      sim.expect(
        sim.core(newcomer)!.membership.isLearner(newcomer), "\(newcomer) does not know it is a learner")
      sim.expect(sim.core(newcomer)!.role == .follower, "learner \(newcomer) is \(sim.core(newcomer)!.role)")

      // Promote it; it is then a voter everywhere.
      guard sim.changeMembership(.promote(newcomer), load: "ml-promote") != nil else { continue }
      sim.run(10)
      for id in sim.ids {
        sim.expect(
          sim.core(id)!.membership.voters == ["n1", "n2", "n3", newcomer],
          "\(id) has voters \(sim.core(id)!.membership.voters)")
      }
      // Four voters need three: with one original voter cut off, commits need the newcomer.
      guard let leader2 = sim.requireLeader() else { continue }
      let cut = sim.ids.first { $0 != leader2 && $0 != newcomer }!
      sim.isolate(cut)
      let index = sim.one(command("ml-needs-newcomer"), expected: 3)
      if let index {
        sim.expect(sim.node(newcomer).stateMachine.applied >= index, "the commit did not involve \(newcomer)")
      }
      sim.reconnect(cut)
      sim.one(command("ml-end"), expected: 4)
      sim.checkAcknowledgedAppliedEverywhere(sim.ids)
    }
  }

  /// A learner gets the log but neither votes nor counts toward a quorum, and never campaigns.
  func testLearnerReceivesTheLogButNeitherCountsTowardQuorumNorCampaigns() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      let sim = makeSimulation(seed: seed, nodes: 3, standby: 1)
      let learner: NodeID = "n4"
      sim.one(command("ll-0"), expected: 3)
      guard sim.changeMembership(.addLearner(learner)) != nil, let leader = sim.requireLeader() else {
        continue
      }
      sim.one(command("ll-1"), expected: 4)
      // Leader and learner alone: two of four nodes, but only one of the three voters.
      for id in sim.ids where id != leader && id != learner { sim.isolate(id) }
      guard let index = sim.requirePropose(command("ll-2"), at: leader) else { continue }
      sim.run(sim.config.electionTicks - 1)
      sim.expect(sim.core(learner)!.lastIndex >= index, "the learner did not receive \(index)")
      sim.expect(sim.core(leader)!.commitIndex < index, "\(index) committed with a learner in the quorum")
      // Cut the learner off from everyone: it never campaigns.
      sim.network.healAll()
      sim.isolate(learner)
      let term = sim.core(learner)!.term
      sim.run(10 * sim.config.electionTicks)
      sim.expect(sim.core(learner)!.term == term, "the isolated learner's term moved")
      sim.expect(sim.core(learner)!.role == .follower, "the learner campaigned")
      sim.reconnect(learner)
      sim.one(command("ll-3"), expected: 4)
      sim.checkAcknowledgedAppliedEverywhere(sim.ids)
    }
  }

  /// Voters and a learner are removed while clients write: the group goes on with the quorum
  /// of its new size, the removed nodes get no more entries, and they do not disturb it.
  func testRemoveVotersAndALearnerUnderLoad() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      let sim = makeSimulation(seed: seed, nodes: 5, standby: 1, compactAbove: 30)
      sim.one(command("rm-0"), expected: 5)
      guard let leader = sim.requireLeader() else { continue }
      let followers = sim.ids.filter { $0 != leader && $0 != "n6" }
      guard sim.changeMembership(.addLearner("n6"), load: "rm-a") != nil else { continue }
      var removed: [NodeID] = []
      for victim in [followers[0], followers[1], "n6"] {
        guard sim.changeMembership(.remove(victim), load: "rm-\(victim)") != nil else { break }
        removed.append(victim)
      }
      guard removed.count == 3, let leader2 = sim.requireLeader() else { continue }
      let members = sim.core(leader2)!.membership
      sim.expect(members.voters.count == 3 && members.learners.isEmpty, "membership is \(members)")
      let term = sim.core(leader2)!.term
      let lastOfRemoved = removed.map { sim.core($0)!.lastIndex }
      for i in 0..<30 { sim.one(command("rm-after-\(i)"), expected: 3) }
      // Three voters need two: one more cut off and the group still commits.
      let remaining = members.voters.filter { $0 != leader2 }
      sim.isolate(remaining[0])
      sim.one(command("rm-two-of-three"), expected: 2)
      sim.reconnect(remaining[0])
      sim.run(10 * sim.config.electionTicks)
      sim.expect(sim.leader == leader2, "leadership changed while the removed nodes looked on")
      sim.expect(sim.core(leader2)!.term == term, "the removed nodes disturbed the term")
      for (id, last) in zip(removed, lastOfRemoved) {
        sim.expect(sim.core(id)!.lastIndex == last, "removed \(id) still receives entries")
        sim.expect(sim.core(id)!.role != .leader, "removed \(id) leads")
      }
      sim.one(command("rm-end"), expected: 3)
      sim.checkAcknowledgedAppliedEverywhere(members.all)
    }
  }

  /// A leader that removes itself keeps leading until the removal commits, then steps down
  /// without raising its term; the others elect a leader promptly and the removed node stays
  /// quiet afterwards.
  func testLeaderThatRemovesItselfStepsDownCleanly() {
    for seed in SimEnvironment.seeds([1, 2, 3, 4, 5]) {
      let sim = makeSimulation(seed: seed, nodes: 5)
      sim.one(command("self-0"), expected: 5)
      guard let leader = sim.requireLeader() else { continue }
      let term = sim.core(leader)!.term
      guard let index = try? sim.proposeMembershipChange(.remove(leader), at: leader) else {
        sim.fail("\(leader) refused to remove itself")
        continue
      }
      // Until the removal commits it still leads (and still replicates).
      sim.expect(sim.core(leader)!.role == .leader, "\(leader) stepped down before the removal committed")
      sim.expect(
        sim.propose(command("self-during"), at: leader) != nil, "\(leader) stopped accepting at once")
      let steppedDown = sim.run(until: { sim.core(leader)!.role != .leader }, maxSteps: 20)
      sim.expect(steppedDown, "\(leader) still leads after removing itself")
      sim.expect(
        sim.core(leader)!.commitIndex >= index, "\(leader) stepped down before committing its removal")
      sim.expect(sim.core(leader)!.term == term, "stepping down changed the term")
      sim.expect(sim.propose(command("self-after"), at: leader) == nil, "the removed node accepts proposals")
      let rest = sim.ids.filter { $0 != leader }
      for id in rest {
        sim.expect(!sim.core(id)!.membership.contains(leader), "\(id) still counts \(leader) as a member")
      }
      // The others elect a leader by an ordinary election (four voters may split their votes
      // a few times).
      guard let newLeader = sim.waitForLeader(among: rest, maxSteps: 10 * sim.config.electionTicks) else {
        continue
      }
      sim.one(command("self-next"), expected: 4)
      let newTerm = sim.core(newLeader)!.term
      let removedTerm = sim.core(leader)!.term
      sim.run(10 * sim.config.electionTicks)
      sim.expect(sim.leader == newLeader && sim.core(newLeader)!.term == newTerm, "the group was disturbed")
      sim.expect(sim.core(leader)!.role == .follower, "the removed node campaigned")
      sim.expect(sim.core(leader)!.term == removedTerm, "the removed node's term moved")
      sim.checkAcknowledgedAppliedEverywhere(rest)
    }
  }

  /// One change at a time, only from a leader that has committed an entry of its term, and
  /// only changes that make sense.
  func testMembershipChangesAreOneAtATimeAndValidated() {
    for seed in SimEnvironment.seeds([1, 2]) {
      let sim = makeSimulation(seed: seed, nodes: 3, standby: 2)
      sim.one(command("v-0"), expected: 3)
      guard let leader = sim.requireLeader() else { continue }
      let follower = sim.ids.first { $0 != leader && $0 != "n4" && $0 != "n5" }!
      func attempt(_ change: MembershipChange, at id: NodeID) -> RaftError? {
        do {
          try sim.proposeMembershipChange(change, at: id)
          return nil
        } catch {
          return error
        }
      }
      sim.expect(
        attempt(.addLearner("n4"), at: follower) == .notLeader(leader: leader), "a follower proposed")
      sim.expect(attempt(.promote("n4"), at: leader) == .notMember("n4"), "promoted a non-member")
      sim.expect(attempt(.addLearner(follower), at: leader) == .alreadyMember(follower), "re-added a voter")
      sim.expect(attempt(.addLearner("n4"), at: leader) == nil, "the first change was refused")
      sim.expect(
        attempt(.addLearner("n5"), at: leader) == .membershipChangePending,
        "a second change was accepted while the first was pending")
      sim.run(10)
      sim.expect(attempt(.addLearner("n5"), at: leader) == nil, "the next change was refused after a commit")
      sim.run(10)
      sim.expect(attempt(.remove("n5"), at: leader) == nil, "removing a learner was refused")
      sim.run(10)
      sim.expect(attempt(.remove("n5"), at: leader) == .notMember("n5"), "removed a non-member")
      // A new leader may not change membership before it commits an entry of its own term.
      sim.isolate(leader)
      let rest = sim.ids.filter { $0 != leader && $0 != "n5" }
      sim.network.filter = { m in !(m.kind == .appendResponse) }
      guard let leader2 = sim.waitForLeader(among: rest) else { continue }
      sim.expect(
        attempt(.remove(leader), at: leader2) == .leaderNotReady,
        "a leader changed membership before its first commit")
      sim.network.filter = nil
      sim.run(10)
      sim.expect(attempt(.remove(leader), at: leader2) == nil, "the ready leader refused a change")
      let voters = sim.core(leader2)!.membership.voters
      sim.run(10)
      sim.expect(voters.count == 2, "voters after removing \(leader): \(voters)")
      let other = voters.first { $0 != leader2 }!
      sim.expect(attempt(.remove(other), at: leader2) == nil, "removing down to one voter was refused")
      sim.run(10)
      sim.expect(
        attempt(.remove(leader2), at: leader2) == .wouldRemoveLastVoter(leader2), "removed the last voter")
    }
  }
}
