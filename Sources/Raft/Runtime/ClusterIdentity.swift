import Logging

/// The cluster id of a Raft group: fixed when the group is bootstrapped, persisted beside the
/// log, and carried on every batch of messages and every snapshot chunk, so that a node drops
/// traffic meant for another group (a stale address, a second cluster on the same hosts).
///
/// Rules (docs/ARCHITECTURE.md, "Hostile input and limits"):
/// - A group bootstrapped from a voter list derives its id from that list (FNV-1a of the
///   sorted names): every member of a static group computes the same id without talking.
/// - A node without an id (`unknown`: a standby, or a data directory from before cluster ids)
///   accepts any id and adopts the first non-zero id carried by a message its core accepts
///   (one from a member, or for a standby from the leader that adds it).
/// - A node with an id drops every message and chunk carrying another id, including 0.
public struct ClusterIdentity: Hashable, Sendable {
  public static let unknown: UInt64 = 0

  public private(set) var id: UInt64

  public init(id: UInt64) { self.id = id }

  /// The id of a group bootstrapped with `voters`; never `unknown`.
  public static func derived(fromVoters voters: [NodeID]) -> UInt64 {
    let id = voters.map(\.rawValue).sorted().joined(separator: ",").hashValueStable
    return id == unknown ? 1 : id
  }

  /// Whether a message carrying `incoming` may be stepped at all.
  public func admits(_ incoming: UInt64) -> Bool {
    id == Self.unknown || incoming == id
  }

  /// After the core accepted a message carrying `incoming`: the id to adopt and persist, if
  /// this node had none.
  public func adoption(of incoming: UInt64) -> UInt64? {
    id == Self.unknown && incoming != Self.unknown ? incoming : nil
  }

  public mutating func adopt(_ incoming: UInt64) { id = incoming }
}

/// Logs dropped peer input at most once per `interval` per reason, with the count dropped
/// meanwhile, so that a flood of forged messages costs a few log lines, not one per message.
struct DropLog {
  private let logger: Logger
  private let interval: Duration
  private var last: [String: ContinuousClock.Instant] = [:]
  private var suppressed: [String: Int] = [:]

  init(logger: Logger, interval: Duration = .seconds(10)) {
    self.logger = logger
    self.interval = interval
  }

  /// `kind` groups the messages that share one rate (e.g. "cluster id", "not member").
  mutating func note(_ kind: String, _ detail: @autoclosure () -> String) {
    let now = ContinuousClock.now
    if let previous = last[kind], now - previous < interval {
      suppressed[kind, default: 0] += 1
      return
    }
    if last.count > 64 { last.removeAll() }  // Kinds are a fixed set; a bound all the same.
    last[kind] = now
    let skipped = suppressed.removeValue(forKey: kind) ?? 0
    logger.warning(
      "dropped peer input: \(detail())",
      metadata: ["reason": "\(kind)", "suppressed": "\(skipped)"])
  }
}
