import Seeded
import Synchronization

/// A simulated network for in-process clusters: every node gets a `Transport` from one shared
/// network, and the network decides, from a seeded generator, what happens to each message.
///
/// Faults:
/// - probabilistic (`faults`): drop, delay, duplication, and the reordering that independent
///   delays cause; see `NetworkFaults`. Changeable at any time.
/// - connectivity: `partition`, `isolate`, `disconnect`/`reconnect`, undone by `heal`.
///   A partition or isolation loses messages silently (the caller waits for its deadline and
///   sees `.timeout`), like a cable cut; a disconnected node fails fast (`.unreachable`, both
///   for its own calls and for calls to it), like a stopped process whose port refuses
///   connections. Calls to an address nobody listens on fail fast with `.unreachable`.
///
/// Connectivity is checked when a request is sent, when it arrives (after its delay) and when
/// its reply arrives, so a partition made while a message is in flight loses it.
///
/// Time is real (`Task.sleep`): this network serves clusters running in real time. Fates are
/// drawn in call order from the seeded generator (see `MessageFate`), so a sequential workload
/// replays exactly for a seed; a concurrent one replays the same decisions in whatever order
/// the scheduler issues its calls.
public final class InMemoryNetwork: Sendable {
  /// Counters since the network was created.
  public struct Statistics: Sendable, Hashable {
    /// Calls that got as far as the network (not refused by a closed transport).
    public var calls = 0
    /// Requests lost to `dropProbability`.
    public var requestsDropped = 0
    /// Replies lost to `dropProbability`.
    public var repliesDropped = 0
    /// Requests delivered a second time.
    public var duplicated = 0
    /// Messages lost to a partition or isolation.
    public var partitioned = 0
    /// Handler invocations (duplicates included).
    public var delivered = 0
  }

  private struct Listener: Sendable {
    let id: UInt64
    let node: String
    let handlers: RPCHandlers
  }

  private struct State: Sendable {
    var generator: SeededGenerator
    var faults: NetworkFaults
    var listeners: [String: Listener] = [:]
    var nextListenerID: UInt64 = 0
    /// Node → partition number; nil when there are no partitions.
    var partitionOf: [String: Int]?
    var isolated: Set<String> = []
    var disconnected: Set<String> = []
    var statistics = Statistics()

    /// Whether a message from `sender` can reach `receiver` (a node always reaches itself).
    func linkUp(_ sender: String, _ receiver: String) -> Bool {
      if disconnected.contains(sender) || disconnected.contains(receiver) {
        return false
      }
      if sender == receiver {
        return true
      }
      if isolated.contains(sender) || isolated.contains(receiver) {
        return false
      }
      if let partitionOf {
        return partitionOf[sender, default: -1] == partitionOf[receiver, default: -1]
      }
      return true
    }
  }

  /// The seed the network's generator started from (print it when a test fails).
  public let seed: UInt64
  private let state: Mutex<State>

  public init(seed: UInt64, faults: NetworkFaults = .none) {
    self.seed = seed
    state = Mutex(State(generator: SeededGenerator(seed: seed), faults: faults))
  }

  /// The transport node `node` uses: its calls come from `node`, and what it serves belongs to
  /// `node` for connectivity purposes (a node may listen on several addresses).
  public func transport(for node: String) -> InMemoryTransport {
    InMemoryTransport(node: node, network: self)
  }

  /// The probabilistic faults applied from now on.
  public var faults: NetworkFaults {
    get { state.withLock { $0.faults } }
    set { state.withLock { $0.faults = newValue } }
  }

  public var statistics: Statistics {
    state.withLock { $0.statistics }
  }

  /// Splits the network: nodes talk only to nodes in the same set. Nodes named in no set form one
  /// more set of their own. Replaces any previous partition.
  public func partition(_ groups: [Set<String>]) {
    var partitionOf: [String: Int] = [:]
    for (number, group) in groups.enumerated() {
      for node in group {
        partitionOf[node] = number
      }
    }
    state.withLock { $0.partitionOf = partitionOf }
  }

  /// Cuts `node` off from every other node (messages are lost) until `heal`.
  public func isolate(_ node: String) {
    state.withLock { _ = $0.isolated.insert(node) }
  }

  /// Takes `node` off the network: its calls, and calls to it, fail fast with `.unreachable`;
  /// its messages in flight are lost.
  public func disconnect(_ node: String) {
    state.withLock { _ = $0.disconnected.insert(node) }
  }

  /// Undoes `disconnect(node)`.
  public func reconnect(_ node: String) {
    state.withLock { _ = $0.disconnected.remove(node) }
  }

  /// Restores full connectivity: no partitions, isolations or disconnections. The probabilistic
  /// `faults` are left as they are (set them to `.none` for a perfect network).
  public func heal() {
    state.withLock { state in
      state.partitionOf = nil
      state.isolated = []
      state.disconnected = []
    }
  }

  // MARK: - Used by InMemoryTransport

  func register(address: String, node: String, handlers: RPCHandlers) throws(RPCError) -> InMemoryListener {
    try state.withLock { (state) throws(RPCError) -> InMemoryListener in
      guard state.listeners[address] == nil else {
        throw .addressInUse(address)
      }
      state.nextListenerID += 1
      state.listeners[address] = Listener(id: state.nextListenerID, node: node, handlers: handlers)
      return InMemoryListener(address: address, id: state.nextListenerID, network: self)
    }
  }

  func unregister(address: String, id: UInt64) {
    state.withLock { state in
      if state.listeners[address]?.id == id {
        state.listeners[address] = nil
      }
    }
  }

  /// One call from `node` to `address`, through the faults.
  func call(
    from node: String, to address: String, method: String, payload: [UInt8], timeout: Duration
  ) async throws(RPCError) -> [UInt8] {
    enum Decision {
      case fail(RPCError)
      case lose
      case deliver(listener: Listener, fate: MessageFate)
    }
    let decision = state.withLock { state -> Decision in
      state.statistics.calls += 1
      // Drawn first, for every call, so that the k-th call's fate does not depend on others.
      let fate = MessageFate.draw(using: &state.generator, faults: state.faults)
      if state.disconnected.contains(node) {
        return .fail(.unreachable(peer: address, reason: "\(node) is disconnected"))
      }
      guard let listener = state.listeners[address] else {
        return .fail(.unreachable(peer: address, reason: "nobody listens at \(address)"))
      }
      if state.disconnected.contains(listener.node) {
        return .fail(.unreachable(peer: address, reason: "\(listener.node) is disconnected"))
      }
      guard state.linkUp(node, listener.node) else {
        state.statistics.partitioned += 1
        return .lose
      }
      if fate.requestDropped {
        state.statistics.requestsDropped += 1
      } else if fate.replyDropped {
        state.statistics.repliesDropped += 1
      }
      if fate.duplicateDelay != nil {
        state.statistics.duplicated += 1
      }
      return .deliver(listener: listener, fate: fate)
    }
    let slot = ReplySlot()
    switch decision {
    case .fail(let error):
      throw error
    case .lose:
      break
    case .deliver(let listener, let fate):
      if !fate.requestDropped {
        deliver(
          from: node, to: address, listener: listener, method: method, payload: payload,
          after: fate.requestDelay, reply: (fate.replyDropped ? nil : slot, fate.replyDelay))
      }
      if let duplicateDelay = fate.duplicateDelay {
        deliver(
          from: node, to: address, listener: listener, method: method, payload: payload,
          after: duplicateDelay, reply: (nil, .zero))
      }
    }
    return try await slot.wait(timeout: timeout, timeoutError: .timeout(peer: address, method: method)).get()
  }

  /// Delivers a request after `delay`, runs its handler and, if `reply.slot` is set, sends the
  /// result back after `reply.delay`.
  private func deliver(
    from node: String, to address: String, listener: Listener, method: String, payload: [UInt8],
    after delay: Duration, reply: (slot: ReplySlot?, delay: Duration)
  ) {
    Task {
      if delay > .zero {
        try? await Task.sleep(for: delay)
      }
      enum Arrival {
        case lost
        case refused(RPCError)
        case arrived
      }
      let arrival = state.withLock { state -> Arrival in
        // The listener that was chosen at send time must still be there: a connection to a
        // closed (or replaced) server is refused.
        guard state.listeners[address]?.id == listener.id else {
          return .refused(.unreachable(peer: address, reason: "\(address) stopped listening"))
        }
        guard state.linkUp(node, listener.node) else {
          state.statistics.partitioned += 1
          return .lost
        }
        state.statistics.delivered += 1
        return .arrived
      }
      switch arrival {
      case .lost:
        return
      case .refused(let error):
        reply.slot?.complete(.failure(error))
        return
      case .arrived:
        break
      }
      let result = await listener.handlers.dispatch(method: method, payload: payload)
      // No slot: a duplicate (whose reply nobody waits for) or a reply the fates drop.
      guard let slot = reply.slot else { return }
      if reply.delay > .zero {
        try? await Task.sleep(for: reply.delay)
      }
      let replyArrives = state.withLock { state -> Bool in
        guard state.linkUp(listener.node, node) else {
          state.statistics.partitioned += 1
          return false
        }
        return true
      }
      if replyArrives {
        slot.complete(result)
      }
    }
  }
}
