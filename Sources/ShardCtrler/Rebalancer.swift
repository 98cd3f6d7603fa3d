/// One shard changing owner between two configurations.
public struct ShardMove: Hashable, Sendable, CustomStringConvertible {
  public var shard: Int
  /// The owner before; 0 when the shard was unassigned.
  public var from: GroupID
  /// The owner after; 0 when the shard becomes unassigned (the last group left).
  public var to: GroupID

  public init(shard: Int, from: GroupID, to: GroupID) {
    self.shard = shard
    self.from = from
    self.to = to
  }

  public var description: String { "shard \(shard): \(from) -> \(to)" }
}

/// Where shards go when groups join or leave: a pure function, so every controller replica
/// computes the same configuration from the same log.
///
/// Guarantees, for S shards and G groups:
/// - balance: every group ends with ⌊S/G⌋ or ⌈S/G⌉ shards (so with G > S some hold none);
/// - minimal movement: a shard moves only if its owner is gone (or it was unassigned) or its
///   owner holds more than its target; the ⌈S/G⌉ targets go to the groups that already hold
///   the most, so no other assignment moves fewer shards. Shards move only from over-full to
///   under-full groups, and a group never both gains and loses;
/// - determinism: the result depends only on the shard array and the set of groups, never on
///   dictionary or input order (ties break on the smaller group id and shard index).
public enum Rebalancer {
  /// The assignment of `shards` over exactly the groups in `groups` (0 is ignored).
  public static func rebalance(_ shards: [GroupID], over groups: some Sequence<GroupID>) -> [GroupID] {
    let members = Set(groups).subtracting([0]).sorted()
    guard !members.isEmpty else { return Array(repeating: 0, count: shards.count) }

    var owned: [GroupID: [Int]] = Dictionary(uniqueKeysWithValues: members.map { ($0, []) })
    var free: [Int] = []
    for (shard, gid) in shards.enumerated() {
      if owned[gid] != nil {
        owned[gid, default: []].append(shard)
      } else {
        free.append(shard)
      }
    }

    let base = shards.count / members.count
    let extra = shards.count % members.count
    // The ⌈S/G⌉ slots go to the groups holding the most: each such slot then saves one move.
    let byLoad = members.sorted { lhs, rhs in
      let (l, r) = (owned[lhs]?.count ?? 0, owned[rhs]?.count ?? 0)
      return l != r ? l > r : lhs < rhs
    }
    var target: [GroupID: Int] = [:]
    for (rank, gid) in byLoad.enumerated() { target[gid] = base + (rank < extra ? 1 : 0) }

    var result = shards
    for gid in members {
      let list = owned[gid] ?? []
      let keep = target[gid] ?? 0
      if list.count > keep { free.append(contentsOf: list[keep...]) }
    }
    free.sort()
    var next = free.startIndex
    for gid in members {
      let need = (target[gid] ?? 0) - (owned[gid]?.count ?? 0)
      guard need > 0 else { continue }
      for _ in 0..<need {
        result[free[next]] = gid
        next += 1
      }
    }
    // Σ targets = S, so the free shards exactly fill the deficits.
    assert(next == free.endIndex, "rebalance left \(free.endIndex - next) shards unplaced")
    return result
  }

  /// The shards whose owner differs between `old` and `new`, in shard order.
  public static func plan(from old: ShardConfiguration, to new: ShardConfiguration) -> [ShardMove] {
    zip(old.shards, new.shards).enumerated().compactMap { shard, owners in
      owners.0 == owners.1 ? nil : ShardMove(shard: shard, from: owners.0, to: owners.1)
    }
  }
}
