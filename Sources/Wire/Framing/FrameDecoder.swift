import NIOCore
import SwiftProtobuf

/// Splits a byte stream into frames and parses each into an envelope.
///
/// Use it in a pipeline as `ByteToMessageHandler(FrameDecoder())`, or drive it without a channel
/// through `NIOSingleStepByteToMessageProcessor`. It buffers nothing itself: an incomplete frame
/// stays in NIO's cumulation buffer until the rest arrives, whatever the chunking.
///
/// Errors (`RPCError.frameTooLarge`, `RPCError.malformed`) leave the stream out of step, so the
/// owner of the connection must close it after one; NIO's `ByteToMessageHandler` stops decoding
/// after the first error.
public struct FrameDecoder: NIOSingleStepByteToMessageDecoder {
  public typealias InboundOut = Shardkv_Envelope

  /// The largest accepted body, in bytes.
  public let maximumFrameSize: Int

  public init(maximumFrameSize: Int = Frame.defaultMaximumSize) {
    precondition(maximumFrameSize > 0, "maximumFrameSize must be positive")
    self.maximumFrameSize = maximumFrameSize
  }

  public mutating func decode(buffer: inout ByteBuffer) throws -> Shardkv_Envelope? {
    guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self)
    else {
      return nil
    }
    // Checked before waiting for the body, so an absurd prefix fails at once.
    guard UInt64(length) <= UInt64(maximumFrameSize) else {
      throw RPCError.frameTooLarge(size: Int(length), limit: maximumFrameSize)
    }
    let bodyLength = Int(length)
    guard buffer.readableBytes >= Frame.headerSize + bodyLength else {
      return nil
    }
    buffer.moveReaderIndex(forwardBy: Frame.headerSize)
    guard let body = buffer.readBytes(length: bodyLength) else {
      return nil  // Unreachable: the length was checked above.
    }
    do {
      return try Shardkv_Envelope(serializedBytes: body)
    } catch {
      throw RPCError.malformed("undecodable envelope of \(bodyLength) bytes: \(error)")
    }
  }

  public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> Shardkv_Envelope? {
    // A partial frame at end of stream is dropped: its sender is gone and cannot complete it.
    try decode(buffer: &buffer)
  }
}
