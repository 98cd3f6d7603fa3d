/// A RESP2 value, as the router's Redis front end replies with.
///
/// Encoding follows Redis: `+OK\r\n`, `-ERR message\r\n`, `:42\r\n`, `$3\r\nfoo\r\n` (`$-1\r\n` for
/// the null bulk string), `*2\r\n…` (`*-1\r\n` for the null array).
public enum RESPValue: Hashable, Sendable {
  /// `+text\r\n`. CR and LF inside `text` are sent as spaces.
  case simpleString(String)
  /// `-text\r\n` (by convention `ERR …`, `WRONGTYPE …`, `MOVED …`). CR and LF are sent as spaces.
  case error(String)
  /// `:n\r\n`.
  case integer(Int64)
  /// `$len\r\nbytes\r\n`, binary-safe; `nil` is the null bulk string `$-1\r\n`.
  case bulkString([UInt8]?)
  /// `*n\r\n` followed by the elements; `nil` is the null array `*-1\r\n`.
  case array([RESPValue]?)
}

extension RESPValue {
  /// A client request as Redis clients send it: an array of bulk strings.
  public static func multibulk(_ arguments: [[UInt8]]) -> RESPValue {
    .array(arguments.map { .bulkString($0) })
  }

  /// Appends the RESP2 encoding of this value to `buffer`.
  public func encode(into buffer: inout [UInt8]) {
    switch self {
    case .simpleString(let text):
      buffer.append(RESPByte.plus)
      Self.appendLine(text, to: &buffer)
    case .error(let text):
      buffer.append(RESPByte.minus)
      Self.appendLine(text, to: &buffer)
    case .integer(let value):
      buffer.append(RESPByte.colon)
      Self.appendDecimal(value, to: &buffer)
    case .bulkString(nil):
      buffer.append(contentsOf: Self.nullBulk)
    case .bulkString(let bytes?):
      buffer.append(RESPByte.dollar)
      Self.appendDecimal(Int64(bytes.count), to: &buffer)
      buffer.append(contentsOf: bytes)
      buffer.append(RESPByte.cr)
      buffer.append(RESPByte.lf)
    case .array(nil):
      buffer.append(contentsOf: Self.nullArray)
    case .array(let elements?):
      buffer.append(RESPByte.star)
      Self.appendDecimal(Int64(elements.count), to: &buffer)
      for element in elements {
        element.encode(into: &buffer)
      }
    }
  }

  /// The RESP2 encoding of this value.
  public var encoded: [UInt8] {
    var buffer: [UInt8] = []
    encode(into: &buffer)
    return buffer
  }

  private static let nullBulk: [UInt8] = Array("$-1\r\n".utf8)
  private static let nullArray: [UInt8] = Array("*-1\r\n".utf8)

  /// `text` with CR and LF replaced by spaces, then CRLF.
  private static func appendLine(_ text: String, to buffer: inout [UInt8]) {
    for byte in text.utf8 {
      buffer.append(byte == RESPByte.cr || byte == RESPByte.lf ? RESPByte.space : byte)
    }
    buffer.append(RESPByte.cr)
    buffer.append(RESPByte.lf)
  }

  /// The decimal digits of `value` (with a leading `-` when negative), then CRLF.
  private static func appendDecimal(_ value: Int64, to buffer: inout [UInt8]) {
    buffer.append(contentsOf: String(value).utf8)
    buffer.append(RESPByte.cr)
    buffer.append(RESPByte.lf)
  }
}

/// The ASCII bytes the codec looks at.
enum RESPByte {
  static let cr = UInt8(ascii: "\r")
  static let lf = UInt8(ascii: "\n")
  static let space = UInt8(ascii: " ")
  static let tab = UInt8(ascii: "\t")
  static let plus = UInt8(ascii: "+")
  static let minus = UInt8(ascii: "-")
  static let colon = UInt8(ascii: ":")
  static let dollar = UInt8(ascii: "$")
  static let star = UInt8(ascii: "*")
  static let zero = UInt8(ascii: "0")
  static let nine = UInt8(ascii: "9")
  static let doubleQuote = UInt8(ascii: "\"")
  static let singleQuote = UInt8(ascii: "'")
  static let backslash = UInt8(ascii: "\\")
}
