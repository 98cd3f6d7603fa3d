import Foundation
import Raft
import ShardCtrler
import ShardKV
import SwiftProtobuf
import Wire

// `kvctl -a ADDR rebalance`: plans shard moves that balance the groups (RebalancePlan), shows
// them, and carries them out through the controller, each move a single controller operation.

let rebalanceUsage = """
  usage: kvctl -a ADDR rebalance [--dry-run] [--by count|size] [--max-concurrent N]
                                 [--rate MB/s] [--threshold PCT] [--yes]

  Balances the groups of a sharded cluster by moving shards through the controller. ADDR is a
  router or a controller replica. Reads the configuration and each group's shard sizes
  (`kv.shards` on the first member of each group that answers), prints the plan, one line per
  move ("shard S: G1 -> G2 (N keys, M MB)") and each group's balance before and after, asks
  "Proceed? [y/N]" (no terminal or end of input means no), then makes the moves and waits for
  each to finish (the new owner serves the shard, the old one no longer holds it).

    --by count         every group ends with ⌊S/G⌋ or ⌈S/G⌉ shards, moving the fewest (default)
    --by size          balance stored bytes: move shards until every group is within the
                       threshold of the mean
    --threshold PCT    for --by size: how far from the mean a group may be (default 5)
    --max-concurrent N at most N moves in flight (default 1)
    --rate MB/s        start moves no faster than this average rate (MB = 10^6 bytes). The
                       migration itself is not throttled server-side: this only paces when
                       moves start, a single large shard still moves at full speed
    --dry-run          print the plan and change nothing
    --yes              do not ask for confirmation

  Progress: on a terminal one updating line; otherwise one line per finished move. Ctrl-C
  stops starting moves, lets those in flight finish, prints what was done and exits 130 (a
  second Ctrl-C quits at once; moves already recorded finish on their own). Exit status: 0
  done or nothing to do, 2 a usage error, 3 unavailable, 4 not confirmed or refused, 130 interrupted.
  """

/// `rebalance`'s own flags (the words after the verb; `-a` and `--timeout` are kvctl's).
struct RebalanceOptions {
  var dryRun = false
  var mode = RebalanceMode.count
  var maxConcurrent = 1
  /// MB (10^6 bytes) per second.
  var rate: Double?
  var threshold: Double?
  var yes = false
  var help = false

  init(_ words: [String]) throws(Failure) {
    var rest = words.dropFirst()
    while let word = rest.popFirst() {
      // --flag=VALUE or --flag VALUE.
      let parts = word.split(separator: "=", maxSplits: 1).map(String.init)
      let flag = parts.first ?? word
      func value() throws(Failure) -> String {
        if parts.count == 2 { return parts[1] }
        guard let next = rest.popFirst() else {
          throw Failure(message: "rebalance: \(flag) needs a value", status: .usage)
        }
        return next
      }
      func noValue() throws(Failure) {
        guard parts.count == 1 else {
          throw Failure(message: "rebalance: \(flag) takes no value", status: .usage)
        }
      }
      switch flag {
      case "--dry-run":
        try noValue()
        dryRun = true
      case "--yes", "-y":
        try noValue()
        yes = true
      case "-h", "--help":
        help = true
      case "--by":
        let text = try value()
        guard let parsed = RebalanceMode(rawValue: text) else {
          throw Failure(message: "rebalance: --by takes count or size, not '\(text)'", status: .usage)
        }
        mode = parsed
      case "--max-concurrent":
        let text = try value()
        guard let count = Int(text), count >= 1 else {
          throw Failure(
            message: "rebalance: --max-concurrent needs a whole number ≥ 1, not '\(text)'", status: .usage)
        }
        maxConcurrent = count
      case "--rate":
        let text = try value()
        guard let megabytes = Double(text), megabytes.isFinite, megabytes > 0 else {
          throw Failure(
            message: "rebalance: --rate needs a positive number of MB/s, not '\(text)'", status: .usage)
        }
        rate = megabytes
      case "--threshold":
        let text = try value()
        let number = text.hasSuffix("%") ? String(text.dropLast()) : text
        guard let percent = Double(number), percent.isFinite, (0...100).contains(percent) else {
          throw Failure(
            message: "rebalance: --threshold needs a percentage from 0 to 100, not '\(text)'", status: .usage)
        }
        threshold = percent
      default:
        throw Failure(
          message: "rebalance: unknown argument '\(word)'; see kvctl --help", status: .usage)
      }
    }
    if threshold != nil && mode != .size {
      throw Failure(message: "rebalance: --threshold applies to --by size only", status: .usage)
    }
  }
}

/// `kvctl -a ADDR rebalance …`: returns the exit status (0 done or nothing to do, 130
/// interrupted) and the plan as a document; throws `Failure` for usage errors (status 2) and
/// failures.
func runRebalance(
  _ words: [String], servers: [String], transport: TCPTransport, timeout: Duration
) async throws
  -> Outcome
{
  let options = try RebalanceOptions(words)
  if options.help {
    print(rebalanceUsage)
    return ok()
  }
  let controller = ControllerClerk(servers: servers, transport: transport, deadline: timeout)
  let config = try await controller.query()
  guard !config.groups.isEmpty else {
    throw Failure(
      message: "rebalance: configuration \(config.num) has no groups: there is nothing to balance")
  }
  let survey = try await ShardSurvey.take(config, transport: transport, timeout: timeout)
  for warning in survey.warnings { rebalanceWarning(warning) }
  let plan: RebalancePlan
  do {
    plan = try RebalancePlan(
      configuration: config, sizes: survey.sizes, mode: options.mode,
      threshold: options.threshold ?? RebalancePlan.defaultThreshold)
  } catch {
    throw Failure(message: "rebalance: \(error)")
  }
  print(RebalanceFormat.plan(plan, configuration: config.num))
  // The document: the plan, and whether it was carried out.
  func document(_ status: ExitCode, done: Bool) -> Outcome {
    let moves: [JSON] = plan.moves.map { move in
      .object([
        ("shard", .number(Int64(move.shard))), ("from", .unsigned(move.from)), ("to", .unsigned(move.to)),
        ("bytes", .unsigned(plan.sizes[move.shard].bytes)),
      ])
    }
    return Outcome(
      status: status,
      document: .object([
        ("config", .unsigned(config.num)), ("dry_run", .bool(options.dryRun)), ("moves", .array(moves)),
        ("done", .bool(done)),
      ]))
  }
  guard !plan.isEmpty else { return document(.success, done: true) }
  if options.dryRun {
    print("Dry run: nothing was changed.")
    return document(.success, done: false)
  }
  if !options.yes {
    guard confirmRebalance() else {
      throw Failure(
        message: "rebalance: not confirmed; nothing was changed (--yes skips the question)", status: .rejected
      )
    }
  }
  let run = RebalanceRun(
    plan: plan, controller: controller, transport: transport, timeout: timeout,
    maxConcurrent: options.maxConcurrent, rate: options.rate)
  let status = try await run.execute()
  return document(status == 0 ? .success : .interrupted, done: status == 0)
}

func rebalanceWarning(_ message: String) {
  FileHandle.standardError.write(Data("kvctl: warning: \(message)\n".utf8))
}

/// Asks "Proceed? [y/N]" on standard input; anything but y or yes, end of input, or an input
/// that is not a terminal means no.
func confirmRebalance() -> Bool {
  print("Proceed? [y/N] ", terminator: "")
  fflush(nil)
  guard isatty(STDIN_FILENO) == 1 else {
    print("")
    rebalanceWarning("standard input is not a terminal: taking that as no")
    return false
  }
  guard let answer = readLine() else {
    print("")
    return false
  }
  return ["y", "yes"].contains(answer.trimmingCharacters(in: .whitespaces).lowercased())
}

// MARK: - Shard sizes

/// What one group's member reported from `kv.shards`.
struct GroupShardsReport: Sendable {
  var member: String
  var reply: Shardkv_ShardsReply

  func info(_ shard: Int) -> Shardkv_ShardInfo? {
    reply.shards.first { Int($0.shard) == shard }
  }
}

/// Asks the members of `gid` in order for `kv.shards` and returns the first reply of a member
/// that answers as part of that group; throws naming each member's failure.
func groupShardsReport(
  _ gid: GroupID, members: [String], transport: TCPTransport, timeout: Duration
) async throws(Failure) -> GroupShardsReport {
  var failures: [String] = []
  let callTimeout = min(timeout, .seconds(3))
  for member in members {
    do {
      let bytes = try await transport.call(
        member, method: KVMethod.shards, payload: try Shardkv_ShardsRequest().serializedBytes(),
        timeout: callTimeout)
      let reply = try Shardkv_ShardsReply(serializedBytes: bytes)
      guard reply.group == gid else {
        failures.append("\(member) answers as group \(reply.group)")
        continue
      }
      return GroupShardsReport(member: member, reply: reply)
    } catch {
      failures.append("\(member): \(error)")
    }
  }
  let why = members.isEmpty ? "it has no members" : failures.joined(separator: "; ")
  throw Failure(message: "group \(gid): no member answered kv.shards (\(why))")
}

/// Each shard's size, as the groups report them.
struct ShardSurvey {
  var sizes: [ShardSize]
  var warnings: [String]

  /// One `kv.shards` report per group. A shard's size comes from its owner when the owner
  /// serves it; a shard still moving is sized by the group that holds all its data.
  static func take(
    _ config: ShardConfiguration, transport: TCPTransport, timeout: Duration
  ) async throws
    -> ShardSurvey
  {
    var reports: [GroupID: GroupShardsReport] = [:]
    for gid in config.groups.keys.sorted() {
      reports[gid] = try await groupShardsReport(
        gid, members: config.groups[gid] ?? [], transport: transport, timeout: timeout)
    }
    var survey = ShardSurvey(sizes: [], warnings: [])
    for (shard, owner) in config.shards.enumerated() {
      let own = reports[owner]?.info(shard)
      if let own, own.phase == .serving {
        survey.sizes.append(ShardSize(keys: own.keys, bytes: own.bytes))
        continue
      }
      // Another group that still holds the shard whole: it serves it in an older configuration
      // or hands it off.
      let holder = reports.keys.sorted().first { gid in
        guard gid != owner, let phase = reports[gid]?.info(shard)?.phase else { return false }
        return phase == .serving || phase == .handingOff
      }
      if let holder, let info = reports[holder]?.info(shard) {
        survey.sizes.append(ShardSize(keys: info.keys, bytes: info.bytes))
        survey.warnings.append(
          "shard \(shard) is still moving to group \(owner); sized as group \(holder) holds it")
      } else if let own {
        survey.sizes.append(ShardSize(keys: own.keys, bytes: own.bytes))
        survey.warnings.append("shard \(shard) is still being pulled by group \(owner); its size is partial")
      } else {
        survey.sizes.append(ShardSize())
        let at = reports[owner].map { "configuration \($0.reply.configNum)" } ?? "no report"
        survey.warnings.append(
          "group \(owner) does not report shard \(shard) yet (it is at \(at), the controller at "
            + "\(config.num)); counted as empty")
      }
    }
    return survey
  }
}

// MARK: - Output

enum RebalanceFormat {
  /// Bytes as MB (10^6 bytes), two decimals.
  static func megabytes(_ bytes: UInt64) -> String {
    String(format: "%.2f MB", Double(bytes) / 1_000_000)
  }

  static func move(_ move: ShardMove, _ size: ShardSize) -> String {
    "shard \(move.shard): \(move.from) -> \(move.to) (\(size.keys) keys, \(megabytes(size.bytes)))"
  }

  static func seconds(_ duration: Duration) -> String {
    let value = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    return value < 10 ? String(format: "%.1f s", value) : String(format: "%.0f s", value)
  }

  /// One group's balance, with its bytes relative to the mean.
  static func balance(_ group: GroupBalance, mean: Double) -> String {
    let deviation = mean > 0 ? String(format: " (%+.1f%%)", (Double(group.bytes) - mean) / mean * 100) : ""
    return
      "\(group.shards) shard\(group.shards == 1 ? "" : "s"), \(group.keys) keys, \(megabytes(group.bytes))\(deviation)"
  }

  static func plan(_ plan: RebalancePlan, configuration num: UInt64) -> String {
    let total = plan.before.reduce(0) { $0 + $1.bytes }
    let mean = plan.before.isEmpty ? 0 : Double(total) / Double(plan.before.count)
    let criterion =
      plan.mode == .count
      ? "by count (every group ⌊S/G⌋ or ⌈S/G⌉ shards)"
      : "by size (every group within \(String(format: "%g", plan.threshold))% of the mean, "
        + "\(megabytes(UInt64(mean.rounded()))))"
    var lines: [String] = []
    if plan.isEmpty && plan.wasBalanced {
      lines.append(
        "Nothing to do: configuration \(num) is already balanced "
          + (plan.mode == .count
            ? "by count (within one shard)."
            : "by size (every group within \(String(format: "%g", plan.threshold))% of the mean)."))
    } else if plan.isEmpty {
      lines.append(
        "Nothing to do: configuration \(num) is outside the threshold by size, but no move or swap of "
          + "whole shards brings the groups closer.")
    } else {
      lines.append(
        "Plan \(criterion), from configuration \(num): \(plan.moves.count) "
          + "move\(plan.moves.count == 1 ? "" : "s"), \(megabytes(plan.movedBytes))")
      for step in plan.moves { lines.append(move(step, plan.sizes[step.shard])) }
    }
    lines.append(plan.isEmpty ? "Balance:" : "Balance before -> after:")
    for (before, after) in zip(plan.before, plan.after) {
      var line = "  group \(before.group): \(balance(before, mean: mean))"
      if !plan.isEmpty { line += " -> \(balance(after, mean: mean))" }
      lines.append(line)
    }
    return lines.joined(separator: "\n")
  }
}

// MARK: - Carrying out a plan

/// SIGINT while moves run: the first stops new moves, a second quits at once.
final class RebalanceInterrupt: @unchecked Sendable {
  // Every stored property is read and written only under `lock`.
  private let lock = NSLock()
  private var count = 0
  private var source: (any DispatchSourceSignal)?

  var isSet: Bool {
    lock.lock()
    defer { lock.unlock() }
    return count > 0
  }

  func install() {
    signal(SIGINT, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: DispatchQueue(label: "kvctl.sigint"))
    source.setEventHandler { [self] in fire() }
    source.resume()
    lock.lock()
    self.source = source
    lock.unlock()
  }

  func uninstall() {
    lock.lock()
    let source = self.source
    self.source = nil
    lock.unlock()
    source?.cancel()
    signal(SIGINT, SIG_DFL)
  }

  private func fire() {
    lock.lock()
    count += 1
    let first = count == 1
    lock.unlock()
    if first {
      FileHandle.standardError.write(
        Data(
          "\nkvctl: interrupted: no new move starts; waiting for the moves in flight to finish (Ctrl-C again quits now)\n"
            .utf8))
    } else {
      FileHandle.standardError.write(
        Data(
          "\nkvctl: quitting with moves in flight; the controller has recorded them and the groups finish them on their own (see kvctl config, kvctl shards)\n"
            .utf8))
      fflush(nil)
      exit(130)
    }
  }
}

/// The moves done so far, printed as progress: one updating line on a terminal, else a line
/// per finished move.
actor RebalanceProgress {
  let total: Int
  let totalBytes: UInt64
  let terminal: Bool
  let start = ContinuousClock.now
  private(set) var done: [ShardMove] = []
  private(set) var doneBytes: UInt64 = 0
  private(set) var inFlight: Set<Int> = []
  private(set) var lastConfiguration: UInt64 = 0
  private var ended = false

  /// `--rate` in MB/s: the run cannot end before the total bytes at this rate.
  let rateLimit: Double?

  init(total: Int, totalBytes: UInt64, terminal: Bool, rateLimit: Double?) {
    self.total = total
    self.totalBytes = totalBytes
    self.terminal = terminal
    self.rateLimit = rateLimit
  }

  func started(_ move: ShardMove) {
    inFlight.insert(move.shard)
    redraw()
  }

  func finished(_ move: ShardMove, size: ShardSize, configuration: UInt64, took: Duration) {
    inFlight.remove(move.shard)
    done.append(move)
    doneBytes += size.bytes
    lastConfiguration = max(lastConfiguration, configuration)
    if terminal {
      redraw()
    } else {
      print(
        "moved \(RebalanceFormat.move(move, size)) in \(RebalanceFormat.seconds(took)), configuration "
          + "\(configuration); \(status())")
      fflush(nil)
    }
  }

  func abandoned(_ move: ShardMove) {
    inFlight.remove(move.shard)
    redraw()
  }

  /// `k/n moves, X of Y MB, R MB/s, ETA T`.
  func status() -> String {
    let elapsed = ContinuousClock.now - start
    let seconds = max(
      Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18, 0.001)
    let rate = Double(doneBytes) / 1_000_000 / seconds
    let fraction: Double
    if totalBytes > 0 {
      fraction = Double(doneBytes) / Double(totalBytes)
    } else {
      fraction = total > 0 ? Double(done.count) / Double(total) : 1
    }
    // Remaining time at the rate so far, and no sooner than --rate allows.
    var remaining = fraction > 0 ? seconds * (1 - fraction) / fraction : nil
    if let rateLimit, let estimate = remaining {
      remaining = max(estimate, Double(totalBytes) / 1_000_000 / rateLimit - seconds)
    }
    let eta = done.count == total ? "0 s" : remaining.map { RebalanceFormat.seconds(.seconds($0)) } ?? "?"
    return "\(done.count)/\(total) moves, \(RebalanceFormat.megabytes(doneBytes)) of "
      + "\(RebalanceFormat.megabytes(totalBytes)), \(String(format: "%.2f", rate)) MB/s, ETA \(eta)"
  }

  /// Redraws the terminal's progress line (until `endLine`).
  func redraw() {
    guard terminal, !ended else { return }
    let moving: String
    if !inFlight.isEmpty {
      moving =
        "; moving shard\(inFlight.count == 1 ? "" : "s") "
        + inFlight.sorted().map(String.init).joined(separator: ",")
    } else if done.count < total && rateLimit != nil {
      moving = "; pacing for --rate"
    } else {
      moving = ""
    }
    print("\r\u{1B}[K" + status() + moving, terminator: "")
    fflush(nil)
  }

  /// Ends the terminal's progress line for good.
  func endLine() {
    guard terminal, !ended else { return }
    ended = true
    print("")
    fflush(nil)
  }
}

/// Carries out a plan: at most `maxConcurrent` moves in flight, each a controller Move followed
/// by waiting until the new owner serves the shard and the old owner no longer holds it; starts
/// paced so that the bytes started never exceed `rate` MB/s since the run began.
struct RebalanceRun: Sendable {
  var plan: RebalancePlan
  var controller: ControllerClerk
  var transport: TCPTransport
  var timeout: Duration
  var maxConcurrent: Int
  var rate: Double?
  /// How long a move may show no progress (no change in either group's report) before the run
  /// gives up waiting for it.
  var stallLimit: Duration { max(timeout * 6, .seconds(60)) }

  enum Outcome: Sendable {
    case done
    case failed(String)
  }

  func execute() async throws -> Int32 {
    let interrupt = RebalanceInterrupt()
    interrupt.install()
    defer { interrupt.uninstall() }
    let progress = RebalanceProgress(
      total: plan.moves.count, totalBytes: plan.movedBytes, terminal: isatty(STDOUT_FILENO) == 1,
      rateLimit: rate)
    let ticker = Task {
      while !Task.isCancelled {
        try? await Task.sleep(for: .milliseconds(500))
        if !Task.isCancelled { await progress.redraw() }
      }
    }
    var failures: [String] = []
    var started = 0
    var startedBytes: UInt64 = 0
    let clock = ContinuousClock()
    let begin = clock.now
    await withTaskGroup(of: Outcome.self) { group in
      var inFlight = 0
      while true {
        let stopping = interrupt.isSet || !failures.isEmpty || started == plan.moves.count
        if stopping || inFlight >= maxConcurrent {
          guard inFlight > 0, let outcome = await group.next() else { break }
          inFlight -= 1
          if case .failed(let message) = outcome { failures.append(message) }
          continue
        }
        let move = plan.moves[started]
        let size = plan.sizes[move.shard]
        if let rate {
          // Start only once the bytes of every move started so far, this one included, fit
          // under the rate since the run began.
          let due = begin + .seconds(Double(startedBytes + size.bytes) / (rate * 1_000_000))
          if clock.now < due {
            try? await Task.sleep(for: min(due - clock.now, .milliseconds(100)))
            continue
          }
        }
        started += 1
        startedBytes += size.bytes
        inFlight += 1
        await progress.started(move)
        group.addTask { await perform(move, size: size, progress: progress) }
      }
    }
    ticker.cancel()
    await progress.endLine()

    let done = await progress.done
    let moved = await progress.doneBytes
    let configuration = await progress.lastConfiguration
    let took = RebalanceFormat.seconds(clock.now - begin)
    let total = plan.moves.count
    let doneList =
      done.isEmpty
      ? "" : " (shard\(done.count == 1 ? "" : "s") \(done.map { String($0.shard) }.joined(separator: ", ")))"
    var summary =
      "\(done.count) of \(total) moves done\(doneList), \(RebalanceFormat.megabytes(moved)) in \(took)"
    if configuration > 0 { summary += "; configuration \(configuration)" }
    if !failures.isEmpty {
      print("Stopped: " + summary + "; \(total - started) not started.")
      fflush(nil)
      throw Failure(message: "rebalance: " + failures.joined(separator: "; "))
    }
    if interrupt.isSet && done.count < total {
      print(
        "Interrupted: " + summary + "; \(total - started) not started. Every move made is complete; "
          + "run rebalance again to go on.")
      fflush(nil)
      return 130
    }
    print(
      "Done: \(total) move\(total == 1 ? "" : "s"), \(RebalanceFormat.megabytes(moved)) in \(took); "
        + "configuration \(configuration).")
    return 0
  }

  /// One move: the controller's Move, then waiting until it has finished.
  func perform(_ move: ShardMove, size: ShardSize, progress: RebalanceProgress) async -> Outcome {
    let clock = ContinuousClock()
    let begin = clock.now
    let config: ShardConfiguration
    do {
      config = try await controller.move(shard: move.shard, to: move.to)
    } catch {
      await progress.abandoned(move)
      switch error {
      case .rejected(let why):
        return .failed("shard \(move.shard): the controller refused the move to group \(move.to): \(why)")
      case .timeout(let last):
        return .failed(
          "shard \(move.shard): the controller did not answer the move to group \(move.to) in time "
            + "(last error: \(last)); it may or may not have been recorded (see kvctl config)")
      }
    }
    guard config.shards.indices.contains(move.shard), config.shards[move.shard] == move.to else {
      await progress.abandoned(move)
      return .failed(
        "shard \(move.shard): configuration \(config.num) gives it to group "
          + "\(config.shards.indices.contains(move.shard) ? config.shards[move.shard] : 0), not \(move.to)")
    }
    if let failure = await waitUntilMoved(move, in: config) {
      await progress.abandoned(move)
      return .failed(failure)
    }
    await progress.finished(move, size: size, configuration: config.num, took: clock.now - begin)
    return .done
  }

  /// Polls both groups until the new owner serves the shard at configuration `config.num` (or
  /// later) and the old owner, there too, no longer holds it. Returns why it gave up, or nil.
  func waitUntilMoved(_ move: ShardMove, in config: ShardConfiguration) async -> String? {
    let clock = ContinuousClock()
    var lastChange = clock.now
    var lastSeen = ""
    while true {
      var newOwner = "no report"
      var oldOwner = "no report"
      var arrived = false
      var released = config.groups[move.from] == nil
      if let report = try? await groupShardsReport(
        move.to, members: config.groups[move.to] ?? [], transport: transport, timeout: timeout)
      {
        let phase = report.info(move.shard).map { ShardsFormat.stateName($0.phase) } ?? "absent"
        let keys = report.info(move.shard).map { ", \($0.keys) keys" } ?? ""
        newOwner = "configuration \(report.reply.configNum), shard \(phase)\(keys)"
        arrived = report.reply.configNum >= config.num && report.info(move.shard)?.phase == .serving
      }
      if !released,
        let report = try? await groupShardsReport(
          move.from, members: config.groups[move.from] ?? [], transport: transport, timeout: timeout)
      {
        let phase = report.info(move.shard).map { ShardsFormat.stateName($0.phase) } ?? "absent"
        oldOwner = "configuration \(report.reply.configNum), shard \(phase)"
        released = report.reply.configNum >= config.num && report.info(move.shard) == nil
      }
      if arrived && released { return nil }
      let seen = newOwner + "|" + oldOwner
      if seen != lastSeen {
        lastSeen = seen
        lastChange = clock.now
      } else if clock.now - lastChange > stallLimit {
        return
          "shard \(move.shard): the move to group \(move.to) (configuration \(config.num)) made no progress "
          + "for \(RebalanceFormat.seconds(stallLimit)): group \(move.to) reports \(newOwner), group "
          + "\(move.from) reports \(oldOwner); the groups go on with it on their own (see kvctl shards)"
      }
      try? await Task.sleep(for: .milliseconds(100))
    }
  }
}
