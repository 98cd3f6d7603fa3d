/// Checks a concurrent history of key-value operations for linearizability (Wing & Gong's
/// search with memoization, as Porcupine does), one key at a time: a history is linearizable
/// iff each key's sub-history is (P-compositionality).
///
/// An operation whose outcome is unknown (the client gave up) has no return time: it may take
/// effect at any point after its call, or never.
struct LinearizabilityChecker {
  enum Kind: Hashable, Sendable { case get, put, append, delete }

  struct Operation: Hashable, Sendable {
    var client: Int
    var kind: Kind
    var key: String
    /// Put/Append input.
    var value: String
    /// Get output (nil: the key was missing). Ignored for writes.
    var output: String?
    var call: UInt64
    /// nil when the outcome is unknown.
    var returned: UInt64?
  }

  enum Verdict: Hashable, Sendable {
    case linearizable
    case violation(key: String)
    /// The search for `key` took more than its budget of steps: no answer either way (a
    /// history with long stretches of concurrent writes and no reads can need exponential
    /// time; give it more reads).
    case inconclusive(key: String)
  }

  /// The first key whose history is not linearizable, if any (searching without limit).
  static func firstViolation(in history: [Operation]) -> String? {
    switch check(history, stepsPerKey: .max) {
    case .linearizable: return nil
    case .violation(let key), .inconclusive(let key): return key
    }
  }

  /// Checks every key's history, giving each search at most `stepsPerKey` steps.
  static func check(_ history: [Operation], stepsPerKey: Int) -> Verdict {
    let byKey = Dictionary(grouping: history, by: \.key)
    for key in byKey.keys.sorted() {
      // A get that never returned says nothing.
      let ops = byKey[key, default: []].filter { $0.kind != .get || $0.returned != nil }
      var search = Search(ops: ops, budget: stepsPerKey)
      switch search.run() {
      case .some(true): continue
      case .some(false): return .violation(key: key)
      case .none: return .inconclusive(key: key)
      }
    }
    return .linearizable
  }

  private struct Search {
    let ops: [Operation]
    var failed: Set<Memo> = []
    var budget: Int
    struct OutOfBudget: Error {}

    struct Memo: Hashable {
      var remaining: [UInt64]
      var state: String?
    }

    init(ops: [Operation], budget: Int) {
      self.ops = ops.sorted { $0.call < $1.call }
      self.budget = budget
    }

    /// nil when the budget ran out.
    mutating func run() -> Bool? {
      var remaining = [UInt64](repeating: 0, count: (ops.count + 63) / 64)
      for i in ops.indices { remaining[i / 64] |= 1 << UInt64(i % 64) }
      return try? search(remaining, state: nil)
    }

    private static func apply(_ op: Operation, to state: String?) -> String?? {
      switch op.kind {
      case .get: return op.output == state ? .some(state) : .none
      case .put: return .some(op.value)
      case .append: return .some((state ?? "") + op.value)
      case .delete: return .some(nil)
      }
    }

    private mutating func search(_ remaining: [UInt64], state: String?) throws(OutOfBudget) -> Bool {
      budget -= 1
      guard budget >= 0 else { throw OutOfBudget() }
      let members = ops.indices.filter { remaining[$0 / 64] & (1 << UInt64($0 % 64)) != 0 }
      let finite = members.compactMap { ops[$0].returned }
      // Only operations of unknown outcome left: they may simply never have happened.
      guard let earliestReturn = finite.min() else { return true }
      for i in members where ops[i].call <= earliestReturn {
        guard case .some(let next) = Self.apply(ops[i], to: state) else { continue }
        var rest = remaining
        rest[i / 64] &= ~(1 << UInt64(i % 64))
        let memo = Memo(remaining: rest, state: next)
        if failed.contains(memo) { continue }
        if try search(rest, state: next) { return true }
        failed.insert(memo)
      }
      return false
    }
  }
}
