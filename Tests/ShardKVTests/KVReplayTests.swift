import Foundation
import Raft
import Storage
import Wire
import XCTest

@testable import ShardKV

/// Recovery cost: the state machine writes its data, applied index and sessions in one RocksDB
/// batch, so a restarted node resumes from its own disk and replays almost none of its log.
final class KVReplayTests: XCTestCase {
  func testAfter50000OperationsARestartReplaysFewerThan1000Entries() async throws {
    var options = RaftNodeOptions()
    options.tickInterval = .milliseconds(10)
    // The default keeps 1,000 applied entries after compaction (so the log on disk always
    // holds more than the bound below); a lower compaction threshold than the default 10,000
    // only keeps the followers' per-append work small.
    options.maxLogEntries = 2_000
    options.retainedEntries = 1_000
    let cluster = KVTestCluster(size: 3, seed: 11, raftOptions: options)
    try await cluster.startAll()
    let clients = 1_000
    let operationsPerClient = 50
    let clock = ContinuousClock()
    let started = clock.now
    // Straight into the leader's log (the client RPC path would triple the test's time), with
    // a session per writer as the clerk would have; a retry after a leader change reuses the
    // sequence number, so every write still executes once.
    try await withThrowingTaskGroup(of: Void.self) { group in
      for c in 0..<clients {
        group.addTask {
          for n in 0..<operationsPerClient {
            var request = Shardkv_KvRequest()
            request.op = .put
            request.key = Data("k\(c)-\(n % 10)".utf8)
            request.value = Data("v\(n)".utf8)
            request.clientID = UInt64(c + 1)
            request.sequence = UInt64(n + 1)
            var command = Shardkv_Group_Command()
            command.request = request
            try await Self.propose(try command.serializedBytes(), in: cluster)
          }
        }
      }
      try await group.waitForAll()
    }
    let elapsed = clock.now - started
    print("\(clients * operationsPerClient) writes in \(elapsed)")
    let leader = try await cluster.waitForLeader()
    let committed = try await cluster.node(leader).status.commit
    XCTAssertGreaterThanOrEqual(committed, UInt64(clients * operationsPerClient))
    try await cluster.waitUntil("every server to apply everything") {
      for i in 0..<cluster.size where try await cluster.node(i).appliedIndex < committed { return false }
      return true
    }
    for i in 0..<cluster.size { await cluster.crash(i) }
    for i in 0..<cluster.size { try await cluster.restart(i) }
    for i in 0..<cluster.size {
      // The state machine opened where it was: every write is already in it.
      XCTAssertGreaterThanOrEqual(
        cluster.members[i]?.stateMachine.appliedIndex ?? 0, committed, "server \(i) resumed")
      let status = try await cluster.node(i).status
      // The bound means something only if the log on disk holds more than it.
      XCTAssertGreaterThanOrEqual(status.lastIndex + 1 - status.firstIndex, 1_000, "server \(i)'s log")
      XCTAssertEqual(cluster.members[i]?.stateMachine.sessionCount, clients, "server \(i)'s sessions")
    }
    let clerk = cluster.clerk("after")
    try await clerk.put(Array("after".utf8), Array("restart".utf8))
    let value = try await clerk.get(Array("k7-9".utf8))
    XCTAssertEqual(value, Array("v\(operationsPerClient - 1)".utf8))
    let target = try await cluster.node(try await cluster.waitForLeader()).status.commit
    try await cluster.waitUntil("every server to apply the write after the restart") {
      for i in 0..<cluster.size where try await cluster.node(i).appliedIndex < target { return false }
      return true
    }
    var replays: [Int] = []
    for i in 0..<cluster.size { replays.append(try await cluster.node(i).replayedEntries) }
    print("entries replayed after the restart, by server: \(replays)")
    for i in 0..<cluster.size {
      let replayed = try await cluster.node(i).replayedEntries
      XCTAssertLessThan(replayed, 1_000, "server \(i) replayed \(replayed) entries of its log")
    }
    await cluster.shutdown()
  }

  /// The control for the test above: the replay counter counts, and a state machine without
  /// its persisted applied index would replay the whole log.
  func testAStateMachineThatForgotItsAppliedIndexReplaysTheWholeLog() async throws {
    let cluster = KVTestCluster(size: 3, seed: 12)
    try await cluster.startAll()
    let clerk = cluster.clerk("ck")
    for n in 0..<100 { try await clerk.append(Array("k\(n % 4)".utf8), Array("\(n);".utf8)) }
    let leader = try await cluster.waitForLeader()
    let victim = (leader + 1) % cluster.size
    let committed = try await cluster.node(leader).status.commit
    try await cluster.waitUntil("the victim to apply everything") {
      try await cluster.node(victim).appliedIndex >= committed
    }
    let expected = try XCTUnwrap(cluster.members[victim]?.stateMachine.localValue(for: Array("k3".utf8)))
    await cluster.crash(victim)
    // Wipe its state machine (data, sessions, applied index), keeping its Raft log.
    let db = try cluster.openDatabase(victim)
    var batch = WriteBatch()
    for family in KVStateMachine.columnFamilies {
      batch.deleteRange(from: [], to: Array(repeating: 0xFF, count: 16), in: try db.columnFamily(family))
    }
    try db.write(batch, sync: true)
    db.close()
    try await cluster.restart(victim)
    XCTAssertEqual(cluster.members[victim]?.stateMachine.appliedIndex, 0)
    try await cluster.waitUntil("the victim to replay its log") {
      try await cluster.node(victim).appliedIndex >= committed
    }
    let replayed = try await cluster.node(victim).replayedEntries
    XCTAssertGreaterThanOrEqual(replayed, 100, "every write replayed from the log")
    XCTAssertEqual(try cluster.members[victim]?.stateMachine.localValue(for: Array("k3".utf8)), expected)
    await cluster.shutdown()
  }

  /// Proposes `command` to whichever server leads, until one applies it.
  private static func propose(_ command: [UInt8], in cluster: KVTestCluster) async throws {
    let deadline = ContinuousClock.now + .seconds(30)
    while true {
      let node = try cluster.node(try await cluster.waitForLeader())
      do {
        _ = try await node.propose(command, timeout: .seconds(10))
        return
      } catch .notLeader, .leadershipLost, .timeout {
        guard ContinuousClock.now < deadline else { throw RaftNodeError.timeout }
      }
    }
  }
}
