import Seeded

/// The faults of one run, drawn from its seed before the run starts (so the seed names the
/// schedule): one step at a time (one fault, or two at once), each held for a while and then
/// healed, with a quiet gap after it. Which node is the leader is only known when a fault begins, so a fault may name
/// "the leader of Raft group G", resolved then.
struct FaultSchedule: Sendable {
  enum Target: Hashable, Sendable, CustomStringConvertible {
    case node(Int)
    case leader(raftGroup: Int)

    var description: String {
      switch self {
      case .node(let n): "node \(n)"
      case .leader(let g): "the leader of Raft group \(g)"
      }
    }
  }

  enum Fault: Hashable, Sendable, CustomStringConvertible {
    /// kill -9, restarted when the fault ends.
    case kill(Target)
    /// SIGSTOP, SIGCONT when the fault ends (longer than the election timeout).
    case pause(Target)
    /// Raft group G's members cut into a minority and a majority (the rest of the cluster
    /// stays with the majority).
    case splitGroup(raftGroup: Int, minority: [Int])
    /// One node cut off from every other node.
    case isolate(Target)
    /// Raft group G's members in two sides that only `bridge` talks to both of.
    case bridge(raftGroup: Int, bridge: Int, left: [Int], right: [Int])
    /// Everything `from` sends to the other members of its Raft group is dropped; what they
    /// send it still arrives.
    case oneWay(from: Target, raftGroup: Int)

    var kind: String {
      switch self {
      case .kill: "kill"
      case .pause: "pause"
      case .splitGroup: "partition"
      case .isolate: "isolate"
      case .bridge: "bridge"
      case .oneWay: "one-way"
      }
    }

    var description: String {
      switch self {
      case .kill(let t): "kill -9 \(t)"
      case .pause(let t): "SIGSTOP \(t)"
      case .splitGroup(let g, let minority): "partition Raft group \(g): minority \(minority) | the rest"
      case .isolate(let t): "isolate \(t)"
      case .bridge(let g, let bridge, let left, let right):
        "bridge in Raft group \(g): \(left) | \(right), node \(bridge) talks to both"
      case .oneWay(let t, let g): "drop what \(t) sends to the rest of Raft group \(g)"
      }
    }
  }

  /// One or two faults that start together and end together.
  struct Step: Hashable, Sendable, CustomStringConvertible {
    /// From the start of the workload.
    var at: Duration
    var faults: [Fault]
    var lasts: Duration

    var description: String {
      "at \(at.secondsText) s for \(lasts.secondsText) s: \(faults.map(\.description).joined(separator: " + "))"
    }
  }

  var steps: [Step]

  /// Faults for `seconds` of workload; the last one ends at least 3 s before the end.
  init(seed: UInt64, seconds: Int, topology: NemesisTopology) {
    var random = SeededGenerator(seed: seed)
    var steps: [Step] = []
    var now = Duration.milliseconds(Int.random(in: 1000...3000, using: &random))
    let end = Duration.seconds(seconds) - .seconds(3)
    while true {
      let lasts = Duration.milliseconds(Int.random(in: 1500...6000, using: &random))
      guard now + lasts <= end else { break }
      var faults = [Self.draw(topology: topology, using: &random)]
      // One step in four runs two faults at once (a partition while a node is down, two
      // members of a group killed together, ...).
      if Int.random(in: 0..<4, using: &random) == 0 {
        faults.append(Self.draw(topology: topology, using: &random))
      }
      steps.append(Step(at: now, faults: faults, lasts: lasts))
      now += lasts + .milliseconds(Int.random(in: 500...2500, using: &random))
    }
    self.steps = steps
  }

  /// One fault on a random Raft group of `topology`.
  private static func draw(topology: NemesisTopology, using random: inout SeededGenerator) -> Fault {
    let groups = topology.raftGroups
    let g = Int.random(in: 0..<groups.count, using: &random)
    let members = groups[g]
    func target() -> Target {
      Bool.random(using: &random)
        ? .leader(raftGroup: g) : .node(members.randomElement(using: &random) ?? members[0])
    }
    switch Int.random(in: 0..<12, using: &random) {
    case 0..<3: return .kill(target())
    case 3..<5:
      // Routers are stateless: killing one now and then tests the clients' failover.
      let routers = topology.nodes.indices.filter { topology.nodes[$0].role == .router }
      if !routers.isEmpty, Int.random(in: 0..<4, using: &random) == 0 {
        return .kill(.node(routers.randomElement(using: &random) ?? routers[0]))
      }
      return .pause(target())
    case 5..<7:
      let shuffled = members.shuffled(using: &random)
      return .splitGroup(raftGroup: g, minority: Array(shuffled.prefix((members.count - 1) / 2)).sorted())
    case 7..<9: return .isolate(target())
    case 9..<11:
      let shuffled = members.shuffled(using: &random)
      let half = (members.count - 1) / 2
      return .bridge(
        raftGroup: g, bridge: shuffled[0], left: Array(shuffled[1...half]).sorted(),
        right: Array(shuffled[(half + 1)...]).sorted())
    default: return .oneWay(from: target(), raftGroup: g)
    }
  }

  /// Faults by kind; "combined" counts the steps that ran two at once.
  var counts: [String: Int] {
    var counts = Dictionary(steps.flatMap(\.faults).map { ($0.kind, 1) }, uniquingKeysWith: +)
    let combined = steps.filter { $0.faults.count > 1 }.count
    if combined > 0 { counts["combined"] = combined }
    return counts
  }
}
