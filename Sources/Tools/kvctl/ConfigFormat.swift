import ShardCtrler

/// How `kvctl config` prints a configuration: a table for people; `--json` is
/// `ShardConfiguration.jsonLine`, one line for scripts.
enum ConfigFormat {
  static func table(_ config: ShardConfiguration) -> String {
    let owned = config.shardsByGroup
    var rows = [["GROUP", "SHARDS", "RANGES", "MEMBERS"]]
    for gid in config.groups.keys.sorted() {
      let shards = owned[gid] ?? []
      rows.append([
        "\(gid)", "\(shards.count)", ranges(shards), (config.groups[gid] ?? []).joined(separator: ","),
      ])
    }
    let unassigned = config.shards.enumerated().filter { $0.element == 0 }.map(\.offset)
    if !unassigned.isEmpty {
      rows.append(["-", "\(unassigned.count)", ranges(unassigned), "(unassigned)"])
    }
    let widths = (0..<3).map { column in rows.map { $0[column].count }.max() ?? 0 }
    var lines = ["Config \(config.num): \(config.shardCount) shards, \(config.groups.count) groups"]
    for row in rows {
      let padded = (0..<3).map { row[$0].padding(toLength: widths[$0], withPad: " ", startingAt: 0) }
      lines.append((padded + [row[3]]).joined(separator: "  "))
    }
    return lines.joined(separator: "\n")
  }

  /// Sorted shard numbers as compact ranges: `0-3,7,9-10`; `-` when empty.
  static func ranges(_ shards: [Int]) -> String {
    guard var start = shards.first else { return "-" }
    var parts: [String] = []
    var end = start
    for shard in shards.dropFirst() {
      if shard == end + 1 {
        end = shard
        continue
      }
      parts.append(start == end ? "\(start)" : "\(start)-\(end)")
      (start, end) = (shard, shard)
    }
    parts.append(start == end ? "\(start)" : "\(start)-\(end)")
    return parts.joined(separator: ",")
  }
}
