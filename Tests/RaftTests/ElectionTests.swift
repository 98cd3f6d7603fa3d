import XCTest

@testable import Raft

/// Leader election (the labs' 2A/3A), pre-vote, check-quorum and failure detection.
final class ElectionTests: XCTestCase {
  func testInitialElectionElectsOneLeaderAndTermsStayStable() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      let sim = makeSimulation(seed: seed, nodes: 3)
      guard let leader = sim.waitForLeader(maxSteps: 60) else { continue }
      // Let followers learn of the leader, then nothing may change while nothing fails.
      sim.run(10)
      let term = sim.core(leader)!.term
      sim.expect(term >= 1, "leader \(leader) in term 0")
      sim.run(100)
      for id in sim.ids {
        let core = sim.core(id)!
        sim.expect(core.term == term, "\(id) moved from term \(term) to \(core.term) with no failure")
        sim.expect(core.leader == leader, "\(id) follows \(String(describing: core.leader)), not \(leader)")
      }
      sim.expect(sim.leaderOfTerm.count == 1, "several leaders without failures: \(sim.leaderOfTerm)")
    }
  }

  func testReElectionAfterLeaderIsCutOffAndOldLeaderRejoinsQuietly() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      let sim = makeSimulation(seed: seed, nodes: 3)
      guard let leader1 = sim.waitForLeader() else { continue }
      sim.isolate(leader1)
      let rest = sim.ids.filter { $0 != leader1 }
      guard let leader2 = sim.waitForLeader(among: rest) else { continue }
      sim.run(20)
      // The old leader rejoins: the new leader keeps its place and its term.
      let term2 = sim.core(leader2)!.term
      sim.reconnect(leader1)
      sim.run(60)
      sim.expect(sim.leader == leader2, "the rejoining old leader disturbed \(leader2)")
      sim.expect(sim.core(leader2)!.term == term2, "the rejoin changed the term")
      sim.expect(sim.core(leader1)!.role == .follower, "the old leader did not step down")
      // No quorum, no leader.
      let others = sim.ids.filter { $0 != leader2 }
      sim.isolate(leader2)
      sim.isolate(others[0])
      sim.run(4 * sim.config.electionTicks)
      for id in sim.ids {
        sim.expect(sim.core(id)!.role != .leader, "\(id) is leader without a quorum")
      }
      // A quorum again: a leader.
      sim.reconnect(others[0])
      sim.waitForLeader(among: others)
      sim.reconnect(leader2)
      sim.waitForLeader()
    }
  }

  func testManyElectionsWithRandomDisconnectionsOfSevenNodes() {
    for seed in SimEnvironment.seeds([1, 2]) {
      let sim = makeSimulation(seed: seed, nodes: 7)
      sim.waitForLeader()
      for _ in 0..<10 where !sim.halted {
        let cut = Array(sim.rng.shuffled(sim.ids).prefix(3))
        cut.forEach(sim.isolate)
        // Four of seven still form a quorum.
        sim.waitForLeader(among: sim.ids.filter { !cut.contains($0) })
        cut.forEach(sim.reconnect)
      }
      sim.waitForLeader()
    }
  }

  func testPreVoteKeepsARejoiningPartitionedNodeFromBumpingTheTerm() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      let sim = makeSimulation(seed: seed, nodes: 3)
      guard let leader = sim.waitForLeader() else { continue }
      sim.run(10)
      let term = sim.core(leader)!.term
      let follower = sim.ids.first { $0 != leader }!
      sim.isolate(follower)
      sim.run(10 * sim.config.electionTicks)
      sim.expect(sim.core(follower)!.term == term, "the isolated node's term grew without votes")
      sim.reconnect(follower)
      sim.run(5 * sim.config.electionTicks)
      sim.expect(sim.leader == leader, "the rejoining node deposed \(leader)")
      for id in sim.ids {
        sim.expect(sim.core(id)!.term == term, "\(id) is in term \(sim.core(id)!.term), expected \(term)")
      }
      sim.expect(sim.core(follower)!.leader == leader, "the rejoined node does not follow \(leader)")
    }
  }

  func testCheckQuorumMakesAnIsolatedLeaderStepDown() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      let sim = makeSimulation(seed: seed, nodes: 5)
      guard let leader = sim.waitForLeader() else { continue }
      sim.isolate(leader)
      let steppedDown = sim.run(
        until: { sim.core(leader)!.role != .leader }, maxSteps: 2 * sim.config.electionTicks + 1)
      sim.expect(steppedDown, "isolated leader \(leader) still leads after two election timeouts")
      // It cannot reach a quorum, so it never leads again while isolated.
      sim.run(5 * sim.config.electionTicks)
      sim.expect(sim.core(leader)!.role != .leader, "isolated \(leader) became leader again")
    }
  }

  func testUnreachablePeersReportsACrashedPeerAndSurvivesSteppingDown() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      let sim = makeSimulation(seed: seed, nodes: 3)
      guard let leader = sim.waitForLeader() else { continue }
      sim.run(20)
      sim.expect(sim.core(leader)!.unreachablePeers.isEmpty, "healthy peers reported unreachable")
      let followers = sim.ids.filter { $0 != leader }
      let crashed = followers[0]
      sim.crash(crashed)
      sim.run(sim.config.unreachableTicks - 1)
      sim.expect(sim.core(leader)!.unreachablePeers.isEmpty, "\(crashed) reported before unreachableTicks")
      sim.run(4)
      sim.expect(
        sim.core(leader)!.unreachablePeers == [crashed],
        "leader reports \(sim.core(leader)!.unreachablePeers), expected [\(crashed)]")
      // Cut the leader off: it steps down and keeps reporting what it last saw.
      sim.isolate(leader)
      sim.run(until: { sim.core(leader)!.role != .leader }, maxSteps: 3 * sim.config.electionTicks)
      sim.expect(sim.core(leader)!.role != .leader, "isolated leader did not step down")
      sim.expect(
        sim.core(leader)!.unreachablePeers.contains(crashed),
        "after stepping down \(leader) forgot that \(crashed) is unreachable")
      // The restarted peer is reachable again once the cluster heals.
      sim.healAll()
      sim.waitForLeader()
      sim.run(10)
      if let newLeader = sim.leader {
        sim.expect(
          sim.core(newLeader)!.unreachablePeers.isEmpty,
          "\(newLeader) still reports \(sim.core(newLeader)!.unreachablePeers) after healing")
      }
    }
  }
}
