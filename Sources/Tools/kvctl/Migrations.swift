import Foundation
import ShardCtrler
import ShardKV
import Wire

/// `kvctl migrations` and the drain that `group leave` waits for: what the groups say they are
/// moving, asked of each group's members (`kv.shards`).
enum Migrations {
  /// One shard in motion, as its groups report it.
  struct Move: Sendable {
    var shard: UInt32
    var from: GroupID
    var to: GroupID
    /// "pulling" (the new owner is installing pages) or "handing off" (installed, or waiting
    /// to be; the old owner keeps its copy until the new owner confirms).
    var state: String
    var keys: UInt64
    var bytes: UInt64

    var line: String {
      let size = "\(keys) keys, \(RebalanceFormat.megabytes(bytes)) MB"
      return "shard \(shard): \(from) -> \(to) \(state) (\(size) \(state == "pulling" ? "so far" : "held"))"
    }
  }

  /// Every move in flight among the groups of the latest configuration and of the one before
  /// (a group that just left still hands off). Groups that do not answer are named in `silent`.
  static func inFlight(
    through clerk: ControllerClerk, transport: TCPTransport, timeout: Duration
  ) async throws -> (configuration: ShardConfiguration, moves: [Move], silent: [GroupID]) {
    let latest = try await clerk.query()
    var groups = latest.groups
    if latest.num > 0 {
      for (gid, members) in try await clerk.query(Int64(latest.num) - 1).groups where groups[gid] == nil {
        groups[gid] = members
      }
    }
    var moves: [Move] = []
    var silent: [GroupID] = []
    for gid in groups.keys.sorted() {
      guard
        let report = try? await groupShardsReport(
          gid, members: groups[gid] ?? [], transport: transport, timeout: timeout)
      else {
        silent.append(gid)
        continue
      }
      for info in report.reply.shards {
        switch info.phase {
        case .pulling:
          moves.append(
            Move(
              shard: info.shard, from: info.peerGroup, to: gid, state: "pulling", keys: info.keys,
              bytes: info.bytes))
        case .handingOff:
          moves.append(
            Move(
              shard: info.shard, from: gid, to: info.peerGroup, state: "handing off", keys: info.keys,
              bytes: info.bytes))
        default:
          break
        }
      }
    }
    moves.sort { ($0.shard, $0.state) < ($1.shard, $1.state) }
    return (latest, moves, silent)
  }

  /// `kvctl migrations`: one line per shard in motion, or "No shard is moving".
  static func list(
    through clerk: ControllerClerk, transport: TCPTransport, timeout: Duration
  ) async throws -> Outcome {
    let (configuration, moves, silent) = try await inFlight(
      through: clerk, transport: transport, timeout: timeout)
    print("Config:\t\(configuration.num)")
    if moves.isEmpty { print("No shard is moving") }
    for move in moves { print(move.line) }
    for gid in silent { FileHandle.standardError.write(Data("kvctl: group \(gid) did not answer\n".utf8)) }
    let documented: [JSON] = moves.map { move in
      .object([
        ("shard", .unsigned(UInt64(move.shard))), ("from", .unsigned(move.from)), ("to", .unsigned(move.to)),
        ("state", .string(move.state == "pulling" ? "pulling" : "handing_off")),
        ("keys", .unsigned(move.keys)),
        ("bytes", .unsigned(move.bytes)),
      ])
    }
    return Outcome(
      document: .object([
        ("config", .unsigned(configuration.num)), ("moves", .array(documented)),
        ("silent_groups", .array(silent.map { .unsigned($0) })),
      ]))
  }

  /// After `group leave GID`: waits until no member of `gid` holds a shard, showing progress
  /// on stderr (stdout keeps the bare `OK`). Returns false when the group does not answer, in
  /// which case nothing can be shown (the move still completes once it is back).
  static func drain(
    _ gid: GroupID, members: [String], transport: TCPTransport, timeout: Duration
  ) async -> Bool {
    let terminal = isatty(STDERR_FILENO) == 1
    var total: Int?
    var lastShown = -1
    let started = ContinuousClock.now
    // Give up waiting (not the move) when nothing changes for this long.
    let patience = max(timeout * 6, .seconds(60))
    var lastChange = started
    while true {
      if ContinuousClock.now - lastChange > patience {
        if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
        FileHandle.standardError.write(
          Data(
            "kvctl: group \(gid) is still draining; no progress for \(patience); see kvctl migrations\n".utf8)
        )
        return false
      }
      guard
        let report = try? await groupShardsReport(
          gid, members: members, transport: transport, timeout: timeout)
      else {
        FileHandle.standardError.write(
          Data(
            "kvctl: group \(gid) does not answer; its shards move once it is back (see kvctl migrations)\n"
              .utf8))
        return false
      }
      let left = report.reply.shards.count
      total = max(total ?? left, left)
      if left != lastShown {
        lastChange = .now
        let done = (total ?? 0) - left
        let line = "draining group \(gid): \(done)/\(total ?? 0) shards handed off, \(left) left"
        FileHandle.standardError.write(Data((terminal ? "\r\(line)" : line + "\n").utf8))
        lastShown = left
      }
      if left == 0 {
        if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
        let seconds =
          Double((ContinuousClock.now - started).components.attoseconds) / 1e18
          + Double((ContinuousClock.now - started).components.seconds)
        FileHandle.standardError.write(
          Data("group \(gid) holds nothing (\(String(format: "%.1f", seconds)) s)\n".utf8))
        return true
      }
      try? await Task.sleep(for: .milliseconds(250))
    }
  }
}
