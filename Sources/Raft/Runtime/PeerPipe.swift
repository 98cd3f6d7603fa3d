import NIOCore
import NIOPosix
import Wire

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
/// Encoding and sending run in a task of each batch's own, on the node's event loop.
actor PeerPipe {
  let peer: NodeID
  /// The node's event loop: the pipe's actor runs on it, and so does each batch's encoding and
  /// send (its task prefers the loop), so a batch leaves without waking another thread.
  private nonisolated let executor: any SerialExecutor
  private nonisolated let taskExecutor: EventLoopTaskExecutor
  nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
  private let transport: any RaftTransport
  private let limits: PeerPipeLimits
  private let stallAfter: Duration
  private let onFailure: @Sendable (NodeID, any Error) async -> Void

  private var clusterID: UInt64 = 0
  private var queue: [Message] = []
  private var queuedBytes = 0
  private var inFlight = 0
  private var closed = false
  private var batchNumber = 0
  /// The newest batch sent, and since when, until it is answered or stalls: while it is
  /// set, no other batch leaves.
  private var awaited: (number: Int, since: ContinuousClock.Instant)?
  /// One timer per pipe, running while a batch is awaited, not one per batch: every timer
  /// that fires wakes threads (BENCHMARKS.md, issue 11's context switches), and a busy pipe
  /// sends a thousand batches a second.
  private var stallWatch: Task<Void, Never>?

  init(
    peer: NodeID, loop: any EventLoop = MultiThreadedEventLoopGroup.singleton.next(),
    transport: any RaftTransport, limits: PeerPipeLimits,
    heartbeat: Duration, onFailure: @escaping @Sendable (NodeID, any Error) async -> Void
  ) {
    self.peer = peer
    self.executor = loop.executor
    self.taskExecutor = EventLoopTaskExecutor(loop)
    self.transport = transport
    self.limits = limits
    self.stallAfter = limits.stallAfter ?? heartbeat
    self.onFailure = onFailure
  }

  /// Queues messages for the peer, in order, and sends the first batch if the pipe is free.
  /// Batches carry the newest `clusterID` given (a node without one adopts its group's).
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
    sendNext()
  }

  /// Drops what is queued and sends nothing more.
  func close() {
    closed = true
    queue.removeAll()
    queuedBytes = 0
    awaited = nil
    stallWatch?.cancel()
  }

  /// Bytes waiting to be sent (for tests and diagnostics).
  var backlogBytes: Int { queuedBytes }

  /// Sends the next batch, if there is one, no batch is awaited and the window has room.
  private func sendNext() {
    guard !closed, awaited == nil, inFlight < limits.window, let batch = takeBatch() else { return }
    inFlight += 1
    batchNumber += 1
    let number = batchNumber
    awaited = (number, ContinuousClock.now)
    watchForStalls()
    let transport = self.transport
    let peer = self.peer
    let clusterID = self.clusterID
    Task(executorPreference: taskExecutor) {
      var failure: (any Error)?
      do {
        try await transport.send(batch, clusterID: clusterID, to: peer)
      } catch {
        failure = error
      }
      await self.finished(number, failure: failure)
    }
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

  private func finished(_ number: Int, failure: (any Error)?) async {
    inFlight -= 1
    if awaited?.number == number { awaited = nil }
    sendNext()
    if let failure { await onFailure(peer, failure) }
  }

  /// Stops waiting for the awaited batch once it has waited `stallAfter`: checked every half
  /// of it, so a stalled batch holds the next one back for between one and one and a half
  /// times `stallAfter`. The watch ends when nothing is awaited.
  private func watchForStalls() {
    guard stallWatch == nil else { return }
    let period = stallAfter / 2
    stallWatch = Task {
      while !closed, awaited != nil {
        try? await Task.sleep(for: period)
        if let (_, since) = awaited, ContinuousClock.now - since >= stallAfter {
          awaited = nil
          sendNext()
        }
      }
      stallWatch = nil
    }
  }

  /// A message's size on the wire, estimated: its entries, its context and a fixed overhead.
  static func size(of message: Message) -> Int {
    64 + message.context.count + message.entries.reduce(0) { $0 + $1.approximateSize }
  }
}
