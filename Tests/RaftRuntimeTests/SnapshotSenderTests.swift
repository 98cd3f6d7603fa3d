import Foundation
import Storage
import Synchronization
import XCTest

@testable import Raft

/// A transport that records every snapshot chunk, then hands it to `deliver` (which may hold
/// it, refuse it, or pass it to a receiver).
private final class ChunkTransport: RaftTransport {
  private let deliver: @Sendable (SnapshotChunk) async throws -> Void
  private let sent = Mutex<[SnapshotChunk]>([])

  init(deliver: @escaping @Sendable (SnapshotChunk) async throws -> Void = { _ in }) {
    self.deliver = deliver
  }

  var chunks: [SnapshotChunk] { sent.withLock { $0 } }

  func send(_ messages: [Message], clusterID: UInt64, to peer: NodeID) async throws {}

  func sendSnapshotChunk(_ chunk: SnapshotChunk, to peer: NodeID) async throws {
    sent.withLock { $0.append(chunk) }
    try await deliver(chunk)
  }
}

/// Holds every caller until opened.
private actor Gate {
  private var isOpen = false
  private var waiters: [CheckedContinuation<Void, Never>] = []

  func wait() async {
    if isOpen { return }
    await withCheckedContinuation { waiters.append($0) }
  }

  func open() {
    isOpen = true
    for waiter in waiters { waiter.resume() }
    waiters.removeAll()
  }
}

/// What each finished transfer reported, and whether its peer's slot was already free then.
private final class Outcomes: Sendable {
  struct Outcome: Sendable {
    let peer: NodeID
    let result: Result<SnapshotMetadata, any Error>
    let slotFreeWhenReported: Bool
  }
  private let state = Mutex<[Outcome]>([])
  private let calls = Mutex(0)

  var all: [Outcome] { state.withLock { $0 } }
  var imageCalls: Int { calls.withLock { $0 } }

  func countImageCall() { calls.withLock { $0 += 1 } }

  func record(_ peer: NodeID, _ result: Result<SnapshotMetadata, any Error>, sender: SnapshotSender) {
    let free = !sender.peersInTransfer.contains(peer)
    state.withLock { $0.append(Outcome(peer: peer, result: result, slotFreeWhenReported: free)) }
  }
}

private struct Refused: Error {}

final class SnapshotSenderTests: XCTestCase {
  private let leader: NodeID = "n1:7000"
  private let metadata = SnapshotMetadata(
    index: 40, term: 3, membership: Membership(voters: ["n1:7000", "n2:7000", "n3:7000"]))
  private let pieces: [[UInt8]] = (0..<3).map { n in
    (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ n) }
  }

  /// Starts a transfer of `pieces` to `peer`, recording its outcome.
  @discardableResult
  private func start(
    _ sender: SnapshotSender, to peer: NodeID, _ outcomes: Outcomes, failImage: Bool = false
  ) -> Bool {
    let pieces = self.pieces
    let metadata = self.metadata
    return sender.start(
      to: peer, term: 3, clusterID: 99,
      image: {
        outcomes.countImageCall()
        if failImage { throw Refused() }
        return .init(reader: ArrayReader(index: metadata.index, pieces: pieces), metadata: metadata)
      },
      finished: { outcomes.record(peer, $0, sender: sender) })
  }

  func testAnImageGoesAsOrderedChunksEachCarryingTheMetadataTheLastOneEmpty() async throws {
    let transport = ChunkTransport()
    let sender = SnapshotSender(from: leader, transport: transport, io: IOQueue(label: "test.snapshot"))
    let outcomes = Outcomes()
    XCTAssertTrue(start(sender, to: "n2:7000", outcomes))
    try await waitUntil("the transfer to finish") { outcomes.all.count == 1 }
    let outcome = try XCTUnwrap(outcomes.all.first)
    XCTAssertEqual(try outcome.result.get(), metadata)
    XCTAssertTrue(outcome.slotFreeWhenReported, "the peer's slot is free before the core hears")
    let chunks = transport.chunks
    XCTAssertEqual(chunks.map(\.sequence), [0, 1, 2, 3])
    XCTAssertEqual(chunks.map(\.isLast), [false, false, false, true])
    XCTAssertEqual(Set(chunks.map(\.transferID)).count, 1, "one transfer id")
    XCTAssertNotEqual(chunks[0].transferID, 0)
    for chunk in chunks {
      XCTAssertEqual(chunk.metadata, metadata, "every chunk carries the metadata")
      XCTAssertEqual([chunk.from, chunk.to], [leader, "n2:7000"])
      XCTAssertEqual(chunk.term, 3)
      XCTAssertEqual(chunk.clusterID, 99)
    }
    XCTAssertEqual(try chunks.map { try Zstd.decompress($0.data, maxOutputSize: 1 << 20) }, pieces + [[]])
    XCTAssertEqual(sender.peersInTransfer, [])
  }

  func testOneTransferPerPeerAtATime() async throws {
    let gate = Gate()
    let transport = ChunkTransport { _ in await gate.wait() }
    let sender = SnapshotSender(from: leader, transport: transport, io: IOQueue(label: "test.snapshot"))
    let outcomes = Outcomes()
    XCTAssertTrue(start(sender, to: "n2:7000", outcomes))
    try await waitUntil("the first chunk to be on its way") { transport.chunks.count == 1 }
    XCTAssertEqual(sender.peersInTransfer, ["n2:7000"])
    XCTAssertFalse(start(sender, to: "n2:7000", outcomes), "a second transfer to the same peer")
    XCTAssertEqual(outcomes.imageCalls, 1, "a refused start reads no image")
    XCTAssertTrue(start(sender, to: "n3:7000", outcomes), "another peer has its own slot")
    await gate.open()
    try await waitUntil("both transfers to finish") { outcomes.all.count == 2 }
    XCTAssertEqual(Set(outcomes.all.map(\.peer)), ["n2:7000", "n3:7000"])
    for outcome in outcomes.all { XCTAssertEqual(try outcome.result.get(), metadata) }
    XCTAssertEqual(transport.chunks.count, 8)
    XCTAssertTrue(start(sender, to: "n2:7000", outcomes), "the peer is free again")
    try await waitUntil("the third transfer to finish") { outcomes.all.count == 3 }
  }

  func testAFailedChunkOrImageEndsTheTransferAndFreesThePeer() async throws {
    let transport = ChunkTransport { chunk in if chunk.sequence == 1 { throw Refused() } }
    let sender = SnapshotSender(from: leader, transport: transport, io: IOQueue(label: "test.snapshot"))
    let outcomes = Outcomes()
    XCTAssertTrue(start(sender, to: "n2:7000", outcomes))
    try await waitUntil("the transfer to fail") { outcomes.all.count == 1 }
    XCTAssertEqual(transport.chunks.map(\.sequence), [0, 1], "nothing is sent after a refused chunk")
    XCTAssertTrue(start(sender, to: "n3:7000", outcomes, failImage: true))
    try await waitUntil("the second transfer to fail") { outcomes.all.count == 2 }
    XCTAssertEqual(transport.chunks.count, 2, "an image that cannot be read sends nothing")
    for outcome in outcomes.all {
      XCTAssertThrowsError(try outcome.result.get()) { XCTAssertTrue($0 is Refused, "\($0)") }
      XCTAssertTrue(outcome.slotFreeWhenReported)
    }
    XCTAssertEqual(sender.peersInTransfer, [])
  }

  func testAClosedSenderStartsNothingAndStopsTransfersUnderWay() async throws {
    let gate = Gate()
    let transport = ChunkTransport { _ in await gate.wait() }
    let sender = SnapshotSender(from: leader, transport: transport, io: IOQueue(label: "test.snapshot"))
    let outcomes = Outcomes()
    XCTAssertTrue(start(sender, to: "n2:7000", outcomes))
    try await waitUntil("the first chunk to be on its way") { transport.chunks.count == 1 }
    sender.close()
    XCTAssertFalse(start(sender, to: "n3:7000", outcomes))
    await gate.open()
    try await waitUntil("the transfer to stop") { outcomes.all.count == 1 }
    XCTAssertThrowsError(try outcomes.all[0].result.get()) {
      XCTAssertEqual($0 as? RaftNodeError, .stopped)
    }
    XCTAssertEqual(transport.chunks.count, 1, "no chunk after close")
  }

  /// Sender to receiver: the staged image reads back as the pieces the state machine made.
  func testAReceiverStagesExactlyThePiecesSent() async throws {
    let directory = TemporaryDirectory()
    defer { directory.remove() }
    let receiver = try SnapshotReceiver(
      directory: directory.path, node: "n2:7000",
      limits: .init(maxPieceBytes: 1 << 20, maxBytesInFlight: 1 << 20))
    let transport = ChunkTransport { chunk in _ = try receiver.receive(chunk) }
    let sender = SnapshotSender(from: leader, transport: transport, io: IOQueue(label: "test.snapshot"))
    let outcomes = Outcomes()
    XCTAssertTrue(start(sender, to: "n2:7000", outcomes))
    try await waitUntil("the transfer to finish") { outcomes.all.count == 1 }
    XCTAssertEqual(try outcomes.all[0].result.get(), metadata)
    let image = try XCTUnwrap(receiver.stagedImages.first)
    XCTAssertEqual(receiver.stagedImages.count, 1)
    XCTAssertEqual(image.metadata, metadata)
    XCTAssertEqual(image.from, leader)
    let reader = try receiver.open(image.id)
    var received: [[UInt8]] = []
    while let piece = try reader.nextPiece() { received.append(piece) }
    XCTAssertEqual(received, pieces)
  }
}
