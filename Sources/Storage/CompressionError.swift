/// A failure of zstd compression or decompression.
public enum CompressionError: Error, Equatable, CustomStringConvertible {
  /// zstd reported an error (corrupt or truncated input, checksum mismatch, ...);
  /// `message` is `ZSTD_getErrorName`'s text.
  case zstd(operation: String, message: String)
  /// The input does not start with a zstd frame header.
  case notZstdFrame
  /// Decompressing would produce more than `limit` bytes.
  case outputLimitExceeded(limit: Int)
  /// The input ended in the middle of a frame.
  case truncatedInput
  /// The stream was already finished (or failed earlier) and cannot take more input.
  case streamFinished
  /// zstd could not allocate a context.
  case allocationFailed

  public var description: String {
    switch self {
    case .zstd(let operation, let message):
      return "zstd \(operation) failed: \(message)"
    case .notZstdFrame:
      return "input is not zstd-compressed data (no valid frame header)"
    case .outputLimitExceeded(let limit):
      return "decompressed data would exceed the limit of \(limit) bytes"
    case .truncatedInput:
      return "zstd input ended in the middle of a frame (truncated)"
    case .streamFinished:
      return "the zstd stream is already finished or has failed"
    case .allocationFailed:
      return "zstd could not allocate a context"
    }
  }
}
