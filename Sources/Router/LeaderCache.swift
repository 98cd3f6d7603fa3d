import ShardCtrler
import Synchronization

/// Which member of each group a router sends to first, and which members failed last.
///
/// A router learns the leader from replies: every member names itself in `served_by` when it
/// answers (a follower passes on its leader's answer, leader's name included), and a follower
/// that cannot pass a request on names its leader's API address in its wrong-leader answer
/// (`leader_api`), so after one request through a follower the next goes straight to the
/// leader. A failed call moves the group on to its next member. Group 0 stands for the
/// controller.
public final class LeaderCache: Sendable {
  private struct Entry {
    var preferred: String?
    var unreachable: Set<String> = []
  }
  private let entries = Mutex<[GroupID: Entry]>([:])

  public init() {}

  /// The members of `group` in the order to try them: the preferred one first, then the rest
  /// in their given order, members that failed last at the end.
  public func order(_ group: GroupID, _ members: [String]) -> [String] {
    let entry = entries.withLock { $0[group] } ?? Entry()
    var first: [String] = []
    var healthy: [String] = []
    var failed: [String] = []
    for member in members {
      if member == entry.preferred {
        first.append(member)
      } else if entry.unreachable.contains(member) {
        failed.append(member)
      } else {
        healthy.append(member)
      }
    }
    return first + healthy + failed
  }

  /// `member` answered for `group` (or is named as the one that did).
  public func remember(_ group: GroupID, leader member: String) {
    guard !member.isEmpty else { return }
    entries.withLock { entries in
      entries[group, default: Entry()].preferred = member
      entries[group]?.unreachable.remove(member)
    }
  }

  /// A call to `member` failed or it is not the leader: prefer it no more.
  public func demote(_ group: GroupID, _ member: String, unreachable: Bool) {
    entries.withLock { entries in
      if entries[group]?.preferred == member { entries[group]?.preferred = nil }
      if unreachable { entries[group, default: Entry()].unreachable.insert(member) }
    }
  }

  public func preferred(_ group: GroupID) -> String? { entries.withLock { $0[group]?.preferred } }

  public func unreachable(_ group: GroupID) -> Set<String> {
    entries.withLock { $0[group]?.unreachable ?? [] }
  }
}
