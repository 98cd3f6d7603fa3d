/// The core's copy of the log since the last compaction point.
///
/// Invariants: `entries[i].index == compactedIndex + 1 + i`; terms never decrease along the
/// log; `applied <= applying <= committed <= lastIndex`; `compactedIndex <= applied`.
/// Entries up to `stableIndex` are known to be on disk.
struct RaftLog: Sendable {
  /// The last index folded into the state machine's snapshot (0 for a new log).
  private(set) var compactedIndex: UInt64
  private(set) var compactedTerm: UInt64
  /// The membership in force at `compactedIndex`.
  private(set) var compactedMembership: Membership
  private(set) var entries: [Entry]
  /// The indices of the membership entries in `entries`, ascending. Kept beside the log so
  /// that finding the membership in force costs the (few) membership changes, not a scan
  /// of the whole log on every append.
  private var membershipIndices: [UInt64]
  var stableIndex: UInt64
  var committed: UInt64
  /// Acknowledged as applied by the owner.
  var applied: UInt64
  /// Handed to the owner in a Ready, maybe not yet applied.
  var applying: UInt64

  init(snapshot: SnapshotMetadata, entries: [Entry], committed: UInt64, applied: UInt64) {
    compactedIndex = snapshot.index
    compactedTerm = snapshot.term
    compactedMembership = snapshot.membership
    self.entries = entries.filter { $0.index > snapshot.index }
    membershipIndices = self.entries.filter(\.isMembershipChange).map(\.index)
    stableIndex = snapshot.index + UInt64(self.entries.count)
    let last = snapshot.index + UInt64(self.entries.count)
    // The commit index is written without a sync (`Ready.mustSync`), so the stored one may
    // lag: every applied entry was committed, hence the maximum.
    self.committed = min(max(committed, applied, snapshot.index), last)
    self.applied = min(max(applied, snapshot.index), self.committed)
    applying = self.applied
  }

  var firstIndex: UInt64 { compactedIndex + 1 }
  var lastIndex: UInt64 { compactedIndex + UInt64(entries.count) }
  var lastTerm: UInt64 { entries.last?.term ?? compactedTerm }

  /// The term of the entry at `index`; nil when it is compacted away or past the end.
  func term(at index: UInt64) -> UInt64? {
    if index == compactedIndex { return compactedTerm }
    guard index > compactedIndex, index <= lastIndex else { return nil }
    return entries[Int(index - compactedIndex - 1)].term
  }

  func matches(index: UInt64, term: UInt64) -> Bool { self.term(at: index) == term }

  func entry(at index: UInt64) -> Entry? {
    guard index > compactedIndex, index <= lastIndex else { return nil }
    return entries[Int(index - compactedIndex - 1)]
  }

  /// Entries `from...to`, stopping early once `maxBytes` would be exceeded (always at least one).
  func slice(from: UInt64, through to: UInt64, maxBytes: Int = .max) -> [Entry] {
    guard from <= to, from > compactedIndex else { return [] }
    let upper = min(to, lastIndex)
    guard from <= upper else { return [] }
    var out: [Entry] = []
    var bytes = 0
    for index in from...upper {
      let entry = entries[Int(index - compactedIndex - 1)]
      bytes += entry.approximateSize
      if !out.isEmpty && bytes > maxBytes { break }
      out.append(entry)
    }
    return out
  }

  /// Raft's election restriction: is a log ending at (`index`, `term`) at least as up to date?
  func isUpToDate(lastIndex index: UInt64, lastTerm term: UInt64) -> Bool {
    term > lastTerm || (term == lastTerm && index >= lastIndex)
  }

  /// Appends entries that follow a matching prefix, dropping any conflicting suffix.
  /// Returns the index of the first entry actually written, if any.
  ///
  /// The entry before `newEntries[0]` must match and no committed entry may conflict (the Log
  /// Matching and Leader Completeness properties guarantee both for an honest leader). Input
  /// that breaks either — a gap, or a rewrite of the committed prefix — is refused whole and
  /// leaves the log unchanged: it can only come from a faulty or hostile peer.
  @discardableResult
  mutating func append(_ newEntries: [Entry]) throws(RaftInputError) -> UInt64? {
    guard !newEntries.isEmpty else { return nil }
    var start = 0
    while start < newEntries.count {
      let entry = newEntries[start]
      if entry.index <= compactedIndex
        || (entry.index <= lastIndex && term(at: entry.index) == entry.term)
      {
        start += 1
        continue
      }
      break
    }
    guard start < newEntries.count else { return nil }
    let from = newEntries[start].index
    guard from > committed else { throw .conflictsWithCommitted(index: from) }
    guard from <= lastIndex + 1 else { throw .entriesNotContiguous(expected: lastIndex + 1, found: from) }
    for (offset, entry) in newEntries[start...].enumerated() where entry.index != from + UInt64(offset) {
      throw .entriesNotContiguous(expected: from + UInt64(offset), found: entry.index)
    }
    entries.removeLast(Int(lastIndex + 1 - from))
    entries.append(contentsOf: newEntries[start...])
    membershipIndices.removeAll { $0 >= from }
    membershipIndices.append(contentsOf: newEntries[start...].filter(\.isMembershipChange).map(\.index))
    stableIndex = min(stableIndex, from - 1)
    return from
  }

  /// Entries not yet acknowledged as persisted.
  var unstableEntries: [Entry] {
    guard stableIndex < lastIndex else { return [] }
    return Array(entries[Int(stableIndex - compactedIndex)...])
  }

  /// Committed entries not yet handed out for applying.
  var entriesToApply: [Entry] { slice(from: applying + 1, through: committed) }

  /// Drops entries up to `index` (which must be applied), remembering their last term and the
  /// membership in force there.
  mutating func compact(through index: UInt64) {
    guard index > compactedIndex, index <= applied, let term = term(at: index) else { return }
    compactedMembership = membership(at: index)
    entries.removeFirst(Int(index - compactedIndex))
    membershipIndices.removeAll { $0 <= index }
    compactedIndex = index
    compactedTerm = term
  }

  /// Replaces the whole log by a snapshot's position.
  mutating func restore(_ snapshot: SnapshotMetadata) {
    compactedIndex = snapshot.index
    compactedTerm = snapshot.term
    compactedMembership = snapshot.membership
    entries.removeAll()
    membershipIndices.removeAll()
    stableIndex = snapshot.index
    committed = snapshot.index
    applied = snapshot.index
    applying = snapshot.index
  }

  /// The membership in force at `index`: the newest membership entry at or before it.
  func membership(at index: UInt64) -> Membership {
    if let newest = membershipIndices.last(where: { $0 <= index }),
      case .membership(let m) = entries[Int(newest - compactedIndex - 1)].payload
    {
      return m
    }
    return compactedMembership
  }

  /// The index of the newest membership entry, or the compaction point.
  func lastMembershipIndex() -> UInt64 {
    membershipIndices.last ?? compactedIndex
  }

  /// The index of the configuration in force at `index` (an upper bound, `compactedIndex`,
  /// when it was compacted away).
  func membershipIndex(at index: UInt64) -> UInt64 {
    membershipIndices.last(where: { $0 <= index }) ?? compactedIndex
  }

  /// For fast back-up: the newest index whose term is at most `term`, searching down from
  /// `index`. The leader uses it to skip every entry of a term the follower lacks.
  func lastIndex(withTermAtMost term: UInt64, atOrBelow index: UInt64) -> UInt64 {
    var i = min(index, lastIndex)
    while i > compactedIndex {
      if entries[Int(i - compactedIndex - 1)].term <= term { return i }
      i -= 1
    }
    return compactedIndex
  }

  /// For a rejection hint: the first index of the term of the entry at `index`.
  func firstIndex(ofTermAt index: UInt64) -> UInt64 {
    guard let term = term(at: index) else { return index }
    var i = index
    while i > firstIndex, self.term(at: i - 1) == term { i -= 1 }
    return i
  }
}

extension Entry {
  var isMembershipChange: Bool {
    if case .membership = payload { return true }
    return false
  }
}
