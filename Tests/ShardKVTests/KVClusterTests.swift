import Foundation
import Linearizability
import Raft
import Storage
import Synchronization
import Wire
import XCTest

@testable import ShardKV

/// In-process KV groups (real `RaftNode`s and `KVStateMachine`s on RocksDB, the in-memory
/// network with faults, real time) driven through `KVClerk`s, ported from the classic kvraft
/// suites (6.824 lab 3). Every history is checked for linearizability.
final class KVClusterTests: XCTestCase {
  // MARK: - The generic workload (the lab's GenericTest)

  struct Workload {
    var servers = 5
    var clients = 5
    /// Keys shared by every client, so that their operations conflict.
    var keys = 4
    var rounds = 3
    var roundDuration: Duration = .milliseconds(1200)
    var unreliable = false
    /// Repartition the servers (and clients) at random while the clients run.
    var partitions = false
    /// Crash and restart every server after each round.
    var restarts = false
    /// Crash one random server in the middle of each round and restart it at its end.
    var crashDuringRound = false
    var maxLogEntries: Int?
    var seed: UInt64 = 1
  }

  static let unreliableFaults = NetworkFaults(
    dropProbability: 0.1, duplicateProbability: 0.05, delay: .zero ... .milliseconds(5))

  private func makeCluster(_ workload: Workload) -> KVTestCluster {
    var options = RaftNodeOptions()
    options.tickInterval = .milliseconds(10)
    if let maxLogEntries = workload.maxLogEntries {
      options.maxLogEntries = maxLogEntries
      options.retainedEntries = maxLogEntries / 4
    }
    return KVTestCluster(size: workload.servers, seed: workload.seed, raftOptions: options)
  }

  /// Runs `workload` on a fresh cluster and checks the history; returns the cluster (still
  /// running) and the history for further checks.
  @discardableResult
  private func run(
    _ workload: Workload, file: StaticString = #filePath, line: UInt = #line
  ) async throws -> (KVTestCluster, History) {
    let cluster = makeCluster(workload)
    try await cluster.startAll()
    let history = History()
    var random = SeededGenerator(seed: workload.seed)
    // On a lossy network a lost call should cost little: retry soon (same sequence number).
    let callTimeout: Duration = workload.unreliable ? .milliseconds(300) : .seconds(1)
    let clerks = (0..<workload.clients).map { cluster.clerk("c\($0)", callTimeout: callTimeout) }
    let checker = cluster.clerk("checker", callTimeout: callTimeout)
    var completed = 0
    for round in 0..<workload.rounds {
      if workload.unreliable { cluster.network.faults = Self.unreliableFaults }
      let stop = StopFlag()
      let partitioner =
        workload.partitions
        ? Self.startPartitioner(
          cluster, servers: workload.servers, clients: workload.clients, seed: random.next(), stop: stop)
        : nil
      let counts = try await withThrowingTaskGroup(of: Int.self) { group in
        for (c, clerk) in clerks.enumerated() {
          var clientRandom = random.split()
          let keys = workload.keys
          group.addTask {
            var done = 0
            var n = 0
            while !stop.isSet {
              n += 1
              let key = "k\(Int.random(in: 0..<keys, using: &clientRandom))"
              let value = "c\(c).\(round).\(n);"
              let kind: LinearizabilityChecker.Kind =
                switch Int.random(in: 0..<100, using: &clientRandom) {
                case 0..<45: .append
                case 45..<55: .put
                case 55..<60: .delete
                default: .get
                }
              if await history.run(clerk, client: c, kind, key, value) { done += 1 }
            }
            return done
          }
        }
        var victim: Int?
        if workload.crashDuringRound {
          try await Task.sleep(for: workload.roundDuration / 2)
          victim = Int.random(in: 0..<workload.servers, using: &random)
          await cluster.crash(victim!)
          try await Task.sleep(for: workload.roundDuration / 2)
        } else {
          try await Task.sleep(for: workload.roundDuration)
        }
        stop.set()
        // No layout may come after the heal; clients stuck in a minority finish once it is.
        partitioner?.cancel()
        await partitioner?.value
        cluster.network.faults = .none
        cluster.network.heal()
        if let victim { try await cluster.restart(victim) }
        return try await group.reduce(0, +)
      }
      completed += counts
      if workload.restarts {
        var appliedBefore: [Int: UInt64] = [:]
        for i in 0..<workload.servers {
          let stateMachine = cluster.members[i]?.stateMachine
          await cluster.crash(i)
          appliedBefore[i] = stateMachine?.appliedIndex
        }
        for i in 0..<workload.servers {
          try await cluster.restart(i)
          // Recovery from the node's own RocksDB: it resumes where it was, not from index 0.
          // (At least there: an apply racing the crash may have reached the disk just before
          // the in-memory index.)
          XCTAssertGreaterThanOrEqual(
            cluster.members[i]?.stateMachine.appliedIndex ?? 0, appliedBefore[i] ?? 0,
            "server \(i) resumed", file: file, line: line)
          XCTAssertGreaterThan(
            cluster.members[i]?.stateMachine.appliedIndex ?? 0, 0, "server \(i) resumed", file: file,
            line: line)
        }
      }
      for k in 0..<workload.keys {
        let ok = await history.run(checker, client: workload.clients, .get, "k\(k)")
        XCTAssertTrue(ok, "round \(round): get k\(k) after the faults stopped", file: file, line: line)
      }
    }
    XCTAssertGreaterThan(
      completed, workload.clients * workload.rounds, "hardly any operation completed", file: file,
      line: line)
    let statistics = cluster.network.statistics
    print(
      "\(completed) operations completed; network: \(statistics.calls) calls, "
        + "\(statistics.requestsDropped + statistics.repliesDropped) dropped, \(statistics.duplicated) duplicated, "
        + "\(statistics.partitioned) lost to partitions")
    // KVDEBUG=1 in the environment prints every operation's latency.
    if ProcessInfo.processInfo.environment["KVDEBUG"] != nil {
      for op in history.all.sorted(by: { $0.call < $1.call }) {
        let ms = op.returned.map { ($0 - op.call) / 1_000_000 } ?? 999_999
        print("DEBUG op c\(op.client) \(op.kind) at \(op.call / 1_000_000) took \(ms) ms")
      }
    }
    history.assertLinearizable(file: file, line: line)
    return (cluster, history)
  }

  /// Repartitions the network every few election timeouts until `stop` is set.
  private static func startPartitioner(
    _ cluster: KVTestCluster, servers: Int, clients: Int, seed: UInt64, stop: StopFlag
  ) -> Task<Void, Never> {
    Task {
      var random = SeededGenerator(seed: seed)
      while !stop.isSet {
        repartition(cluster, servers: servers, clients: clients, using: &random)
        // The fault schedule, not synchronisation: a few election timeouts per layout.
        try? await Task.sleep(for: .milliseconds(Int.random(in: 200...500, using: &random)))
      }
    }
  }

  /// Splits the servers at random into two sides (as the lab's partitioner does). The lab's
  /// clients reach every server; here a client is on one side, usually the larger one: a
  /// client on the other side waits for a later layout (or the heal).
  private static func repartition(
    _ cluster: KVTestCluster, servers: Int, clients: Int, using random: inout SeededGenerator
  ) {
    var sides: [(servers: [Int], clients: [String])] = [([], []), ([], [])]
    for i in 0..<servers { sides[Int.random(in: 0...1, using: &random)].servers.append(i) }
    let larger = sides[0].servers.count >= sides[1].servers.count ? 0 : 1
    for c in 0..<clients {
      let side = Int.random(in: 0..<4, using: &random) == 0 ? 1 - larger : larger
      sides[side].clients.append("c\(c)")
    }
    cluster.partition(sides)
  }

  // MARK: - 3A: no faults, unreliable network

  func testOneClient() async throws {
    let (cluster, _) = try await run(Workload(clients: 1, seed: 1))
    await cluster.shutdown()
  }

  func testManyClients() async throws {
    let (cluster, _) = try await run(Workload(clients: 5, seed: 2))
    await cluster.shutdown()
  }

  func testUnreliableNetwork() async throws {
    let (cluster, _) = try await run(Workload(clients: 5, unreliable: true, seed: 3))
    XCTAssertGreaterThan(cluster.network.statistics.requestsDropped, 0)
    XCTAssertGreaterThan(cluster.network.statistics.duplicated, 0)
    await cluster.shutdown()
  }

  /// Concurrent appends to one key on a lossy, duplicating network: every acknowledged append
  /// is in the final value exactly once, each client's in the order it made them, and the
  /// history (each client reads after each append) is linearizable.
  func testConcurrentAppendsToOneKeyOnAnUnreliableNetwork() async throws {
    let cluster = KVTestCluster(size: 3, seed: 4)
    try await cluster.startAll()
    cluster.network.faults = Self.unreliableFaults
    let history = History()
    let clients = 5
    let appends = 12
    let acknowledged = try await withThrowingTaskGroup(of: [String].self) { group in
      for c in 0..<clients {
        let clerk = cluster.clerk("c\(c)", callTimeout: .milliseconds(300))
        group.addTask {
          var done: [String] = []
          for n in 0..<appends {
            let value = "x \(c) \(n) y"
            if await history.run(clerk, client: c, .append, "k", value) { done.append(value) }
            // Reads pin down the order so far: without them, checking a long run of concurrent
            // appends takes time exponential in its length.
            await history.run(clerk, client: c, .get, "k")
          }
          return done
        }
      }
      return try await group.reduce(into: []) { $0 += [$1] }
    }
    cluster.network.faults = .none
    let checker = cluster.clerk("checker")
    let checked = await history.run(checker, client: clients, .get, "k")
    XCTAssertTrue(checked)
    let final = try await checker.get(Array("k".utf8)).map { String(decoding: $0, as: UTF8.self) } ?? ""
    let parts = final.components(separatedBy: "y").filter { !$0.isEmpty }.map { $0 + "y" }
    XCTAssertEqual(parts.count, clients * appends, "final value: \(final)")
    for done in acknowledged {
      for value in done {
        XCTAssertEqual(parts.filter { $0 == value }.count, 1, "\(value) appears once in \(final)")
      }
    }
    for c in 0..<clients {
      let mine = parts.filter { $0.hasPrefix("x \(c) ") }
      let order = mine.compactMap { Int($0.split(separator: " ")[2]) }
      XCTAssertEqual(order, order.sorted(), "client \(c)'s appends in order")
    }
    XCTAssertGreaterThan(cluster.network.statistics.duplicated, 0)
    history.assertLinearizable()
    await cluster.shutdown()
  }

  /// A clerk is one session with one sequence of requests: callers sharing it concurrently
  /// must not get a write acknowledged that the group skipped as superseded.
  func testConcurrentCallersOfOneClerkLoseNoWrite() async throws {
    let cluster = KVTestCluster(size: 3, seed: 12)
    try await cluster.startAll()
    // Independent delays reorder the requests on their way.
    cluster.network.faults = NetworkFaults(delay: .zero ... .milliseconds(5))
    let clerk = cluster.clerk("shared")
    let values = (0..<30).map { "v\($0);" }
    try await withThrowingTaskGroup(of: Void.self) { group in
      for value in values {
        group.addTask { try await clerk.append(Array("k".utf8), Array(value.utf8)) }
      }
      try await group.waitForAll()
    }
    let final = try await clerk.get(Array("k".utf8)).map { String(decoding: $0, as: UTF8.self) } ?? ""
    let parts = final.split(separator: ";").map { String($0) + ";" }
    XCTAssertEqual(parts.sorted(), values.sorted(), "every acknowledged append exactly once")
    await cluster.shutdown()
  }

  /// Every member names itself in its answers (`served_by`, the leader for a write), so a
  /// clerk that reached the leader through a follower goes to the leader from then on.
  func testClerkGoesStraightToTheLeaderAfterOneForwardedRequest() async throws {
    let cluster = KVTestCluster(size: 3, seed: 13)
    try await cluster.startAll()
    addTeardownBlock { await cluster.shutdown() }
    let leader = try await cluster.waitForLeader()
    let follower = (leader + 1) % 3
    let transport = RecordingTransport(base: cluster.network.transport(for: "watched"))
    let clerk = KVClerk(
      servers: [follower, leader, (leader + 2) % 3].map { "s\($0):api" }, transport: transport)
    try await clerk.put(Array("a".utf8), Array("1".utf8))
    XCTAssertEqual(transport.destinations, ["s\(follower):api"], "the first request goes to a follower")
    try await clerk.put(Array("b".utf8), Array("2".utf8))
    try await clerk.append(Array("a".utf8), Array("2".utf8))
    XCTAssertEqual(Array(transport.destinations.dropFirst()), ["s\(leader):api", "s\(leader):api"])
  }

  // MARK: - 3A: partitions

  /// A majority makes progress, a minority none; the minority's operations complete after
  /// the partition heals.
  func testProgressInMajorityNoneInMinorityCompletionAfterHeal() async throws {
    let cluster = KVTestCluster(size: 5, seed: 5)
    try await cluster.startAll()
    let history = History()
    let clerk = cluster.clerk("ck")
    let putOK = await history.run(clerk, client: 0, .put, "1", "13")
    XCTAssertTrue(putOK)
    let leader = try await cluster.waitForLeader()
    let followers = (0..<cluster.size).filter { $0 != leader }
    let majority = [leader] + followers.prefix(2)
    let minority = Array(followers.suffix(2))
    cluster.partition([(majority, ["ckp1"]), (minority, ["ckp2a", "ckp2b"])])

    let ckp1 = cluster.clerk("ckp1", callTimeout: .milliseconds(500))
    let ckp2a = cluster.clerk("ckp2a", callTimeout: .milliseconds(500))
    let ckp2b = cluster.clerk("ckp2b", callTimeout: .milliseconds(500))
    let put14 = await history.run(ckp1, client: 1, .put, "1", "14")
    XCTAssertTrue(put14, "progress in the majority")
    let get14 = await history.run(ckp1, client: 1, .get, "1")
    XCTAssertTrue(get14)

    let minorityDone = StopFlag()
    let minorityWrite = Task {
      defer { minorityDone.set() }
      return await history.run(ckp2a, client: 2, .put, "1", "15")
    }
    let minorityRead = Task {
      defer { minorityDone.set() }
      return await history.run(ckp2b, client: 3, .get, "1")
    }
    // For many election timeouts the majority keeps serving and the minority completes nothing.
    let clock = ContinuousClock()
    let end = clock.now + .seconds(1)
    var n = 0
    while clock.now < end {
      n += 1
      let ok = await history.run(ckp1, client: 1, .append, "2", "\(n);")
      XCTAssertTrue(ok, "progress in the majority")
    }
    XCTAssertFalse(minorityDone.isSet, "an operation completed in the minority")

    cluster.network.heal()
    let wrote = await minorityWrite.value
    let read = await minorityRead.value
    XCTAssertTrue(wrote, "the minority's write completes after the heal")
    XCTAssertTrue(read, "the minority's read completes after the heal")
    let value = try await clerk.get(Array("1".utf8))
    XCTAssertEqual(value.map { String(decoding: $0, as: UTF8.self) }, "15")
    let finalGet = await history.run(clerk, client: 0, .get, "1")
    XCTAssertTrue(finalGet)
    history.assertLinearizable()
    await cluster.shutdown()
  }

  func testPartitionsWithOneClient() async throws {
    let (cluster, _) = try await run(Workload(clients: 1, partitions: true, seed: 6))
    await cluster.shutdown()
  }

  func testPartitionsWithManyClients() async throws {
    let (cluster, _) = try await run(Workload(clients: 5, partitions: true, seed: 7))
    await cluster.shutdown()
  }

  // MARK: - 3A: restarts

  /// Every server crashes and restarts between rounds, recovering from its RocksDB; one also
  /// crashes in the middle of each round.
  func testRestartsOfEveryServer() async throws {
    let (cluster, _) = try await run(
      Workload(clients: 5, rounds: 3, restarts: true, crashDuringRound: true, seed: 8))
    await cluster.shutdown()
  }

  /// Everything at once: a lossy network, random partitions, crashes and restarts, and a small
  /// log limit so that compaction and snapshot installs happen under the faults.
  func testUnreliableNetworkWithRestartsAndPartitions() async throws {
    let (cluster, _) = try await run(
      Workload(
        clients: 5, rounds: 3, roundDuration: .seconds(2), unreliable: true, partitions: true,
        restarts: true, crashDuringRound: true, maxLogEntries: 20, seed: 9))
    var compacted = false
    for i in 0..<cluster.size where try await cluster.node(i).status.firstIndex > 1 { compacted = true }
    XCTAssertTrue(compacted, "the logs were compacted under the faults")
    await cluster.shutdown()
  }

  // MARK: - 3B: snapshots

  /// With a small limit the Raft log, in memory and on disk, stays under it on every server.
  func testLogSizeStaysBounded() async throws {
    var options = RaftNodeOptions()
    options.tickInterval = .milliseconds(10)
    options.maxLogEntries = 50
    options.retainedEntries = 10
    let cluster = KVTestCluster(size: 3, seed: 10, raftOptions: options)
    try await cluster.startAll()
    let history = History()
    let clients = 3
    // A Ready can append a few entries (one per client in flight, plus retries) before the
    // compaction that follows it.
    let bound = options.maxLogEntries + 2 * clients + 2
    let stop = StopFlag()
    let sampler = Task {
      var longest = 0
      while !stop.isSet {
        for i in 0..<cluster.size {
          guard let node = cluster.members[i]?.node else { continue }
          let status = await node.status
          longest = max(longest, Int(status.lastIndex + 1 - status.firstIndex))
        }
        try? await Task.sleep(for: .milliseconds(5))
      }
      return longest
    }
    try await withThrowingTaskGroup(of: Void.self) { group in
      for c in 0..<clients {
        let clerk = cluster.clerk("c\(c)")
        group.addTask {
          for n in 0..<150 {
            let key = "k\(n % 3)"
            let kind: LinearizabilityChecker.Kind = n % 4 == 3 ? .get : .append
            let ok = await history.run(clerk, client: c, kind, key, "\(c).\(n);")
            XCTAssertTrue(ok)
          }
        }
      }
      try await group.waitForAll()
    }
    stop.set()
    let longest = await sampler.value
    XCTAssertLessThanOrEqual(longest, bound, "the longest log seen")
    let leader = try await cluster.waitForLeader()
    let status = try await cluster.node(leader).status
    XCTAssertGreaterThan(status.lastIndex, UInt64(4 * options.maxLogEntries), "enough entries to compact")
    XCTAssertGreaterThan(status.firstIndex, 1, "the leader compacted")
    for i in 0..<cluster.size {
      let member = try XCTUnwrap(cluster.members[i])
      let onDisk = try member.db.scan(try member.db.columnFamily("raft_log"), prefix: []).count
      XCTAssertLessThanOrEqual(onDisk, bound, "server \(i)'s log on disk")
    }
    history.assertLinearizable()
    await cluster.shutdown()
  }

  /// A server that was down while the others moved far ahead (and compacted their logs)
  /// catches up by snapshot, and is then good for a quorum.
  func testRestartedFarBehindServerCatchesUpBySnapshot() async throws {
    var options = RaftNodeOptions()
    options.tickInterval = .milliseconds(10)
    options.maxLogEntries = 40
    options.retainedEntries = 10
    let cluster = KVTestCluster(size: 3, seed: 11, raftOptions: options)
    try await cluster.startAll()
    let history = History()
    let clerk = cluster.clerk("ck")
    let first = await history.run(clerk, client: 0, .put, "a", "A")
    XCTAssertTrue(first)
    let leader = try await cluster.waitForLeader()
    let laggard = (leader + 1) % cluster.size
    await cluster.crash(laggard)
    try await withThrowingTaskGroup(of: Void.self) { group in
      for c in 0..<3 {
        let clerk = cluster.clerk("c\(c)")
        group.addTask {
          for n in 0..<50 {
            let key = "k\(n % 5)"
            let ok = await history.run(clerk, client: c + 1, .append, key, "\(c).\(n);")
            XCTAssertTrue(ok)
            // Reads keep the history cheap to check (see the one-key test).
            await history.run(clerk, client: c + 1, .get, key)
          }
        }
      }
      try await group.waitForAll()
    }
    let leaderStatus = try await cluster.node(leader).status
    XCTAssertGreaterThan(leaderStatus.firstIndex, 2, "the leader compacted past what the laggard has")

    try await cluster.restart(laggard)
    let target = leaderStatus.commit
    try await cluster.waitUntil(timeout: .seconds(15), "the laggard to catch up") {
      try await cluster.node(laggard).appliedIndex >= target
    }
    let installed = try await cluster.node(laggard).snapshotsInstalled
    XCTAssertGreaterThanOrEqual(installed, 1, "the laggard caught up by snapshot")

    // Now the group needs the laggard: the third server is cut off.
    let other = (0..<cluster.size).first { $0 != leader && $0 != laggard }!
    cluster.partition([([leader, laggard], ["ck", "checker"]), ([other], [])])
    for n in 0..<10 {
      let ok = await history.run(clerk, client: 0, .append, "k0", "after\(n);")
      XCTAssertTrue(ok, "progress with the laggard in the quorum")
    }
    let checker = cluster.clerk("checker")
    for k in ["a", "k0", "k1", "k2", "k3", "k4"] {
      let ok = await history.run(checker, client: 9, .get, k)
      XCTAssertTrue(ok)
    }
    // The laggard's own state matches the leader's, key by key.
    let leaderMachine = try XCTUnwrap(cluster.members[leader]?.stateMachine)
    let laggardMachine = try XCTUnwrap(cluster.members[laggard]?.stateMachine)
    // Every write has returned: once both have applied as far as either, they hold the same.
    let applied = max(leaderMachine.appliedIndex, laggardMachine.appliedIndex)
    try await cluster.waitUntil("both to apply the last writes") {
      laggardMachine.appliedIndex >= applied && leaderMachine.appliedIndex >= applied
    }
    for k in ["a", "k0", "k1", "k2", "k3", "k4"] {
      XCTAssertEqual(
        try laggardMachine.localValue(for: Array(k.utf8)), try leaderMachine.localValue(for: Array(k.utf8)),
        "key \(k)")
    }
    cluster.network.heal()
    history.assertLinearizable()
    await cluster.shutdown()
  }
}

/// A one-way flag shared between tasks.
final class StopFlag: Sendable {
  private let value = Mutex(false)
  var isSet: Bool { value.withLock { $0 } }
  func set() { value.withLock { $0 = true } }
}
