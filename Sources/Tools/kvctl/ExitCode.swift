/// kvctl's exit statuses, a contract scripts branch on (documented in `--help` and the
/// README). 1 stays "key not found", as the replicated-KVS lab's tests expect; every real
/// failure has a status of its own, so a script can tell a missing key from a dead cluster.
enum ExitCode: Int32, Sendable {
  case success = 0
  /// `get`/`direct_get`: the key does not exist (stdout still says `Value:<TAB>ERROR`).
  case notFound = 1
  /// Bad command line: unknown command or option, wrong arguments, unreadable --file.
  case usage = 2
  /// No leader, unreachable, or no answer before the deadline (a write's outcome is unknown).
  case unavailable = 3
  /// The cluster refused the request: invalid argument, value or key too large, wrong kind
  /// of node, a refused membership or controller change.
  case rejected = 4
  /// `rebalance` interrupted by Ctrl-C.
  case interrupted = 130

  /// The name `--json` reports for a failure.
  var name: String {
    switch self {
    case .success: "ok"
    case .notFound: "not_found"
    case .usage: "usage"
    case .unavailable: "unavailable"
    case .rejected: "rejected"
    case .interrupted: "interrupted"
    }
  }
}

/// Why a command failed: the message printed on stderr (`kvctl: MESSAGE`) and the exit status.
struct Failure: Error {
  var message: String
  var status: ExitCode = .unavailable
}
