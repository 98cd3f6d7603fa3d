import Foundation
import ShardCtrler
import Wire

extension ShardTable {
  /// The stored form, written with every change and carried in snapshots.
  var record: Shardkv_Group_ShardTableRecord {
    var record = Shardkv_Group_ShardTableRecord()
    record.group = group
    record.config = config.message
    record.shards = holdings.keys.sorted().compactMap { shard in
      guard let holding = holdings[shard] else { return nil }
      var stored = Shardkv_Group_ShardTableRecord.Shard()
      stored.shard = UInt32(shard)
      stored.configNum = holding.configNum
      stored.nextSequence = holding.nextSequence
      stored.resumeAfter = Data(holding.resumeAfter)
      switch holding.phase {
      case .serving:
        stored.phase = .serving
      case .pulling(let from, let servers):
        stored.phase = .pulling
        stored.peerGroup = from
        stored.peerServers = servers
      case .handingOff(let to, let servers):
        stored.phase = .handingOff
        stored.peerGroup = to
        stored.peerServers = servers
      }
      return stored
    }
    return record
  }

  init(_ record: Shardkv_Group_ShardTableRecord) throws(KVStateError) {
    var holdings: [Int: Holding] = [:]
    for stored in record.shards {
      let phase: Phase
      switch stored.phase {
      case .serving: phase = .serving
      case .pulling: phase = .pulling(from: stored.peerGroup, servers: stored.peerServers)
      case .handingOff: phase = .handingOff(to: stored.peerGroup, servers: stored.peerServers)
      case .absent, .UNRECOGNIZED: throw .corrupt("shard \(stored.shard) has phase \(stored.phase)")
      }
      holdings[Int(stored.shard)] = Holding(
        phase: phase, configNum: stored.configNum, nextSequence: stored.nextSequence,
        resumeAfter: [UInt8](stored.resumeAfter))
    }
    self.init(group: record.group, config: ShardConfiguration(record.config), holdings: holdings)
  }
}

extension ShardTable.Phase {
  /// The wire form, as `shards` reports it.
  var message: Shardkv_ShardPhase {
    switch self {
    case .serving: return .serving
    case .pulling: return .pulling
    case .handingOff: return .handingOff
    }
  }

  /// The group on the other side of a move (0 when serving).
  var peerGroup: GroupID {
    switch self {
    case .serving: return 0
    case .pulling(let from, _): return from
    case .handingOff(let to, _): return to
    }
  }
}

/// The KV group's stored or received state is not what this code wrote.
public enum KVStateError: Error, Hashable, Sendable, CustomStringConvertible {
  case corrupt(String)
  /// The data directory belongs to another group (or to a standalone store, group 0).
  case wrongGroup(stored: GroupID, configured: GroupID)

  public var description: String {
    switch self {
    case .corrupt(let what): return "corrupt KV state: \(what)"
    case .wrongGroup(let stored, let configured):
      let owner = stored == 0 ? "a standalone store" : "group \(stored)"
      let asked = configured == 0 ? "a standalone store (no --group)" : "group \(configured)"
      return "this data directory belongs to \(owner), but the node was started as \(asked)"
    }
  }
}
