import Foundation

/// A JSON value with its keys in the order given, so that a command's document reads the same
/// every time (scripts and tests compare them).
indirect enum JSON: Sendable {
  case string(String)
  case number(Int64)
  case unsigned(UInt64)
  case bool(Bool)
  case null
  case array([JSON])
  case object([(String, JSON)])
  /// Already-encoded JSON (the status, shards and config documents).
  case encoded(String)

  var text: String {
    switch self {
    case .string(let string): return Self.quote(string)
    case .number(let number): return "\(number)"
    case .unsigned(let number): return "\(number)"
    case .bool(let bool): return bool ? "true" : "false"
    case .null: return "null"
    case .array(let items): return "[" + items.map(\.text).joined(separator: ",") + "]"
    case .object(let fields):
      return "{" + fields.map { Self.quote($0.0) + ":" + $0.1.text }.joined(separator: ",") + "}"
    case .encoded(let text): return text
    }
  }

  static func quote(_ string: String) -> String {
    var out = "\""
    for scalar in string.unicodeScalars {
      switch scalar {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      case _ where scalar.value < 0x20:
        out +=
          "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count)
          + String(scalar.value, radix: 16)
      default: out.unicodeScalars.append(scalar)
      }
    }
    return out + "\""
  }

  /// A value's fields: `"encoding":"utf8","value":TEXT` when the bytes are UTF-8, else
  /// `"encoding":"base64","value":BASE64`.
  static func value(_ bytes: [UInt8]) -> [(String, JSON)] {
    if let text = String(validating: bytes, as: UTF8.self) {
      return [("encoding", .string("utf8")), ("value", .string(text))]
    }
    return [("encoding", .string("base64")), ("value", .string(Data(bytes).base64EncodedString()))]
  }
}

/// Where a command's output goes. In JSON mode stdout carries exactly one JSON document: what
/// a command would print for people goes to stderr instead (file descriptor 1 is pointed at
/// stderr for the command's run, so narrating code needs no flag), and the document is written
/// to the real stdout at the end, also for a failure (`{"error":...}`).
final class CommandOutput: Sendable {
  let json: Bool
  /// The real stdout while fd 1 points at stderr.
  private let document: Int32

  init(json: Bool) {
    self.json = json
    if json {
      fflush(nil)
      document = dup(STDOUT_FILENO)
      dup2(STDERR_FILENO, STDOUT_FILENO)
    } else {
      document = STDOUT_FILENO
    }
  }

  /// Writes the command's JSON document (JSON mode only).
  func emit(_ value: JSON) {
    guard json else { return }
    fflush(nil)
    let bytes = Array((value.text + "\n").utf8)
    Self.write(bytes, to: document)
  }

  /// The document of a failed command.
  func emitFailure(_ failure: Failure) {
    emit(
      .object([
        ("error", .string(failure.status.name)), ("exit_code", .number(Int64(failure.status.rawValue))),
        ("message", .string(failure.message)),
      ]))
  }

  /// Writes all of `bytes` to `descriptor`.
  static func write(_ bytes: [UInt8], to descriptor: Int32) {
    var offset = 0
    while offset < bytes.count {
      let written = bytes[offset...].withUnsafeBytes {
        Foundation.write(descriptor, $0.baseAddress, $0.count)
      }
      if written < 0 && errno == EINTR { continue }
      guard written > 0 else { return }
      offset += written
    }
  }
}
