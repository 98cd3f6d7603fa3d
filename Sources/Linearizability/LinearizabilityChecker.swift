/// Checks a concurrent history of key-value operations for linearizability, one key at a time:
/// a history is linearizable iff each key's sub-history is (P-compositionality), and a key's
/// value is a register with Put, Append, Delete and Get.
///
/// The search is Wing & Gong's with Lowe's refinement and memoization of (linearized set,
/// state) pairs, as Porcupine does it, iterative so that a key with tens of thousands of
/// operations does not exhaust a thread's stack. An operation of unknown outcome has no return
/// event: it may be linearized at any point after its call, or never.
///
/// The problem is NP-complete; each key's search is bounded by a step budget and an optional
/// deadline, and a search that hits either answers `inconclusive`, never a pass.
public enum LinearizabilityChecker {
  public typealias Operation = RecordedOperation
  public typealias Kind = RecordedOperation.Kind

  public enum Verdict: Hashable, Sendable {
    case linearizable
    case violation(key: String)
    /// The search for `key` ran out of steps or time: no answer either way (a history with
    /// long stretches of concurrent writes and no reads can need exponential time).
    case inconclusive(key: String)
  }

  /// The answer for one key.
  public enum KeyVerdict: Hashable, Sendable {
    case linearizable, violation, inconclusive
  }

  /// Bounds of one search.
  public struct Limits: Sendable {
    public var stepsPerKey: Int
    /// When the whole check must end.
    public var deadline: ContinuousClock.Instant?

    public init(stepsPerKey: Int = .max, deadline: ContinuousClock.Instant? = nil) {
      self.stepsPerKey = stepsPerKey
      self.deadline = deadline
    }
  }

  /// The first key whose history is not linearizable, if any (searching without limit).
  public static func firstViolation(in history: [Operation]) -> String? {
    switch check(history, stepsPerKey: .max) {
    case .linearizable: return nil
    case .violation(let key), .inconclusive(let key): return key
    }
  }

  /// Checks every key's history, giving each search at most `stepsPerKey` steps. A violation
  /// anywhere wins over an inconclusive key.
  public static func check(_ history: [Operation], stepsPerKey: Int) -> Verdict {
    summary(of: checkKeys(history, limits: Limits(stepsPerKey: stepsPerKey)))
  }

  /// The verdict of each key, in key order.
  public static func checkKeys(_ history: [Operation], limits: Limits) -> [(key: String, verdict: KeyVerdict)]
  {
    let byKey = Dictionary(grouping: history, by: \.key)
    return byKey.keys.sorted().map { key in (key, checkKey(byKey[key, default: []], limits: limits)) }
  }

  public static func summary(of verdicts: [(key: String, verdict: KeyVerdict)]) -> Verdict {
    if let bad = verdicts.first(where: { $0.verdict == .violation }) { return .violation(key: bad.key) }
    if let open = verdicts.first(where: { $0.verdict == .inconclusive }) {
      return .inconclusive(key: open.key)
    }
    return .linearizable
  }

  /// Checks the history of one key (every operation is taken to be on the same key).
  public static func checkKey(_ ops: [Operation], limits: Limits) -> KeyVerdict {
    var search = Search(ops: ops.filter(\.constrainsHistory), limits: limits)
    return search.run()
  }

  /// The shortest prefix of one key's history that is already not linearizable: the
  /// operations called by the time T at which the first contradiction completed, those still
  /// running at T counted as unknown. Linearizability is prefix-closed, so the shortest
  /// failing prefix is found by bisection over return times. nil when the whole history
  /// passes (or cannot be decided within `limits`).
  public static func shortestFailingPrefix(_ ops: [Operation], limits: Limits) -> [Operation]? {
    let relevant = ops.filter(\.constrainsHistory)
    guard checkKey(relevant, limits: limits) == .violation else { return nil }
    let times = Array(Set(relevant.compactMap(\.returned))).sorted()
    var (low, high) = (0, times.count - 1)  // times[high] fails
    while low < high {
      let middle = (low + high) / 2
      if checkKey(prefix(relevant, at: times[middle]), limits: limits) == .violation {
        high = middle
      } else {
        low = middle + 1
      }
    }
    return prefix(relevant, at: times[high]).sorted { ($0.call, $0.client) < ($1.call, $1.client) }
  }

  /// The history as it stood at time `t`.
  static func prefix(_ ops: [Operation], at t: UInt64) -> [Operation] {
    ops.compactMap { op in
      guard op.call <= t else { return nil }
      var cut = op
      if let returned = op.returned, returned > t { cut.returned = nil }
      return cut
    }
  }

  /// The value of a key after `op`, or nil (outer) when `op` cannot come next.
  static func apply(_ op: Operation, to state: String?) -> String?? {
    switch op.kind {
    case .get: return op.output == state ? .some(state) : .none
    case .put: return .some(op.value)
    case .append: return .some((state ?? "") + op.value)
    case .delete: return .some(nil)
    }
  }

  /// One key's search over a doubly linked list of call and return events (index 0 is the
  /// head, the last index the tail). Linearizing an operation lifts its events out of the
  /// list; backtracking puts them back in the reverse order, so the stale links of a lifted
  /// node are exactly where it must return.
  private struct Search {
    let ops: [Operation]
    var limits: Limits
    var next: [Int] = []
    var previous: [Int] = []
    /// Per node: the operation, whether it is the call event, and for a call its return node.
    var operation: [Int] = []
    var isCall: [Bool] = []
    var match: [Int] = []

    struct Memo: Hashable {
      var linearized: [UInt64]
      var state: String?
    }

    init(ops: [Operation], limits: Limits) {
      self.ops = ops
      self.limits = limits
      var events: [(time: UInt64, isCall: Bool, op: Int)] = []
      for (i, op) in ops.enumerated() {
        events.append((op.call, true, i))
        if let returned = op.returned { events.append((returned, false, i)) }
      }
      // On equal times calls come first: touching operations count as concurrent.
      events.sort { ($0.time, $0.isCall ? 0 : 1, $0.op) < ($1.time, $1.isCall ? 0 : 1, $1.op) }
      let count = events.count + 2
      next = Array(1...count)
      previous = Array(-1..<(count - 1))
      operation = [-1] + events.map(\.op) + [-1]
      isCall = [false] + events.map(\.isCall) + [false]
      match = Array(repeating: -1, count: count)
      var callNode = [Int](repeating: -1, count: ops.count)
      for (offset, event) in events.enumerated() {
        if event.isCall { callNode[event.op] = offset + 1 } else { match[callNode[event.op]] = offset + 1 }
      }
    }

    private mutating func lift(_ node: Int) {
      next[previous[node]] = next[node]
      previous[next[node]] = previous[node]
      let end = match[node]
      if end >= 0 {
        next[previous[end]] = next[end]
        previous[next[end]] = previous[end]
      }
    }

    private mutating func unlift(_ node: Int) {
      let end = match[node]
      if end >= 0 {
        next[previous[end]] = end
        previous[next[end]] = end
      }
      next[previous[node]] = node
      previous[next[node]] = node
    }

    mutating func run() -> KeyVerdict {
      let tail = next.count - 1
      var finiteLeft = ops.filter { $0.returned != nil }.count
      var linearized = [UInt64](repeating: 0, count: (ops.count + 63) / 64)
      var state: String? = nil
      var stack: [(node: Int, state: String?)] = []
      var failed: Set<Memo> = []
      var steps = 0
      var entry = next[0]
      // Only operations of unknown outcome left: they may simply never have happened.
      while finiteLeft > 0 {
        steps += 1
        if steps > limits.stepsPerKey { return .inconclusive }
        if steps & 0xFFF == 0, let deadline = limits.deadline, ContinuousClock.now >= deadline {
          return .inconclusive
        }
        if entry != tail && isCall[entry] {
          let op = operation[entry]
          if case .some(let after) = LinearizabilityChecker.apply(ops[op], to: state) {
            var attempt = linearized
            attempt[op / 64] |= 1 << UInt64(op % 64)
            if failed.insert(Memo(linearized: attempt, state: after)).inserted {
              stack.append((entry, state))
              linearized = attempt
              state = after
              if ops[op].returned != nil { finiteLeft -= 1 }
              lift(entry)
              entry = next[0]
              continue
            }
          }
          entry = next[entry]
        } else {
          // A return event (or the end): its operation must come before anything later, and
          // nothing explains it from here. Undo the last choice.
          guard let (node, before) = stack.popLast() else { return .violation }
          let op = operation[node]
          linearized[op / 64] &= ~(1 << UInt64(op % 64))
          state = before
          if ops[op].returned != nil { finiteLeft += 1 }
          unlift(node)
          entry = next[node]
        }
      }
      return .linearizable
    }
  }
}
