/// A replica group's identifier. 0 is reserved: a shard owned by group 0 is unassigned.
public typealias GroupID = UInt64

/// One configuration of the cluster: which group owns each shard and who the groups' members
/// are. Configurations are numbered from 0 (no groups, every shard unassigned) and every
/// change creates the next number; the controller keeps them all.
///
/// Invariants kept by the controller: every non-zero owner in `shards` is a key of `groups`,
/// and every group has at least one member.
public struct ShardConfiguration: Hashable, Sendable {
  public var num: UInt64
  /// `shards[i]` is the group owning shard i, or 0.
  public var shards: [GroupID]
  /// Each group's member addresses, in the order they were given.
  public var groups: [GroupID: [String]]

  public init(num: UInt64, shards: [GroupID], groups: [GroupID: [String]]) {
    self.num = num
    self.shards = shards
    self.groups = groups
  }

  /// Configuration 0 of a controller with `shardCount` shards.
  public static func initial(shardCount: Int) -> ShardConfiguration {
    ShardConfiguration(num: 0, shards: Array(repeating: 0, count: shardCount), groups: [:])
  }

  public var shardCount: Int { shards.count }

  /// The shards each group owns, for every group (groups that own none map to []).
  public var shardsByGroup: [GroupID: [Int]] {
    var owned: [GroupID: [Int]] = [:]
    for gid in groups.keys { owned[gid] = [] }
    for (shard, gid) in shards.enumerated() where gid != 0 { owned[gid, default: []].append(shard) }
    return owned
  }

  /// One line of JSON, `{"num":N,"shards":[GID,...],"groups":{"GID":["ADDR",...]}}`, groups in
  /// ascending id order: what `kvctl config --json` prints and scripts parse.
  public var jsonLine: String {
    let shardList = shards.map(String.init).joined(separator: ",")
    let groupList = groups.keys.sorted().map { gid in
      let members = (groups[gid] ?? []).map(Self.jsonString).joined(separator: ",")
      return "\"\(gid)\":[\(members)]"
    }
    return "{\"num\":\(num),\"shards\":[\(shardList)],\"groups\":{\(groupList.joined(separator: ","))}}"
  }

  static func jsonString(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
      switch scalar {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      default:
        if scalar.value < 0x20 {
          let hex = String(scalar.value, radix: 16)
          out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        } else {
          out.unicodeScalars.append(scalar)
        }
      }
    }
    return out + "\""
  }
}
