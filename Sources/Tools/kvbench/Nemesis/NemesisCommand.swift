import ArgumentParser
import Foundation
import Logging

/// `kvbench nemesis`: real kvd processes in network namespaces under kill -9, pauses,
/// partitions and membership changes, every client history checked for linearizability.
struct Nemesis: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "nemesis",
    abstract: "Run real kvd processes under faults and check every client history (needs root).",
    discussion: """
      Each run starts a cluster of real kvd processes, each in its own network namespace on one \
      bridge (so partitions are real: a dropped link is a blackhole route), runs --clients \
      concurrent clients doing put/append/get/delete on --keys keys for --seconds, and injects \
      faults from a schedule drawn from the run's seed: kill -9 and restart, SIGSTOP/SIGCONT \
      pauses longer than the election timeout, partitions (majority/minority, isolated node or \
      leader, bridge) and one-way drops; with --shape sharded also joins, leaves and shard \
      moves. Then it heals everything, reads every key, checks the history for \
      linearizability (timeouts count as unknown: they may or may not have taken effect), \
      looks for acknowledged writes missing from the final values, checks that the replicas \
      of each group hold identical state (direct_get), and restarts every node on its data \
      directory.

      Run K uses seed --seed + K - 1; the seed and the fault schedule are printed first, and \
      `kvbench nemesis --seed S --runs 1 ...` replays the schedule (timing is real, so \
      interleavings differ). Histories are written next to the data (DIR/run-K-seed-S.jsonl) \
      for `kvbench check`. The last line is `nemesis: K runs, N operations checked, V \
      violations, L lost writes`; the exit status is 1 when V or L is not zero, 2 when a run \
      could not prove its point (the checker ran out of time, the cluster did not serve \
      again), 0 otherwise. Ctrl-C kills the nodes and deletes the namespaces.

      Shapes: group (one standalone group of --nodes members) and sharded (a controller of 3 \
      replicas, 3 replica groups of 3, 2 routers; clients go through the routers); both \
      alternates them, starting with group.
      """)

  enum ShapeChoice: String, ExpressibleByArgument, CaseIterable {
    case group, sharded, both
  }

  @Option(help: "Seconds of workload and faults per run.")
  var seconds = 60

  @Option(help: "Seed of the first run (default: random, printed).")
  var seed: UInt64?

  @Option(help: "Runs, each with the next seed.")
  var runs = 1

  @Option(help: "Cluster shape: group, sharded, or both (alternating).")
  var shape = ShapeChoice.group

  @Option(help: "Members of the standalone group (group shape; 3 or 5).")
  var nodes = 3

  @Option(help: "Concurrent clients.")
  var clients = 8

  @Option(help: "Keys the clients share.")
  var keys = 6

  @Option(help: "Milliseconds one operation may take, clerk retries included, before it counts as unknown.")
  var opTimeoutMs = 4000

  @Option(help: "Time bound of the linearizability check of one run, in seconds.")
  var checkSeconds = 120

  @Option(help: "The kvd binary (default: the one next to kvbench).")
  var kvd: String?

  @Option(help: "Where runs keep data directories, logs and histories.")
  var dir = "nemesis-runs"

  @Option(
    help: ArgumentHelp(
      "An environment variable for every kvd (repeatable), e.g. SHARDKV_UNSAFE_STALE_READS=1.",
      valueName: "NAME=VALUE"))
  var kvdEnv: [String] = []

  @Flag(help: "Keep the data directories of runs that passed.")
  var keep = false

  @Flag(help: "Print each run's seed and fault schedule, then stop.")
  var dryRun = false

  func validate() throws {
    guard seconds >= 10 else { throw ValidationError("--seconds must be at least 10") }
    guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
    guard nodes == 3 || nodes == 5 else { throw ValidationError("--nodes must be 3 or 5") }
    guard clients >= 1, keys >= 1 else { throw ValidationError("--clients and --keys must be positive") }
    guard opTimeoutMs >= 100, checkSeconds >= 1 else { throw ValidationError("timeouts must be positive") }
    for entry in kvdEnv where !entry.contains("=") {
      throw ValidationError("--kvd-env takes NAME=VALUE, not '\(entry)'")
    }
  }

  private func shape(ofRun k: Int) -> NemesisShape {
    switch shape {
    case .group: .group
    case .sharded: .sharded
    case .both: k % 2 == 1 ? .group : .sharded
    }
  }

  func run() async throws {
    let first = seed ?? UInt64.random(in: 0..<1_000_000)
    if dryRun {
      for k in 1...runs {
        let runSeed = first &+ UInt64(k - 1)
        let topology = NemesisTopology.make(shape(ofRun: k), groupSize: nodes) { "10.213.0.\($0 + 1)" }
        let schedule = FaultSchedule(seed: runSeed, seconds: seconds, topology: topology)
        print(
          "run \(k): seed \(runSeed), shape \(shape(ofRun: k).rawValue), \(schedule.steps.count) steps, \(schedule.steps.flatMap(\.faults).count) faults"
        )
        for step in schedule.steps {
          print("  \(step)")
        }
      }
      return
    }
    // Connection errors are the point of the exercise: only errors reach stderr.
    LoggingSystem.bootstrap { label in
      var handler = StreamLogHandler.standardError(label: label)
      handler.logLevel = .error
      return handler
    }
    let binary =
      kvd
      ?? (Bundle.main.executableURL?.deletingLastPathComponent().appendingPathComponent("kvd").path ?? "kvd")
    guard FileManager.default.isExecutableFile(atPath: binary) else {
      throw ValidationError("no kvd at \(binary) (build it, or give --kvd PATH)")
    }
    let environment = Dictionary(
      kvdEnv.map { entry in
        let parts = entry.split(separator: "=", maxSplits: 1)
        return (String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
      }, uniquingKeysWith: { $1 })
    let settings = NemesisSettings(
      seconds: seconds, groupSize: nodes, clients: clients, keys: keys, kvd: binary,
      directory: URL(fileURLWithPath: dir).standardizedFileURL.path, environment: environment,
      checkSeconds: checkSeconds, operationDeadline: .milliseconds(opTimeoutMs), keepData: keep)
    NemesisCleanup.shared.installSignalHandlers()
    Self.emit(
      "nemesis: \(runs) runs of \(seconds) s from seed \(first), shape \(shape.rawValue); network: namespaces"
    )
    if !environment.isEmpty { Self.emit("nemesis: kvd environment \(kvdEnv.joined(separator: " "))") }
    var (operations, violations, lost, problems) = (0, 0, 0, 0)
    var faults: [String: Int] = [:]
    for k in 1...runs {
      let runSeed = first &+ UInt64(k - 1)
      let outcome = await NemesisRun(index: k, seed: runSeed, shape: shape(ofRun: k), settings: settings)
        .execute()
      operations += outcome.operations
      violations += outcome.violations.count
      lost += outcome.lostWrites
      problems += outcome.problems.count
      faults.merge(outcome.faults, uniquingKeysWith: +)
      let verdict =
        outcome.violations.isEmpty && outcome.lostWrites == 0
        ? (outcome.problems.isEmpty ? "PASS" : "INCONCLUSIVE") : "FAIL"
      Self.emit(
        "run \(k) \(verdict): seed \(runSeed), shape \(shape(ofRun: k).rawValue), \(outcome.operations) operations "
          + "(\(outcome.unknown) unknown), faults \(Self.describe(outcome.faults)), "
          + "\(outcome.violations.count) violations, \(outcome.lostWrites) lost writes")
      for line in outcome.violations { Self.emit("  violation: \(line)") }
      for line in outcome.problems { Self.emit("  problem: \(line)") }
    }
    Self.emit("nemesis: faults \(Self.describe(faults)); \(problems) problems")
    Self.emit(
      "nemesis: \(runs) runs, \(operations) operations checked, \(violations) violations, \(lost) lost writes"
    )
    if violations > 0 || lost > 0 { throw ExitCode(1) }
    if problems > 0 { throw ExitCode(2) }
  }

  /// A line on stdout at once (progress of a long campaign must reach a log file promptly).
  static func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
  }

  static func describe(_ faults: [String: Int]) -> String {
    faults.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
  }
}
