import ShardCtrler

/// One group's view of its shards: the configuration it has reached and what it holds of each
/// shard. A pure value: `KVStateMachine` changes it only by applying log entries and stores it
/// with the data those entries wrote, so every replica of a group holds the same table at the
/// same log index.
///
/// A shard a group holds is in one of three phases (a shard it does not hold is absent):
/// - serving: owned in the current configuration, with all its data;
/// - pulling: gained in the current configuration from another group, whose data is still
///   being installed page by page; it serves only once complete;
/// - handing off: lost in the current configuration; its data stays here, frozen, until the
///   new owner says it has installed it, and is then deleted.
///
/// Invariants:
/// - configurations are taken strictly in order, one at a time, and only when the table is
///   settled (nothing pulling or handing off). So a group that gains a shard in configuration
///   N pulls exactly the data the old owner froze on reaching N, and the old owner cannot move
///   on (and perhaps gain the shard back) before the new owner has installed it.
/// - a page of a pulling shard takes effect only if it is the next one expected, so a page
///   proposed twice (a retry, a new leader) is applied once.
/// - a standalone group (group 0) serves every shard and never reconfigures.
public struct ShardTable: Hashable, Sendable {
  public enum Phase: Hashable, Sendable {
    case serving
    /// Gained from `from`, whose members (API addresses, in the configuration before) serve it.
    case pulling(from: GroupID, servers: [String])
    /// Lost to `to`, whose members (API addresses, in the current configuration) will take it.
    case handingOff(to: GroupID, servers: [String])
  }

  public struct Holding: Hashable, Sendable {
    public var phase: Phase
    /// The configuration in which the shard entered this phase.
    public var configNum: UInt64
    /// Pulling: pages installed so far, and the last user key installed.
    public var nextSequence: UInt64 = 0
    public var resumeAfter: [UInt8] = []

    public init(phase: Phase, configNum: UInt64, nextSequence: UInt64 = 0, resumeAfter: [UInt8] = []) {
      self.phase = phase
      self.configNum = configNum
      self.nextSequence = nextSequence
      self.resumeAfter = resumeAfter
    }
  }

  /// What a client operation on a shard gets.
  public enum Access: Hashable, Sendable {
    case serve
    /// Owned but still being pulled.
    case notReady
    /// Not owned in the current configuration (or being handed off).
    case wrongGroup
  }

  public enum ReconfigureRefusal: Error, Hashable, Sendable, CustomStringConvertible {
    case standalone
    case outOfOrder(current: UInt64, offered: UInt64)
    case unsettled
    case badShardCount(Int)

    public var description: String {
      switch self {
      case .standalone: return "a standalone group does not take configurations"
      case .outOfOrder(let current, let offered):
        return "configuration \(offered) does not follow configuration \(current)"
      case .unsettled: return "shards are still moving in the current configuration"
      case .badShardCount(let count): return "a configuration of \(count) shards (must be 1...65536)"
      }
    }
  }

  /// This group's id; 0 for a standalone group.
  public let group: GroupID
  public private(set) var config: ShardConfiguration
  /// Held shards by index; absent shards have no entry.
  public private(set) var holdings: [Int: Holding]

  /// A standalone group: every one of `shardCount` shards served, no controller.
  public static func standalone(shardCount: Int) -> ShardTable {
    var holdings: [Int: Holding] = [:]
    for shard in 0..<shardCount { holdings[shard] = Holding(phase: .serving, configNum: 0) }
    return ShardTable(
      group: 0,
      config: ShardConfiguration(num: 0, shards: Array(repeating: 0, count: shardCount), groups: [:]),
      holdings: holdings)
  }

  /// Member of sharded group `group` before its first configuration: it holds nothing.
  public static func sharded(group: GroupID) -> ShardTable {
    precondition(group != 0, "group 0 is the standalone group")
    return ShardTable(group: group, config: .initial(shardCount: 0), holdings: [:])
  }

  public init(group: GroupID, config: ShardConfiguration, holdings: [Int: Holding]) {
    self.group = group
    self.config = config
    self.holdings = holdings
  }

  public var isStandalone: Bool { group == 0 }

  /// The shard map of the current configuration (nil before a sharded group's first one).
  public var shardMap: ShardMap? {
    (1...65_536).contains(config.shardCount) ? ShardMap(shardCount: config.shardCount) : nil
  }

  /// Nothing pulling, nothing handing off: the next configuration may be taken.
  public var isSettled: Bool {
    holdings.values.allSatisfy { $0.phase == .serving }
  }

  public func access(shard: Int) -> Access {
    switch holdings[shard]?.phase {
    case .serving: return .serve
    case .pulling: return .notReady
    case .handingOff, nil: return .wrongGroup
    }
  }

  /// Shards in a phase, in shard order.
  public var pulling: [Int] {
    holdings.keys.sorted().filter { if case .pulling = holdings[$0]?.phase { true } else { false } }
  }

  public var handingOff: [Int] {
    holdings.keys.sorted().filter { if case .handingOff = holdings[$0]?.phase { true } else { false } }
  }

  // MARK: - Transitions

  /// Moves to `next`, which must be the configuration after the current one. Returns the
  /// shards whose stored data must be cleared (gained shards start empty: a gained shard's
  /// data arrives only through pages).
  public mutating func reconfigure(
    to next: ShardConfiguration
  ) throws(ReconfigureRefusal) -> [Int] {
    guard !isStandalone else { throw .standalone }
    guard next.num == config.num + 1 else { throw .outOfOrder(current: config.num, offered: next.num) }
    guard isSettled else { throw .unsettled }
    guard (1...65_536).contains(next.shardCount), config.num == 0 || next.shardCount == config.shardCount
    else {
      throw .badShardCount(next.shardCount)
    }
    var cleared: [Int] = []
    for shard in 0..<next.shardCount {
      let before = shard < config.shards.count ? config.shards[shard] : 0
      let after = next.shards[shard]
      if after == group && before != group {
        cleared.append(shard)
        if before == 0 {
          holdings[shard] = Holding(phase: .serving, configNum: next.num)
        } else {
          let servers = config.groups[before] ?? []
          holdings[shard] = Holding(phase: .pulling(from: before, servers: servers), configNum: next.num)
        }
      } else if before == group && after != group {
        let servers = next.groups[after] ?? []
        holdings[shard] = Holding(phase: .handingOff(to: after, servers: servers), configNum: next.num)
      }
    }
    config = next
    return cleared
  }

  /// Takes page `sequence` of `shard` gained in configuration `configNum`; returns whether it
  /// takes effect (false for a page already applied, out of order, or for a shard not pulling
  /// in that configuration). After the last page the shard serves.
  public mutating func install(
    shard: Int, configNum: UInt64, sequence: UInt64, resumeAfter: [UInt8], last: Bool
  ) -> Bool {
    guard var holding = holdings[shard], case .pulling = holding.phase, holding.configNum == configNum,
      holding.nextSequence == sequence
    else { return false }
    holding.nextSequence += 1
    holding.resumeAfter = resumeAfter
    if last { holding.phase = .serving }
    holdings[shard] = holding
    return true
  }

  /// Forgets `shard` handed off in configuration `configNum`; returns whether its data must
  /// now be deleted (false if it is not handing off in that configuration: already deleted).
  public mutating func delete(shard: Int, configNum: UInt64) -> Bool {
    guard let holding = holdings[shard], case .handingOff = holding.phase, holding.configNum == configNum
    else { return false }
    holdings[shard] = nil
    return true
  }

  /// Whether this group has installed `shard`, which it gained in configuration `configNum`:
  /// true once it has moved past that configuration (it cannot while pulling), or serves the
  /// shard in it. The old owner asks this before deleting its frozen copy.
  public func hasInstalled(shard: Int, gainedIn configNum: UInt64) -> Bool {
    if config.num > configNum { return true }
    guard config.num == configNum, let holding = holdings[shard] else { return false }
    return holding.phase == .serving && holding.configNum == configNum
  }
}
