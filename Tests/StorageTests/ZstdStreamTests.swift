import XCTest

@testable import Storage

final class ZstdStreamTests: XCTestCase {
  func testStreamingRoundTripOverManyChunks() throws {
    let input = makeTestData(count: 20 << 20)
    let compressor = try ZstdCompressor()
    var compressed: [UInt8] = []
    var offset = 0
    while offset < input.count {
      let end = min(offset + (64 << 10), input.count)
      compressed += try compressor.compress(Array(input[offset..<end]))
      offset = end
    }
    compressed += try compressor.finish()
    XCTAssertLessThan(compressed.count, input.count / 2)

    let decompressor = try ZstdDecompressor(maxOutputSize: input.count)
    var output: [UInt8] = []
    output.reserveCapacity(input.count)
    let pieceSizes = [1, 7, 4093, 65_537, 13, 250_001]
    offset = 0
    var piece = 0
    while offset < compressed.count {
      let end = min(offset + pieceSizes[piece % pieceSizes.count], compressed.count)
      output += try decompressor.decompress(Array(compressed[offset..<end]))
      offset = end
      piece += 1
    }
    try decompressor.finish()
    XCTAssertEqual(output.count, input.count)
    XCTAssertTrue(output == input)
  }

  func testEmptyStreamRoundTrips() throws {
    let compressor = try ZstdCompressor()
    XCTAssertEqual(try compressor.compress([]), [])
    let frame = try compressor.finish()
    XCTAssertFalse(frame.isEmpty, "even an empty frame has a header")
    let decompressor = try ZstdDecompressor(maxOutputSize: 0)
    XCTAssertEqual(try decompressor.decompress(frame), [])
    try decompressor.finish()
  }

  func testTruncatedStreamFailsOnFinish() throws {
    let input = makeTestData(count: 1 << 20)
    let compressor = try ZstdCompressor()
    let frame = try compressor.compress(input) + compressor.finish()
    for length in [frame.count - 1, frame.count / 2, 3] {
      let decompressor = try ZstdDecompressor(maxOutputSize: input.count)
      let partial = try decompressor.decompress(Array(frame.prefix(length)))
      XCTAssertEqual(partial, Array(input.prefix(partial.count)), "what comes out is a correct prefix")
      XCTAssertEqual(
        assertThrowsCompressionError { () throws(CompressionError) in try decompressor.finish() },
        .truncatedInput)
    }
  }

  func testNoInputFailsOnFinish() throws {
    let decompressor = try ZstdDecompressor(maxOutputSize: 10)
    XCTAssertEqual(
      assertThrowsCompressionError { () throws(CompressionError) in try decompressor.finish() },
      .truncatedInput)
  }

  func testGarbageStreamFails() throws {
    let decompressor = try ZstdDecompressor(maxOutputSize: 1 << 20)
    let error = assertThrowsCompressionError { () throws(CompressionError) in
      try decompressor.decompress(makeTestData(count: 4096))
    }
    guard case .zstd(let operation, let message)? = error else {
      return XCTFail("expected .zstd, got \(String(describing: error))")
    }
    XCTAssertEqual(operation, "decompress")
    XCTAssertFalse(message.isEmpty)
    // A failed decompressor refuses further use.
    XCTAssertEqual(
      assertThrowsCompressionError { () throws(CompressionError) in try decompressor.decompress([1]) },
      .streamFinished)
  }

  func testGarbageAfterCompleteFrameFails() throws {
    let compressor = try ZstdCompressor()
    let frame = try compressor.compress([1, 2, 3]) + compressor.finish()
    let decompressor = try ZstdDecompressor(maxOutputSize: 100)
    XCTAssertEqual(try decompressor.decompress(frame), [1, 2, 3])
    XCTAssertNotNil(
      assertThrowsCompressionError { () throws(CompressionError) in
        try decompressor.decompress([UInt8](utf8: "junk"))
      })
  }

  func testOutputCapIsEnforced() throws {
    let input = [UInt8](repeating: 1, count: 1 << 20)
    let compressed = try Zstd.compress(input)
    let decompressor = try ZstdDecompressor(maxOutputSize: 100_000)
    XCTAssertEqual(
      assertThrowsCompressionError { () throws(CompressionError) in try decompressor.decompress(compressed) },
      .outputLimitExceeded(limit: 100_000))
  }

  func testCompressorRejectsUseAfterFinish() throws {
    let compressor = try ZstdCompressor(level: 1)
    _ = try compressor.compress([1, 2, 3])
    _ = try compressor.finish()
    XCTAssertEqual(
      assertThrowsCompressionError { () throws(CompressionError) in try compressor.compress([4]) },
      .streamFinished)
    XCTAssertEqual(
      assertThrowsCompressionError { () throws(CompressionError) in try compressor.finish() }, .streamFinished
    )
  }

  func testStreamedFramesConcatenate() throws {
    // Two independently compressed chunks (as a snapshot sender might emit) decode as one stream.
    var stream: [UInt8] = []
    for part in [[UInt8](utf8: "first "), [UInt8](utf8: "second")] {
      let compressor = try ZstdCompressor()
      stream += try compressor.compress(part) + compressor.finish()
    }
    let decompressor = try ZstdDecompressor(maxOutputSize: 100)
    XCTAssertEqual(try decompressor.decompress(stream), [UInt8](utf8: "first second"))
    try decompressor.finish()
  }
}
