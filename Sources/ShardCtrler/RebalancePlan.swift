/// What `kvctl rebalance` balances: the number of shards per group, or the bytes they store.
public enum RebalanceMode: String, Hashable, Sendable, CaseIterable {
  case count
  case size
}

/// A shard's stored keys and bytes (keys plus values), as its owner reports them.
public struct ShardSize: Hashable, Sendable {
  public var keys: UInt64
  public var bytes: UInt64

  public init(keys: UInt64 = 0, bytes: UInt64 = 0) {
    self.keys = keys
    self.bytes = bytes
  }
}

/// One group's share of the cluster: how many shards it owns and what they store.
public struct GroupBalance: Hashable, Sendable {
  public var group: GroupID
  public var shards: Int
  public var keys: UInt64
  public var bytes: UInt64

  public init(group: GroupID, shards: Int = 0, keys: UInt64 = 0, bytes: UInt64 = 0) {
    self.group = group
    self.shards = shards
    self.keys = keys
    self.bytes = bytes
  }
}

/// Why no rebalance plan can be made for the input.
public enum RebalancePlanError: Error, Hashable, Sendable, CustomStringConvertible {
  case noGroups
  case sizeCountMismatch(sizes: Int, shards: Int)
  case unassignedShard(Int)
  case unknownOwner(shard: Int, group: GroupID)
  case invalidThreshold(Double)

  public var description: String {
    switch self {
    case .noGroups: return "the configuration has no groups: there is nothing to balance"
    case .sizeCountMismatch(let sizes, let shards):
      return "got sizes for \(sizes) shards, but the configuration has \(shards)"
    case .unassignedShard(let shard):
      return "shard \(shard) has no owner in the configuration; join a group first"
    case .unknownOwner(let shard, let gid):
      return "shard \(shard) is owned by group \(gid), which is not in the configuration"
    case .invalidThreshold(let value):
      return "the threshold must be a percentage from 0 to 100, not \(value)"
    }
  }
}

/// A plan that balances the groups of a configuration: the shard moves to make, in order, and
/// each group's balance before and after. Pure (no I/O) and deterministic: the result depends
/// only on the shard array, the set of groups, the sizes, the mode and the threshold; ties
/// break on the smaller shard index, then the smaller group id.
///
/// - `count`: every group ends with ⌊S/G⌋ or ⌈S/G⌉ shards and the fewest shards move (this is
///   `Rebalancer.rebalance`). Nothing to do when the groups' shard counts already differ by at
///   most one.
/// - `size`: balances the bytes the groups store. Greedy local search: while some group's bytes
///   are more than `threshold` percent away from the mean, make the single move (largest to
///   smallest group, or any other) that most reduces the spread (largest minus smallest group),
///   then the sum of squared loads; when no single move helps, the best swap of two shards. Every
///   step lowers (spread, sum of squares), so the spread never grows and the search ends. When
///   it ends outside the threshold on a small cluster (G^S ≤ `exhaustiveLimit` assignments), an
///   exhaustive search takes over: the assignment within the threshold with the fewest moves,
///   else the one with the smallest spread (then the fewest moves), so small clusters get the
///   optimum a greedy search can miss. Nothing to do when every group is within the threshold
///   (also when nothing is stored). Each shard moves at most once, straight to its final owner;
///   the largest shards move first.
public struct RebalancePlan: Hashable, Sendable {
  /// `--threshold` for `size` when none is given: 5 percent of the mean.
  public static let defaultThreshold = 5.0
  /// The largest number of assignments (G^S) searched exhaustively by `size`.
  public static let exhaustiveLimit = 65_536

  public var mode: RebalanceMode
  /// Percent of the mean a group's bytes may differ from it (`size`).
  public var threshold: Double
  public var moves: [ShardMove]
  /// Every group of the configuration, in ascending id order.
  public var before: [GroupBalance]
  public var after: [GroupBalance]
  /// The owner of each shard once every move is made.
  public var result: [GroupID]
  /// The sizes the plan was made with, one per shard.
  public var sizes: [ShardSize]

  /// Whether the configuration was already balanced: by count, within one shard; by size,
  /// within the threshold. A plan can be empty without it (by size, when no move or swap of
  /// whole shards brings the groups closer).
  public var wasBalanced: Bool

  /// Nothing to do.
  public var isEmpty: Bool { moves.isEmpty }

  /// The bytes all the moves carry.
  public var movedBytes: UInt64 { moves.reduce(0) { $0 + sizes[$1.shard].bytes } }

  /// Plans the moves that balance `configuration`'s groups. `sizes` has one entry per shard
  /// (only `size` reads it for the plan; both modes report it).
  public init(
    configuration: ShardConfiguration, sizes: [ShardSize], mode: RebalanceMode,
    threshold: Double = RebalancePlan.defaultThreshold
  ) throws(RebalancePlanError) {
    guard threshold.isFinite, (0...100).contains(threshold) else { throw .invalidThreshold(threshold) }
    guard sizes.count == configuration.shardCount else {
      throw .sizeCountMismatch(sizes: sizes.count, shards: configuration.shardCount)
    }
    let groups = configuration.groups.keys.sorted()
    guard !groups.isEmpty else { throw .noGroups }
    for (shard, gid) in configuration.shards.enumerated() {
      guard gid != 0 else { throw .unassignedShard(shard) }
      guard configuration.groups[gid] != nil else { throw .unknownOwner(shard: shard, group: gid) }
    }
    let old = configuration.shards
    let new: [GroupID]
    switch mode {
    case .count:
      wasBalanced = Self.isBalancedByCount(old, groups: groups)
      new = wasBalanced ? old : Rebalancer.rebalance(old, over: groups)
    case .size:
      let loads = Self.balance(old, groups: groups, sizes: sizes).map(\.bytes)
      wasBalanced = Self.isWithinThreshold(loads, threshold: threshold)
      new =
        wasBalanced
        ? old : Self.balanceBySize(old, groups: groups, bytes: sizes.map(\.bytes), threshold: threshold)
    }
    var moves = zip(old, new).enumerated().compactMap { shard, owners in
      owners.0 == owners.1 ? nil : ShardMove(shard: shard, from: owners.0, to: owners.1)
    }
    if mode == .size {
      moves.sort { lhs, rhs in
        let (l, r) = (sizes[lhs.shard].bytes, sizes[rhs.shard].bytes)
        return l != r ? l > r : lhs.shard < rhs.shard
      }
    }
    self.mode = mode
    self.threshold = threshold
    self.moves = moves
    self.sizes = sizes
    self.result = new
    self.before = Self.balance(old, groups: groups, sizes: sizes)
    self.after = Self.balance(new, groups: groups, sizes: sizes)
  }

  // MARK: - Measures (public for the tests and the CLI)

  /// Each group's shards, keys and bytes under `shards`, for `groups` in ascending id order.
  public static func balance(_ shards: [GroupID], groups: [GroupID], sizes: [ShardSize]) -> [GroupBalance] {
    let sorted = Set(groups).sorted()
    var index: [GroupID: Int] = [:]
    for (i, gid) in sorted.enumerated() { index[gid] = i }
    var result = sorted.map { GroupBalance(group: $0) }
    for (shard, gid) in shards.enumerated() {
      guard let i = index[gid] else { continue }
      result[i].shards += 1
      if sizes.indices.contains(shard) {
        result[i].keys += sizes[shard].keys
        result[i].bytes += sizes[shard].bytes
      }
    }
    return result
  }

  /// Whether the groups' shard counts differ by at most one (every group ⌊S/G⌋ or ⌈S/G⌉).
  public static func isBalancedByCount(_ shards: [GroupID], groups: [GroupID]) -> Bool {
    let counts = balance(shards, groups: groups, sizes: []).map(\.shards)
    guard let most = counts.max(), let least = counts.min() else { return true }
    return most - least <= 1 && counts.reduce(0, +) == shards.count
  }

  /// Whether every load is within `threshold` percent of the loads' mean (true when they sum
  /// to zero).
  public static func isWithinThreshold(_ loads: [UInt64], threshold: Double) -> Bool {
    guard !loads.isEmpty else { return true }
    let total = loads.reduce(0.0) { $0 + Double($1) }
    guard total > 0 else { return true }
    let count = Double(loads.count)
    let allowed = threshold / 100 * total
    return loads.allSatisfy { abs(Double($0) * count - total) <= allowed }
  }

  /// The largest load minus the smallest.
  public static func spread(_ loads: [UInt64]) -> UInt64 {
    guard let most = loads.max(), let least = loads.min() else { return 0 }
    return most - least
  }

  // MARK: - Balancing by size

  /// (spread, sum of squares): what every step of the local search lowers.
  private struct Potential: Comparable {
    var spread: UInt64
    var squares: Double

    init(_ loads: [UInt64]) {
      spread = RebalancePlan.spread(loads)
      squares = loads.reduce(0.0) { $0 + Double($1) * Double($1) }
    }

    static func < (lhs: Potential, rhs: Potential) -> Bool {
      lhs.spread != rhs.spread ? lhs.spread < rhs.spread : lhs.squares < rhs.squares
    }
  }

  static func balanceBySize(
    _ shards: [GroupID], groups: [GroupID], bytes: [UInt64], threshold: Double
  ) -> [GroupID] {
    // Groups by position in ascending id order; owner[s] is a position.
    var position: [GroupID: Int] = [:]
    for (i, gid) in groups.enumerated() { position[gid] = i }
    let start = shards.map { position[$0] ?? 0 }
    var owner = start
    var loads = [UInt64](repeating: 0, count: groups.count)
    for (shard, at) in owner.enumerated() { loads[at] += bytes[shard] }
    guard !isWithinThreshold(loads, threshold: threshold) else { return shards }

    // Each step strictly lowers the potential, so no assignment repeats and the loop ends; the
    // cap only bounds the time on very large inputs.
    let stepLimit = 8 * max(shards.count, 1) + 16
    for _ in 0..<stepLimit {
      if isWithinThreshold(loads, threshold: threshold) { break }
      guard let step = bestStep(owner: owner, loads: loads, bytes: bytes) else { break }
      for (shard, to) in step {
        loads[owner[shard]] -= bytes[shard]
        loads[to] += bytes[shard]
        owner[shard] = to
      }
    }

    if !isWithinThreshold(loads, threshold: threshold),
      let best = exhaustive(start: start, groupCount: groups.count, bytes: bytes, threshold: threshold)
    {
      owner = best
    }
    return owner.map { groups[$0] }
  }

  /// The single move, else the swap, that lowers the potential most (ties: the smaller shard
  /// index, then the smaller group position), as (shard, new owner position) pairs; nil when
  /// none lowers it.
  private static func bestStep(owner: [Int], loads: [UInt64], bytes: [UInt64]) -> [(Int, Int)]? {
    let current = Potential(loads)
    var best: (Potential, [(Int, Int)])?
    var trial = loads
    for shard in owner.indices where bytes[shard] > 0 {
      let from = owner[shard]
      for to in loads.indices where to != from {
        trial[from] = loads[from] - bytes[shard]
        trial[to] = loads[to] + bytes[shard]
        let value = Potential(trial)
        if value < current, best.map({ value < $0.0 }) ?? true { best = (value, [(shard, to)]) }
        trial[from] = loads[from]
        trial[to] = loads[to]
      }
    }
    if best != nil { return best?.1 }
    for first in owner.indices {
      for second in (first + 1)..<owner.count {
        let (a, b) = (owner[first], owner[second])
        guard a != b, bytes[first] != bytes[second] else { continue }
        trial[a] = loads[a] - bytes[first] + bytes[second]
        trial[b] = loads[b] - bytes[second] + bytes[first]
        let value = Potential(trial)
        if value < current, best.map({ value < $0.0 }) ?? true { best = (value, [(first, b), (second, a)]) }
        trial[a] = loads[a]
        trial[b] = loads[b]
      }
    }
    return best?.1
  }

  /// Every assignment of the shards to `groupCount` groups when there are at most
  /// `exhaustiveLimit` of them: the one within the threshold that moves the fewest shards (then
  /// the fewest bytes), else the one with the smallest spread (then the fewest moves and bytes);
  /// the first in enumeration order wins a tie. Nil when there are too many assignments.
  private static func exhaustive(start: [Int], groupCount: Int, bytes: [UInt64], threshold: Double) -> [Int]?
  {
    var assignments = 1
    for _ in start {
      let (product, overflow) = assignments.multipliedReportingOverflow(by: groupCount)
      guard !overflow, product <= exhaustiveLimit else { return nil }
      assignments = product
    }
    // (outside the threshold, spread if outside, moves, moved bytes): smaller is better.
    typealias Key = (outside: Int, spread: UInt64, moves: Int, moved: UInt64)
    func better(_ lhs: Key, _ rhs: Key) -> Bool {
      if lhs.outside != rhs.outside { return lhs.outside < rhs.outside }
      if lhs.spread != rhs.spread { return lhs.spread < rhs.spread }
      if lhs.moves != rhs.moves { return lhs.moves < rhs.moves }
      return lhs.moved < rhs.moved
    }
    var best: (Key, [Int])?
    // The first assignment (every shard in group position 0), then the loads, move count and
    // moved bytes kept up to date shard by shard as the counter advances.
    var owner = [Int](repeating: 0, count: start.count)
    var loads = [UInt64](repeating: 0, count: groupCount)
    var moves = 0
    var moved: UInt64 = 0
    for shard in owner.indices {
      loads[0] += bytes[shard]
      if start[shard] != 0 {
        moves += 1
        moved += bytes[shard]
      }
    }
    func reassign(_ shard: Int, to at: Int) {
      let was = owner[shard]
      loads[was] -= bytes[shard]
      loads[at] += bytes[shard]
      if was == start[shard] {
        moves += 1
        moved += bytes[shard]
      } else if at == start[shard] {
        moves -= 1
        moved -= bytes[shard]
      }
      owner[shard] = at
    }
    for _ in 0..<assignments {
      let within = isWithinThreshold(loads, threshold: threshold)
      let key: Key = (within ? 0 : 1, within ? 0 : spread(loads), moves, moved)
      if best.map({ better(key, $0.0) }) ?? true { best = (key, owner) }
      // The next assignment: count in base `groupCount`, shard 0 the lowest digit.
      for shard in owner.indices {
        if owner[shard] + 1 < groupCount {
          reassign(shard, to: owner[shard] + 1)
          break
        }
        reassign(shard, to: 0)
      }
    }
    return best?.1
  }
}
