/// What one client connection may make the router hold before its requests are parsed; going
/// over any of these is a protocol error (the connection is answered and closed).
public struct RESPLimits: Hashable, Sendable {
  /// The largest `$len` accepted in a multibulk request.
  public var maxBulkBytes: Int
  /// The largest `*n` accepted.
  public var maxArrayLength: Int
  /// The longest inline request line (its bytes before the `\n`).
  public var maxInlineBytes: Int
  /// The most bytes held at once: unparsed bytes plus the arguments of a request in progress.
  public var maxBufferedBytes: Int

  /// The defaults: a 1 MiB value plus 4 KiB of slack, a million arguments, a 64 KiB inline
  /// line, 64 MiB held.
  public init(
    maxBulkBytes: Int = 1_048_576 + 4_096,
    maxArrayLength: Int = 1_048_576,
    maxInlineBytes: Int = 65_536,
    maxBufferedBytes: Int = 64 * 1_048_576
  ) {
    self.maxBulkBytes = maxBulkBytes
    self.maxArrayLength = maxArrayLength
    self.maxInlineBytes = maxInlineBytes
    self.maxBufferedBytes = maxBufferedBytes
  }
}

/// Why a client's byte stream is not a valid RESP request stream. The connection cannot be
/// resynchronised after one: the caller replies `-ERR Protocol error: <description>` and closes.
public enum RESPProtocolError: Error, Hashable, Sendable, CustomStringConvertible {
  /// `*` not followed by a decimal integer and CRLF.
  case invalidMultibulkLength
  /// A `*n` above `RESPLimits.maxArrayLength`.
  case multibulkLengthTooLarge(length: Int64, limit: Int)
  /// `$` not followed by a non-negative decimal integer and CRLF.
  case invalidBulkLength
  /// A `$len` above `RESPLimits.maxBulkBytes`.
  case bulkLengthTooLarge(length: Int64, limit: Int)
  /// Inside a multibulk request, a byte other than `$` where the next argument starts.
  case expectedBulkString(found: UInt8)
  /// A bulk string's bytes not followed by CRLF.
  case missingBulkTerminator
  /// A `*` line longer than any valid count.
  case multibulkCountTooLong
  /// A `$` line longer than any valid length.
  case bulkCountTooLong
  /// An inline request line longer than `RESPLimits.maxInlineBytes`.
  case inlineTooLong(limit: Int)
  /// An inline request with an unterminated quote, or a closing quote followed by more text.
  case unbalancedQuotes
  /// More than `RESPLimits.maxBufferedBytes` held for one connection.
  case bufferLimitExceeded(limit: Int)

  /// The text that follows `-ERR Protocol error: ` (Redis's own wording where Redis has one).
  public var description: String {
    switch self {
    case .invalidMultibulkLength:
      return "invalid multibulk length"
    case .multibulkLengthTooLarge(let length, let limit):
      return "invalid multibulk length: \(length) elements is over the limit of \(limit)"
    case .invalidBulkLength:
      return "invalid bulk length"
    case .bulkLengthTooLarge(let length, let limit):
      return "invalid bulk length: \(length) bytes is over the limit of \(limit)"
    case .expectedBulkString(let found):
      return "expected '$', got '\(Self.printable(found))'"
    case .missingBulkTerminator:
      return "bulk string not followed by CRLF"
    case .multibulkCountTooLong:
      return "too big mbulk count string"
    case .bulkCountTooLong:
      return "too big bulk count string"
    case .inlineTooLong(let limit):
      return "too big inline request (over \(limit) bytes)"
    case .unbalancedQuotes:
      return "unbalanced quotes in request"
    case .bufferLimitExceeded(let limit):
      return "too big request (over \(limit) bytes buffered)"
    }
  }

  private static func printable(_ byte: UInt8) -> String {
    if byte >= 0x20 && byte < 0x7F {
      return String(UnicodeScalar(byte))
    }
    let hex = String(byte, radix: 16)
    return "\\x" + (hex.count == 1 ? "0" + hex : hex)
  }
}

/// An incremental parser of Redis client requests (RESP2 multibulk arrays of bulk strings, and
/// inline commands), over bytes as they arrive from the socket.
///
/// Feed bytes with `append(_:)` and drain with `next()` until it returns nil. Where the bytes
/// were split between appends never changes what comes out. Work is linear in the input: the
/// parser keeps a read index into its buffer, remembers how far it has searched for a line's end,
/// and compacts the buffer only once the consumed prefix is at least as long as what remains.
/// Nothing is allocated for a claimed length before the bytes arrive.
///
/// After a protocol error the parser stays failed: `next()` keeps throwing the same error and
/// `append(_:)` discards its input.
public struct RESPRequestParser: Sendable {
  public let limits: RESPLimits

  private var buffer: [UInt8] = []
  /// The first byte of `buffer` not consumed yet.
  private var readIndex = 0
  /// How many bytes after `readIndex` are already known not to end the line being read.
  private var scanned = 0
  /// Arguments still to read of the multibulk request in progress (0: none in progress).
  private var argumentsLeft = 0
  /// The arguments read so far of the multibulk request in progress.
  private var arguments: [[UInt8]] = []
  private var argumentBytes = 0
  /// The length announced by the `$len` line just read, whose bytes have not all arrived.
  private var pendingBulkLength: Int?
  private var failure: RESPProtocolError?

  /// A `*` or `$` line holds at most this many bytes between the type byte and CRLF (a valid one
  /// holds at most 20: `-9223372036854775808`).
  static let maxHeaderBytes = 32
  /// Compaction waits until at least this many bytes were consumed.
  private static let compactionThreshold = 4_096
  /// An emptied buffer keeps its storage up to this size.
  private static let retainedCapacity = 65_536

  public init(limits: RESPLimits = RESPLimits()) {
    self.limits = limits
  }

  /// Bytes held: those not parsed yet plus the arguments of the request in progress.
  public var bufferedByteCount: Int {
    buffer.count - readIndex + argumentBytes
  }

  /// Adds bytes received from the client. Going over `limits.maxBufferedBytes` fails the parser
  /// (the next `next()` throws `bufferLimitExceeded`) and drops what it held.
  public mutating func append(_ bytes: some Sequence<UInt8>) {
    guard failure == nil else { return }
    compact()
    buffer.append(contentsOf: bytes)
    if bufferedByteCount > limits.maxBufferedBytes {
      fail(.bufferLimitExceeded(limit: limits.maxBufferedBytes))
    }
  }

  /// The next complete request (command name and arguments, binary-safe), nil when more bytes
  /// are needed. Empty requests (`*0\r\n`, `*-1\r\n`, blank inline lines) are skipped.
  public mutating func next() throws(RESPProtocolError) -> [[UInt8]]? {
    if let failure {
      throw failure
    }
    do throws(RESPProtocolError) {
      while true {
        switch try step() {
        case .needMore:
          compact()
          return nil
        case .skipped:
          continue
        case .request(let request):
          return request
        }
      }
    } catch {
      fail(error)
      throw error
    }
  }

  private enum Step {
    case needMore
    case skipped
    case request([[UInt8]])
  }

  private mutating func step() throws(RESPProtocolError) -> Step {
    if argumentsLeft == 0 {
      guard readIndex < buffer.count else { return .needMore }
      guard buffer[readIndex] == RESPByte.star else { return try inlineRequest() }
      guard
        let digits = try headerLine(malformed: .invalidMultibulkLength, tooLong: .multibulkCountTooLong)
      else { return .needMore }
      guard let count = Self.decimal(buffer[digits]) else { throw .invalidMultibulkLength }
      if count <= 0 {
        return .skipped
      }
      guard count <= Int64(limits.maxArrayLength) else {
        throw .multibulkLengthTooLarge(length: count, limit: limits.maxArrayLength)
      }
      argumentsLeft = Int(count)
      // Every argument takes at least 6 bytes (`$0\r\n\r\n`): reserve for what can be here.
      arguments = []
      arguments.reserveCapacity(min(argumentsLeft, (buffer.count - readIndex) / 6 + 1))
    }
    while argumentsLeft > 0 {
      let length: Int
      if let pendingBulkLength {
        length = pendingBulkLength
      } else {
        guard readIndex < buffer.count else { return .needMore }
        guard buffer[readIndex] == RESPByte.dollar else {
          throw .expectedBulkString(found: buffer[readIndex])
        }
        guard let digits = try headerLine(malformed: .invalidBulkLength, tooLong: .bulkCountTooLong)
        else { return .needMore }
        guard let announced = Self.decimal(buffer[digits]), announced >= 0 else {
          throw .invalidBulkLength
        }
        guard announced <= Int64(limits.maxBulkBytes) else {
          throw .bulkLengthTooLarge(length: announced, limit: limits.maxBulkBytes)
        }
        length = Int(announced)
        pendingBulkLength = length
      }
      // The bytes and their CRLF, compared without computing `length + 2` (no overflow).
      guard buffer.count - readIndex - 2 >= length else { return .needMore }
      let end = readIndex + length
      guard buffer[end] == RESPByte.cr, buffer[end + 1] == RESPByte.lf else {
        throw .missingBulkTerminator
      }
      arguments.append(Array(buffer[readIndex..<end]))
      argumentBytes += length
      readIndex = end + 2
      pendingBulkLength = nil
      argumentsLeft -= 1
    }
    let request = arguments
    arguments = []
    argumentBytes = 0
    return .request(request)
  }

  /// Reads the `*` or `$` line at `readIndex`: its type byte, at most `maxHeaderBytes` bytes,
  /// CRLF. Returns the range of the bytes between the type byte and CRLF and moves past the line,
  /// or returns nil (consuming nothing) when the line has not all arrived.
  private mutating func headerLine(
    malformed: RESPProtocolError, tooLong: RESPProtocolError
  ) throws(RESPProtocolError) -> Range<Int>? {
    let start = readIndex + 1
    let window = start + min(Self.maxHeaderBytes + 1, buffer.count - start)
    var index = start + scanned
    while index < window && buffer[index] != RESPByte.cr {
      index += 1
    }
    guard index < window else {
      if window - start > Self.maxHeaderBytes {
        throw tooLong
      }
      scanned = index - start
      return nil
    }
    guard index + 1 < buffer.count else {
      scanned = index - start
      return nil
    }
    guard buffer[index + 1] == RESPByte.lf else { throw malformed }
    scanned = 0
    readIndex = index + 2
    return start..<index
  }

  /// Reads the inline request line at `readIndex` (ending in `\n` or `\r\n`).
  private mutating func inlineRequest() throws(RESPProtocolError) -> Step {
    let start = readIndex
    let maxLine = max(limits.maxInlineBytes, 0)
    let available = buffer.count - start
    let window = start + (maxLine < available ? maxLine + 1 : available)
    var index = start + scanned
    while index < window && buffer[index] != RESPByte.lf {
      index += 1
    }
    guard index < window else {
      if window - start > maxLine {
        throw .inlineTooLong(limit: maxLine)
      }
      scanned = index - start
      return .needMore
    }
    var end = index
    if end > start && buffer[end - 1] == RESPByte.cr {
      end -= 1
    }
    let request = try Self.splitArguments(buffer[start..<end])
    scanned = 0
    readIndex = index + 1
    return request.isEmpty ? .skipped : .request(request)
  }

  private mutating func fail(_ error: RESPProtocolError) {
    failure = error
    buffer = []
    readIndex = 0
    scanned = 0
    arguments = []
    argumentBytes = 0
    argumentsLeft = 0
    pendingBulkLength = nil
  }

  /// Drops the consumed prefix once it is at least as long as the rest (so every byte is moved
  /// at most as often as bytes before it were consumed: linear overall).
  private mutating func compact() {
    guard readIndex > 0 else { return }
    if readIndex == buffer.count {
      buffer.removeAll(keepingCapacity: buffer.capacity <= Self.retainedCapacity)
      readIndex = 0
    } else if readIndex >= Self.compactionThreshold && readIndex >= buffer.count - readIndex {
      buffer.removeSubrange(0..<readIndex)
      readIndex = 0
    }
  }
}

extension RESPRequestParser {
  /// A decimal integer as Redis's `string2ll` accepts it: an optional `-`, then digits without
  /// leading zeros (`0` alone is zero), nothing else, within Int64.
  static func decimal(_ bytes: ArraySlice<UInt8>) -> Int64? {
    var index = bytes.startIndex
    guard index < bytes.endIndex else { return nil }
    if bytes.count == 1 && bytes[index] == RESPByte.zero {
      return 0
    }
    let negative = bytes[index] == RESPByte.minus
    if negative {
      index += 1
    }
    guard index < bytes.endIndex, bytes[index] > RESPByte.zero, bytes[index] <= RESPByte.nine else {
      return nil
    }
    var magnitude: UInt64 = 0
    while index < bytes.endIndex {
      let byte = bytes[index]
      guard byte >= RESPByte.zero && byte <= RESPByte.nine else { return nil }
      let (shifted, overflowA) = magnitude.multipliedReportingOverflow(by: 10)
      let (sum, overflowB) = shifted.addingReportingOverflow(UInt64(byte - RESPByte.zero))
      guard !overflowA && !overflowB else { return nil }
      magnitude = sum
      index += 1
    }
    if negative {
      guard magnitude <= Int64.min.magnitude else { return nil }
      return magnitude == Int64.min.magnitude ? Int64.min : -Int64(magnitude)
    }
    guard magnitude <= UInt64(Int64.max) else { return nil }
    return Int64(magnitude)
  }

  /// Splits an inline request line into arguments as Redis's `sdssplitargs` does: arguments are
  /// separated by whitespace; `"…"` takes `\xHH`, `\n`, `\r`, `\t`, `\b`, `\a` and `\<any>`
  /// escapes; `'…'` takes `\'`; a quote may open mid-argument, and a closing quote must be
  /// followed by whitespace or the end of the line. (Unlike `sdssplitargs` over a C string, a
  /// NUL byte is an ordinary byte.)
  static func splitArguments(_ line: ArraySlice<UInt8>) throws(RESPProtocolError) -> [[UInt8]] {
    var arguments: [[UInt8]] = []
    var index = line.startIndex
    let end = line.endIndex
    while true {
      while index < end && isSpace(line[index]) {
        index += 1
      }
      if index == end {
        return arguments
      }
      var current: [UInt8] = []
      var inDoubleQuotes = false
      var inSingleQuotes = false
      var done = false
      while !done {
        if inDoubleQuotes {
          guard index < end else { throw .unbalancedQuotes }
          let byte = line[index]
          if byte == RESPByte.backslash && end - index >= 4 && line[index + 1] == UInt8(ascii: "x"),
            let high = hexValue(line[index + 2]), let low = hexValue(line[index + 3])
          {
            current.append(high << 4 | low)
            index += 3
          } else if byte == RESPByte.backslash && index + 1 < end {
            index += 1
            switch line[index] {
            case UInt8(ascii: "n"): current.append(RESPByte.lf)
            case UInt8(ascii: "r"): current.append(RESPByte.cr)
            case UInt8(ascii: "t"): current.append(RESPByte.tab)
            case UInt8(ascii: "b"): current.append(0x08)
            case UInt8(ascii: "a"): current.append(0x07)
            case let other: current.append(other)
            }
          } else if byte == RESPByte.doubleQuote {
            if index + 1 < end && !isSpace(line[index + 1]) {
              throw .unbalancedQuotes
            }
            done = true
          } else {
            current.append(byte)
          }
        } else if inSingleQuotes {
          guard index < end else { throw .unbalancedQuotes }
          let byte = line[index]
          if byte == RESPByte.backslash && index + 1 < end && line[index + 1] == RESPByte.singleQuote {
            index += 1
            current.append(RESPByte.singleQuote)
          } else if byte == RESPByte.singleQuote {
            if index + 1 < end && !isSpace(line[index + 1]) {
              throw .unbalancedQuotes
            }
            done = true
          } else {
            current.append(byte)
          }
        } else if index == end {
          done = true
        } else {
          switch line[index] {
          case RESPByte.space, RESPByte.lf, RESPByte.cr, RESPByte.tab:
            done = true
          case RESPByte.doubleQuote:
            inDoubleQuotes = true
          case RESPByte.singleQuote:
            inSingleQuotes = true
          case let byte:
            current.append(byte)
          }
        }
        if index < end {
          index += 1
        }
      }
      arguments.append(current)
    }
  }

  /// C's `isspace`: space, `\t`, `\n`, `\v`, `\f`, `\r`.
  private static func isSpace(_ byte: UInt8) -> Bool {
    byte == RESPByte.space || (byte >= 0x09 && byte <= 0x0D)
  }

  private static func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
    default: return nil
    }
  }
}
