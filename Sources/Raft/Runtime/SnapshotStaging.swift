import Storage
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Why an incoming snapshot chunk was refused, or a staged image could not be read back.
enum SnapshotStagingError: Error, Hashable, Sendable, CustomStringConvertible {
  /// The chunk is not the next one of its transfer. A transfer it was out of order in is
  /// abandoned; a chunk of an unknown transfer that does not start one changes nothing.
  case outOfOrder(sequence: UInt64, expected: UInt64)
  /// The chunk's data is not a zstd frame, or decompresses to more than one piece may hold.
  case undecodablePiece(String)
  /// Staging the piece would pass the cap on staged bytes; its transfer is abandoned.
  case inFlightLimit(Int)
  /// The last chunk of a transfer carries no metadata.
  case missingMetadata
  /// The staging directory or a staging file could not be created, written or read.
  case disk(String)
  /// No staged image has this id: it was installed, refused or abandoned already.
  case unknownImage(UInt64)
  /// A staging file does not hold whole pieces (it is not one this receiver finished).
  case corruptImage(String)

  var description: String {
    switch self {
    case .outOfOrder(let sequence, let expected): return "chunk \(sequence) arrived, expected \(expected)"
    case .undecodablePiece(let why): return "undecodable piece: \(why)"
    case .inFlightLimit(let limit): return "snapshot transfers in flight would exceed \(limit) bytes"
    case .missingMetadata: return "last chunk without metadata"
    case .disk(let why): return "snapshot staging: \(why)"
    case .unknownImage(let id): return "no staged snapshot image \(id)"
    case .corruptImage(let why): return "staged snapshot image is corrupt: \(why)"
    }
  }
}

/// The POSIX calls behind staging files, with typed errors. A staging file is a sequence of
/// pieces, each its length (8 bytes, big-endian) followed by its bytes; an empty file is an
/// empty image. Files are not synced: a staged image never outlives its process (a restart
/// deletes every staging file), so only the page cache ever needs to hold it.
enum StagingFile {
  static let lengthBytes = 8

  /// Creates a new file for writing; fails if it exists.
  static func create(_ path: String) throws(SnapshotStagingError) -> Int32 {
    let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    guard descriptor >= 0 else { throw .disk("cannot create \(path): \(lastError())") }
    return descriptor
  }

  static func openForReading(_ path: String) throws(SnapshotStagingError) -> Int32 {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { throw .disk("cannot open \(path): \(lastError())") }
    return descriptor
  }

  /// Appends one piece: its length, then its bytes.
  static func append(_ piece: [UInt8], to descriptor: Int32, path: String) throws(SnapshotStagingError) {
    try writeAll(BigEndian.bytes(UInt64(piece.count)), to: descriptor, path: path)
    try writeAll(piece, to: descriptor, path: path)
  }

  /// Reads the next piece, nil at the end of the file. A piece longer than `maxPieceBytes` or
  /// cut short means the file is not one a receiver finished.
  static func nextPiece(
    from descriptor: Int32, path: String, maxPieceBytes: Int
  ) throws(SnapshotStagingError) -> [UInt8]? {
    let header = try readUpTo(lengthBytes, from: descriptor, path: path)
    if header.isEmpty { return nil }
    guard header.count == lengthBytes, let length = BigEndian.uint64(from: header) else {
      throw .corruptImage("\(path) ends inside a piece's length")
    }
    guard length <= UInt64(maxPieceBytes) else {
      throw .corruptImage("\(path) holds a piece of \(length) bytes (limit \(maxPieceBytes))")
    }
    let piece = try readUpTo(Int(length), from: descriptor, path: path)
    guard piece.count == Int(length) else { throw .corruptImage("\(path) ends inside a piece") }
    return piece
  }

  static func closeFile(_ descriptor: Int32) { _ = close(descriptor) }

  /// Removes a file; one already gone is fine.
  static func remove(_ path: String) { _ = unlink(path) }

  private static func writeAll(
    _ bytes: [UInt8], to descriptor: Int32, path: String
  ) throws(SnapshotStagingError) {
    let failure = bytes.withUnsafeBytes { buffer -> Int32? in
      guard let base = buffer.baseAddress else { return nil }
      var done = 0
      while done < buffer.count {
        let written = write(descriptor, base + done, buffer.count - done)
        if written < 0 {
          if errno == EINTR { continue }
          return errno
        }
        done += written
      }
      return nil
    }
    if let failure { throw .disk("cannot write \(path): \(describe(failure))") }
  }

  /// Reads `count` bytes, or fewer where the file ends.
  private static func readUpTo(
    _ count: Int, from descriptor: Int32, path: String
  ) throws(SnapshotStagingError)
    -> [UInt8]
  {
    var failure: Int32?
    let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
      initialized = 0
      guard let base = buffer.baseAddress else { return }
      while initialized < count {
        let got = read(descriptor, base + initialized, count - initialized)
        if got < 0 {
          if errno == EINTR { continue }
          failure = errno
          return
        }
        if got == 0 { return }
        initialized += got
      }
    }
    if let failure { throw .disk("cannot read \(path): \(describe(failure))") }
    return bytes
  }

  private static func lastError() -> String { describe(errno) }

  private static func describe(_ code: Int32) -> String { String(cString: strerror(code)) }
}

/// A staged image read back piece by piece, for `StateMachine.restore`: one piece in memory
/// at a time. The file stays open until the last piece is read or the reader is released.
final class StagedSnapshotReader: SnapshotReader {
  let index: UInt64
  let path: String
  private let maxPieceBytes: Int
  /// The open file; nil once the end was read.
  private let descriptor: Mutex<Int32?>

  init(path: String, index: UInt64, maxPieceBytes: Int) throws(SnapshotStagingError) {
    self.path = path
    self.index = index
    self.maxPieceBytes = maxPieceBytes
    descriptor = Mutex(try StagingFile.openForReading(path))
  }

  deinit {
    if let open = descriptor.withLock({ $0 }) { StagingFile.closeFile(open) }
  }

  func nextPiece() throws -> [UInt8]? {
    try descriptor.withLock { (descriptor) throws(SnapshotStagingError) -> [UInt8]? in
      guard let open = descriptor else { return nil }
      guard let piece = try StagingFile.nextPiece(from: open, path: path, maxPieceBytes: maxPieceBytes)
      else {
        StagingFile.closeFile(open)
        descriptor = nil
        return nil
      }
      return piece
    }
  }
}
