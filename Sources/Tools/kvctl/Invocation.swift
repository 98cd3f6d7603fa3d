import Foundation

/// One kvctl command line, parsed: the global options (anywhere on the line, until `--`) and
/// the command's words. Options are those of `CommandTable.options`; a word starting with `-`
/// that is not one of them belongs to the command (`--no-wait`, `--dry-run`, ...) once a
/// command has been named, and is an error before. After `--` every argument is a word, so any
/// value can be stored (`kvctl put k -- --json`). A lone `-` is always a word (stdin).
struct Invocation {
  var endpoints: [String] = []
  var timeout: Duration = .seconds(10)
  /// Whether --timeout was given (join waits longer by default).
  var timeoutGiven = false
  var connectTimeout: Duration = .seconds(1)
  var json = false
  var file: String?
  var out: String?
  /// --generate-completion-script's shell.
  var completionShell: String?
  var help = false
  var words: [String] = []
  var tls = TLSFlags()

  init(_ arguments: [String]) throws(Failure) {
    var rest = arguments[...]
    var optionsEnded = false
    while let argument = rest.popFirst() {
      if optionsEnded || argument == "-" {
        words.append(argument)
        continue
      }
      if argument == "--" {
        optionsEnded = true
        continue
      }
      // --name=value spells the value inline.
      var name = argument
      var inline: String?
      if argument.hasPrefix("--"), let equals = argument.firstIndex(of: "=") {
        name = String(argument[..<equals])
        inline = String(argument[argument.index(after: equals)...])
      }
      guard let option = CommandTable.option(named: name) else {
        if argument.hasPrefix("-") && words.isEmpty {
          throw Failure(message: "unknown option \(argument); see kvctl --help", status: .usage)
        }
        words.append(argument)
        continue
      }
      var value: String?
      if option.value != nil {
        guard let given = inline ?? rest.popFirst() else {
          throw Failure(message: "\(name) needs \(option.value ?? "a value")", status: .usage)
        }
        value = given
      } else if inline != nil {
        throw Failure(message: "\(name) takes no value", status: .usage)
      }
      try apply(option.names[0], value ?? "")
    }
  }

  private mutating func apply(_ option: String, _ value: String) throws(Failure) {
    switch option {
    case "-a":
      let list = value.split(separator: ",", omittingEmptySubsequences: false).map {
        $0.trimmingCharacters(in: .whitespaces)
      }
      guard !list.contains(where: \.isEmpty) else {
        throw Failure(message: "-a needs HOST:PORT[,HOST:PORT...], not '\(value)'", status: .usage)
      }
      endpoints += list
    case "--timeout":
      timeout = try Self.seconds(value, option)
      timeoutGiven = true
    case "--connect-timeout":
      connectTimeout = try Self.seconds(value, option)
    case "--json":
      json = true
    case "-w":
      guard value == "json" || value == "simple" else {
        throw Failure(message: "-w takes json or simple, not '\(value)'", status: .usage)
      }
      json = value == "json"
    case "--file":
      file = value
    case "--out":
      out = value
    case "--generate-completion-script":
      completionShell = value
    case "--cacert":
      tls.cacert = value
    case "--cert":
      tls.cert = value
    case "--key":
      tls.key = value
    default:
      help = true
    }
  }

  private static func seconds(_ text: String, _ option: String) throws(Failure) -> Duration {
    guard let seconds = Double(text), seconds > 0, seconds < 1e9 else {
      throw Failure(message: "\(option) needs a positive number of seconds, not '\(text)'", status: .usage)
    }
    return .milliseconds(Int64(seconds * 1000))
  }
}
