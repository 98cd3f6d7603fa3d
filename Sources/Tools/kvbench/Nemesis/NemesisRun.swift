import Foundation
import Linearizability
import Seeded
import ShardCtrler
import ShardKV
import SwiftProtobuf
import Wire

/// The settings every run of a campaign shares.
struct NemesisSettings: Sendable {
  var seconds: Int
  var groupSize: Int
  var clients: Int
  var keys: Int
  var kvd: String
  var directory: String
  var environment: [String: String]
  var checkSeconds: Int
  var operationDeadline: Duration
  var keepData: Bool
}

/// What one run found.
struct NemesisOutcome: Sendable {
  var operations = 0
  var unknown = 0
  /// Keys whose history is not linearizable, divergent replicas, data directories that did
  /// not reopen: safety failures.
  var violations: [String] = []
  var lostWrites = 0
  /// Not safety failures, but the run proves less: a key the checker could not decide, a
  /// cluster that did not serve again after healing, a node that did not stop on SIGTERM.
  var problems: [String] = []
  var faults: [String: Int] = [:]
}

/// One run: a cluster in fresh namespaces, clients and faults for `seconds`, then heal,
/// final reads and every check; prints as it goes.
struct NemesisRun {
  var index: Int
  var seed: UInt64
  var shape: NemesisShape
  var settings: NemesisSettings

  private let started = ContinuousClock.now

  func say(_ line: String) {
    let t = started.duration(to: .now).secondsText
    Nemesis.emit("[run \(index) \(String(repeating: " ", count: max(0, 7 - t.count)))\(t)] \(line)")
  }

  func execute() async -> NemesisOutcome {
    var outcome = NemesisOutcome()
    let count = shape == .group ? settings.groupSize : 14
    let lab: NetworkLab
    do {
      lab = try NetworkLab.create(nodes: count)
    } catch {
      outcome.problems.append("network namespaces: \(error)")
      say("cannot set up the network: \(error)")
      return outcome
    }
    NemesisCleanup.shared.register(lab)
    defer {
      lab.destroy()
      NemesisCleanup.shared.forget(lab)
    }
    let topology = NemesisTopology.make(shape, groupSize: settings.groupSize, address: lab.address)
    let schedule = FaultSchedule(seed: seed, seconds: settings.seconds, topology: topology)
    let directory = "\(settings.directory)/run-\(index)-seed-\(seed)"
    try? FileManager.default.removeItem(atPath: directory)
    try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    say(
      "seed \(seed), shape \(shape.rawValue), \(count) nodes in network namespaces \(lab.prefix)-* "
        + "(10.213.\(lab.subnet).0/24), \(settings.seconds) s, \(settings.clients) clients on \(settings.keys) keys, "
        + "data and logs in \(directory)")
    for (i, node) in topology.nodes.enumerated() {
      say("  node \(i) \(node.name): \(node.role) api \(node.api)")
    }
    for (g, members) in topology.raftGroups.enumerated() {
      say(
        "  Raft group \(g): nodes \(members)\(topology.raftGroupIDs[g].map { $0 == 0 ? "" : " (replica group \($0))" } ?? " (controller)")"
      )
    }
    say("fault schedule (\(schedule.steps.count) steps, \(schedule.steps.flatMap(\.faults).count) faults):")
    for step in schedule.steps {
      say("  \(step)")
    }
    outcome.faults = schedule.counts

    let processes = NodeProcesses(
      kvd: settings.kvd, lab: lab, topology: topology, directory: directory, environment: settings.environment
    )
    let transport = TCPTransport()
    defer { Task { await transport.shutdown() } }
    let probe = ClusterProbe(topology: topology, transport: transport)
    do {
      for node in topology.nodes.indices { try processes.start(node) }
    } catch {
      outcome.problems.append("cannot start kvd: \(error)")
      await processes.killAll()
      return outcome
    }
    var history: [RecordedOperation] = []
    defer {
      let path = "\(directory).jsonl"
      do {
        try HistoryFile.write(history, to: path)
        say("history: \(path) (check it again with `kvbench check \(path)`)")
      } catch {
        say("cannot write the history: \(error)")
      }
    }
    guard await probe.waitUntilServing(initialGroups: topology.initialGroups, within: .seconds(60), say: say)
    else {
      outcome.problems.append("the cluster did not start serving within 60 s")
      await processes.killAll()
      return outcome
    }
    say("serving; workload and faults start")

    let recorder = HistoryRecorder()
    let workload = NemesisWorkload(
      clients: settings.clients, keys: NemesisWorkload.keys(settings.keys), servers: topology.clientServers,
      operationDeadline: settings.operationDeadline)
    let stop = ContinuousClock.now + .seconds(settings.seconds)
    let workloadStart = ContinuousClock.now
    let faults = FaultInjector(lab: lab, processes: processes, topology: topology, probe: probe, say: say)
    let seed = self.seed
    var membershipChanges = 0
    await withTaskGroup(of: Int.self) { group in
      group.addTask {
        await workload.run(seed: seed, recorder: recorder, transport: transport, until: stop)
        return 0
      }
      group.addTask {
        await faults.run(schedule, from: workloadStart)
        return 0
      }
      if shape == .sharded {
        group.addTask {
          await MembershipChanges(topology: topology, transport: transport, say: say)
            .run(seed: seed, until: stop - .seconds(5))
        }
      }
      for await changes in group { membershipChanges += changes }
    }
    if shape == .sharded { outcome.faults["membership"] = membershipChanges }
    // Before healing restarts them: nodes whose process ended without the nemesis killing it.
    let crashed = processes.crashed
    await faults.healEverything()
    if !crashed.isEmpty {
      outcome.violations.append(
        "nodes \(crashed.map { topology.nodes[$0].name }) exited on their own (see their logs)")
    }
    say("workload over: \(recorder.all.count) operations; healed everything")

    // Final reads, recorded in the history like any other operation.
    let reader = KVClerk(
      servers: topology.clientServers, transport: transport, deadline: .seconds(5), callTimeout: .seconds(1))
    var finalValues: [String: String?] = [:]
    let readDeadline = ContinuousClock.now + .seconds(90)
    for key in workload.keys {
      while finalValues[key] == nil && ContinuousClock.now < readDeadline {
        let op = await recorder.run(reader, client: settings.clients, .get, key)
        if op.result == .ok { finalValues[key] = .some(op.output) }
      }
    }
    history = recorder.all
    outcome.operations = history.count
    outcome.unknown = history.filter { $0.result == .unknown }.count
    if finalValues.count < workload.keys.count {
      outcome.problems.append("the cluster did not serve every key within 90 s of healing")
      say("not serving after healing: read \(finalValues.count) of \(workload.keys.count) keys")
    }

    // Linearizability of the whole history, and acknowledged writes.
    let report = HistoryReport.check(
      history, limits: .init(deadline: .now + .seconds(settings.checkSeconds)), window: 30)
    for line in report.text.split(separator: "\n") { say(String(line)) }
    outcome.violations += report.violatingKeys.map { "key \($0) not linearizable" }
    outcome.problems += report.inconclusiveKeys.map { "key \($0): the checker could not decide in time" }
    let lost = LostWrites.find(in: history, finalValues: finalValues)
    outcome.lostWrites = lost.count
    let origin = history.map(\.call).min() ?? 0
    say("lost writes: \(lost.count)")
    for op in lost.prefix(20) { say(HistoryFile.describe(op, origin: origin)) }

    // Replicas of each group hold identical state, and keep it across a restart.
    let before = await probe.waitForIdenticalReplicas(keys: workload.keys, within: .seconds(30))
    for problem in before.problems { say(problem) }
    outcome.violations += before.problems
    say("stopping every node (SIGTERM) and restarting it on its data directory")
    let stopping = ContinuousClock.now
    let stopProblems = await processes.stopAll()
    say("every node stopped in \(stopping.duration(to: .now).secondsText) s")
    outcome.problems += stopProblems
    for problem in stopProblems { say(problem) }
    do {
      for node in topology.nodes.indices { try processes.start(node) }
    } catch {
      outcome.problems.append("cannot restart kvd: \(error)")
    }
    let reopened = await probe.waitForStatus(within: .seconds(60), processes: processes)
    outcome.violations += reopened
    for problem in reopened { say(problem) }
    if reopened.isEmpty {
      let after = await probe.waitForIdenticalReplicas(keys: workload.keys, within: .seconds(30))
      for (g, values) in after.values where before.values[g] != values {
        let problem = "replica group \(g) holds different values after reopening its data directories"
        say(problem)
        outcome.violations.append(problem)
      }
      outcome.violations += after.problems
      say(
        "every data directory reopened; replicas identical: \(before.problems.isEmpty && after.problems.isEmpty)"
      )
    }
    await processes.killAll()
    if outcome.violations.isEmpty && outcome.lostWrites == 0 && !settings.keepData {
      for node in topology.nodes.indices {
        try? FileManager.default.removeItem(atPath: processes.dataDirectory(node))
      }
    }
    return outcome
  }
}

/// Carries out a `FaultSchedule` against the live cluster, resolving "the leader" when each
/// fault begins, and undoes each fault when it ends.
struct FaultInjector: Sendable {
  let lab: NetworkLab
  let processes: NodeProcesses
  let topology: NemesisTopology
  let probe: ClusterProbe
  let say: @Sendable (String) -> Void

  func run(_ schedule: FaultSchedule, from start: ContinuousClock.Instant) async {
    for step in schedule.steps {
      try? await Task.sleep(until: start + step.at)
      var links: Set<NetworkLab.Link> = []
      var undo: [@Sendable () async -> Void] = []
      for fault in step.faults {
        let begun = await begin(fault)
        links.formUnion(begun.links)
        if let end = begun.undo { undo.append(end) }
      }
      if !links.isEmpty { apply(links) }
      try? await Task.sleep(until: start + step.at + step.lasts)
      if !links.isEmpty {
        apply([])
        say("  healed the network")
      }
      for end in undo { await end() }
    }
  }

  private func resolve(_ target: FaultSchedule.Target) async -> Int {
    switch target {
    case .node(let n): return n
    case .leader(let g):
      if let leader = await probe.leader(of: topology.raftGroups[g]) { return leader }
      let fallback = topology.raftGroups[g][0]
      say("  no leader known in Raft group \(g); node \(fallback) instead")
      return fallback
    }
  }

  private func name(_ node: Int) -> String { "node \(node) (\(topology.nodes[node].name))" }

  private func links(between left: [Int], and right: [Int]) -> Set<NetworkLab.Link> {
    var links: Set<NetworkLab.Link> = []
    for a in left {
      for b in right where a != b {
        links.insert(.init(from: a, to: b))
        links.insert(.init(from: b, to: a))
      }
    }
    return links
  }

  /// Starts `fault`'s process part; returns the links it drops (the caller drops those of
  /// every fault of a step at once) and what ends its process part.
  private func begin(
    _ fault: FaultSchedule.Fault
  ) async -> (links: Set<NetworkLab.Link>, undo: (@Sendable () async -> Void)?) {
    let everyone = Array(topology.nodes.indices)
    switch fault {
    case .kill(let target):
      let node = await resolve(target)
      await processes.kill9(node)
      say("fault: kill -9 \(name(node))")
      return (
        [],
        { [processes, say] in
          do {
            try processes.start(node)
            say("  restarted node \(node)")
          } catch {
            say("  cannot restart node \(node): \(error)")
          }
        }
      )
    case .pause(let target):
      let node = await resolve(target)
      processes.pause(node)
      say("fault: SIGSTOP \(name(node))")
      return (
        [],
        { [processes, say] in
          processes.resume(node)
          say("  SIGCONT node \(node)")
        }
      )
    case .splitGroup(_, let minority):
      let rest = everyone.filter { !minority.contains($0) }
      say("fault: partition \(minority) | the rest")
      return (links(between: minority, and: rest), nil)
    case .isolate(let target):
      let node = await resolve(target)
      say("fault: isolate \(name(node))")
      return (links(between: [node], and: everyone), nil)
    case .bridge(_, let bridge, let left, let right):
      say("fault: bridge \(left) | \(right) through node \(bridge)")
      return (links(between: left, and: right), nil)
    case .oneWay(let target, let g):
      let node = await resolve(target)
      say("fault: drop everything \(name(node)) sends to the rest of Raft group \(g)")
      return (
        Set(topology.raftGroups[g].filter { $0 != node }.map { NetworkLab.Link(from: node, to: $0) }), nil
      )
    }
  }

  private func apply(_ links: Set<NetworkLab.Link>) {
    do { try lab.drop(links) } catch { say("  cannot drop links: \(error)") }
  }

  /// Restores the network, resumes paused nodes and restarts dead ones.
  func healEverything() async {
    try? lab.heal()
    for node in topology.nodes.indices {
      processes.resume(node)
      if !processes.isRunning(node) { try? processes.start(node) }
    }
  }
}

/// Joins, leaves and shard moves through the controller while the faults run (sharded shape).
struct MembershipChanges: Sendable {
  let topology: NemesisTopology
  let transport: any Transport
  let say: @Sendable (String) -> Void

  /// Returns how many changes the controller accepted.
  func run(seed: UInt64, until stop: ContinuousClock.Instant) async -> Int {
    var random = SeededGenerator(seed: seed ^ 0x6d65_6d62)
    var joined = Set(topology.initialGroups)
    let all = Set(topology.keyGroups.map(\.gid))
    let clerk = ControllerClerk(servers: topology.controllers, transport: transport, deadline: .seconds(10))
    var accepted = 0
    while true {
      let wait = Duration.milliseconds(Int.random(in: 4000...9000, using: &random))
      guard ContinuousClock.now + wait < stop else { break }
      try? await Task.sleep(for: wait)
      let roll = Int.random(in: 0..<10, using: &random)
      let absent = all.subtracting(joined).sorted()
      let present = joined.sorted()
      let what: String
      do throws(ControllerClientError) {
        if !absent.isEmpty && roll < 4 {
          let gid = absent.randomElement(using: &random) ?? absent[0]
          what = "join group \(gid)"
          try await clerk.join([gid: topology.members(of: gid)])
          joined.insert(gid)
        } else if present.count >= 2 && roll < 6 {
          let gid = present.randomElement(using: &random) ?? present[0]
          what = "leave group \(gid)"
          try await clerk.leave([gid])
          joined.remove(gid)
        } else {
          let shard = Int.random(in: 0..<NemesisTopology.shardCount, using: &random)
          let gid = present.randomElement(using: &random) ?? present[0]
          what = "move shard \(shard) to group \(gid)"
          try await clerk.move(shard: shard, to: gid)
        }
        accepted += 1
        say("membership: \(what)")
      } catch {
        say("membership: a change failed: \(error)")
        // It may have happened anyway: ask.
        if let latest = try? await clerk.query() { joined = Set(latest.groups.keys) }
      }
    }
    return accepted
  }
}
