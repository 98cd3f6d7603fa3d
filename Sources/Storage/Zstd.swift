import CZstd

/// One-shot zstd compression for payloads that fit in memory.
///
/// Frames carry their content size and a content checksum, so corruption is detected on
/// decompression rather than returned as wrong bytes.
public enum Zstd {
  /// The default compression level: zstd's own default, a good speed/ratio balance.
  public static let defaultLevel: Int32 = 3

  /// Compresses `input` into a single zstd frame.
  public static func compress(
    _ input: [UInt8], level: Int32 = defaultLevel
  ) throws(CompressionError) -> [UInt8] {
    guard let context = ZSTD_createCCtx() else { throw .allocationFailed }
    defer { ZSTD_freeCCtx(context) }
    try configure(context, level: level)
    let capacity = ZSTD_compressBound(input.count)
    var result: Int = 0
    let output = [UInt8](unsafeUninitializedCapacity: max(capacity, 1)) { buffer, initializedCount in
      result = input.withUnsafeBytes { source in
        ZSTD_compress2(context, buffer.baseAddress, capacity, source.baseAddress, source.count)
      }
      initializedCount = ZSTD_isError(result) == 0 ? result : 0
    }
    try check(result, operation: "compress")
    return output
  }

  /// Decompresses `input`, which may hold several concatenated frames, refusing to produce more
  /// than `maxOutputSize` bytes (the input is untrusted: a frame header can claim any size).
  public static func decompress(_ input: [UInt8], maxOutputSize: Int) throws(CompressionError) -> [UInt8] {
    let contentSize = input.withUnsafeBytes { ZSTD_getFrameContentSize($0.baseAddress, $0.count) }
    let firstFrameSize = input.withUnsafeBytes { ZSTD_findFrameCompressedSize($0.baseAddress, $0.count) }
    switch contentSize {
    case contentSizeError:
      throw .notZstdFrame
    case contentSizeUnknown:
      return try decompressStreaming(input, maxOutputSize: maxOutputSize)
    case let size where size > UInt64(max(maxOutputSize, 0)):
      throw .outputLimitExceeded(limit: maxOutputSize)
    default:
      break
    }
    // The header's size covers the first frame only; more frames (or a truncated or damaged
    // one) go through the streaming path, which enforces the limit as it goes.
    guard ZSTD_isError(firstFrameSize) == 0, firstFrameSize == input.count else {
      return try decompressStreaming(input, maxOutputSize: maxOutputSize)
    }
    let capacity = Int(contentSize)
    var result: Int = 0
    let output = [UInt8](unsafeUninitializedCapacity: max(capacity, 1)) { buffer, initializedCount in
      result = input.withUnsafeBytes { source in
        ZSTD_decompress(buffer.baseAddress, capacity, source.baseAddress, source.count)
      }
      initializedCount = ZSTD_isError(result) == 0 ? result : 0
    }
    try check(result, operation: "decompress")
    guard result == capacity else {
      throw .zstd(operation: "decompress", message: "frame content size does not match its header")
    }
    return output
  }

  private static func decompressStreaming(
    _ input: [UInt8], maxOutputSize: Int
  ) throws(CompressionError) -> [UInt8] {
    let decompressor = try ZstdDecompressor(maxOutputSize: maxOutputSize)
    let output = try decompressor.decompress(input)
    try decompressor.finish()
    return output
  }

  /// `ZSTD_CONTENTSIZE_UNKNOWN` and `ZSTD_CONTENTSIZE_ERROR`, macros Swift does not import.
  static let contentSizeUnknown: UInt64 = .max
  static let contentSizeError: UInt64 = .max - 1

  static func configure(_ context: OpaquePointer, level: Int32) throws(CompressionError) {
    try check(ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level), operation: "set level")
    try check(ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1), operation: "enable checksum")
  }

  /// Throws if `code` is a zstd error code.
  static func check(_ code: Int, operation: String) throws(CompressionError) {
    guard ZSTD_isError(code) != 0 else { return }
    throw .zstd(operation: operation, message: String(cString: ZSTD_getErrorName(code)))
  }
}
