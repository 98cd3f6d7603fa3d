import Foundation

/// What kvctl accepts, as data: the global options and the commands with their sub-commands,
/// flags and arguments. The parser (`Invocation`) reads the options from here, `--help` prints
/// them, and the shell completion scripts are generated from both tables, so the three cannot
/// drift apart.
enum CommandTable {
  /// What completes an option's value or a command's argument.
  enum Completion: Sendable, Equatable {
    case nothing
    case file
    case words([String])
  }

  struct Option: Sendable {
    /// Every spelling, the canonical one first (`-a`, `--addr`, `--endpoints`).
    var names: [String]
    /// The value's placeholder; nil for a flag.
    var value: String?
    var help: String
    var completion: Completion = .nothing
  }

  struct Command: Sendable {
    var name: String
    /// Sub-commands (`group join`, `cluster up`); empty when there are none.
    var subcommands: [String] = []
    /// Flags only this command takes (`--no-wait`, `--purge`, ...).
    var flags: [String] = []
    /// What completes its first argument (after any sub-command).
    var argument: Completion = .nothing
  }

  static let options: [Option] = [
    Option(
      names: ["-a", "--addr", "--endpoints"], value: "ADDR[,ADDR...]",
      help: "the node(s) to talk to: members, routers or controller replicas, tried in turn"),
    Option(names: ["--timeout"], value: "SECONDS", help: "give up after this long (default 10; join: 600)"),
    Option(
      names: ["--connect-timeout"], value: "SECONDS",
      help: "the most one endpoint may take to accept a connection (default 1)"),
    Option(names: ["--json"], value: nil, help: "one JSON document on stdout, whatever the command"),
    Option(
      names: ["-w", "--write-out"], value: "FORMAT", help: "json (as --json) or simple (the default)",
      completion: .words(["json", "simple"])),
    Option(
      names: ["--file"], value: "PATH", help: "put/append: read the value from PATH (any size, any bytes)",
      completion: .file),
    Option(
      names: ["--out"], value: "PATH", help: "get/direct_get: write the value's raw bytes to PATH",
      completion: .file),
    Option(
      names: ["--generate-completion-script"], value: "SHELL",
      help: "print a completion script for bash, zsh or fish", completion: .words(["bash", "zsh", "fish"])),
    Option(
      names: ["--cacert"], value: "FILE",
      help: "speak TLS, trusting servers whose certificate this CA (PEM) signed",
      completion: .file),
    Option(
      names: ["--cert"], value: "FILE",
      help: "with --cacert and --key: present this client certificate (PEM)",
      completion: .file),
    Option(
      names: ["--key"], value: "FILE",
      help: "the client certificate's key (PEM), for nodes started with --api-ca",
      completion: .file),
    Option(names: ["-h", "--help"], value: nil, help: "this text"),
  ]

  static let commands: [Command] = [
    Command(name: "put"), Command(name: "append"), Command(name: "get"), Command(name: "del"),
    Command(name: "leader"), Command(name: "dropped"), Command(name: "direct_get"),
    Command(name: "join"), Command(name: "remove"), Command(name: "status"), Command(name: "locate"),
    Command(name: "shards"), Command(name: "group", subcommands: ["join", "leave"], flags: ["--no-wait"]),
    Command(name: "migrations"), Command(name: "shard", subcommands: ["move"]), Command(name: "config"),
    Command(
      name: "rebalance",
      flags: ["--dry-run", "--by", "--max-concurrent", "--rate", "--threshold", "--yes", "--help"]),
    Command(name: "cluster", subcommands: ["up", "status", "down"], flags: ["--purge"], argument: .file),
  ]

  /// The option spelled `name`, if any.
  static func option(named name: String) -> Option? {
    options.first { $0.names.contains(name) }
  }

  /// The options section of `--help`, laid out as the commands are: the spelling, then the
  /// help from column 21 (on the next line when the spelling is longer), wrapped at 92.
  static var optionsHelp: String {
    let indent = String(repeating: " ", count: 19)
    return options.map { option in
      let spelled = option.names.joined(separator: ", ") + (option.value.map { " " + $0 } ?? "")
      var lines: [String] = []
      var line = spelled.count <= 17 ? spelled.padding(toLength: 19, withPad: " ", startingAt: 0) : spelled
      if spelled.count > 17 {
        lines.append(line)
        line = indent
      }
      for word in option.help.split(separator: " ") {
        if line.count + word.count + 1 > 90 {
          lines.append(line)
          line = indent
        }
        line += (line.hasSuffix(" ") ? "" : " ") + word
      }
      lines.append(line)
      return lines.map { "  " + $0 }.joined(separator: "\n")
    }.joined(separator: "\n")
  }
}
