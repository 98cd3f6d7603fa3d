import NIOCore
import NIOPosix
import Synchronization
import XCTest

@testable import Raft

/// A transport that records what reaches the peer, refuses any batch whose encoding exceeds
/// the RPC frame limit (16 MiB, as the real one does), and can hold chosen calls unanswered,
/// as when a reply is lost and the caller waits out its timeout.
private final class RecordingRaftTransport: RaftTransport {
  static let frameLimit = 16 << 20
  private let state = Mutex(
    (batches: [[Message]](), held: Set<Int>(), calls: 0, loops: [ObjectIdentifier?]()))

  /// Calls (numbered from 1) that are delivered but answered only after `holdFor`.
  init(holding calls: Set<Int> = []) {
    state.withLock { $0.held = calls }
  }

  let holdFor: Duration = .seconds(5)

  var batches: [[Message]] { state.withLock { $0.batches } }
  var delivered: [Message] { batches.flatMap { $0 } }

  /// The event loop each batch was sent from (nil: a thread of Swift's pool).
  var sentFromLoops: [ObjectIdentifier?] { state.withLock { $0.loops } }

  func send(_ messages: [Message], clusterID: UInt64, to peer: NodeID) async throws {
    let loop = MultiThreadedEventLoopGroup.currentEventLoop.map { ObjectIdentifier($0) }
    state.withLock { $0.loops.append(loop) }
    let size = try RaftCodec.serialize(messages).count
    guard size <= Self.frameLimit else { throw RaftCodecError.malformed("frame of \(size) bytes") }
    let held = state.withLock { state in
      state.calls += 1
      state.batches.append(messages)
      return state.held.contains(state.calls)
    }
    if held { try await Task.sleep(for: holdFor) }
  }

  func sendSnapshotChunk(_ chunk: SnapshotChunk, to peer: NodeID) async throws {}
}

final class PeerPipeTests: XCTestCase {
  private func append(_ index: UInt64, bytes: Int) -> Message {
    var m = Message(kind: .append, from: "a:1", to: "b:1", term: 1)
    m.index = index - 1
    m.entries = [Entry(term: 1, index: index, payload: .command(Array(repeating: 7, count: bytes)))]
    return m
  }

  /// 40 MiB queued at once (today's outbox would send it as one RPC, over the frame limit,
  /// and lose all of it) leaves in order, in batches under the limit.
  func testABacklogLargerThanTheFrameLimitIsSplitAndDeliveredInOrder() async throws {
    let transport = RecordingRaftTransport()
    let failures = Mutex(0)
    let pipe = PeerPipe(
      peer: "b:1", transport: transport, limits: PeerPipeLimits(), heartbeat: .milliseconds(50)
    ) { _, _ in failures.withLock { $0 += 1 } }
    let messages = (1...40).map { append(UInt64($0), bytes: 1 << 20) }
    await pipe.send(messages, clusterID: 1)
    try await waitUntil("40 messages delivered") { transport.delivered.count == 40 }
    XCTAssertEqual(transport.delivered.map(\.index), messages.map(\.index), "delivered out of order")
    XCTAssertGreaterThan(transport.batches.count, 1)
    for batch in transport.batches {
      XCTAssertLessThanOrEqual(try RaftCodec.serialize(batch).count, RecordingRaftTransport.frameLimit)
    }
    XCTAssertEqual(failures.withLock { $0 }, 0)
  }

  /// Batches are encoded and sent on the node's event loop, where its connections live, not
  /// handed to another thread.
  func testBatchesLeaveFromTheNodesEventLoop() async throws {
    let transport = RecordingRaftTransport()
    let loop = MultiThreadedEventLoopGroup.singleton.next()
    let pipe = PeerPipe(
      peer: "b:1", loop: loop, transport: transport, limits: PeerPipeLimits(),
      heartbeat: .milliseconds(50)
    ) { _, _ in }
    for index in 1...5 { await pipe.send([append(UInt64(index), bytes: 10)], clusterID: 1) }
    try await waitUntil("5 messages delivered") { transport.delivered.count == 5 }
    let loops = transport.sentFromLoops
    XCTAssertFalse(loops.isEmpty)
    XCTAssertEqual(Set(loops), [ObjectIdentifier(loop)], "a batch left from another thread")
  }

  /// The first batch's reply is lost (its call hangs for 5 s): the next batch leaves after
  /// the stall threshold, not after the call's timeout.
  func testALostReplyHoldsThePeerBackForTheStallThresholdNotTheTimeout() async throws {
    let transport = RecordingRaftTransport(holding: [1])
    var limits = PeerPipeLimits()
    limits.stallAfter = .milliseconds(50)
    let pipe = PeerPipe(peer: "b:1", transport: transport, limits: limits, heartbeat: .milliseconds(50)) {
      _, _ in
    }
    await pipe.send([append(1, bytes: 10)], clusterID: 1)
    try await waitUntil("the first batch") { transport.delivered.count == 1 }
    let started = ContinuousClock.now
    await pipe.send([append(2, bytes: 10)], clusterID: 1)
    try await waitUntil("the second batch", timeout: .seconds(3)) { transport.delivered.count == 2 }
    XCTAssertLessThan(ContinuousClock.now - started, .seconds(2))
  }

  /// A peer that never answers holds at most `window` batches in flight and a bounded backlog.
  func testAPeerThatNeverAnswersCostsBoundedMemory() async throws {
    let transport = RecordingRaftTransport(holding: Set(1...1000))
    var limits = PeerPipeLimits()
    limits.stallAfter = .milliseconds(1)
    limits.window = 2
    limits.maxQueuedBytes = 1 << 20
    let pipe = PeerPipe(peer: "b:1", transport: transport, limits: limits, heartbeat: .milliseconds(50)) {
      _, _ in
    }
    for index in 1...200 { await pipe.send([append(UInt64(index), bytes: 64 << 10)], clusterID: 1) }
    try await waitUntil("the window to fill") { transport.batches.count == 2 }
    try await Task.sleep(for: .milliseconds(50))
    XCTAssertEqual(transport.batches.count, 2, "more than the window in flight")
    let backlog = await pipe.backlogBytes
    XCTAssertLessThanOrEqual(backlog, limits.maxQueuedBytes)
    await pipe.close()
  }
}
