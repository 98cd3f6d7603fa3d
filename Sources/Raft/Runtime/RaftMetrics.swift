import CoreMetrics

/// What a `RaftNode` reports through swift-metrics (a no-op until the process bootstraps a
/// metrics backend, as `kvd --metrics` does). Names follow Prometheus conventions.
struct RaftMetrics: Sendable {
  let proposals = Counter(label: "shardkv_raft_proposals_total")
  /// One synced write of a Ready's entries and hard state.
  let fsync = Timer(label: "shardkv_raft_fsync_seconds")
  let appliedEntries = Counter(label: "shardkv_raft_applied_entries_total")
  let snapshotsSent = Counter(label: "shardkv_raft_snapshots_sent_total")
  let snapshotsInstalled = Counter(label: "shardkv_raft_snapshots_installed_total")
  let term = Gauge(label: "shardkv_raft_term")
  let commitIndex = Gauge(label: "shardkv_raft_commit_index")
  let appliedIndex = Gauge(label: "shardkv_raft_applied_index")
  /// Peer messages and snapshot chunks dropped as invalid, foreign or unauthorized.
  let droppedInput = Counter(label: "shardkv_raft_dropped_input_total")
  /// 1 while this node leads.
  let isLeader = Gauge(label: "shardkv_raft_is_leader")

  func sent(_ kind: MessageKind) -> Counter {
    Counter(label: "shardkv_raft_messages_sent_total", dimensions: [("kind", "\(kind)")])
  }

  func received(_ kind: MessageKind) -> Counter {
    Counter(label: "shardkv_raft_messages_received_total", dimensions: [("kind", "\(kind)")])
  }
}

extension CoreMetrics.Timer {
  /// Records the time elapsed since `start` on the continuous clock.
  public func record(since start: ContinuousClock.Instant) {
    let (seconds, attoseconds) = (ContinuousClock.now - start).components
    recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
  }
}
