import Foundation
import Logging
import Storage
import Synchronization
import XCTest

@testable import Raft

/// How many pieces, how many bytes, and a hash of the pieces in order.
private struct ImageDigest: Sendable, Equatable {
  var pieces = 0
  var bytes = 0
  var hash = 0

  mutating func add(_ piece: [UInt8]) {
    var hasher = Hasher()
    hasher.combine(hash)
    piece.withUnsafeBytes { hasher.combine(bytes: $0) }
    hash = hasher.finalize()
    pieces += 1
    bytes += piece.count
  }
}

/// `totalBytes` of incompressible bytes in pieces of `pieceBytes`, made as they are read: piece
/// n is one pseudo-random block rotated by a per-piece offset with n stamped at its start, so
/// no two pieces are alike and zstd finds nothing to compress. It digests what it hands out.
private final class SyntheticImage: SnapshotReader {
  let index: UInt64
  private let totalBytes: Int
  private let block: [UInt8]
  private let state = Mutex((next: 0, digest: ImageDigest()))

  init(index: UInt64, totalBytes: Int, pieceBytes: Int, seed: UInt64) {
    self.index = index
    self.totalBytes = totalBytes
    var x = seed | 1
    var block = [UInt8](repeating: 0, count: pieceBytes)
    for i in 0..<pieceBytes {
      // xorshift64
      x ^= x << 13
      x ^= x >> 7
      x ^= x << 17
      block[i] = UInt8(truncatingIfNeeded: x)
    }
    self.block = block
  }

  var digest: ImageDigest { state.withLock { $0.digest } }

  func nextPiece() throws -> [UInt8]? {
    state.withLock { state -> [UInt8]? in
      let start = state.next * block.count
      guard start < totalBytes else { return nil }
      let count = min(block.count, totalBytes - start)
      let rotation = (state.next &* 7919) % block.count
      var piece = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
        let target = UnsafeMutableRawBufferPointer(buffer)
        block.withUnsafeBytes { source in
          let tail = min(count, source.count - rotation)
          target.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[rotation..<(rotation + tail)]))
          if count > tail {
            UnsafeMutableRawBufferPointer(rebasing: target[tail..<count])
              .copyMemory(from: UnsafeRawBufferPointer(rebasing: source[0..<(count - tail)]))
          }
        }
        initialized = count
      }
      for (offset, byte) in BigEndian.bytes(UInt64(state.next)).enumerated() where offset < count {
        piece[offset] = byte
      }
      state.next += 1
      state.digest.add(piece)
      return piece
    }
  }
}

/// A state machine that only records what a restore read: the image's digest.
private final class DigestStateMachine: StateMachine {
  private let state = Mutex((applied: UInt64(0), restored: ImageDigest?.none))

  var appliedIndex: UInt64 { state.withLock { $0.applied } }
  var restored: ImageDigest? { state.withLock { $0.restored } }

  func apply(_ entries: [Entry]) throws -> [[UInt8]] {
    if let last = entries.last { state.withLock { $0.applied = last.index } }
    return entries.map { _ in [] }
  }

  func sync() throws {}

  func makeSnapshot() throws -> any SnapshotReader { ArrayReader(index: appliedIndex, pieces: []) }

  func restore(_ metadata: SnapshotMetadata, from image: any SnapshotReader) throws {
    var digest = ImageDigest()
    while let piece = try image.nextPiece() { digest.add(piece) }
    state.withLock { $0 = (metadata.index, digest) }
  }
}

/// Hands each chunk straight to the receiving node; drops the node's own messages.
private final class DirectTransport: RaftTransport {
  private let target = Mutex<RaftNode?>(nil)

  func connect(_ node: RaftNode) { target.withLock { $0 = node } }

  func send(_ messages: [Message], clusterID: UInt64, to peer: NodeID) async throws {}

  func sendSnapshotChunk(_ chunk: SnapshotChunk, to peer: NodeID) async throws {
    guard let node = target.withLock({ $0 }) else { throw RaftNodeError.stopped }
    try await node.receiveSnapshotChunk(chunk)
  }
}

/// This process's resident memory, from /proc/self/status.
private struct ResidentMemory {
  /// VmRSS: resident now.
  var current: Int
  /// VmHWM: the peak since the process started or since `resetPeak()`.
  var peak: Int

  static func read() throws -> ResidentMemory {
    let text = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
    func kilobytes(_ field: String) throws -> Int {
      let line = try XCTUnwrap(text.split(separator: "\n").first { $0.hasPrefix(field + ":") }, field)
      let value = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first
      return try XCTUnwrap(value.flatMap { Int($0) }, String(line)) * 1024
    }
    return ResidentMemory(current: try kilobytes("VmRSS"), peak: try kilobytes("VmHWM"))
  }

  /// Makes VmHWM start again from VmRSS (Linux ≥ 4.0: "5" > /proc/self/clear_refs), so the
  /// peak measured is this test's, not that of a test before it.
  static func resetPeak() throws {
    try "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
  }
}

final class SnapshotMemoryTests: XCTestCase {
  /// The image size in MiB: 500 by default, `SHARDKV_SNAPSHOT_TEST_MB` to change it.
  private var imageMiB: Int {
    ProcessInfo.processInfo.environment["SHARDKV_SNAPSHOT_TEST_MB"].flatMap { Int($0) } ?? 500
  }

  /// A follower receives a large image through the real path (`SnapshotSender` on one side;
  /// `RaftNode.receiveSnapshotChunk`, the staging file, the core, and
  /// `StateMachine.restore` reading it back on the other) while the process's peak resident
  /// memory is measured: it must grow by far less than the image (the old receiver held the
  /// whole image in memory, twice at install). The state machine must have read exactly the
  /// pieces sent, in order.
  func testReceivingALargeSnapshotStreamsItThroughDiskInBoundedMemory() async throws {
    let imageBytes = imageMiB << 20
    // 128 MiB, or less for a small image: always less than half of it, so an image held in
    // memory fails the bound.
    let bound = min(128 << 20, imageBytes / 2)
    let directory = TemporaryDirectory()
    defer { directory.remove() }
    let ids: [NodeID] = ["n1:7000", "n2:7000", "n3:7000"]
    var options = RaftNodeOptions()
    options.snapshotStagingDirectory = directory.path + "/staging"
    options.maxSnapshotBytesInFlight = max(options.maxSnapshotBytesInFlight, imageBytes)
    let stateMachine = DigestStateMachine()
    let transport = DirectTransport()
    var logger = Logger(label: "test")
    logger.logLevel = .error
    // Never started: no ticks, so no election; the node follows whoever sends a newer term.
    let node = try RaftNode(
      id: ids[0], options: options, storage: MemoryLogStorage(), stateMachine: stateMachine,
      transport: transport, bootstrapVoters: ids, logger: logger)
    transport.connect(node)
    let term = await node.status.term + 1
    let metadata = SnapshotMetadata(index: 1_000, term: term, membership: Membership(voters: ids))
    let image = SyntheticImage(index: metadata.index, totalBytes: imageBytes, pieceBytes: 1 << 20, seed: 42)
    let sender = SnapshotSender(from: ids[1], transport: transport, io: IOQueue(label: "test.snapshot.send"))
    let outcome = Mutex<Result<SnapshotMetadata, any Error>?>(nil)
    let clusterID = await node.clusterID

    try ResidentMemory.resetPeak()
    let before = try ResidentMemory.read()
    let started = ContinuousClock.now
    XCTAssertTrue(
      sender.start(
        to: ids[0], term: term, clusterID: clusterID, image: { .init(reader: image, metadata: metadata) },
        finished: { result in outcome.withLock { $0 = result } }))
    let deadline = ContinuousClock.now + .seconds(600)
    while await node.snapshotsInstalled == 0 || outcome.withLock({ $0 }) == nil {
      guard ContinuousClock.now < deadline else { return XCTFail("the snapshot was not installed in time") }
      try await Task.sleep(for: .milliseconds(20))
    }
    let elapsed = ContinuousClock.now - started
    let after = try ResidentMemory.read()

    XCTAssertEqual(try outcome.withLock { $0 }?.get(), metadata)
    let restored = try XCTUnwrap(stateMachine.restored)
    XCTAssertEqual(restored.bytes, imageBytes)
    XCTAssertEqual(restored, image.digest, "the state machine read exactly the pieces sent, in order")
    let applied = await node.appliedIndex
    XCTAssertEqual(applied, metadata.index)
    let growth = after.peak - before.current
    print(
      "snapshot of \(imageMiB) MiB received and installed in \(elapsed): RSS \(before.current >> 20) MiB "
        + "before, peak \(after.peak >> 20) MiB (growth \(growth >> 20) MiB, bound \(bound >> 20) MiB), "
        + "\(after.current >> 20) MiB after")
    XCTAssertLessThan(growth, bound, "peak RSS grew by \(growth >> 20) MiB for a \(imageMiB) MiB image")
    let left = try FileManager.default.contentsOfDirectory(atPath: directory.path + "/staging")
      .filter(SnapshotReceiver.isStagingFile)
    XCTAssertEqual(left, [], "the installed image's file is deleted")
    await node.stop()
  }
}
