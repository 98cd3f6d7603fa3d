import XCTest

@testable import Raft

/// Linearizable reads with ReadIndex: the leader notes its commit index, confirms with a round
/// of heartbeats that a quorum still follows it, and only then releases the read; the owner
/// serves it once its state machine has applied that index. The harness fails any read whose
/// index is below an entry known committed before the read was asked (a stale read).
final class ReadIndexTests: XCTestCase {
  /// The read the owner of `id` can serve now, if any: released and applied.
  private func served(_ sim: RaftSimulation, at id: NodeID, _ context: [UInt8]) -> ReadState? {
    guard let read = sim.releasedRead(at: id, context: context),
      sim.node(id).stateMachine.applied >= read.index
    else { return nil }
    return read
  }

  func testReadAtTheLeaderWaitsForAHeartbeatRoundAndCoversEveryCommittedWrite() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      let sim = makeSimulation(seed: seed, nodes: 3)
      var lastWrite: UInt64 = 0
      for i in 0..<5 { lastWrite = sim.one(command("rw-\(i)"), expected: 3) ?? lastWrite }
      guard let leader = sim.requireLeader() else { continue }
      let context = command("read-leader")
      sim.expect(sim.readIndex(at: leader, context: context), "the leader refused a read")
      sim.expect(
        sim.releasedRead(at: leader, context: context) == nil, "released before any follower confirmed")
      let released = sim.run(until: { self.served(sim, at: leader, context) != nil }, maxSteps: 10)
      sim.expect(released, "the read was not served within a heartbeat round")
      if let read = sim.releasedRead(at: leader, context: context) {
        sim.expect(read.index >= lastWrite, "read index \(read.index) misses write \(lastWrite)")
      }
    }
  }

  func testReadAtAFollowerIsForwardedAndServedOnceApplied() {
    for seed in SimEnvironment.seeds([1, 2, 3]) {
      let sim = makeSimulation(seed: seed, nodes: 3)
      sim.one(command("fw-0"), expected: 3)
      guard let leader = sim.requireLeader() else { continue }
      let follower = sim.ids.first { $0 != leader }!
      // A write the follower has not applied yet when its read is answered.
      guard sim.requirePropose(command("fw-1"), at: leader) != nil else { continue }
      let context = command("read-follower")
      sim.expect(sim.readIndex(at: follower, context: context), "the follower refused a read")
      let released = sim.run(until: { self.served(sim, at: follower, context) != nil }, maxSteps: 20)
      sim.expect(released, "the forwarded read was not served")
      sim.expect(
        sim.releasedRead(at: leader, context: context) == nil, "the leader released the follower's read")
    }
  }

  /// The old leader is cut off with one follower while the majority elects a new leader and
  /// commits writes. Reads asked of the old side, at any moment, are never released (with
  /// check-quorum the old leader steps down; without it, it leads on in its minority, yet its
  /// heartbeat round can never gather a quorum). After healing, a read there sees every write.
  func testNoStaleReadFromAPartitionedOldLeader() {
    for checkQuorum in [true, false] {
      for seed in SimEnvironment.seeds([1, 2, 3]) {
        let config = RaftConfig(
          electionTicks: 10, heartbeatTicks: 2, checkQuorum: checkQuorum, unreachableTicks: 10)
        let sim = makeSimulation(seed: seed, nodes: 5, config: config)
        sim.one(command("stale-v1"), expected: 5)
        guard let old = sim.requireLeader() else { continue }
        let others = sim.ids.filter { $0 != old }
        let minority = [old, others[0]]
        let majority = Array(others.dropFirst())
        sim.partition([minority, majority])
        var asked: [(NodeID, [UInt8])] = []
        var counter = 0
        func askOldSide() {
          for id in minority {
            counter += 1
            let context = command("stale-read-\(counter)")
            if sim.readIndex(at: id, context: context) { asked.append((id, context)) }
          }
        }
        askOldSide()
        guard sim.waitForLeader(among: majority) != nil else { continue }
        var lastWrite: UInt64 = 0
        for i in 0..<10 where !sim.halted {
          askOldSide()
          lastWrite = sim.one(command("stale-v\(i + 2)"), expected: 3) ?? lastWrite
        }
        askOldSide()
        sim.run(5 * config.electionTicks)
        sim.expect(asked.count >= 2, "the old side refused every read")
        if !checkQuorum {
          sim.expect(sim.core(old)!.role == .leader, "without check-quorum the old leader should lead on")
        }
        for (id, context) in asked {
          sim.expect(
            sim.releasedRead(at: id, context: context) == nil,
            "\(id) released \(String(decoding: context, as: UTF8.self)) while cut off from the majority")
        }
        // Healed: once the old leader follows the new one, a read there sees the majority's
        // writes. (Until then it refuses reads, or, still leading, loses the ones it holds
        // when it steps down: the client retries.)
        sim.partition([])
        guard let leader = sim.waitForLeader() else { continue }
        sim.expect(leader != old, "the old leader won again")
        let follows = sim.run(until: { sim.core(old)!.leader == leader }, maxSteps: 50)
        sim.expect(follows, "\(old) does not follow \(leader) after healing")
        let context = command("stale-after")
        let asking = sim.readIndex(at: old, context: context)
        sim.expect(asking, "\(old) refused a read after healing")
        let served = sim.run(until: { self.served(sim, at: old, context) != nil }, maxSteps: 50)
        sim.expect(served, "\(old) never served its read after healing")
        if let read = sim.releasedRead(at: old, context: context) {
          sim.expect(read.index >= lastWrite, "\(old) read at \(read.index), before write \(lastWrite)")
        }
      }
    }
  }

  /// Many reads at random nodes while partitions come and go on a lossy, reordering network:
  /// none is stale (the harness checks each release), and reads keep being served.
  func testReadsUnderPartitionsAndAnUnreliableNetworkAreNeverStale() {
    for seed in SimEnvironment.seeds([1, 2, 3, 4, 5]) {
      let sim = makeSimulation(seed: seed, nodes: 5, network: .unreliable, compactAbove: 15)
      sim.waitForLeader()
      var counter = 0
      var asked = 0
      for round in 0..<40 where !sim.halted {
        if round % 5 == 0 {
          let shuffled = sim.rng.shuffled(sim.ids)
          let cut = sim.rng.int(in: 1...2)
          sim.partition([Array(shuffled[..<cut]), Array(shuffled[cut...])])
        } else if round % 5 == 3 {
          sim.partition([])
        }
        for _ in 0..<5 {
          counter += 1
          sim.propose(command("rr-w-\(counter)"))
          if let id = sim.rng.element(of: sim.ids), sim.readIndex(at: id, context: command("rr-r-\(counter)"))
          {
            asked += 1
          }
          sim.step()
        }
      }
      sim.checkLiveness(tag: "reads")
      sim.expect(sim.readsReleased * 10 >= asked, "only \(sim.readsReleased) of \(asked) reads released")
    }
  }
}
