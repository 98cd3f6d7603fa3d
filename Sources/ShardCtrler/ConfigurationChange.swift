/// Why a controller operation cannot be applied to the current configuration.
public enum ConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
  case nothingToDo
  case reservedGroup
  case groupExists(GroupID)
  case unknownGroup(GroupID)
  case noMembers(GroupID)
  case shardOutOfRange(Int, shardCount: Int)
  case lastGroups
  case memberOfAnotherGroup(String, GroupID)

  public var description: String {
    switch self {
    case .nothingToDo: return "the request names no group"
    case .reservedGroup: return "group id 0 is reserved (it means unassigned)"
    case .groupExists(let gid): return "group \(gid) has already joined"
    case .unknownGroup(let gid): return "group \(gid) is not in the configuration"
    case .noMembers(let gid): return "group \(gid) needs at least one member"
    case .shardOutOfRange(let shard, let count): return "shard \(shard) is out of range 0..<\(count)"
    case .memberOfAnotherGroup(let address, let gid):
      return "\(address) is already a member of group \(gid)"
    case .lastGroups:
      return "cannot remove every group: their shards would have no owner to hand their data to"
    }
  }
}

/// The controller's operations as pure transitions: each returns the next configuration
/// (`num + 1`), or the same one when nothing would change, or throws without changing anything.
extension ShardConfiguration {
  /// Adds `joining` groups and rebalances. Every group must be new and have members.
  public func joining(_ joining: [GroupID: [String]]) throws(ConfigurationError) -> ShardConfiguration {
    guard !joining.isEmpty else { throw .nothingToDo }
    var owners: [String: GroupID] = [:]
    for (gid, members) in groups { for address in members { owners[address] = gid } }
    for gid in joining.keys.sorted() {
      guard gid != 0 else { throw .reservedGroup }
      guard groups[gid] == nil else { throw .groupExists(gid) }
      guard let members = joining[gid], !members.isEmpty else { throw .noMembers(gid) }
      // An address names one node, and a node serves one group.
      for address in members {
        if let owner = owners[address], owner != gid { throw .memberOfAnotherGroup(address, owner) }
        owners[address] = gid
      }
    }
    var next = self
    next.num += 1
    next.groups.merge(joining) { old, _ in old }
    next.shards = Rebalancer.rebalance(shards, over: next.groups.keys)
    return next
  }

  /// Removes `leaving` groups and gives their shards to the rest. At least one group must
  /// stay: a shard's data moves only to a new owner, so the last owner cannot go.
  public func leaving(_ leaving: [GroupID]) throws(ConfigurationError) -> ShardConfiguration {
    guard !leaving.isEmpty else { throw .nothingToDo }
    for gid in Set(leaving).sorted() where groups[gid] == nil { throw .unknownGroup(gid) }
    guard Set(groups.keys).subtracting(leaving).count > 0 else { throw .lastGroups }
    var next = self
    next.num += 1
    for gid in leaving { next.groups[gid] = nil }
    next.shards = Rebalancer.rebalance(shards, over: next.groups.keys)
    return next
  }

  /// Gives `shard` to `gid`, without rebalancing.
  public func moving(shard: Int, to gid: GroupID) throws(ConfigurationError) -> ShardConfiguration {
    guard shards.indices.contains(shard) else { throw .shardOutOfRange(shard, shardCount: shards.count) }
    guard gid != 0 else { throw .reservedGroup }
    guard groups[gid] != nil else { throw .unknownGroup(gid) }
    guard shards[shard] != gid else { return self }
    var next = self
    next.num += 1
    next.shards[shard] = gid
    return next
  }

  /// Records `gid`'s new member list; no shard moves.
  public func updatingMembers(
    of gid: GroupID, to members: [String]
  ) throws(ConfigurationError)
    -> ShardConfiguration
  {
    guard let current = groups[gid] else { throw gid == 0 ? .reservedGroup : .unknownGroup(gid) }
    guard !members.isEmpty else { throw .noMembers(gid) }
    for (other, list) in groups where other != gid {
      if let address = members.first(where: list.contains) { throw .memberOfAnotherGroup(address, other) }
    }
    guard current != members else { return self }
    var next = self
    next.num += 1
    next.groups[gid] = members
    return next
  }
}
