import XCTest

@testable import Raft

/// The hazard of the Raft paper's Figure 8: an entry of an older term stored on a majority is
/// not yet committed, because a later leader may still overwrite it. Only entries of the
/// current term are committed by counting replicas (§5.4.2).
final class Figure8Tests: XCTestCase {
  /// One entry per append, so that a new leader's entries of older terms reach followers
  /// ahead of its own no-op: the situation where counting replicas of them would be wrong.
  private let oneEntryPerMessage = RaftConfig(
    electionTicks: 10, heartbeatTicks: 2, maxBytesPerMessage: 1, unreachableTicks: 10)

  /// Figure 8 built step by step. A leader of term t1 stores X on itself and one follower;
  /// the other three elect a leader of term t2 that stores an entry at X's index but is cut
  /// off at once. X's holder then leads in term t3 and copies X onto a majority, while its own
  /// term-t3 entry stays on a minority. X must not count as committed: once the term-t3 pair
  /// crashes, the term-t2 leader wins again and replaces X. (A core that committed X by
  /// counting would be caught here by the harness: a committed entry overwritten.)
  func testFigure8EntryOfAnOlderTermOnAMajorityIsNotCommittedByCounting() {
    for seed in SimEnvironment.seeds([1, 2, 3, 4, 5]) {
      // One entry per append message, so that X and the term-t3 entry travel separately.
      let config = oneEntryPerMessage
      let sim = makeSimulation(seed: seed, nodes: 5, config: config)
      sim.one(command("f8-base"), expected: 5)
      guard let l1 = sim.requireLeader() else { continue }
      let others = sim.ids.filter { $0 != l1 }
      let partner = others[0]
      let majority = Array(others.dropFirst())

      // 1. Term t1: X reaches only l1 and its partner.
      sim.partition([[l1, partner], majority])
      guard let xIndex = sim.propose(command("f8-X"), at: l1) else {
        sim.fail("\(l1) refused X")
        continue
      }
      let termX = sim.core(l1)!.term
      sim.expect(
        sim.run(until: { sim.core(partner)!.lastIndex >= xIndex }, maxSteps: 20), "\(partner) never got X")

      // 2. Term t2: the majority elects a leader whose entry at X's index reaches nobody.
      let majoritySet = Set(majority)
      sim.network.filter = { m in !(m.kind == .append && majoritySet.contains(m.from) && !m.entries.isEmpty) }
      guard let l2 = sim.waitForLeader(among: majority) else { continue }
      let t2 = sim.core(l2)!.term
      sim.expect(
        sim.core(l2)!.lastIndex == xIndex && sim.core(l2)!.entries.last!.term == t2,
        "\(l2) does not hold its own entry at \(xIndex)")
      sim.isolate(l2)
      let rest = majority.filter { $0 != l2 }

      // 3. Term t3: l1 or its partner leads; X reaches the rest (a majority holds X) but the
      //    leader's own entry does not.
      sim.partition([])
      sim.network.filter = { m in
        if m.kind == .append && majoritySet.contains(m.from) && !m.entries.isEmpty { return false }
        // Appends of newer entries reach the rest only while they still lack X (so that they
        // reject them and the leader backs up to X).
        guard m.kind == .append, rest.contains(m.to), m.entries.contains(where: { $0.term > termX }) else {
          return true
        }
        return sim.core(m.to)!.lastIndex < xIndex
      }
      guard let l3 = sim.waitForLeader(among: [l1, partner] + rest) else { continue }
      sim.expect(l3 == l1 || l3 == partner, "\(l3) was elected without X")
      let t3 = sim.core(l3)!.term
      sim.expect(t3 > t2, "term \(t3) of \(l3) is not after \(t2)")
      let spread = sim.run(
        until: {
          rest.allSatisfy { sim.core($0)!.entries.last?.term == termX && sim.core($0)!.lastIndex == xIndex }
        },
        maxSteps: 60)
      sim.expect(spread, "X did not reach \(rest)")
      if sim.halted {
        print(sim.stateDescription)
        print("l1 \(l1) partner \(partner) l2 \(l2) t2 \(t2) l3 \(l3) t3 \(t3) x \(xIndex) termX \(termX)")
        for id in sim.ids { print(id, sim.core(id)!.entries.map { "\($0.index):\($0.term)" }) }
      }
      sim.run(3 * config.electionTicks)
      sim.expect(sim.leader == l3, "\(l3) lost its leadership while it still had a quorum")
      for id in sim.liveIDs {
        sim.expect(
          sim.core(id)!.commitIndex < xIndex,
          "\(id) committed X (term \(termX)) at \(xIndex) from a majority of replicas in term \(t3)")
      }

      // 4. The term-t3 pair crashes; l2 returns and, holding the newest last term, wins and
      //    replaces X with its own entry.
      sim.crash(l1)
      sim.crash(partner)
      sim.network.filter = nil
      sim.reconnect(l2)
      guard let l4 = sim.waitForLeader(among: [l2] + rest, maxSteps: 400) else { continue }
      sim.expect(l4 == l2, "\(l4) won, but only \(l2) holds the newest last term")
      sim.one(command("f8-after"), expected: 3)
      sim.expect(sim.committed[xIndex]?.term == t2, "index \(xIndex) was not committed with \(l2)'s entry")

      // 5. Everyone returns and agrees; X was never applied anywhere.
      sim.restart(l1)
      sim.restart(partner)
      sim.one(command("f8-end"), expected: 5)
      sim.checkAcknowledgedAppliedEverywhere(sim.ids)
      for id in sim.ids {
        sim.expect(
          !sim.node(id).stateMachine.commands.values.contains(command("f8-X")),
          "\(id) applied the overwritten X")
      }
    }
  }

  /// The labs' TestFigure82C: five nodes; proposals at every node, then the leader crashes,
  /// over and over, with short and occasionally long pauses; a majority is kept up. At the end
  /// everyone restarts and must agree.
  func testFigure8LeaderCrashesKeepEveryCommittedEntry() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      let sim = makeSimulation(seed: seed, nodes: 5, config: oneEntryPerMessage)
      sim.one(command("f8r-start"), expected: 1)
      var counter = 0
      for _ in 0..<1000 where !sim.halted {
        var leader: NodeID?
        for id in sim.liveIDs {
          counter += 1
          if sim.propose(command("f8r-\(counter)"), at: id) != nil { leader = id }
        }
        // Mostly a short pause, now and then up to half an election timeout.
        sim.run(
          sim.rng.chance(0.1) ? sim.rng.int(in: 0...sim.config.electionTicks / 2) : sim.rng.int(in: 0...1))
        if let leader { sim.crash(leader) }
        if sim.liveIDs.count < 3, let back = sim.rng.element(of: sim.ids.filter { !sim.node($0).isUp }) {
          sim.restart(back)
        }
      }
      for id in sim.ids { sim.restart(id) }
      sim.one(command("f8r-end"), expected: 5)
      sim.checkAcknowledgedAppliedEverywhere(sim.ids)
      sim.expect(sim.leaderOfTerm.count >= 10, "only \(sim.leaderOfTerm.count) leaders in the run")
    }
  }

  /// The labs' TestFigure8Unreliable2C: the same on a lossy, duplicating network where, after
  /// a while, two thirds of the answers are held back, some for up to four election timeouts
  /// (long reordering); leaders are disconnected rather than crashed.
  func testFigure8UnreliableWithLongReorderingKeepsEveryCommittedEntry() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      let sim = makeSimulation(seed: seed, nodes: 5, config: oneEntryPerMessage, network: .unreliable)
      sim.one(command("f8u-start"), expected: 1)
      var counter = 0
      for iteration in 0..<1000 where !sim.halted {
        if iteration == 120 {
          sim.network.options.longReorderRate = 2.0 / 3
          sim.network.options.longDelay = 4 * sim.config.electionTicks
        }
        var leader: NodeID?
        for id in sim.ids {
          counter += 1
          if sim.propose(command("f8u-\(counter)"), at: id) != nil && !sim.network.isolated.contains(id) {
            leader = id
          }
        }
        sim.run(
          sim.rng.chance(0.1) ? sim.rng.int(in: 0...sim.config.electionTicks / 2) : sim.rng.int(in: 0...1))
        if let leader, sim.rng.chance(0.5) { sim.isolate(leader) }
        if sim.ids.count - sim.network.isolated.count < 3,
          let back = sim.rng.element(of: sim.network.isolated.sorted())
        {
          sim.reconnect(back)
        }
      }
      // Reconnect everyone; the network stays lossy and reordering, as in the lab.
      for id in sim.ids { sim.reconnect(id) }
      sim.one(command("f8u-end"), expected: 5, maxSteps: 2000)
      if sim.halted { print(sim.stateDescription) }
      sim.healAll()
      sim.one(command("f8u-healed"), expected: 5)
      sim.checkAcknowledgedAppliedEverywhere(sim.ids)
      sim.expect(sim.leaderOfTerm.count >= 3, "only \(sim.leaderOfTerm.count) leaders in the run")
    }
  }
}
