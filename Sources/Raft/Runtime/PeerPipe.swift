/// How a `PeerPipe` batches and paces the messages to one peer.
public struct PeerPipeLimits: Sendable, Hashable {
  /// Most bytes (estimated) in one batch, so that no RPC frame comes near the frame limit (16
  /// MiB by default). A single message larger than this still travels, alone.
  public var maxBatchBytes = 4 << 20
  /// Most bytes queued for a peer that is not keeping up; beyond it the oldest messages are
  /// dropped (Raft retransmits what matters), so a dead peer costs bounded memory.
  public var maxQueuedBytes = 64 << 20
  /// Most batches on their way at once.
  public var window = 4
  /// How long a batch may go unanswered before the next one is sent anyway: a lost reply
  /// holds the peer's traffic back this long, not for the call's whole timeout. Nil: one
  /// heartbeat interval of the node.
  public var stallAfter: Duration?

  public init() {}
}

/// The messages on their way to one peer, as etcd gives each peer its own stream.
///
/// Messages leave in the order they were queued, in batches of at most
/// `limits.maxBatchBytes`. Normally one batch is in flight at a time and the next leaves when
/// it is answered, which keeps batches in order at the receiver. A batch still unanswered
/// after `stallAfter` (its reply was lost, or the peer is slow) no longer holds the next
/// one back; at most `limits.window` are in flight. A failed batch is reported through
/// `onFailure` (the node marks the peer unreachable) and its messages are dropped: Raft
/// retransmits.
///
/// Encoding and sending run here, off the node's actor.
actor PeerPipe {
  let peer: NodeID
  private let transport: any RaftTransport
  private let limits: PeerPipeLimits
  private let stallAfter: Duration
  private let onFailure: @Sendable (NodeID, any Error) async -> Void

  private var clusterID: UInt64 = 0
  private var queue: [Message] = []
  private var queuedBytes = 0
  private var inFlight = 0
  private var pumping = false
  private var closed = false
  /// Waiters for a batch to be answered (or to stall): the pump, for a free slot.
  private var slotWaiters: [CheckedContinuation<Void, Never>] = []

  init(
    peer: NodeID, transport: any RaftTransport, limits: PeerPipeLimits, heartbeat: Duration,
    onFailure: @escaping @Sendable (NodeID, any Error) async -> Void
  ) {
    self.peer = peer
    self.transport = transport
    self.limits = limits
    self.stallAfter = limits.stallAfter ?? heartbeat
    self.onFailure = onFailure
  }

  /// Queues messages for the peer, in order. Batches carry the newest `clusterID` given (a
  /// node without one adopts its group's).
  func send(_ messages: [Message], clusterID: UInt64) {
    guard !closed, !messages.isEmpty else { return }
    self.clusterID = clusterID
    for message in messages {
      queue.append(message)
      queuedBytes += Self.size(of: message)
    }
    var dropped = 0
    while queuedBytes > limits.maxQueuedBytes && queue.count - dropped > 1 {
      queuedBytes -= Self.size(of: queue[dropped])
      dropped += 1
    }
    if dropped > 0 { queue.removeFirst(dropped) }
    if !pumping {
      pumping = true
      Task { await self.pump() }
    }
  }

  /// Drops what is queued and sends nothing more.
  func close() {
    closed = true
    queue.removeAll()
    queuedBytes = 0
    resumeSlotWaiters()
    if let awaited { release(awaited) }
  }

  /// Bytes waiting to be sent (for tests and diagnostics).
  var backlogBytes: Int { queuedBytes }

  private func pump() async {
    while !closed, let batch = takeBatch() {
      while inFlight >= limits.window && !closed { await waitForSlot() }
      if closed { break }
      inFlight += 1
      batchNumber += 1
      let number = batchNumber
      awaited = number
      let transport = self.transport
      let peer = self.peer
      let clusterID = self.clusterID
      let stallAfter = self.stallAfter
      Task {
        var failure: (any Error)?
        do {
          try await transport.send(batch, clusterID: clusterID, to: peer)
        } catch {
          failure = error
        }
        await self.finished(number, failure: failure)
      }
      Task {
        try? await Task.sleep(for: stallAfter)
        self.release(number)
      }
      // Wait for the answer, but not past `stallAfter`. Nothing else runs on this actor
      // between setting `awaited` and suspending here, so no release is missed.
      await withCheckedContinuation { pumpWaiter = $0 }
    }
    pumping = false
  }

  /// The next batch: queued messages up to `maxBatchBytes` (at least one).
  private func takeBatch() -> [Message]? {
    guard !queue.isEmpty else { return nil }
    var bytes = 0
    var count = 0
    for message in queue {
      let size = Self.size(of: message)
      if count > 0 && bytes + size > limits.maxBatchBytes { break }
      bytes += size
      count += 1
    }
    let batch = Array(queue.prefix(count))
    queue.removeFirst(count)
    queuedBytes -= bytes
    return batch
  }

  // MARK: - One batch's progress

  private var batchNumber = 0
  /// The batch the pump waits for, until it is answered or stalls.
  private var awaited: Int?
  private var pumpWaiter: CheckedContinuation<Void, Never>?

  /// Ends the pump's wait for batch `number`, if it is still waiting for it.
  private func release(_ number: Int) {
    guard awaited == number else { return }
    awaited = nil
    pumpWaiter?.resume()
    pumpWaiter = nil
  }

  private func finished(_ number: Int, failure: (any Error)?) async {
    inFlight -= 1
    release(number)
    resumeSlotWaiters()
    if let failure { await onFailure(peer, failure) }
  }

  private func waitForSlot() async {
    await withCheckedContinuation { slotWaiters.append($0) }
  }

  private func resumeSlotWaiters() {
    let waiters = slotWaiters
    slotWaiters.removeAll()
    for waiter in waiters { waiter.resume() }
  }

  /// A message's size on the wire, estimated: its entries, its context and a fixed overhead.
  static func size(of message: Message) -> Int {
    64 + message.context.count + message.entries.reduce(0) { $0 + $1.approximateSize }
  }
}
