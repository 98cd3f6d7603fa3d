/// Bounds on what one message from the network may carry. A message beyond them is refused
/// whole, before it reaches any state, so that a hostile or corrupt peer costs at most one
/// message's worth of work.
public struct RaftInputLimits: Hashable, Sendable {
  /// Entries in one append. An honest leader sends at most `RaftConfig.maxBytesPerMessage` of
  /// entries (one entry always), so this is far above what it ever needs.
  public var maxEntriesPerMessage: Int = 100_000
  /// Bytes of entry payload (`Entry.approximateSize`) in one append.
  public var maxEntryBytesPerMessage: Int = 64 << 20
  /// Bytes of a read-index context (the runtime uses 8).
  public var maxContextBytes: Int = 1024
  /// Members named in one membership (entry or snapshot).
  public var maxMembers: Int = 1024
  /// Terms and indices above this are refused, so that no `index + count` or `term + 1` in
  /// the core can overflow (a real group would need 2^62 elections or entries to get there).
  public var maxTermOrIndex: UInt64 = 1 << 62

  public init() {}
}

/// Why a message from the network was dropped instead of stepped. The core drops it and keeps
/// running; the runtime logs the reason (rate-limited) and counts it.
public enum RaftInputError: Error, Hashable, Sendable, CustomStringConvertible {
  case emptySender
  case fromSelf
  case wrongRecipient(NodeID)
  /// The sender is not a member of this node's current configuration.
  case notMember(NodeID)
  case termOrIndexTooLarge(UInt64)
  case tooManyEntries(count: Int, limit: Int)
  case entriesTooLarge(bytes: Int, limit: Int)
  /// Entries must run `index + 1, index + 2, ...`.
  case entriesNotContiguous(expected: UInt64, found: UInt64)
  /// Entry terms must not decrease, and none may be above the message's term.
  case entryTermOutOfOrder(index: UInt64, term: UInt64)
  /// The previous entry's (or the candidate's last entry's) term is above the message's term.
  case logTermAboveTerm(logTerm: UInt64, term: UInt64)
  case contextTooLarge(bytes: Int, limit: Int)
  case tooManyMembers(count: Int, limit: Int)
  case snapshotMissing
  /// A snapshot must name at least one voter and not be newer than its message's term.
  case invalidSnapshot(String)
  /// Only appends, heartbeats and vote requests carry the sender's configuration.
  case misplacedSenderMembership(MessageKind)
  /// An append would overwrite an entry this node has already committed.
  case conflictsWithCommitted(index: UInt64)
  /// An acknowledgement of something this leader never sent (an index past its log, a read
  /// round it has not started).
  case unsolicitedResponse(String)

  /// A short fixed name for the kind of violation, for rate-limited logs and metrics.
  public var category: String {
    switch self {
    case .notMember, .fromSelf, .wrongRecipient, .emptySender: return "not member"
    case .conflictsWithCommitted: return "committed conflict"
    case .unsolicitedResponse: return "unsolicited"
    default: return "malformed"
    }
  }

  public var description: String {
    switch self {
    case .emptySender: return "message without a sender"
    case .fromSelf: return "message claims to come from this node"
    case .wrongRecipient(let to): return "message addressed to \(to)"
    case .notMember(let from): return "sender \(from) is not a member of this node's configuration"
    case .termOrIndexTooLarge(let value): return "term or index \(value) is out of range"
    case .tooManyEntries(let count, let limit): return "\(count) entries exceed the limit of \(limit)"
    case .entriesTooLarge(let bytes, let limit):
      return "\(bytes) bytes of entries exceed the limit of \(limit)"
    case .entriesNotContiguous(let expected, let found):
      return "entries are not contiguous: expected index \(expected), found \(found)"
    case .entryTermOutOfOrder(let index, let term): return "entry \(index) has out-of-order term \(term)"
    case .logTermAboveTerm(let logTerm, let term):
      return "log term \(logTerm) is above the message term \(term)"
    case .contextTooLarge(let bytes, let limit):
      return "context of \(bytes) bytes exceeds the limit of \(limit)"
    case .tooManyMembers(let count, let limit): return "membership of \(count) exceeds the limit of \(limit)"
    case .snapshotMissing: return "snapshot message without a snapshot"
    case .invalidSnapshot(let why): return "invalid snapshot: \(why)"
    case .misplacedSenderMembership(let kind): return "a \(kind) message carries the sender's configuration"
    case .conflictsWithCommitted(let index): return "entry \(index) conflicts with a committed entry"
    case .unsolicitedResponse(let what): return "unsolicited response: \(what)"
    }
  }
}

/// Checks the shape of one message on its own, without any node state: every field the core
/// relies on is in range and consistent. Pure, so the runtime, the core and the fuzz target
/// share it. (Checks against the node's state — membership, the committed prefix, what a
/// leader has sent — are made by `RaftCore.step`, which calls this first.)
public enum RaftMessageValidator {
  public static func validate(_ m: Message, limits: RaftInputLimits) throws(RaftInputError) {
    if m.from.rawValue.isEmpty { throw .emptySender }
    for value in [m.term, m.logTerm, m.index, m.commit, m.rejectHint, m.conflictTerm, m.readRound]
    where value > limits.maxTermOrIndex {
      throw .termOrIndexTooLarge(value)
    }
    if m.context.count > limits.maxContextBytes {
      throw .contextTooLarge(bytes: m.context.count, limit: limits.maxContextBytes)
    }
    switch m.kind {
    case .append:
      if m.logTerm > m.term { throw .logTermAboveTerm(logTerm: m.logTerm, term: m.term) }
      try validateEntries(m, limits: limits)
    case .vote, .preVote:
      // A candidate campaigns in a term above every term in its log.
      if m.logTerm > m.term { throw .logTermAboveTerm(logTerm: m.logTerm, term: m.term) }
    case .snapshot:
      guard let snapshot = m.snapshot else { throw .snapshotMissing }
      try validate(snapshot.metadata, term: m.term, limits: limits)
    default:
      break
    }
    if let carried = m.senderMembership {
      guard [.append, .heartbeat, .vote, .preVote].contains(m.kind) else {
        throw .misplacedSenderMembership(m.kind)
      }
      if carried.index > limits.maxTermOrIndex { throw .termOrIndexTooLarge(carried.index) }
      try validate(carried.membership, limits: limits)
    }
    if m.kind != .append && !m.entries.isEmpty {
      throw .tooManyEntries(count: m.entries.count, limit: 0)
    }
  }

  private static func validateEntries(_ m: Message, limits: RaftInputLimits) throws(RaftInputError) {
    if m.entries.count > limits.maxEntriesPerMessage {
      throw .tooManyEntries(count: m.entries.count, limit: limits.maxEntriesPerMessage)
    }
    var expected = m.index + 1
    var previousTerm = m.logTerm
    var bytes = 0
    for entry in m.entries {
      guard entry.index == expected else {
        throw .entriesNotContiguous(expected: expected, found: entry.index)
      }
      guard entry.term >= max(previousTerm, 1), entry.term <= m.term else {
        throw .entryTermOutOfOrder(index: entry.index, term: entry.term)
      }
      if case .membership(let membership) = entry.payload {
        try validate(membership, limits: limits)
      }
      bytes += entry.approximateSize
      if bytes > limits.maxEntryBytesPerMessage {
        throw .entriesTooLarge(bytes: bytes, limit: limits.maxEntryBytesPerMessage)
      }
      previousTerm = entry.term
      expected += 1
    }
  }

  private static func validate(
    _ metadata: SnapshotMetadata, term: UInt64, limits: RaftInputLimits
  ) throws(RaftInputError) {
    if metadata.index > limits.maxTermOrIndex { throw .termOrIndexTooLarge(metadata.index) }
    if metadata.term > term { throw .invalidSnapshot("term \(metadata.term) above the message term \(term)") }
    if metadata.index == 0 { throw .invalidSnapshot("index 0") }
    if metadata.membership.voters.isEmpty { throw .invalidSnapshot("no voters") }
    try validate(metadata.membership, limits: limits)
  }

  private static func validate(_ membership: Membership, limits: RaftInputLimits) throws(RaftInputError) {
    let count = membership.voters.count + membership.learners.count
    if count > limits.maxMembers { throw .tooManyMembers(count: count, limit: limits.maxMembers) }
  }
}

/// What `RaftCore.step` did with a message.
public enum StepOutcome: Hashable, Sendable {
  case accepted
  case dropped(RaftInputError)
}
