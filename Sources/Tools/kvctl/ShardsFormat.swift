import Foundation
import ShardCtrler
import Wire

/// How `kvctl shards` prints a member's shards: a table for people, one JSON line for scripts
/// (`{"group":G,"config":N,"shards":[{"shard":S,"state":"serving","keys":K,"bytes":B},...]}`).
enum ShardsFormat {
  static func stateName(_ phase: Shardkv_ShardPhase) -> String {
    switch phase {
    case .serving: return "serving"
    case .pulling: return "pulling"
    case .handingOff: return "handing_off"
    case .absent, .UNRECOGNIZED: return "absent"
    }
  }

  static func table(_ reply: Shardkv_ShardsReply) -> String {
    var lines = [
      "Group:\t\(reply.group)",
      "Config:\t\(reply.configNum)",
      "Applied:\t\(reply.appliedIndex)",
      "SHARD\tSTATE\tKEYS\tBYTES\tPEER-GROUP",
    ]
    for info in reply.shards {
      let peer: String
      switch info.phase {
      case .pulling: peer = "from \(info.peerGroup)"
      case .handingOff: peer = "to \(info.peerGroup)"
      default: peer = "-"
      }
      lines.append("\(info.shard)\t\(stateName(info.phase))\t\(info.keys)\t\(info.bytes)\t\(peer)")
    }
    return lines.joined(separator: "\n")
  }

  static func json(_ reply: Shardkv_ShardsReply) -> String {
    let shards = reply.shards.map { info in
      var fields = [
        "\"shard\":\(info.shard)", "\"state\":\"\(stateName(info.phase))\"", "\"keys\":\(info.keys)",
        "\"bytes\":\(info.bytes)",
      ]
      if info.peerGroup != 0 { fields.append("\"peer_group\":\(info.peerGroup)") }
      return "{" + fields.joined(separator: ",") + "}"
    }
    return "{\"group\":\(reply.group),\"config\":\(reply.configNum),\"applied\":\(reply.appliedIndex),"
      + "\"shards\":[\(shards.joined(separator: ","))]}"
  }
}
