import Seeded

/// The faults of one run, drawn from its seed before the run starts (so the seed names the
/// schedule): one fault at a time, each held for a while and then healed, with a quiet gap
/// after it. Which node is the leader is only known when a fault begins, so a fault may name
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

  struct Step: Hashable, Sendable {
    /// From the start of the workload.
    var at: Duration
    var fault: Fault
    var lasts: Duration
  }

  var steps: [Step]

  /// Faults for `seconds` of workload; the last one ends at least 3 s before the end.
  init(seed: UInt64, seconds: Int, topology: NemesisTopology) {
    var random = SeededGenerator(seed: seed)
    var steps: [Step] = []
    var now = Duration.milliseconds(Int.random(in: 1000...3000, using: &random))
    let end = Duration.seconds(seconds) - .seconds(3)
    let groups = topology.raftGroups
    while true {
      let lasts = Duration.milliseconds(Int.random(in: 1500...6000, using: &random))
      guard now + lasts <= end else { break }
      let g = Int.random(in: 0..<groups.count, using: &random)
      let members = groups[g]
      func target() -> Target {
        Bool.random(using: &random)
          ? .leader(raftGroup: g) : .node(members.randomElement(using: &random) ?? members[0])
      }
      let fault: Fault
      switch Int.random(in: 0..<12, using: &random) {
      case 0..<3: fault = .kill(target())
      case 3..<5:
        // Routers are stateless: killing one now and then tests the clients' failover.
        if topology.nodes.contains(where: { $0.role == .router }), Int.random(in: 0..<4, using: &random) == 0
        {
          let routers = topology.nodes.indices.filter { topology.nodes[$0].role == .router }
          fault = .kill(.node(routers.randomElement(using: &random) ?? routers[0]))
        } else {
          fault = .pause(target())
        }
      case 5..<7:
        let shuffled = members.shuffled(using: &random)
        fault = .splitGroup(raftGroup: g, minority: Array(shuffled.prefix((members.count - 1) / 2)).sorted())
      case 7..<9: fault = .isolate(target())
      case 9..<11:
        let shuffled = members.shuffled(using: &random)
        let half = (members.count - 1) / 2
        fault = .bridge(
          raftGroup: g, bridge: shuffled[0], left: Array(shuffled[1...half]).sorted(),
          right: Array(shuffled[(half + 1)...]).sorted())
      default: fault = .oneWay(from: target(), raftGroup: g)
      }
      steps.append(Step(at: now, fault: fault, lasts: lasts))
      now += lasts + .milliseconds(Int.random(in: 500...2500, using: &random))
    }
    self.steps = steps
  }

  var counts: [String: Int] { Dictionary(steps.map { ($0.fault.kind, 1) }, uniquingKeysWith: +) }
}
