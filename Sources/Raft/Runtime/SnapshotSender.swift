import Storage
import Synchronization

/// The sending side of snapshot transfers: at most one transfer per peer at a time.
///
/// A transfer reads the image one piece at a time and zstd-compresses each piece on `io`, off
/// the node's actor, then sends it as a `SnapshotChunk` and waits for the peer to take it
/// before reading the next: one piece per transfer is in memory, whatever the image's size.
/// Every chunk carries the transfer's random id, its sequence number and the image's metadata;
/// the last one carries an empty piece and `isLast`. The outcome is reported once, after the
/// peer's slot is free again, through the `finished` callback given to `start` (the node tells
/// its core, which may then ask for another transfer).
final class SnapshotSender: Sendable {
  /// What a transfer sends: an image being read, and where it stands in the log.
  struct Image: Sendable {
    let reader: any SnapshotReader
    let metadata: SnapshotMetadata
  }

  private let from: NodeID
  private let transport: any RaftTransport
  private let io: IOQueue
  private let state = Mutex((peers: Set<NodeID>(), closed: false))

  init(from: NodeID, transport: any RaftTransport, io: IOQueue) {
    self.from = from
    self.transport = transport
    self.io = io
  }

  /// Peers with a transfer under way.
  var peersInTransfer: Set<NodeID> { state.withLock { $0.peers } }

  /// Starts a transfer to `peer` in `term` unless one to it is under way (or the sender is
  /// closed); returns whether it started. `image` is called once, on the transfer's task;
  /// `finished` is called once with the metadata sent or the error that ended the transfer.
  @discardableResult
  func start(
    to peer: NodeID, term: UInt64, clusterID: UInt64,
    image: @escaping @Sendable () async throws -> Image,
    finished: @escaping @Sendable (Result<SnapshotMetadata, any Error>) async -> Void
  ) -> Bool {
    let started = state.withLock { state in
      !state.closed && state.peers.insert(peer).inserted
    }
    guard started else { return false }
    Task {
      let result: Result<SnapshotMetadata, any Error>
      do {
        result = .success(try await send(try await image(), to: peer, term: term, clusterID: clusterID))
      } catch {
        result = .failure(error)
      }
      _ = state.withLock { $0.peers.remove(peer) }
      await finished(result)
    }
    return true
  }

  /// Refuses new transfers; those under way stop before their next chunk.
  func close() {
    state.withLock { $0.closed = true }
  }

  private var isClosed: Bool { state.withLock { $0.closed } }

  private func send(
    _ image: Image, to peer: NodeID, term: UInt64, clusterID: UInt64
  ) async throws -> SnapshotMetadata {
    let reader = image.reader
    let transferID = UInt64.random(in: 1 ... .max)
    var sequence: UInt64 = 0
    while true {
      guard !isClosed else { throw RaftNodeError.stopped }
      let (data, isLast) = try await io.run {
        let piece = try reader.nextPiece()
        return (try Zstd.compress(piece ?? []), piece == nil)
      }
      let chunk = SnapshotChunk(
        from: from, to: peer, term: term, transferID: transferID, sequence: sequence, data: data,
        isLast: isLast, metadata: image.metadata, clusterID: clusterID)
      try await transport.sendSnapshotChunk(chunk, to: peer)
      if isLast { return image.metadata }
      sequence += 1
    }
  }
}
