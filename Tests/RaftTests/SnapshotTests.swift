import XCTest

@testable import Raft

/// Log compaction and InstallSnapshot (the labs' 2D/3D). The harness compacts a node's log
/// through its applied index once it holds more than `compactAbove` entries.
final class SnapshotTests: XCTestCase {
  private let compactAbove = 20

  private func snapshotsSent(_ sim: RaftSimulation) -> Int { sim.network.sentByKind[.snapshot, default: 0] }

  func testSnapshotBasicCompactsEveryLogAndKeepsTheState() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      let sim = makeSimulation(seed: seed, nodes: 3, compactAbove: compactAbove)
      for i in 0..<100 where !sim.halted { sim.one(command("s-\(i)"), expected: 3) }
      for id in sim.ids {
        let core = sim.core(id)!
        sim.expect(core.firstIndex > 50, "\(id) never compacted: first index \(core.firstIndex)")
        sim.expect(core.entries.count <= compactAbove + 1, "\(id) holds \(core.entries.count) entries")
        sim.expect(sim.node(id).log.snapshot.index + 1 == core.firstIndex, "\(id) disk and core disagree")
      }
      sim.checkAcknowledgedAppliedEverywhere(sim.ids)
      sim.expect(sim.acknowledged.count == 100, "\(sim.acknowledged.count) of 100 commands applied")
    }
  }

  func testSnapshotInstalledOnFollowerAfterDisconnect() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      let sim = makeSimulation(seed: seed, nodes: 3, compactAbove: compactAbove)
      sim.one(command("d-0"), expected: 3)
      guard let leader = sim.requireLeader() else { continue }
      let follower = sim.ids.first { $0 != leader }!
      sim.isolate(follower)
      for i in 1...60 { sim.one(command("d-\(i)"), expected: 2) }
      sim.expect(
        sim.core(leader)!.firstIndex > sim.core(follower)!.lastIndex + 1,
        "leader did not compact past the follower")
      let before = snapshotsSent(sim)
      sim.reconnect(follower)
      sim.one(command("d-61"), expected: 3)
      sim.expect(snapshotsSent(sim) > before, "the follower caught up without a snapshot")
      sim.expect(sim.snapshotsInstalled >= 1, "no snapshot installed")
      sim.checkAcknowledgedAppliedEverywhere(sim.ids)
    }
  }

  func testSnapshotInstalledOnFollowerAfterCrash() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      let sim = makeSimulation(seed: seed, nodes: 3, compactAbove: compactAbove)
      sim.one(command("c-0"), expected: 3)
      guard let leader = sim.requireLeader() else { continue }
      let follower = sim.ids.first { $0 != leader }!
      sim.crash(follower)
      for i in 1...60 { sim.one(command("c-\(i)"), expected: 2) }
      let before = snapshotsSent(sim)
      sim.restart(follower)
      sim.one(command("c-61"), expected: 3)
      sim.expect(snapshotsSent(sim) > before, "the restarted follower caught up without a snapshot")
      sim.checkAcknowledgedAppliedEverywhere(sim.ids)
    }
  }

  func testSnapshotsOnAnUnreliableNetworkWithCrashes() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      let sim = makeSimulation(seed: seed, nodes: 5, network: .unreliable, compactAbove: compactAbove)
      var counter = 0
      for _ in 0..<30 where !sim.halted {
        // Knock out a random node for a while, keep proposing, bring it back.
        let victim = sim.rng.element(of: sim.ids)!
        if sim.rng.chance(0.5) { sim.crash(victim) } else { sim.isolate(victim) }
        for _ in 0..<sim.rng.int(in: 5...15) {
          sim.propose(command("u-\(counter)"))
          counter += 1
          sim.run(2)
        }
        sim.restart(victim)
        sim.reconnect(victim)
        sim.run(sim.rng.int(in: 0...10))
      }
      sim.checkLiveness(tag: "snap-unreliable")
      sim.expect(sim.snapshotsInstalled >= 1, "no snapshot was ever installed")
    }
  }

  func testRestartFromSnapshotKeepsStateAndLog() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      let sim = makeSimulation(seed: seed, nodes: 3, compactAbove: compactAbove)
      for i in 0..<50 where !sim.halted { sim.one(command("rs-\(i)"), expected: 3) }
      let firstIndices = sim.ids.map { sim.core($0)!.firstIndex }
      for id in sim.ids { sim.crash(id) }
      for id in sim.ids { sim.restart(id) }
      for (id, first) in zip(sim.ids, firstIndices) {
        let core = sim.core(id)!
        sim.expect(
          core.firstIndex == first, "\(id) restarted at first index \(core.firstIndex), not \(first)")
        sim.expect(
          core.appliedIndex == sim.node(id).stateMachine.applied,
          "\(id) restarted with applied \(core.appliedIndex), its state machine is at \(sim.node(id).stateMachine.applied)"
        )
      }
      for i in 50..<70 where !sim.halted { sim.one(command("rs-\(i)"), expected: 3) }
      sim.checkAcknowledgedAppliedEverywhere(sim.ids)
    }
  }
}
