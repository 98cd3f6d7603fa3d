import NIOCore
import SwiftProtobuf

/// Serializes outgoing envelopes into frames.
///
/// Unlike NIO's `MessageToByteHandler`, which refuses every later write once one encoding fails,
/// an oversized envelope fails only its own write promise (with `RPCError.frameTooLarge`) and the
/// connection stays usable: a too-large reply should become an ERROR reply, not a dead socket.
public final class FrameEncoder: ChannelOutboundHandler {
  public typealias OutboundIn = Shardkv_Envelope
  public typealias OutboundOut = ByteBuffer

  /// The largest body this side will send, in bytes.
  public let maximumFrameSize: Int

  public init(maximumFrameSize: Int = Frame.defaultMaximumSize) {
    precondition(maximumFrameSize > 0, "maximumFrameSize must be positive")
    self.maximumFrameSize = maximumFrameSize
  }

  public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
    let envelope = Self.unwrapOutboundIn(data)
    var buffer = context.channel.allocator.buffer(capacity: 0)
    do {
      try Self.encode(envelope, into: &buffer, maximumFrameSize: maximumFrameSize)
    } catch {
      promise?.fail(error)
      return
    }
    context.write(Self.wrapOutboundOut(buffer), promise: promise)
  }

  /// Appends `envelope` to `buffer` as one frame.
  ///
  /// - Throws: `RPCError.frameTooLarge` if the serialized envelope exceeds `maximumFrameSize`
  ///   (the buffer is then unchanged); `RPCError.malformed` if serialization fails.
  public static func encode(
    _ envelope: Shardkv_Envelope, into buffer: inout ByteBuffer,
    maximumFrameSize: Int = Frame.defaultMaximumSize
  ) throws(RPCError) {
    let body: [UInt8]
    do {
      body = try envelope.serializedBytes()
    } catch {
      throw .malformed("cannot serialize envelope: \(error)")
    }
    guard body.count <= maximumFrameSize else {
      throw .frameTooLarge(size: body.count, limit: maximumFrameSize)
    }
    buffer.reserveCapacity(minimumWritableBytes: Frame.headerSize + body.count)
    buffer.writeInteger(UInt32(body.count), endianness: .big)
    buffer.writeBytes(body)
  }
}

@available(*, unavailable)
extension FrameEncoder: Sendable {}
