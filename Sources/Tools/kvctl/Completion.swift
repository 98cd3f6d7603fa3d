import Foundation

/// Shell completion scripts for kvctl, generated from `CommandTable` (the tables the parser and
/// `--help` use): commands, their sub-commands and flags, the global options, and the values
/// of options that take a file or one of a few words.
enum CompletionScript {
  static func script(for shell: String) throws(Failure) -> String {
    switch shell {
    case "bash": return bash
    case "zsh": return zsh
    case "fish": return fish
    default: throw Failure(message: "--generate-completion-script takes bash, zsh or fish", status: .usage)
    }
  }

  private static var optionNames: [String] { CommandTable.options.flatMap(\.names) }
  private static var commandNames: [String] { CommandTable.commands.map(\.name) }

  static var bash: String {
    var valueCases = ""
    for option in CommandTable.options where option.value != nil {
      let names = option.names.joined(separator: "|")
      switch option.completion {
      case .file: valueCases += "    \(names)) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n"
      case .words(let words):
        valueCases +=
          "    \(names)) COMPREPLY=($(compgen -W '\(words.joined(separator: " "))' -- \"$cur\")); return ;;\n"
      case .nothing: valueCases += "    \(names)) return ;;\n"
      }
    }
    var commandCases = ""
    for command in CommandTable.commands {
      let words = command.subcommands + command.flags
      let files = command.argument == .file ? " -f" : ""
      commandCases +=
        "    \(command.name)) COMPREPLY=($(compgen\(files) -W '\(words.joined(separator: " ")) $opts' -- \"$cur\")) ;;\n"
    }
    return """
      # bash completion for kvctl (kvctl --generate-completion-script bash)
      _kvctl() {
        local cur prev cmd i opts
        cur="${COMP_WORDS[COMP_CWORD]}"
        prev="${COMP_WORDS[COMP_CWORD-1]}"
        opts='\(optionNames.joined(separator: " "))'
        case "$prev" in
      \(valueCases)  esac
        cmd=""
        for ((i = 1; i < COMP_CWORD; i++)); do
          case "${COMP_WORDS[i]}" in
            -*) ;;
            *) case "${COMP_WORDS[i-1]}" in
                 \(CommandTable.options.filter { $0.value != nil }.flatMap(\.names).joined(separator: "|"))) ;;
                 *) cmd="${COMP_WORDS[i]}"; break ;;
               esac ;;
          esac
        done
        case "$cmd" in
          "") COMPREPLY=($(compgen -W '\(commandNames.joined(separator: " ")) $opts' -- "$cur")) ;;
      \(commandCases)    *) COMPREPLY=($(compgen -W "$opts" -- "$cur")) ;;
        esac
      }
      complete -F _kvctl kvctl

      """
  }

  static var zsh: String {
    var valueCases = ""
    for option in CommandTable.options where option.value != nil {
      let names = option.names.joined(separator: "|")
      switch option.completion {
      case .file: valueCases += "      \(names)) _files; return ;;\n"
      case .words(let words):
        valueCases += "      \(names)) compadd -- \(words.joined(separator: " ")); return ;;\n"
      case .nothing: valueCases += "      \(names)) return ;;\n"
      }
    }
    var commandCases = ""
    for command in CommandTable.commands {
      let words = command.subcommands + command.flags
      let files = command.argument == .file ? "; _files" : ""
      commandCases += "      \(command.name)) compadd -- \(words.joined(separator: " ")) $opts\(files) ;;\n"
    }
    return """
      #compdef kvctl
      # zsh completion for kvctl (kvctl --generate-completion-script zsh)
      _kvctl() {
        local -a opts
        local prev cmd i
        opts=(\(optionNames.joined(separator: " ")))
        prev="${words[CURRENT-1]}"
        case "$prev" in
      \(valueCases)  esac
        cmd=""
        for ((i = 2; i < CURRENT; i++)); do
          case "${words[i]}" in
            -*) ;;
            *) case "${words[i-1]}" in
                 \(CommandTable.options.filter { $0.value != nil }.flatMap(\.names).joined(separator: "|"))) ;;
                 *) cmd="${words[i]}"; break ;;
               esac ;;
          esac
        done
        case "$cmd" in
          "") compadd -- \(commandNames.joined(separator: " ")) $opts ;;
      \(commandCases)    *) compadd -- $opts ;;
        esac
      }
      if [[ "${zsh_eval_context[-1]}" == loadautofunc ]]; then
        _kvctl "$@"
      else
        compdef _kvctl kvctl
      fi

      """
  }

  static var fish: String {
    var lines = [
      "# fish completion for kvctl (kvctl --generate-completion-script fish)", "complete -c kvctl -f",
    ]
    let commands = commandNames.joined(separator: " ")
    for command in CommandTable.commands {
      lines.append("complete -c kvctl -n 'not __fish_seen_subcommand_from \(commands)' -a \(command.name)")
      for word in command.subcommands + command.flags {
        let argument = word.hasPrefix("--") ? "-l \(word.dropFirst(2))" : "-a \(word)"
        lines.append("complete -c kvctl -n '__fish_seen_subcommand_from \(command.name)' \(argument)")
      }
      if command.argument == .file {
        lines.append("complete -c kvctl -n '__fish_seen_subcommand_from \(command.name)' -F")
      }
    }
    for option in CommandTable.options {
      var line = "complete -c kvctl"
      for name in option.names {
        line += name.hasPrefix("--") ? " -l \(name.dropFirst(2))" : " -s \(name.dropFirst())"
      }
      if option.value != nil { line += " -r" }
      switch option.completion {
      case .file: line += " -F"
      case .words(let words): line += " -a '\(words.joined(separator: " "))'"
      case .nothing: break
      }
      line += " -d '\(option.help.replacingOccurrences(of: "'", with: ""))'"
      lines.append(line)
    }
    return lines.joined(separator: "\n") + "\n"
  }
}
