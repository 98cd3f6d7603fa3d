import XCTest

@testable import Storage

final class ZstdTests: XCTestCase {
  func testRoundTripEmptySmallAndLarge() throws {
    let large = makeTestData(count: 5 << 20)
    for input in [[], [UInt8](utf8: "hello, shard"), large] {
      let compressed = try Zstd.compress(input)
      XCTAssertEqual(try Zstd.decompress(compressed, maxOutputSize: input.count), input)
    }
    let compressed = try Zstd.compress(large, level: 1)
    XCTAssertLessThan(compressed.count, large.count / 2, "test data is meant to be compressible")
  }

  func testCorruptInputThrows() throws {
    let input = makeTestData(count: 100_000)
    var compressed = try Zstd.compress(input)
    for offset in stride(from: compressed.count / 2, to: compressed.count / 2 + 8, by: 1) {
      compressed[offset] ^= 0x5A
    }
    let error = assertThrowsCompressionError { () throws(CompressionError) in
      try Zstd.decompress(compressed, maxOutputSize: input.count)
    }
    guard case .zstd(_, let message)? = error else {
      return XCTFail("expected .zstd, got \(String(describing: error))")
    }
    XCTAssertFalse(message.isEmpty)
  }

  func testGarbageIsNotAFrame() {
    XCTAssertEqual(
      assertThrowsCompressionError { () throws(CompressionError) in
        try Zstd.decompress([UInt8](utf8: "definitely not zstd"), maxOutputSize: 1 << 20)
      }, .notZstdFrame)
    XCTAssertEqual(
      assertThrowsCompressionError { () throws(CompressionError) in try Zstd.decompress([], maxOutputSize: 10)
      },
      .notZstdFrame)
  }

  func testTruncatedInputThrows() throws {
    let input = makeTestData(count: 200_000)
    let compressed = try Zstd.compress(input)
    for length in [compressed.count - 1, compressed.count / 2, 20] {
      let error = assertThrowsCompressionError { () throws(CompressionError) in
        try Zstd.decompress(Array(compressed.prefix(length)), maxOutputSize: input.count)
      }
      XCTAssertNotNil(error, "length \(length)")
    }
  }

  func testOutputLargerThanMaximumThrows() throws {
    let input = [UInt8](repeating: 7, count: 1 << 20)
    let compressed = try Zstd.compress(input)
    XCTAssertEqual(
      assertThrowsCompressionError { () throws(CompressionError) in
        try Zstd.decompress(compressed, maxOutputSize: input.count - 1)
      }, .outputLimitExceeded(limit: input.count - 1))
    XCTAssertEqual(try Zstd.decompress(compressed, maxOutputSize: input.count), input)
  }

  func testUnknownContentSizeFallsBackToStreamingWithLimit() throws {
    // A streamed frame has no content size in its header.
    let input = makeTestData(count: 300_000)
    let compressor = try ZstdCompressor()
    let frame = try compressor.compress(input) + compressor.finish()
    XCTAssertEqual(try Zstd.decompress(frame, maxOutputSize: input.count), input)
    XCTAssertEqual(
      assertThrowsCompressionError { () throws(CompressionError) in
        try Zstd.decompress(frame, maxOutputSize: 1000)
      }, .outputLimitExceeded(limit: 1000))
  }

  func testConcatenatedFramesDecompressTogether() throws {
    let first = makeTestData(count: 10_000, seed: 1)
    let second = makeTestData(count: 20_000, seed: 2)
    let frames = try Zstd.compress(first) + Zstd.compress(second)
    XCTAssertEqual(try Zstd.decompress(frames, maxOutputSize: 30_000), first + second)
    XCTAssertEqual(
      assertThrowsCompressionError { () throws(CompressionError) in
        try Zstd.decompress(frames, maxOutputSize: 29_999)
      },
      .outputLimitExceeded(limit: 29_999))
  }

  func testErrorDescriptionsAreReadable() {
    XCTAssertTrue(CompressionError.outputLimitExceeded(limit: 5).description.contains("5 bytes"))
    XCTAssertTrue(
      CompressionError.zstd(operation: "decompress", message: "boom").description.contains("boom"))
  }
}
