import XCTest

@testable import RESP

final class RESPCodecTests: XCTestCase {
  // MARK: - Helpers

  private typealias Outcome = (requests: [[[UInt8]]], error: RESPProtocolError?)

  private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

  private func request(_ words: String...) -> [[UInt8]] { words.map { Array($0.utf8) } }

  /// Everything `parser` yields until it needs more bytes, then the error it threw (if any).
  private func drain(_ parser: inout RESPRequestParser) -> Outcome {
    var requests: [[[UInt8]]] = []
    while true {
      do {
        guard let request = try parser.next() else { return (requests, nil) }
        requests.append(request)
      } catch {
        return (requests, error)
      }
    }
  }

  /// Parses `input` fed in the given chunk sizes (the last chunk takes the rest), draining after
  /// each append.
  private func parse(
    _ input: [UInt8], chunks: [Int] = [], limits: RESPLimits = RESPLimits()
  ) -> Outcome {
    var parser = RESPRequestParser(limits: limits)
    var requests: [[[UInt8]]] = []
    var offset = 0
    // The last append takes whatever the chunks left.
    for size in chunks + [input.count] {
      let end = min(input.count, offset + size)
      parser.append(input[offset..<end])
      offset = end
      let (more, error) = drain(&parser)
      requests += more
      if let error {
        return (requests, error)
      }
    }
    return (requests, nil)
  }

  private func assertProtocolError(
    _ input: String, _ expected: RESPProtocolError, limits: RESPLimits = RESPLimits(),
    file: StaticString = #filePath, line: UInt = #line
  ) {
    var parser = RESPRequestParser(limits: limits)
    parser.append(bytes(input))
    let (requests, error) = drain(&parser)
    XCTAssertEqual(requests, [], "input \(input.debugDescription)", file: file, line: line)
    XCTAssertEqual(error, expected, "input \(input.debugDescription)", file: file, line: line)
    // Failed for good: more calls and more bytes change nothing.
    XCTAssertThrowsError(try parser.next(), file: file, line: line) { error in
      XCTAssertEqual(error as? RESPProtocolError, expected, file: file, line: line)
    }
    parser.append(bytes("PING\r\n"))
    XCTAssertThrowsError(try parser.next(), file: file, line: line) { error in
      XCTAssertEqual(error as? RESPProtocolError, expected, file: file, line: line)
    }
    XCTAssertEqual(parser.bufferedByteCount, 0, file: file, line: line)
  }

  // MARK: - Encoding

  func testSimpleStringsAndErrorsEncodeOnOneLine() {
    XCTAssertEqual(RESPValue.simpleString("OK").encoded, bytes("+OK\r\n"))
    XCTAssertEqual(RESPValue.simpleString("").encoded, bytes("+\r\n"))
    XCTAssertEqual(RESPValue.simpleString("a\r\nb\nc\r").encoded, bytes("+a  b c \r\n"))
    XCTAssertEqual(
      RESPValue.error("ERR unknown command 'FOO'").encoded, bytes("-ERR unknown command 'FOO'\r\n"))
    XCTAssertEqual(RESPValue.error("ERR bad\r\nthing").encoded, bytes("-ERR bad  thing\r\n"))
  }

  func testIntegersEncodeInDecimal() {
    XCTAssertEqual(RESPValue.integer(0).encoded, bytes(":0\r\n"))
    XCTAssertEqual(RESPValue.integer(1000).encoded, bytes(":1000\r\n"))
    XCTAssertEqual(RESPValue.integer(-42).encoded, bytes(":-42\r\n"))
    XCTAssertEqual(RESPValue.integer(.max).encoded, bytes(":9223372036854775807\r\n"))
    XCTAssertEqual(RESPValue.integer(.min).encoded, bytes(":-9223372036854775808\r\n"))
  }

  func testBulkStringsEncodeBinarySafely() {
    XCTAssertEqual(RESPValue.bulkString(bytes("foobar")).encoded, bytes("$6\r\nfoobar\r\n"))
    XCTAssertEqual(RESPValue.bulkString([]).encoded, bytes("$0\r\n\r\n"))
    XCTAssertEqual(RESPValue.bulkString(nil).encoded, bytes("$-1\r\n"))
    let binary: [UInt8] = [0x00, 0x0D, 0x0A, 0xFF, 0x24, 0x0D, 0x0A]
    XCTAssertEqual(RESPValue.bulkString(binary).encoded, bytes("$7\r\n") + binary + bytes("\r\n"))
  }

  func testArraysEncodeTheirElementsInOrder() {
    XCTAssertEqual(RESPValue.array(nil).encoded, bytes("*-1\r\n"))
    XCTAssertEqual(RESPValue.array([]).encoded, bytes("*0\r\n"))
    let nested = RESPValue.array([
      .integer(1),
      .array([.simpleString("OK"), .bulkString(nil), .array(nil)]),
      .bulkString(bytes("x")),
      .error("ERR e"),
      .array([]),
    ])
    XCTAssertEqual(
      nested.encoded, bytes("*5\r\n:1\r\n*3\r\n+OK\r\n$-1\r\n*-1\r\n$1\r\nx\r\n-ERR e\r\n*0\r\n"))
    XCTAssertEqual(
      RESPValue.multibulk(request("GET", "k")).encoded, bytes("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"))
  }

  func testEncodeAppendsToTheBuffer() {
    var buffer = bytes("+A\r\n")
    RESPValue.integer(7).encode(into: &buffer)
    RESPValue.bulkString(bytes("b")).encode(into: &buffer)
    XCTAssertEqual(buffer, bytes("+A\r\n:7\r\n$1\r\nb\r\n"))
  }

  // MARK: - Requests

  func testMultibulkRequests() {
    XCTAssertEqual(parse(bytes("*1\r\n$4\r\nPING\r\n")).requests, [request("PING")])
    XCTAssertEqual(
      parse(bytes("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$0\r\n\r\n")).requests, [request("SET", "key", "")])
    let value: [UInt8] = [0x00, 0x0D, 0x0A, 0x2A, 0x31, 0x0D, 0x0A, 0xFF]
    let input = bytes("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$8\r\n") + value + bytes("\r\n")
    XCTAssertEqual(parse(input).requests, [request("SET", "k") + [value]])
    var parser = RESPRequestParser()
    XCTAssertNil(try parser.next())
  }

  func testInlineRequests() {
    XCTAssertEqual(parse(bytes("PING\r\n")).requests, [request("PING")])
    XCTAssertEqual(parse(bytes("SET a b\r\n")).requests, [request("SET", "a", "b")])
    XCTAssertEqual(parse(bytes("  SET \t a\t\tb   \n")).requests, [request("SET", "a", "b")])
    XCTAssertEqual(parse(bytes("GET k\nGET j\r\n")).requests, [request("GET", "k"), request("GET", "j")])
    // Blank lines are empty requests, skipped.
    XCTAssertEqual(parse(bytes("\r\n\n   \r\nPING\n")).requests, [request("PING")])
    // No newline yet: nothing.
    XCTAssertEqual(parse(bytes("PING")).requests, [])
    XCTAssertNil(parse(bytes("PING")).error)
  }

  func testQuotedInlineArguments() {
    XCTAssertEqual(
      parse(bytes("SET \"a b\" 'c d'\r\n")).requests, [request("SET", "a b", "c d")])
    XCTAssertEqual(
      parse(bytes(#"SET k "\x41\x4a\x4B\n\r\t\"\\\b\a\q"\#r\#n"#)).requests,
      [request("SET", "k") + [bytes("AJK\n\r\t\"\\") + [0x08, 0x07] + bytes("q")]])
    XCTAssertEqual(parse(bytes(#"SET k "\x00\xff"\#r\#n"#)).requests, [request("SET", "k") + [[0x00, 0xFF]]])
    // Not a hex escape: the backslash escapes the `x`.
    XCTAssertEqual(parse(bytes(#"ECHO "\xzz"\#n"#)).requests, [request("ECHO", "xzz")])
    XCTAssertEqual(parse(bytes(#"ECHO 'it\'s' 'a\b'\#n"#)).requests, [request("ECHO", "it's", #"a\b"#)])
    XCTAssertEqual(parse(bytes("ECHO \"\" ''\n")).requests, [request("ECHO", "", "")])
    // A quote may open mid-argument (as in sdssplitargs).
    XCTAssertEqual(parse(bytes("ECHO a\"b c\"\n")).requests, [request("ECHO", "ab c")])
    XCTAssertEqual(parse(bytes("ECHO \"a\"\tb\n")).requests, [request("ECHO", "a", "b")])
  }

  func testUnbalancedQuotesAreProtocolErrors() {
    assertProtocolError("SET k \"abc\r\n", .unbalancedQuotes)
    assertProtocolError("SET k 'abc\n", .unbalancedQuotes)
    assertProtocolError("SET k \"abc\"def\n", .unbalancedQuotes)
    assertProtocolError("SET k 'abc'def\n", .unbalancedQuotes)
    assertProtocolError("SET k \"abc\\\"\n", .unbalancedQuotes)
  }

  func testEmptyMultibulkRequestsAreSkipped() {
    XCTAssertEqual(parse(bytes("*0\r\n")).requests, [])
    XCTAssertNil(parse(bytes("*0\r\n")).error)
    XCTAssertEqual(
      parse(bytes("*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n*0\r\n")).requests, [request("PING")])
  }

  func testPipelinedRequestsComeOutOneAtATime() {
    var input: [UInt8] = []
    var expected: [[[UInt8]]] = []
    for index in 0..<100 {
      let args = request("SET", "key:\(index)", String(repeating: "v", count: index))
      expected.append(args)
      if index.isMultiple(of: 3) {
        input += bytes("SET key:\(index) \"\(String(repeating: "v", count: index))\"\r\n")
      } else {
        input += RESPValue.multibulk(args).encoded
      }
    }
    var parser = RESPRequestParser()
    parser.append(input)
    for args in expected {
      XCTAssertEqual(try parser.next(), args)
    }
    XCTAssertNil(try parser.next())
    XCTAssertEqual(parser.bufferedByteCount, 0)
  }

  /// A pipelined buffer mixing every request shape.
  private var mixedPipeline: [UInt8] {
    bytes("*3\r\n$3\r\nSET\r\n$5\r\nk\r\n\r\n\r\n$0\r\n\r\n")
      + bytes("PING\r\n") + bytes("*0\r\n") + bytes("\r\n")
      + bytes("SET \"a\\x41 b\" 'it\\'s'\n")
      + RESPValue.multibulk([[0x00, 0xFF], bytes("*1\r\n$1\r\n")]).encoded
      + bytes("*-1\r\n") + bytes("  GET\tk  \r\n")
      + RESPValue.multibulk(request("MSET", "a", "1", "b", "2")).encoded
  }

  private var mixedPipelineRequests: [[[UInt8]]] {
    [
      request("SET", "k\r\n\r\n", ""), request("PING"), request("SET", "aA b", "it's"),
      [[0x00, 0xFF], bytes("*1\r\n$1\r\n")], request("GET", "k"), request("MSET", "a", "1", "b", "2"),
    ]
  }

  func testSplitReadsAtEveryByteBoundaryParseTheSame() {
    let input = mixedPipeline
    let expected = mixedPipelineRequests
    XCTAssertEqual(parse(input).requests, expected)
    for split in 0...input.count {
      let (requests, error) = parse(input, chunks: [split])
      XCTAssertNil(error, "split at \(split)")
      XCTAssertEqual(requests, expected, "split at \(split)")
    }
    for first in stride(from: 0, through: input.count, by: 7) {
      for second in 0...(input.count - first) {
        XCTAssertEqual(parse(input, chunks: [first, second]).requests, expected, "split \(first)+\(second)")
      }
    }
    XCTAssertEqual(parse(input, chunks: Array(repeating: 1, count: input.count)).requests, expected)
  }

  func testSplitReadsGiveTheSameErrorAtEveryBoundary() {
    let limits = RESPLimits(maxBulkBytes: 10, maxArrayLength: 4, maxInlineBytes: 16, maxBufferedBytes: 1_000)
    let cases: [(String, RESPProtocolError)] = [
      ("PING\r\n*1\r\n$4\r\nPINGxx", .missingBulkTerminator),
      ("PING\r\n*1\r\n$11\r\n", .bulkLengthTooLarge(length: 11, limit: 10)),
      ("PING\r\n*5\r\n", .multibulkLengthTooLarge(length: 5, limit: 4)),
      ("PING\r\nSET aaaaaaaaaaaaaaaaaaa\r\n", .inlineTooLong(limit: 16)),
      ("PING\r\n*1\r\n$" + String(repeating: "1", count: 40), .bulkCountTooLong),
      ("PING\r\n*2\r\n$1\r\na\r\n:1\r\n", .expectedBulkString(found: UInt8(ascii: ":"))),
    ]
    for (text, expectedError) in cases {
      let input = bytes(text)
      for split in 0...input.count {
        let (requests, error) = parse(input, chunks: [split], limits: limits)
        XCTAssertEqual(requests, [request("PING")], "\(text.debugDescription) split at \(split)")
        XCTAssertEqual(error, expectedError, "\(text.debugDescription) split at \(split)")
      }
    }
  }

  func testRandomChunkingParsesTheSame() {
    var input: [UInt8] = []
    for _ in 0..<20 {
      input += mixedPipeline
    }
    let expected = Array(repeating: mixedPipelineRequests, count: 20).flatMap { $0 }
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    for _ in 0..<50 {
      var chunks: [Int] = []
      var total = 0
      while total < input.count {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        let size = Int(state >> 58) + 1
        chunks.append(size)
        total += size
      }
      XCTAssertEqual(parse(input, chunks: chunks).requests, expected)
    }
  }

  // MARK: - Limits

  func testBulkLengthLimit() {
    let limits = RESPLimits(maxBulkBytes: 8)
    XCTAssertEqual(parse(bytes("*1\r\n$8\r\n12345678\r\n"), limits: limits).requests, [request("12345678")])
    assertProtocolError("*1\r\n$9\r\n", .bulkLengthTooLarge(length: 9, limit: 8), limits: limits)
    // The default: a 1 MiB value plus slack passes, a huge claim fails before any byte arrives.
    assertProtocolError("*1\r\n$2000000\r\n", .bulkLengthTooLarge(length: 2_000_000, limit: 1_052_672))
    assertProtocolError(
      "*1\r\n$9223372036854775807\r\n", .bulkLengthTooLarge(length: .max, limit: 1_052_672))
  }

  func testArrayLengthLimit() {
    let limits = RESPLimits(maxArrayLength: 2)
    XCTAssertEqual(
      parse(bytes("*2\r\n$1\r\na\r\n$1\r\nb\r\n"), limits: limits).requests, [request("a", "b")])
    assertProtocolError("*3\r\n", .multibulkLengthTooLarge(length: 3, limit: 2), limits: limits)
    assertProtocolError("*1048577\r\n", .multibulkLengthTooLarge(length: 1_048_577, limit: 1_048_576))
    // A huge count reserves nothing up front: the parser just waits for the arguments.
    var parser = RESPRequestParser()
    parser.append(bytes("*1048576\r\n$1\r\na\r\n"))
    XCTAssertNil(try parser.next())
  }

  func testInlineLengthLimit() {
    let limits = RESPLimits(maxInlineBytes: 8)
    XCTAssertEqual(parse(bytes("GET abcd\r\n"), limits: limits).error, .inlineTooLong(limit: 8))
    XCTAssertEqual(parse(bytes("GET abc\r\n"), limits: limits).requests, [request("GET", "abc")])
    XCTAssertEqual(parse(bytes("GET abcd\n"), limits: limits).requests, [request("GET", "abcd")])
    // Without a newline: fails once more than the limit is buffered, not before.
    XCTAssertNil(parse(bytes("GET abcd"), limits: limits).error)
    assertProtocolError("GET abcde", .inlineTooLong(limit: 8), limits: limits)
    // The default limit is 64 KiB.
    let long = bytes("SET k ") + Array(repeating: UInt8(ascii: "v"), count: 70_000)
    XCTAssertEqual(parse(long).error, .inlineTooLong(limit: 65_536))
  }

  func testBufferedBytesLimit() {
    let limits = RESPLimits(maxBulkBytes: 100, maxBufferedBytes: 150)
    var parser = RESPRequestParser(limits: limits)
    parser.append(Array(repeating: UInt8(ascii: "a"), count: 150))
    XCTAssertNil(try parser.next())
    parser.append([UInt8(ascii: "a")])
    XCTAssertThrowsError(try parser.next()) { error in
      XCTAssertEqual(error as? RESPProtocolError, .bufferLimitExceeded(limit: 150))
    }
    XCTAssertEqual(parser.bufferedByteCount, 0)

    // The arguments of a request in progress count too.
    parser = RESPRequestParser(limits: limits)
    let value = Array(repeating: UInt8(ascii: "x"), count: 60)
    parser.append(bytes("*3\r\n") + RESPValue.bulkString(value).encoded + RESPValue.bulkString(value).encoded)
    XCTAssertNil(try parser.next())
    XCTAssertEqual(parser.bufferedByteCount, 120)
    parser.append(bytes("$60\r\n") + value.prefix(40))
    XCTAssertThrowsError(try parser.next()) { error in
      XCTAssertEqual(error as? RESPProtocolError, .bufferLimitExceeded(limit: 150))
    }

    // Draining frees the room.
    parser = RESPRequestParser(limits: limits)
    for _ in 0..<10 {
      parser.append(RESPValue.multibulk([value]).encoded)
      XCTAssertEqual(try parser.next(), [value])
      XCTAssertEqual(parser.bufferedByteCount, 0)
    }
  }

  // MARK: - Malformed input

  func testMalformedMultibulkHeaders() {
    assertProtocolError("*abc\r\n", .invalidMultibulkLength)
    assertProtocolError("*\r\n", .invalidMultibulkLength)
    assertProtocolError("*+1\r\n", .invalidMultibulkLength)
    assertProtocolError("* 1\r\n", .invalidMultibulkLength)
    assertProtocolError("*01\r\n", .invalidMultibulkLength)
    assertProtocolError("*-0\r\n", .invalidMultibulkLength)
    assertProtocolError("*1x\r\n", .invalidMultibulkLength)
    assertProtocolError("*1\rX", .invalidMultibulkLength)
    assertProtocolError("*9223372036854775808\r\n", .invalidMultibulkLength)
    assertProtocolError("*99999999999999999999\r\n", .invalidMultibulkLength)
    assertProtocolError("*" + String(repeating: "1", count: 33), .multibulkCountTooLong)
    assertProtocolError("*1\n$1\r\na\r\n", .invalidMultibulkLength)
  }

  func testMalformedBulkHeaders() {
    assertProtocolError("*1\r\nfoo\r\n", .expectedBulkString(found: UInt8(ascii: "f")))
    assertProtocolError("*2\r\n$1\r\na\r\n*1\r\n", .expectedBulkString(found: UInt8(ascii: "*")))
    assertProtocolError("*1\r\n$x\r\n", .invalidBulkLength)
    assertProtocolError("*1\r\n$\r\n", .invalidBulkLength)
    assertProtocolError("*1\r\n$-1\r\n", .invalidBulkLength)
    assertProtocolError("*1\r\n$-5\r\n", .invalidBulkLength)
    assertProtocolError("*1\r\n$01\r\n", .invalidBulkLength)
    assertProtocolError("*1\r\n$3\rfoo\r\n", .invalidBulkLength)
    assertProtocolError("*1\r\n$18446744073709551616\r\n", .invalidBulkLength)
    assertProtocolError("*1\r\n$-9223372036854775809\r\n", .invalidBulkLength)
    assertProtocolError("*1\r\n$" + String(repeating: "9", count: 40) + "\r\n", .bulkCountTooLong)
  }

  func testMissingCRLFAfterABulkString() {
    assertProtocolError("*1\r\n$3\r\nfooXY", .missingBulkTerminator)
    assertProtocolError("*1\r\n$3\r\nfoo\rX", .missingBulkTerminator)
    assertProtocolError("*1\r\n$3\r\nfoo\n\r", .missingBulkTerminator)
    assertProtocolError("*1\r\n$2\r\nfoo\r\n", .missingBulkTerminator)
  }

  func testErrorDescriptionsReadAsRedisDoes() {
    XCTAssertEqual(RESPProtocolError.invalidBulkLength.description, "invalid bulk length")
    XCTAssertEqual(RESPProtocolError.invalidMultibulkLength.description, "invalid multibulk length")
    XCTAssertEqual(RESPProtocolError.unbalancedQuotes.description, "unbalanced quotes in request")
    XCTAssertEqual(
      RESPProtocolError.expectedBulkString(found: UInt8(ascii: "x")).description, "expected '$', got 'x'")
    XCTAssertEqual(
      RESPProtocolError.expectedBulkString(found: 0x0A).description, "expected '$', got '\\x0a'")
    XCTAssertEqual(
      RESPProtocolError.bulkLengthTooLarge(length: 9, limit: 8).description,
      "invalid bulk length: 9 bytes is over the limit of 8")
    let reply = RESPValue.error("ERR Protocol error: \(RESPProtocolError.expectedBulkString(found: 0x0D))")
    XCTAssertEqual(reply.encoded, bytes("-ERR Protocol error: expected '$', got '\\x0d'\r\n"))
  }

  // MARK: - Large values and linear work

  func testAOneMebibyteValueRoundTrips() {
    var value = [UInt8](repeating: 0, count: 1_048_576)
    var state: UInt32 = 12_345
    for index in value.indices {
      state = state &* 1_664_525 &+ 1_013_904_223
      value[index] = UInt8(truncatingIfNeeded: state >> 24)
    }
    let args = [bytes("SET"), bytes("big"), value]
    let input = RESPValue.multibulk(args).encoded + RESPValue.multibulk(request("GET", "big")).encoded
    XCTAssertEqual(parse(input).requests, [args, request("GET", "big")])
    let chunked = parse(input, chunks: Array(repeating: 65_536, count: 17))
    XCTAssertEqual(chunked.requests, [args, request("GET", "big")])
    XCTAssertNil(chunked.error)
  }

  func testByteAtATimeFeedingStaysLinear() throws {
    // Quadratic re-scanning would make these take minutes.
    var parser = RESPRequestParser()
    let line = bytes("ECHO ") + Array(repeating: UInt8(ascii: "a"), count: 65_000) + bytes("\r\n")
    for byte in line.dropLast() {
      parser.append([byte])
      XCTAssertNil(try parser.next())
    }
    parser.append([line[line.count - 1]])
    XCTAssertEqual(try parser.next(), [bytes("ECHO"), Array(line[5..<65_005])])

    let value = [UInt8](repeating: 7, count: 262_144)
    let encoded = RESPValue.multibulk([value]).encoded
    var requests = 0
    for byte in encoded {
      parser.append(CollectionOfOne(byte))
      while let request = try parser.next() {
        XCTAssertEqual(request, [value])
        requests += 1
      }
    }
    XCTAssertEqual(requests, 1)
    XCTAssertEqual(parser.bufferedByteCount, 0)
  }

  func testEncodedRequestsParseBack() throws {
    let requests: [[[UInt8]]] = [
      [], request("PING"), request("SET", "k", ""), [[0x0D, 0x0A], [], [0x2A, 0x24]],
    ]
    var parser = RESPRequestParser()
    for args in requests {
      parser.append(RESPValue.multibulk(args).encoded)
    }
    // The empty one is skipped.
    for args in requests.dropFirst() {
      XCTAssertEqual(try parser.next(), args)
    }
    XCTAssertNil(try parser.next())
  }
}
