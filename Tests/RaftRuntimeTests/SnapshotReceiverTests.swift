import Foundation
import Storage
import XCTest

@testable import Raft

/// The rules of `SnapshotReceiver`, checked on its staging directory: what is on disk after
/// each step, and what a staged image reads back as.
final class SnapshotReceiverTests: XCTestCase {
  /// One per test (XCTest makes an instance per test method).
  private let directory = TemporaryDirectory()
  private let leader: NodeID = "n1:7000"
  private let metadata = SnapshotMetadata(
    index: 50, term: 2, membership: Membership(voters: ["n1:7000", "n2:7000", "n3:7000"]))

  override func tearDown() {
    directory.remove()
  }

  private func makeReceiver(
    maxBytesInFlight: Int = 1 << 20, maxPieceBytes: Int = 64 << 10, maxTransfers: Int = 4
  ) throws -> SnapshotReceiver {
    try SnapshotReceiver(
      directory: directory.path, node: "n2:7000",
      limits: .init(
        maxPieceBytes: maxPieceBytes, maxBytesInFlight: maxBytesInFlight, maxTransfers: maxTransfers))
  }

  /// Piece `n` of a test image: `bytes` bytes that differ from every other piece's.
  private func piece(_ n: Int, bytes: Int = 1000) -> [UInt8] {
    (0..<bytes).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ n &* 7 &+ 1) }
  }

  private func chunk(
    _ piece: [UInt8], from sender: NodeID? = nil, transfer: UInt64, sequence: UInt64, last: Bool = false,
    metadata: SnapshotMetadata?? = nil
  ) throws -> SnapshotChunk {
    SnapshotChunk(
      from: sender ?? leader, to: "n2:7000", term: 2, transferID: transfer, sequence: sequence,
      data: try Zstd.compress(piece), isLast: last, metadata: metadata ?? self.metadata)
  }

  /// Sends every piece then the closing chunk; returns the staged image.
  private func stage(
    _ pieces: [[UInt8]], transfer: UInt64, from sender: NodeID? = nil, into receiver: SnapshotReceiver
  ) throws -> SnapshotReceiver.StagedImage {
    for (sequence, piece) in pieces.enumerated() {
      let receipt = try receiver.receive(
        chunk(piece, from: sender, transfer: transfer, sequence: UInt64(sequence)))
      XCTAssertEqual(receipt, .partial)
    }
    let receipt = try receiver.receive(
      chunk([], from: sender, transfer: transfer, sequence: UInt64(pieces.count), last: true))
    guard case .staged(let image) = receipt else {
      XCTFail("the last chunk did not complete the image: \(receipt)")
      throw SnapshotStagingError.missingMetadata
    }
    return image
  }

  private func readAll(_ id: UInt64, of receiver: SnapshotReceiver) throws -> [[UInt8]] {
    let reader = try receiver.open(id)
    var pieces: [[UInt8]] = []
    while let piece = try reader.nextPiece() { pieces.append(piece) }
    return pieces
  }

  /// The staging files in the directory, sorted.
  private func stagingFiles() throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: directory.path)
      .filter(SnapshotReceiver.isStagingFile).sorted()
  }

  private func assertRefused(
    _ chunk: SnapshotChunk, by receiver: SnapshotReceiver, as expected: SnapshotStagingError,
    file: StaticString = #filePath, line: UInt = #line
  ) {
    XCTAssertThrowsError(try receiver.receive(chunk), file: file, line: line) {
      XCTAssertEqual($0 as? SnapshotStagingError, expected, file: file, line: line)
    }
  }

  func testAWholeTransferIsStagedOnDiskAndReadBackPieceByPiece() throws {
    let receiver = try makeReceiver()
    let pieces = (0..<3).map { piece($0, bytes: 10_000) }
    let image = try stage(pieces, transfer: 7, into: receiver)
    XCTAssertEqual(image.metadata, metadata)
    XCTAssertEqual(image.from, leader)
    XCTAssertEqual(image.bytes, 30_000)
    XCTAssertEqual(receiver.bytesHeld, 30_000)
    XCTAssertEqual(receiver.transfersInProgress, 0)
    // The pieces are on disk (each with its 8-byte length), not in memory.
    let files = try stagingFiles()
    XCTAssertEqual(files.count, 1)
    let size =
      try FileManager.default.attributesOfItem(atPath: directory.path + "/" + files[0])[.size] as? Int
    XCTAssertEqual(size, 30_000 + 3 * 8)
    let reader = try receiver.open(image.id)
    XCTAssertEqual(reader.index, metadata.index)
    XCTAssertEqual(try readAll(image.id, of: receiver), pieces)
    receiver.discard(image.id)
    XCTAssertEqual(try stagingFiles(), [])
    XCTAssertEqual(receiver.bytesHeld, 0)
    XCTAssertThrowsError(try receiver.open(image.id)) {
      XCTAssertEqual($0 as? SnapshotStagingError, .unknownImage(image.id))
    }
  }

  func testAnOutOfOrderChunkAbandonsTheTransferAndDeletesItsFile() throws {
    let receiver = try makeReceiver()
    XCTAssertEqual(try receiver.receive(chunk(piece(0), transfer: 7, sequence: 0)), .partial)
    XCTAssertEqual(try receiver.receive(chunk(piece(1), transfer: 7, sequence: 1)), .partial)
    XCTAssertEqual(try stagingFiles().count, 1)
    XCTAssertEqual(receiver.bytesHeld, 2000)
    assertRefused(
      try chunk(piece(3), transfer: 7, sequence: 3), by: receiver, as: .outOfOrder(sequence: 3, expected: 2))
    XCTAssertEqual(try stagingFiles(), [])
    XCTAssertEqual(receiver.bytesHeld, 0)
    XCTAssertEqual(receiver.transfersInProgress, 0)
    // The transfer is gone: even the chunk it was waiting for no longer fits.
    assertRefused(
      try chunk(piece(2), transfer: 7, sequence: 2), by: receiver, as: .outOfOrder(sequence: 2, expected: 0))
    // A chunk sent twice is out of order too.
    XCTAssertEqual(try receiver.receive(chunk(piece(0), transfer: 8, sequence: 0)), .partial)
    assertRefused(
      try chunk(piece(0), transfer: 8, sequence: 0), by: receiver, as: .outOfOrder(sequence: 0, expected: 1))
    XCTAssertEqual(try stagingFiles(), [])
  }

  func testANewTransferFromTheSameSenderReplacesItsOldOne() throws {
    let receiver = try makeReceiver()
    XCTAssertEqual(try receiver.receive(chunk(piece(0), transfer: 1, sequence: 0)), .partial)
    XCTAssertEqual(try receiver.receive(chunk(piece(1), transfer: 1, sequence: 1)), .partial)
    let first = try stagingFiles()
    XCTAssertEqual(first.count, 1)
    // Another sender's transfer runs beside it, untouched by what follows.
    XCTAssertEqual(try receiver.receive(chunk(piece(9), from: "n3:7000", transfer: 1, sequence: 0)), .partial)
    XCTAssertEqual(receiver.transfersInProgress, 2)

    XCTAssertEqual(try receiver.receive(chunk(piece(5), transfer: 2, sequence: 0)), .partial)
    let afterReplacing = try stagingFiles()
    XCTAssertEqual(afterReplacing.count, 2)
    XCTAssertFalse(afterReplacing.contains(first[0]), "the replaced transfer's file is deleted")
    XCTAssertEqual(receiver.transfersInProgress, 2)
    XCTAssertEqual(receiver.bytesHeld, 2000)
    // A late chunk of the replaced transfer is refused and leaves the new one alone.
    assertRefused(
      try chunk(piece(2), transfer: 1, sequence: 2), by: receiver, as: .outOfOrder(sequence: 2, expected: 0))
    XCTAssertEqual(try receiver.receive(chunk(piece(6), transfer: 2, sequence: 1)), .partial)
    let image = try receiver.receive(chunk([], transfer: 2, sequence: 2, last: true))
    guard case .staged(let staged) = image else { return XCTFail("transfer 2 did not complete: \(image)") }
    XCTAssertEqual(try readAll(staged.id, of: receiver), [piece(5), piece(6)])
  }

  func testAStagedImageIsNeitherOverwrittenNorDeletedByLaterTransfers() throws {
    let receiver = try makeReceiver(maxTransfers: 1)
    let first = try stage([piece(0), piece(1)], transfer: 1, into: receiver)
    // The same sender: a transfer that fails, then one that completes.
    XCTAssertEqual(try receiver.receive(chunk(piece(2), transfer: 2, sequence: 0)), .partial)
    assertRefused(
      try chunk(piece(3), transfer: 2, sequence: 5), by: receiver, as: .outOfOrder(sequence: 5, expected: 1))
    // Even the same transfer id again starts a new transfer; it does not reopen the image.
    let second = try stage([piece(4)], transfer: 1, into: receiver)
    XCTAssertNotEqual(first.id, second.id)
    // Other senders, past the limit on transfers in progress: the earlier is evicted, no image.
    XCTAssertEqual(try receiver.receive(chunk(piece(6), from: "n3:7000", transfer: 3, sequence: 0)), .partial)
    XCTAssertEqual(try receiver.receive(chunk(piece(7), from: "n4:7000", transfer: 4, sequence: 0)), .partial)
    XCTAssertEqual(receiver.transfersInProgress, 1)
    assertRefused(
      try chunk(piece(8), from: "n3:7000", transfer: 3, sequence: 1), by: receiver,
      as: .outOfOrder(sequence: 1, expected: 0))

    XCTAssertEqual(receiver.stagedImages.map(\.id), [first.id, second.id])
    XCTAssertEqual(try readAll(first.id, of: receiver), [piece(0), piece(1)])
    XCTAssertEqual(try readAll(second.id, of: receiver), [piece(4)])
    XCTAssertEqual(try stagingFiles().count, 3, "two images and n4's transfer")
    receiver.discard(first.id)
    XCTAssertEqual(try readAll(second.id, of: receiver), [piece(4)])
    XCTAssertEqual(try stagingFiles().count, 2)
  }

  func testTheCapCountsTransfersAndStagedImagesAndDropsTheTransferThatWouldPassIt() throws {
    let receiver = try makeReceiver(maxBytesInFlight: 10_000)
    let staged = try stage([piece(0, bytes: 3000), piece(1, bytes: 3000)], transfer: 1, into: receiver)
    XCTAssertEqual(receiver.bytesHeld, 6000)
    XCTAssertEqual(
      try receiver.receive(chunk(piece(2, bytes: 3000), from: "n3:7000", transfer: 2, sequence: 0)), .partial)
    XCTAssertEqual(receiver.bytesHeld, 9000)
    assertRefused(
      try chunk(piece(3, bytes: 3000), from: "n3:7000", transfer: 2, sequence: 1), by: receiver,
      as: .inFlightLimit(10_000))
    XCTAssertEqual(receiver.bytesHeld, 6000, "the transfer that passed the cap is dropped whole")
    XCTAssertEqual(try stagingFiles().count, 1)
    XCTAssertEqual(try readAll(staged.id, of: receiver), [piece(0, bytes: 3000), piece(1, bytes: 3000)])
    // Exactly at the cap is allowed; once the image is gone, its bytes are free again.
    XCTAssertEqual(
      try receiver.receive(chunk(piece(4, bytes: 4000), from: "n3:7000", transfer: 3, sequence: 0)), .partial)
    XCTAssertEqual(receiver.bytesHeld, 10_000)
    receiver.discard(staged.id)
    let next = try stage([piece(5, bytes: 3000), piece(6, bytes: 3000)], transfer: 4, into: receiver)
    XCTAssertEqual(next.bytes, 6000)
    XCTAssertEqual(receiver.bytesHeld, 10_000)
  }

  func testUndecodableOrOversizedPiecesAndAnEndWithoutMetadataAbandonTheTransfer() throws {
    let receiver = try makeReceiver(maxPieceBytes: 4096)
    let cases: [(SnapshotChunk, String)] = [
      (
        SnapshotChunk(
          from: leader, to: "n2:7000", term: 2, transferID: 1, sequence: 1, data: [1, 2, 3, 4, 5],
          isLast: false, metadata: metadata),
        "not zstd"
      ),
      (try chunk(piece(1, bytes: 5000), transfer: 1, sequence: 1), "over the piece limit"),
      (try chunk([], transfer: 1, sequence: 1, last: true, metadata: .some(nil)), "no metadata"),
    ]
    for (bad, what) in cases {
      XCTAssertEqual(try receiver.receive(chunk(piece(0), transfer: 1, sequence: 0)), .partial, what)
      XCTAssertEqual(try stagingFiles().count, 1, what)
      XCTAssertThrowsError(try receiver.receive(bad), what)
      XCTAssertEqual(try stagingFiles(), [], what)
      XCTAssertEqual(receiver.bytesHeld, 0, what)
    }
  }

  func testStaleStagingFilesAreDeletedAtStartAndOtherFilesKept() throws {
    let receiver = try makeReceiver()
    _ = try stage([piece(0)], transfer: 1, into: receiver)
    XCTAssertEqual(try receiver.receive(chunk(piece(1), from: "n3:7000", transfer: 2, sequence: 0)), .partial)
    XCTAssertTrue(
      FileManager.default.createFile(atPath: directory.path + "/image-99.staging", contents: Data([1])))
    XCTAssertTrue(FileManager.default.createFile(atPath: directory.path + "/notes.txt", contents: Data([1])))
    XCTAssertEqual(try stagingFiles().count, 3)
    // A restart: a new receiver on the same directory.
    let restarted = try makeReceiver()
    XCTAssertEqual(try stagingFiles(), [])
    XCTAssertEqual(restarted.bytesHeld, 0)
    XCTAssertTrue(FileManager.default.fileExists(atPath: directory.path + "/notes.txt"))
  }

  func testCloseDeletesTransfersAndImagesAndAnOwnDirectory() throws {
    let receiver = try makeReceiver()
    let image = try stage([piece(0)], transfer: 1, into: receiver)
    XCTAssertEqual(try receiver.receive(chunk(piece(1), from: "n3:7000", transfer: 2, sequence: 0)), .partial)
    XCTAssertEqual(try stagingFiles().count, 2)
    receiver.close()
    XCTAssertEqual(try stagingFiles(), [])
    XCTAssertEqual(receiver.bytesHeld, 0)
    XCTAssertEqual(receiver.transfersInProgress, 0)
    XCTAssertThrowsError(try receiver.open(image.id))
    XCTAssertTrue(FileManager.default.fileExists(atPath: directory.path), "a directory it was given stays")
    // Without one it makes its own, and removes it.
    let own = try SnapshotReceiver(
      directory: nil, node: "n2:7000", limits: .init(maxPieceBytes: 1 << 16, maxBytesInFlight: 1 << 20))
    XCTAssertNotEqual(own.directory, directory.path)
    _ = try stage([piece(0)], transfer: 1, into: own)
    XCTAssertTrue(FileManager.default.fileExists(atPath: own.directory))
    own.close()
    XCTAssertFalse(FileManager.default.fileExists(atPath: own.directory))
  }

  /// The node's bookkeeping with its core: an image the core accepted a message for is deleted
  /// when a Ready goes out without it, unless it is the one the Ready carries; an image not yet
  /// offered is kept whatever the Ready.
  func testOfferedImagesAreDeletedOnceAReadyLeavesThemBehind() throws {
    let receiver = try makeReceiver()
    let unneeded = try stage([piece(0)], transfer: 1, into: receiver)
    let carried = try stage([piece(1)], transfer: 2, into: receiver)
    let notYetOffered = try stage([piece(2)], transfer: 3, into: receiver)
    receiver.markOffered(unneeded.id)
    receiver.markOffered(carried.id)
    receiver.discardOffered(keeping: carried.id)
    XCTAssertEqual(receiver.stagedImages.map(\.id), [carried.id, notYetOffered.id])
    XCTAssertEqual(try stagingFiles().count, 2)
    // The next Ready carries no image: the carried one is being installed, and its install
    // discards it; the one not yet offered stays until the core hears of it.
    receiver.discardOffered(keeping: nil)
    XCTAssertEqual(receiver.stagedImages.map(\.id), [carried.id, notYetOffered.id])
    receiver.discard(carried.id)
    receiver.markOffered(notYetOffered.id)
    receiver.discardOffered(keeping: nil)
    XCTAssertEqual(receiver.stagedImages, [])
    XCTAssertEqual(try stagingFiles(), [])
  }

  func testAReaderOfACutFileReportsCorruptionInsteadOfAShortPiece() throws {
    let receiver = try makeReceiver()
    let image = try stage([piece(0), piece(1)], transfer: 1, into: receiver)
    let path = receiver.path(of: image.id)
    let handle = try XCTUnwrap(FileHandle(forWritingAtPath: path))
    try handle.truncate(atOffset: UInt64(8 + 1000 + 8 + 500))
    try handle.close()
    let reader = try receiver.open(image.id)
    XCTAssertEqual(try reader.nextPiece(), piece(0))
    XCTAssertThrowsError(try reader.nextPiece()) {
      guard case .corruptImage = $0 as? SnapshotStagingError else { return XCTFail("\($0)") }
    }
  }
}
