import Foundation
import Storage
import Synchronization

/// The receiving side of snapshot transfers. Each chunk's piece is decompressed (to at most
/// `maxPieceBytes`) and appended to its transfer's staging file, so an image of any size costs
/// the memory of one piece; the last chunk turns the file into a staged image, which the node
/// offers its core and, if the core takes it, installs from disk.
///
/// Rules (each has a test in `SnapshotReceiverTests`):
/// - A sender has at most one transfer in progress. A chunk with sequence 0 and a transfer id
///   other than the sender's current one starts a transfer, replacing the current one (its
///   file is deleted). Every other chunk must be the next of its sender's current transfer:
///   one that is not abandons that transfer (and deletes its file); a late chunk of a replaced
///   or abandoned transfer is refused and changes nothing.
/// - A staged image belongs to the node: no transfer replaces, evicts or deletes it. Only the
///   node removes it: `discard` (installed, or refused by the core), `discardOffered` (the core
///   took a Ready without it: it did not need it, or a newer image superseded it) and `close`
///   (the node stops).
/// - The bytes held in staging, by transfers in progress and staged images together, stay
///   within `maxBytesInFlight`: a piece that would pass the cap abandons its transfer, which
///   fails at its sender (the leader retries later). The cap also bounds the largest image.
/// - At most `maxTransfers` transfers are in progress (normally one: the leader's); starting
///   one more abandons the one that started first.
/// - Files live in `directory`, named `image-N.staging`; `init` deletes every such file (a
///   previous process's, which no one will install: a restart settles any install that was
///   under way without its image, see `DurableState.open`). Without a directory the receiver makes
///   a temporary one of its own, which `close` removes.
///
/// Calls are serialized by a lock, and a chunk's decompression and write happen under it: the
/// node calls `receive` on an I/O queue of its own, off its actor.
final class SnapshotReceiver: Sendable {
  struct Limits: Sendable, Hashable {
    /// Most decompressed bytes in one piece.
    var maxPieceBytes: Int
    /// Most bytes staged at once, by transfers in progress and complete images together.
    var maxBytesInFlight: Int
    /// Most transfers in progress at once.
    var maxTransfers = 4
  }

  /// A complete image on disk, waiting for the core to take it and the node to install it.
  struct StagedImage: Sendable, Hashable {
    /// This receiver's name for the image (unique for its lifetime; never a sender's id).
    let id: UInt64
    let from: NodeID
    let metadata: SnapshotMetadata
    /// Decompressed bytes of all its pieces.
    let bytes: Int
  }

  /// What a chunk accepted did.
  enum Receipt: Sendable, Hashable {
    /// Its piece was staged; more chunks are due.
    case partial
    /// It was the last: the image is complete.
    case staged(StagedImage)
  }

  private struct Transfer: Sendable {
    /// The sender's transfer id.
    let transferID: UInt64
    /// Names the staging file, and the image once complete.
    let number: UInt64
    let descriptor: Int32
    var nextSequence: UInt64 = 0
    var bytes = 0
  }

  private struct State: Sendable {
    var transfers: [NodeID: Transfer] = [:]
    var staged: [UInt64: StagedImage] = [:]
    /// Staged images the core accepted a snapshot message for.
    var offered: Set<UInt64> = []
    var nextNumber: UInt64 = 1

    var bytesHeld: Int {
      transfers.values.reduce(0) { $0 + $1.bytes } + staged.values.reduce(0) { $0 + $1.bytes }
    }
  }

  static let filePrefix = "image-"
  static let fileSuffix = ".staging"

  let directory: String
  /// Whether `directory` is this receiver's own temporary one, removed by `close`.
  private let ownsDirectory: Bool
  let limits: Limits
  private let state = Mutex(State())

  /// Creates `directory` if needed and deletes the staging files a previous process left in it;
  /// nil makes a new temporary directory named after `node`.
  init(directory: String?, node: NodeID, limits: Limits) throws(SnapshotStagingError) {
    let name = String(node.rawValue.map { $0.isLetter || $0.isNumber ? $0 : "_" })
    self.directory =
      directory
      ?? FileManager.default.temporaryDirectory
      .appendingPathComponent("shardkv-snapshots-\(name)-\(UUID().uuidString)").path
    ownsDirectory = directory == nil
    self.limits = limits
    let files = FileManager.default
    do {
      try files.createDirectory(atPath: self.directory, withIntermediateDirectories: true)
      for name in try files.contentsOfDirectory(atPath: self.directory) where Self.isStagingFile(name) {
        try files.removeItem(atPath: self.directory + "/" + name)
      }
    } catch {
      throw .disk("cannot prepare \(self.directory): \(error)")
    }
  }

  static func isStagingFile(_ name: String) -> Bool {
    name.hasPrefix(filePrefix) && name.hasSuffix(fileSuffix)
  }

  func path(of number: UInt64) -> String { "\(directory)/\(Self.filePrefix)\(number)\(Self.fileSuffix)" }

  /// Bytes staged now, by transfers in progress and complete images.
  var bytesHeld: Int { state.withLock { $0.bytesHeld } }
  var transfersInProgress: Int { state.withLock { $0.transfers.count } }
  var stagedImages: [StagedImage] { state.withLock { $0.staged.values.sorted { $0.id < $1.id } } }

  /// Takes one chunk (the caller has checked its cluster id and sender): stages its piece, and
  /// on the last chunk completes the image. A refused chunk changes nothing but what its error
  /// says.
  func receive(_ chunk: SnapshotChunk) throws(SnapshotStagingError) -> Receipt {
    try state.withLock { (state) throws(SnapshotStagingError) -> Receipt in
      var transfer: Transfer
      if let current = state.transfers[chunk.from], current.transferID == chunk.transferID {
        state.transfers[chunk.from] = nil
        guard chunk.sequence == current.nextSequence else {
          abandon(current)
          throw .outOfOrder(sequence: chunk.sequence, expected: current.nextSequence)
        }
        transfer = current
      } else {
        guard chunk.sequence == 0 else { throw .outOfOrder(sequence: chunk.sequence, expected: 0) }
        if let replaced = state.transfers.removeValue(forKey: chunk.from) { abandon(replaced) }
        if state.transfers.count >= limits.maxTransfers,
          let first = state.transfers.min(by: { $0.value.number < $1.value.number })
        {
          state.transfers[first.key] = nil
          abandon(first.value)
        }
        let number = state.nextNumber
        state.nextNumber += 1
        transfer = Transfer(
          transferID: chunk.transferID, number: number, descriptor: try StagingFile.create(path(of: number)))
      }
      // The transfer is out of `state` now: a failure below leaves it abandoned.
      do throws(SnapshotStagingError) {
        let piece: [UInt8]
        do {
          piece = try Zstd.decompress(chunk.data, maxOutputSize: limits.maxPieceBytes)
        } catch {
          throw .undecodablePiece("\(error)")
        }
        guard state.bytesHeld + transfer.bytes + piece.count <= limits.maxBytesInFlight else {
          throw .inFlightLimit(limits.maxBytesInFlight)
        }
        if !piece.isEmpty {
          try StagingFile.append(piece, to: transfer.descriptor, path: path(of: transfer.number))
        }
        transfer.bytes += piece.count
        transfer.nextSequence += 1
        guard chunk.isLast else {
          state.transfers[chunk.from] = transfer
          return .partial
        }
        guard let metadata = chunk.metadata else { throw .missingMetadata }
        StagingFile.closeFile(transfer.descriptor)
        let image = StagedImage(
          id: transfer.number, from: chunk.from, metadata: metadata, bytes: transfer.bytes)
        state.staged[image.id] = image
        return .staged(image)
      } catch {
        abandon(transfer)
        throw error
      }
    }
  }

  /// A reader of staged image `id`, from its first piece. The image stays staged (and its file
  /// on disk) until `discard`.
  func open(_ id: UInt64) throws(SnapshotStagingError) -> StagedSnapshotReader {
    guard let image = state.withLock({ $0.staged[id] }) else { throw .unknownImage(id) }
    return try StagedSnapshotReader(
      path: path(of: id), index: image.metadata.index, maxPieceBytes: limits.maxPieceBytes)
  }

  /// Deletes staged image `id` (installed, or refused by the core); an unknown id is ignored.
  /// A reader already open keeps reading it (the file is only unlinked).
  func discard(_ id: UInt64) {
    let removed = state.withLock { state in
      state.offered.remove(id)
      return state.staged.removeValue(forKey: id)
    }
    if removed != nil { StagingFile.remove(path(of: id)) }
  }

  /// Records that the core accepted a snapshot message for staged image `id`.
  func markOffered(_ id: UInt64) {
    state.withLock { state in
      if state.staged[id] != nil { state.offered.insert(id) }
    }
  }

  /// The core just handed out a Ready carrying image `carried` (or none): it holds no other
  /// image to install now, so every other offered image is deleted (one it did not need, or
  /// one a newer image superseded). `carried` now belongs to its install, which discards it.
  /// Images staged but not yet offered are not touched: their receiving call has yet to step
  /// them into the core.
  func discardOffered(keeping carried: UInt64?) {
    let dropped = state.withLock { state in
      let dropped = state.offered.subtracting(carried.map { [$0] } ?? [])
      for id in dropped { state.staged[id] = nil }
      state.offered.removeAll()
      return dropped
    }
    for id in dropped { StagingFile.remove(path(of: id)) }
  }

  /// Abandons every transfer and deletes every staged image (an install under way keeps
  /// reading its file, which is only unlinked), and the directory if it is this receiver's own.
  /// Called when the node stops; a chunk staged afterwards is deleted by calling it again.
  func close() {
    state.withLock { state in
      for transfer in state.transfers.values { abandon(transfer) }
      for id in state.staged.keys { StagingFile.remove(path(of: id)) }
      state.transfers.removeAll()
      state.staged.removeAll()
      state.offered.removeAll()
    }
    if ownsDirectory { try? FileManager.default.removeItem(atPath: directory) }
  }

  private func abandon(_ transfer: Transfer) {
    StagingFile.closeFile(transfer.descriptor)
    StagingFile.remove(path(of: transfer.number))
  }
}
