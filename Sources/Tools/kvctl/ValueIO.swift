import Foundation

/// Values in and out of kvctl as raw bytes: from an argument, a file (`--file PATH`) or stdin
/// (`-`), and to stdout, a file (`--out PATH`) or a terminal. Arguments are capped by the OS
/// (128 KiB each on Linux) and cannot hold every byte; files and stdin can.
enum ValueIO {
  /// The value `put`/`append` store: `--file PATH`'s bytes, stdin's when `argument` is `-`,
  /// else the argument's UTF-8.
  static func value(argument: String?, file: String?) throws(Failure) -> [UInt8] {
    switch (argument, file) {
    case (nil, let path?):
      guard let data = FileManager.default.contents(atPath: path) else {
        throw Failure(message: "--file: cannot read '\(path)'", status: .usage)
      }
      return [UInt8](data)
    case ("-", nil):
      return [UInt8](FileHandle.standardInput.readDataToEndOfFile())
    case (let text?, nil):
      return Array(text.utf8)
    case (_?, _?):
      throw Failure(message: "give the value either as an argument or with --file, not both", status: .usage)
    case (nil, nil):
      throw Failure(message: "missing VALUE (or --file PATH, or - for stdin)", status: .usage)
    }
  }

  /// Writes `bytes` to `path`, replacing it.
  static func write(_ bytes: [UInt8], to path: String) throws(Failure) {
    guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
      throw Failure(message: "--out: cannot write '\(path)'", status: .usage)
    }
  }

  /// The lab's `Key:<TAB>KEY` and `Value:<TAB>VALUE` lines (`Value:<TAB>ERROR` for a missing
  /// key), with the value's raw bytes; on a terminal, a value that is not printable UTF-8 is
  /// shown escaped (`\x00`, `\n`) instead.
  static func printKeyValue(_ key: String, _ value: [UInt8]?) {
    let shown: [UInt8]
    if let value {
      shown = isatty(STDOUT_FILENO) == 1 ? Array(escaped(value).utf8) : value
    } else {
      shown = Array("ERROR".utf8)
    }
    fflush(nil)
    CommandOutput.write(Array("Key:\t\(key)\nValue:\t".utf8) + shown + [0x0A], to: STDOUT_FILENO)
  }

  /// `bytes` as it is when it is printable UTF-8 (tabs included), else with every
  /// non-printable character and undecodable byte escaped: `\n`, `\t`, `\\`, `\xHH`.
  static func escaped(_ bytes: [UInt8]) -> String {
    if let text = String(validating: bytes, as: UTF8.self),
      !text.unicodeScalars.contains(where: { isControl($0) && $0 != "\t" })
    {
      return text
    }
    var out = ""
    var rest = bytes[...]
    while let first = rest.first {
      // Decode one scalar if the bytes at the front are valid UTF-8.
      let length =
        first < 0x80 ? 1 : first >> 5 == 0b110 ? 2 : first >> 4 == 0b1110 ? 3 : first >> 3 == 0b11110 ? 4 : 0
      if length > 0, rest.count >= length, let scalar = String(validating: rest.prefix(length), as: UTF8.self)
      {
        for unit in scalar.unicodeScalars {
          switch unit {
          case "\\": out += "\\\\"
          case "\n": out += "\\n"
          case "\t": out += "\\t"
          case "\r": out += "\\r"
          case _ where isControl(unit): out += String(format: "\\x%02x", unit.value)
          default: out.unicodeScalars.append(unit)
          }
        }
        rest = rest.dropFirst(length)
      } else {
        out += String(format: "\\x%02x", first)
        rest = rest.dropFirst()
      }
    }
    return out
  }

  private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
    scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
  }
}
