import CZstd

/// Streaming zstd compression, for payloads too large to hold at once (a shard snapshot).
///
/// Feed chunks with `compress(_:)`, then call `finish()` once; concatenating every returned
/// array gives one zstd frame (with a content checksum, but no content size, which is unknown
/// up front). Not `Sendable`: a zstd context must not be used by two threads at once.
public final class ZstdCompressor {
  private let context: OpaquePointer
  private var isFinished = false
  private let outputChunkSize = ZSTD_CStreamOutSize()

  public init(level: Int32 = Zstd.defaultLevel) throws(CompressionError) {
    guard let context = ZSTD_createCCtx() else { throw .allocationFailed }
    self.context = context
    try Zstd.configure(context, level: level)
  }

  deinit {
    ZSTD_freeCCtx(context)
  }

  /// Compresses `chunk`, returning the compressed bytes ready so far (often none: zstd buffers
  /// input until it has a block's worth).
  public func compress(_ chunk: [UInt8]) throws(CompressionError) -> [UInt8] {
    try run(chunk, directive: ZSTD_e_continue)
  }

  /// Ends the frame, returning the remaining compressed bytes. Later calls throw `.streamFinished`.
  public func finish() throws(CompressionError) -> [UInt8] {
    let output = try run([], directive: ZSTD_e_end)
    isFinished = true
    return output
  }

  private func run(_ chunk: [UInt8], directive: ZSTD_EndDirective) throws(CompressionError) -> [UInt8] {
    guard !isFinished else { throw .streamFinished }
    var output: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: outputChunkSize)
    var failure: Int?
    chunk.withUnsafeBytes { source in
      var input = ZSTD_inBuffer(src: source.baseAddress, size: source.count, pos: 0)
      buffer.withUnsafeMutableBytes { destination in
        while true {
          var out = ZSTD_outBuffer(dst: destination.baseAddress, size: destination.count, pos: 0)
          let remaining = ZSTD_compressStream2(context, &out, &input, directive)
          if ZSTD_isError(remaining) != 0 {
            failure = remaining
            return
          }
          output.append(contentsOf: destination.prefix(out.pos))
          // `continue` is done once all input is consumed; `end` once zstd reports nothing left.
          let done = directive == ZSTD_e_end ? remaining == 0 : input.pos == input.size
          if done { return }
        }
      }
    }
    if let failure {
      isFinished = true  // the context is in an undefined state after an error
      try Zstd.check(failure, operation: "compress")
    }
    return output
  }
}

/// Streaming zstd decompression with a cap on the total output.
///
/// Feed compressed chunks of any size with `decompress(_:)`, then call `finish()`, which throws
/// if the data ended inside a frame. Concatenated frames are accepted. After any error the
/// decompressor refuses further input. Not `Sendable`: a zstd context must not be shared
/// between threads.
public final class ZstdDecompressor {
  private let context: OpaquePointer
  private let maxOutputSize: Int
  private var producedCount = 0
  /// Whether the input so far ends exactly at a frame boundary (and at least one frame began).
  private var atFrameBoundary = false
  private var receivedInput = false
  private var isFinished = false
  private let outputChunkSize = ZSTD_DStreamOutSize()

  /// The largest window (log2 bytes) a frame may ask for: the decoder allocates that much
  /// before producing anything, so an untrusted frame must not choose it freely. 8 MiB covers
  /// every frame `Zstd.compress` writes (its levels use at most a 2 MiB window for our sizes).
  public static let defaultMaxWindowLog: Int32 = 23

  /// - Parameters:
  ///   - maxOutputSize: the most bytes all calls together may return; the input is untrusted,
  ///     and a tiny frame can expand to gigabytes.
  ///   - maxWindowLog: frames asking for a larger window fail instead of allocating it.
  public init(maxOutputSize: Int, maxWindowLog: Int32 = defaultMaxWindowLog) throws(CompressionError) {
    guard let context = ZSTD_createDCtx() else { throw .allocationFailed }
    self.context = context
    self.maxOutputSize = maxOutputSize
    let result = ZSTD_DCtx_setParameter(context, ZSTD_d_windowLogMax, maxWindowLog)
    if ZSTD_isError(result) != 0 {
      throw .zstd(operation: "set window limit", message: String(cString: ZSTD_getErrorName(result)))
    }
  }

  deinit {
    ZSTD_freeDCtx(context)
  }

  /// Decompresses `chunk`, returning every byte it completes.
  public func decompress(_ chunk: [UInt8]) throws(CompressionError) -> [UInt8] {
    guard !isFinished else { throw .streamFinished }
    guard !chunk.isEmpty else { return [] }
    receivedInput = true
    var output: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: outputChunkSize)
    var failure: CompressionError?
    chunk.withUnsafeBytes { source in
      var input = ZSTD_inBuffer(src: source.baseAddress, size: source.count, pos: 0)
      buffer.withUnsafeMutableBytes { destination in
        while true {
          var out = ZSTD_outBuffer(dst: destination.baseAddress, size: destination.count, pos: 0)
          let consumedBefore = input.pos
          let result = ZSTD_decompressStream(context, &out, &input)
          if ZSTD_isError(result) != 0 {
            failure = .zstd(operation: "decompress", message: String(cString: ZSTD_getErrorName(result)))
            return
          }
          guard out.pos <= maxOutputSize - producedCount else {
            failure = .outputLimitExceeded(limit: maxOutputSize)
            return
          }
          producedCount += out.pos
          output.append(contentsOf: destination.prefix(out.pos))
          // 0 means a frame just ended and is fully flushed. A call that made no progress
          // reports the next frame's header size instead, which must not undo that.
          if result == 0 {
            atFrameBoundary = true
          } else if input.pos > consumedBefore || out.pos > 0 {
            atFrameBoundary = false
          }
          // A full output buffer may mean zstd holds more decoded bytes: call again to drain.
          if input.pos == input.size && (result == 0 || out.pos < out.size) { return }
        }
      }
    }
    if let failure {
      isFinished = true
      throw failure
    }
    return output
  }

  /// Checks that the data ended at the end of a complete frame. Later calls throw `.streamFinished`.
  public func finish() throws(CompressionError) {
    guard !isFinished else { throw .streamFinished }
    isFinished = true
    guard receivedInput, atFrameBoundary else { throw .truncatedInput }
  }
}
