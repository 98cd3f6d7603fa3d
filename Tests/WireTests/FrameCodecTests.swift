import Foundation
import NIOCore
import XCTest

@testable import Wire

final class FrameCodecTests: XCTestCase {
  private func sampleEnvelopes() -> [Shardkv_Envelope] {
    [
      .request(id: 1, method: "raft.append", payload: Array("hello".utf8)),
      .response(id: 1, payload: []),
      .error(id: 7, code: .handlerFailed, message: "boom"),
      .request(id: UInt64.max, method: "kv.put", payload: [UInt8](repeating: 0xAB, count: 70_000)),
    ]
  }

  private func encode(
    _ envelopes: [Shardkv_Envelope], limit: Int = Frame.defaultMaximumSize
  ) throws -> ByteBuffer {
    var buffer = ByteBufferAllocator().buffer(capacity: 0)
    for envelope in envelopes {
      try FrameEncoder.encode(envelope, into: &buffer, maximumFrameSize: limit)
    }
    return buffer
  }

  func testRoundTripInOneChunk() throws {
    let envelopes = sampleEnvelopes()
    let processor = NIOSingleStepByteToMessageProcessor(FrameDecoder())
    var decoded: [Shardkv_Envelope] = []
    try processor.process(buffer: try encode(envelopes)) { decoded.append($0) }
    XCTAssertEqual(decoded, envelopes)
  }

  func testLengthPrefixIsBigEndianBodyLength() throws {
    let envelope = Shardkv_Envelope.request(id: 3, method: "m", payload: [1, 2, 3])
    let buffer = try encode([envelope])
    let body: [UInt8] = try envelope.serializedBytes()
    XCTAssertEqual(buffer.getInteger(at: 0, endianness: .big, as: UInt32.self), UInt32(body.count))
    XCTAssertEqual(buffer.readableBytes, Frame.headerSize + body.count)
  }

  func testIncrementalDecodeByteByByte() throws {
    let envelopes = sampleEnvelopes()
    var encoded = try encode(envelopes)
    let processor = NIOSingleStepByteToMessageProcessor(FrameDecoder())
    var decoded: [Shardkv_Envelope] = []
    while let byte = encoded.readSlice(length: 1) {
      try processor.process(buffer: byte) { decoded.append($0) }
    }
    XCTAssertEqual(decoded, envelopes)
    XCTAssertEqual(processor.unprocessedBytes, 0)
  }

  func testOversizedLengthPrefixIsAnErrorNotACrash() {
    var buffer = ByteBufferAllocator().buffer(capacity: 8)
    buffer.writeInteger(UInt32.max, endianness: .big)
    buffer.writeBytes([1, 2, 3, 4])
    let processor = NIOSingleStepByteToMessageProcessor(FrameDecoder(maximumFrameSize: 1024))
    XCTAssertThrowsError(try processor.process(buffer: buffer) { _ in XCTFail("decoded a frame") }) { error in
      XCTAssertEqual(error as? RPCError, .frameTooLarge(size: Int(UInt32.max), limit: 1024))
    }
  }

  func testOversizedPrefixFailsBeforeTheBodyArrives() {
    var buffer = ByteBufferAllocator().buffer(capacity: 4)
    buffer.writeInteger(UInt32(2048), endianness: .big)
    var decoder = FrameDecoder(maximumFrameSize: 1024)
    XCTAssertThrowsError(try decoder.decode(buffer: &buffer))
  }

  func testUndecodableEnvelopeIsMalformed() {
    var buffer = ByteBufferAllocator().buffer(capacity: 8)
    let garbage: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
    buffer.writeInteger(UInt32(garbage.count), endianness: .big)
    buffer.writeBytes(garbage)
    var decoder = FrameDecoder()
    XCTAssertThrowsError(try decoder.decode(buffer: &buffer)) { error in
      guard case .malformed = error as? RPCError else {
        return XCTFail("expected .malformed, got \(error)")
      }
    }
  }

  func testEncoderRefusesOversizedEnvelopeAndLeavesBufferUnchanged() throws {
    var buffer = ByteBufferAllocator().buffer(capacity: 0)
    let big = Shardkv_Envelope.request(id: 1, method: "m", payload: [UInt8](repeating: 0, count: 2000))
    XCTAssertThrowsError(try FrameEncoder.encode(big, into: &buffer, maximumFrameSize: 1000)) { error in
      guard case .frameTooLarge(_, 1000) = error as? RPCError else {
        return XCTFail("expected .frameTooLarge, got \(error)")
      }
    }
    XCTAssertEqual(buffer.readableBytes, 0)
  }

  func testPartialFrameIsNotDecoded() throws {
    var encoded = try encode([.request(id: 9, method: "m", payload: [1, 2, 3])])
    encoded.moveWriterIndex(to: encoded.writerIndex - 1)
    var decoder = FrameDecoder()
    XCTAssertNil(try decoder.decode(buffer: &encoded))
  }
}
