/// Timing and flow-control settings of one core. Time is counted in ticks; the runtime
/// decides how long a tick is.
public struct RaftConfig: Hashable, Sendable {
  /// A follower that hears nothing from a leader for a random time in
  /// `[electionTicks, 2 × electionTicks)` starts an election; a check-quorum leader that has
  /// not heard from a quorum for `electionTicks` steps down.
  public var electionTicks: Int = 10
  /// Must be well below `electionTicks` so that a live leader is never suspected.
  public var heartbeatTicks: Int = 1
  /// Append messages in flight to one follower in the replicate state.
  public var maxInflightMessages: Int = 256
  /// Upper bound on the entry bytes of one append message (one entry is always allowed).
  public var maxBytesPerMessage: Int = 1 << 20
  public var preVote: Bool = true
  public var checkQuorum: Bool = true
  /// A peer not heard from for longer than this is reported unreachable.
  public var unreachableTicks: Int = 10
  /// What one message from the network may carry (see `RaftMessageValidator`).
  public var inputLimits = RaftInputLimits()

  public init(
    electionTicks: Int = 10, heartbeatTicks: Int = 1, maxInflightMessages: Int = 256,
    maxBytesPerMessage: Int = 1 << 20, preVote: Bool = true, checkQuorum: Bool = true,
    unreachableTicks: Int = 10
  ) {
    precondition(heartbeatTicks >= 1 && electionTicks > heartbeatTicks, "invalid Raft timing")
    self.electionTicks = electionTicks
    self.heartbeatTicks = heartbeatTicks
    self.maxInflightMessages = max(1, maxInflightMessages)
    self.maxBytesPerMessage = max(1, maxBytesPerMessage)
    self.preVote = preVote
    self.checkQuorum = checkQuorum
    self.unreachableTicks = unreachableTicks
  }
}
