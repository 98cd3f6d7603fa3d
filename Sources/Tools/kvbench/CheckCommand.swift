import ArgumentParser
import Foundation
import Linearizability

/// `kvbench check FILE`: the linearizability checker over a history file, so that a history
/// from any run (or another tool) can be checked again.
struct CheckCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "check",
    abstract: "Check a history file for linearizability (exit 0: linearizable, 1: violation, 2: unknown).",
    discussion: """
      FILE holds one operation per line as JSON:
        {"client":1,"op":"append","key":"k3","value":"x","output":null,"call":10,"return":20,"result":"ok"}
      op is get, put, append or delete; call and return are nanoseconds on one clock; result \
      is ok, fail (did not take effect) or unknown (a timeout: it may or may not have taken \
      effect; return is then null). Keys are checked independently (a key's value is a \
      register with put, append, delete and get).

      The search is exponential in the worst case: each key gets at most --steps steps and \
      the whole check --seconds; a key that hits either is reported unknown, never as a pass. \
      On a violation the shortest failing prefix of the key's history is printed: the \
      operations called before the contradiction completed, its last --window shown.
      """)

  @Argument(help: "The history file (JSON lines).")
  var file: String

  @Option(help: "Time bound for the whole check, in seconds.")
  var seconds = 300

  @Option(help: "Step bound per key.")
  var steps = 50_000_000

  @Option(help: "Operations of a failing window to print.")
  var window = 30

  func run() async throws {
    let ops: [RecordedOperation]
    do {
      ops = try HistoryFile.read(file)
    } catch {
      FileHandle.standardError.write(Data("kvbench check: \(error)\n".utf8))
      throw ExitCode(2)
    }
    let report = HistoryReport.check(
      ops, limits: .init(stepsPerKey: steps, deadline: .now + .seconds(seconds)), window: window)
    print(report.text)
    switch report.verdict {
    case .linearizable: return
    case .violation: throw ExitCode(1)
    case .inconclusive: throw ExitCode(2)
    }
  }
}

/// The outcome of checking one history, and its human-readable account.
struct HistoryReport {
  var verdict: LinearizabilityChecker.Verdict
  var violatingKeys: [String]
  var inconclusiveKeys: [String]
  var checked: Int
  var text: String

  static func check(
    _ ops: [RecordedOperation], limits: LinearizabilityChecker.Limits, window: Int
  ) -> HistoryReport {
    let started = ContinuousClock.now
    let verdicts = LinearizabilityChecker.checkKeys(ops, limits: limits)
    let verdict = LinearizabilityChecker.summary(of: verdicts)
    let unknown = ops.filter { $0.result == .unknown }.count
    let failed = ops.filter { $0.result == .fail }.count
    var lines = [
      "check: \(ops.count) operations on \(verdicts.count) keys (\(unknown) unknown, \(failed) failed), "
        + "checked in \(started.duration(to: .now).secondsText) s"
    ]
    let violating = verdicts.filter { $0.verdict == .violation }.map(\.key)
    let inconclusive = verdicts.filter { $0.verdict == .inconclusive }.map(\.key)
    let origin = ops.map(\.call).min() ?? 0
    for key in violating {
      lines.append("key \(key): NOT linearizable")
      let keyOps = ops.filter { $0.key == key }
      if let prefix = LinearizabilityChecker.shortestFailingPrefix(keyOps, limits: limits) {
        lines.append(
          "  shortest failing prefix: \(prefix.count) operations; the last \(min(window, prefix.count)) "
            + "(times in ms from the history's first call):")
        lines += prefix.suffix(window).map { HistoryFile.describe($0, origin: origin) }
      } else {
        lines.append("  (the search for the shortest failing prefix ran out of its bound)")
      }
    }
    for key in inconclusive {
      lines.append("key \(key): unknown (the search ran out of its step or time bound)")
    }
    switch verdict {
    case .linearizable: lines.append("check: linearizable")
    case .violation: lines.append("check: NOT linearizable (\(violating.count) keys)")
    case .inconclusive:
      lines.append("check: unknown (\(inconclusive.count) keys could not be decided in time)")
    }
    return HistoryReport(
      verdict: verdict, violatingKeys: violating, inconclusiveKeys: inconclusive, checked: ops.count,
      text: lines.joined(separator: "\n"))
  }
}
