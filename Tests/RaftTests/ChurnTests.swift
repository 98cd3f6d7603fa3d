import XCTest

@testable import Raft

/// Agreement on a bad network and under churn (the labs' TestUnreliableAgree, TestReliableChurn
/// and TestUnreliableChurn).
final class ChurnTests: XCTestCase {
  /// Rounds of concurrent proposals on a network that drops, duplicates, delays and reorders
  /// messages: every proposal commits on a majority, in one order everywhere.
  func testUnreliableAgreementOfManyConcurrentProposals() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      let network = NetworkOptions(dropRate: 0.1, duplicateRate: 0.1, minDelay: 1, maxDelay: 5)
      let sim = makeSimulation(seed: seed, nodes: 5, network: network)
      for round in 1..<40 where !sim.halted {
        let batch = (0..<4).map { command("ua-\(round)-\($0)") } + [command("ua-\(round)")]
        sim.commitAll(batch, expected: 3)
      }
      sim.expect(sim.network.dropped > 100, "only \(sim.network.dropped) messages dropped")
      sim.healAll()
      sim.one(command("ua-end"), expected: 5)
      sim.checkAcknowledgedAppliedEverywhere(sim.ids)
      sim.expect(sim.acknowledged.count >= 39 * 5 + 1, "\(sim.acknowledged.count) commands applied")
    }
  }

  func testReliableChurnKeepsEveryCommittedEntry() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      churn(seed: seed, network: .reliable)
    }
  }

  func testUnreliableChurnKeepsEveryCommittedEntry() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      churn(seed: seed, network: .unreliable)
    }
  }

  /// Churn while every node's disk is slow: Readies stay outstanding for a few steps while
  /// the cores take more messages and ticks, and a crash meanwhile completes only part of the
  /// outstanding work.
  func testChurnWithReadiesOutstandingAcrossInputsKeepsEveryCommittedEntry() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      // Disk and network delays add up within a heartbeat round trip; with the labs' whole
      // unreliable network on top, leaders would rarely keep a quorum for long enough to
      // commit, so messages are delayed less here.
      let network = NetworkOptions(dropRate: 0.1, duplicateRate: 0.05, minDelay: 1, maxDelay: 2)
      churn(seed: seed, network: network, asyncReadies: 0.5)
    }
  }

  /// Clients propose without pause while nodes are disconnected, reconnected, crashed and
  /// restarted at random. Afterwards everything heals: the cluster must commit again, and every
  /// entry ever applied anywhere must be applied at the same index on every node.
  private func churn(
    seed: UInt64, network: NetworkOptions, asyncReadies: Double = 0, function: String = #function
  ) {
    let sim = makeSimulation(seed: seed, nodes: 5, network: network, function: function)
    sim.asyncReadies = asyncReadies
    var counter = 0
    for _ in 0..<40 where !sim.halted {
      let out = sim.ids.filter { !sim.node($0).isUp || sim.network.isolated.contains($0) }
      if sim.rng.chance(0.2), let id = sim.rng.element(of: sim.liveIDs) {
        sim.isolate(id)
      }
      if sim.rng.chance(0.5), let id = sim.rng.element(of: out) {
        sim.restart(id)
        sim.reconnect(id)
      }
      if sim.rng.chance(0.2), let id = sim.rng.element(of: sim.liveIDs) {
        sim.crash(id)
      }
      // Faults come and go at random, but not all at once: at least a majority is up and
      // connected at the start of each round (without that, nothing could commit).
      while sim.liveIDs.count(where: { !sim.network.isolated.contains($0) }) < 3 {
        let back = sim.rng.element(
          of: sim.ids.filter { !sim.node($0).isUp || sim.network.isolated.contains($0) })!
        sim.restart(back)
        sim.reconnect(back)
      }
      // About 0.7 of an election timeout of three busy clients, each trying the nodes in turn
      // until one takes its command (as the labs' clients do).
      for _ in 0..<(7 * sim.config.electionTicks / 10) where !sim.halted {
        for _ in 0..<3 {
          counter += 1
          for id in sim.rng.shuffled(sim.liveIDs)
          where sim.propose(command("churn-\(counter)"), at: id) != nil {
            break
          }
        }
        sim.step()
      }
    }
    sim.healAll()
    sim.run(sim.config.electionTicks)
    sim.one(command("churn-end"), expected: 5, maxSteps: 600)
    sim.checkAcknowledgedAppliedEverywhere(sim.ids)
    let crashes = sim.ids.reduce(0) { $0 + sim.node($1).crashes }
    sim.expect(crashes >= 1, "no crash in the churn")
    sim.expect(sim.acknowledged.count >= 10, "only \(sim.acknowledged.count) commands committed under churn")
  }
}
