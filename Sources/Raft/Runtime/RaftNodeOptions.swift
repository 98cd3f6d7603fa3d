/// Settings of a `RaftNode`.
public struct RaftNodeOptions: Sendable {
  /// One core tick. With the defaults a leader heartbeats every 100 ms, followers start an
  /// election after 0.5–1 s of silence, and a peer silent for 1 s is reported unreachable:
  /// a dead member shows in `dropped` within 2 s, a new leader is agreed well within 5 s.
  public var tickInterval: Duration = .milliseconds(50)
  public var raft = RaftConfig(electionTicks: 10, heartbeatTicks: 2, unreachableTicks: 20)
  /// Compact the log once it holds more entries than this...
  public var maxLogEntries = 10_000
  /// ...keeping this many applied entries, so a briefly slow follower needs no snapshot.
  public var retainedEntries = 1_000
  /// Upper bound on one decompressed snapshot piece, as a guard against a hostile sender.
  public var maxSnapshotPieceBytes = 64 << 20
  /// Batching and pacing of the messages to each peer.
  public var pipe = PeerPipeLimits()
  /// Upper bound on the decompressed bytes of incoming snapshot images staged on disk at once,
  /// by transfers in progress and complete images waiting for their install together: a
  /// transfer that would pass it is dropped (and fails at its sender, which retries later).
  /// It also bounds the largest state machine image this node can receive.
  public var maxSnapshotBytesInFlight = 1 << 30
  /// Where incoming snapshot images are written as they arrive and read back from by their
  /// install (`SnapshotReceiver`); staging files left in it by an earlier process are deleted
  /// when the node opens. Nil: a new directory under the system's temporary directory, removed
  /// when the node stops (for nodes without a data directory, as in tests). `kvd` uses
  /// `snapshot-staging` in its data directory.
  public var snapshotStagingDirectory: String?
  /// Bytes of proposals this leader holds that are not yet applied; a proposal that would pass
  /// it is refused with `busy` (backpressure: a group that cannot keep up is not buried).
  public var maxUncommittedBytes = 64 << 20
  /// The cluster id a group bootstrapped by this node gets; nil derives it from the voter list
  /// (`ClusterIdentity.derived`). Ignored when the storage already holds one.
  public var clusterID: UInt64?

  public init() {}
}
