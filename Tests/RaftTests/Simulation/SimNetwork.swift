@testable import Raft

/// How the simulated network mistreats messages. Delays are in steps; each message draws its
/// own delay, so messages between two nodes are reordered whenever `maxDelay > minDelay`.
struct NetworkOptions: Sendable {
  var dropRate = 0.0
  var duplicateRate = 0.0
  var minDelay = 1
  var maxDelay = 1
  /// The labs' long reordering: this share of the answers (responses of every kind) is held
  /// back for `2 + r` more steps, `r` drawn from `0...s` with `s` drawn from `0...longDelay`
  /// (so short holds are common and holds of up to `longDelay` rare).
  var longReorderRate = 0.0
  var longDelay = 0

  static let reliable = NetworkOptions()
  /// The classic labs' unreliable network: a tenth of the messages lost, some duplicated,
  /// delays long enough to reorder.
  static let unreliable = NetworkOptions(dropRate: 0.1, duplicateRate: 0.05, minDelay: 1, maxDelay: 4)
}

/// A deterministic network: messages wait in a queue until their delivery step and are then
/// delivered in (step, send order). Connectivity is checked at delivery too, so a partition
/// also cuts the messages already on the wire.
final class SimNetwork {
  struct InFlight {
    var deliverAt: Int
    var sequence: UInt64
    var message: Message
  }

  var options: NetworkOptions
  /// A test hook consulted at delivery: false drops the message.
  var filter: ((Message) -> Bool)?

  private(set) var inFlight: [InFlight] = []
  private var nextSequence: UInt64 = 0
  /// Partition group of each node; nodes not listed are in group 0.
  private var group: [NodeID: Int] = [:]
  private(set) var isolated: Set<NodeID> = []

  private(set) var sent = 0
  private(set) var sentByKind: [MessageKind: Int] = [:]
  private(set) var delivered = 0
  private(set) var dropped = 0

  init(options: NetworkOptions) { self.options = options }

  func canTalk(_ a: NodeID, _ b: NodeID) -> Bool {
    !isolated.contains(a) && !isolated.contains(b) && group[a, default: 0] == group[b, default: 0]
  }

  /// Splits the nodes into groups that can only talk within themselves.
  func partition(_ groups: [[NodeID]]) {
    group.removeAll()
    for (number, members) in groups.enumerated() {
      for id in members { group[id] = number + 1 }
    }
  }

  func isolate(_ id: NodeID) { isolated.insert(id) }
  func reconnect(_ id: NodeID) { isolated.remove(id) }

  func healAll() {
    group.removeAll()
    isolated.removeAll()
  }

  func send(_ message: Message, now: Int, rng: inout SimRandom) {
    sent += 1
    sentByKind[message.kind, default: 0] += 1
    let copies = rng.chance(options.duplicateRate) ? 2 : 1
    for _ in 0..<copies {
      var delay = rng.int(in: options.minDelay...max(options.minDelay, options.maxDelay))
      if message.kind.isResponse && rng.chance(options.longReorderRate) {
        delay += 2 + rng.int(in: 0...rng.int(in: 0...max(0, options.longDelay)))
      }
      inFlight.append(InFlight(deliverAt: now + delay, sequence: nextSequence, message: message))
      nextSequence += 1
    }
  }

  /// Removes and returns the messages due at `now`, in delivery order.
  func takeDue(now: Int) -> [Message] {
    var due: [InFlight] = []
    var rest: [InFlight] = []
    for item in inFlight {
      if item.deliverAt <= now { due.append(item) } else { rest.append(item) }
    }
    inFlight = rest
    due.sort { ($0.deliverAt, $0.sequence) < ($1.deliverAt, $1.sequence) }
    return due.map(\.message)
  }

  /// Whether a due message reaches its destination (connectivity, drop rate, test filter).
  func survives(_ message: Message, rng: inout SimRandom) -> Bool {
    let ok =
      canTalk(message.from, message.to) && !rng.chance(options.dropRate)
      && (filter?(message) ?? true)
    if ok { delivered += 1 } else { dropped += 1 }
    return ok
  }

  /// A crash loses everything on the wire to or from the node.
  func discard(involving id: NodeID) {
    inFlight.removeAll { $0.message.from == id || $0.message.to == id }
  }

  func count(_ kinds: Set<MessageKind>) -> Int {
    kinds.reduce(0) { $0 + sentByKind[$1, default: 0] }
  }
}

extension MessageKind {
  var isResponse: Bool {
    switch self {
    case .preVoteResponse, .voteResponse, .appendResponse, .heartbeatResponse, .readIndexResponse: true
    default: false
    }
  }
}
