/// The requests a `RaftNode` holds until Raft answers them: proposals by log index, resolved
/// when that index is applied; reads by id, waiting for the leader to confirm a read index;
/// confirmed reads, released once their index is applied.
///
/// Invariants:
/// - every request is completed exactly once (answered, failed, or timed out), and is then
///   forgotten;
/// - `proposalBytes` is the sum of the bytes of the proposals held (the node refuses a
///   proposal that would pass its limit: backpressure);
/// - a proposal resolves with its entry's result only if the entry applied at its index has
///   the term it was proposed in; any other entry at that index means the leader lost it.
///
/// A plain value owned by the node's actor, with no clock and no I/O of its own, so its rules
/// are tested without a cluster.
struct PendingRequests {
  /// Completes a request once: with the state machine's result (empty for a read) or an error.
  typealias Completion = (Result<[UInt8], RaftNodeError>) -> Void

  struct Request {
    var term: UInt64
    var deadline: ContinuousClock.Instant
    /// The proposal's command bytes (0 for reads), counted in `proposalBytes`.
    var bytes = 0
    var complete: Completion
  }

  private var proposals: [UInt64: Request] = [:]
  private(set) var proposalBytes = 0
  private var reads: [UInt64: Request] = [:]
  private var confirmedReads: [(index: UInt64, request: Request)] = []

  var isEmpty: Bool { proposals.isEmpty && reads.isEmpty && confirmedReads.isEmpty }

  /// Holds a proposal until `index` is applied. A proposal already held at that index was
  /// overwritten by another leader's entry: it fails with `leadershipLost`.
  mutating func addProposal(_ request: Request, at index: UInt64) {
    if let replaced = proposals.updateValue(request, forKey: index) {
      proposalBytes -= replaced.bytes
      replaced.complete(.failure(.leadershipLost))
    }
    proposalBytes += request.bytes
  }

  /// Holds a read until the leader confirms its read index (`confirmRead`).
  mutating func addRead(_ request: Request, id: UInt64) {
    reads[id] = request
  }

  /// The leader confirmed read `id` at `index`: it waits for that index to be applied. An
  /// unknown id (timed out meanwhile) is ignored.
  mutating func confirmRead(id: UInt64, at index: UInt64) {
    guard let request = reads.removeValue(forKey: id) else { return }
    confirmedReads.append((index, request))
  }

  /// Entries were applied with these results: their proposals resolve.
  mutating func resolve(applied entries: [Entry], results: [[UInt8]]) {
    for (entry, result) in zip(entries, results) {
      guard let request = takeProposal(at: entry.index) else { continue }
      request.complete(entry.term == request.term ? .success(result) : .failure(.leadershipLost))
    }
  }

  /// The state machine has applied through `applied`: confirmed reads at or below it are
  /// released.
  mutating func releaseReads(appliedThrough applied: UInt64) {
    confirmedReads.removeAll { read in
      guard read.index <= applied else { return false }
      read.request.complete(.success([]))
      return true
    }
  }

  /// The node is no longer leader: proposals above `committed` can no longer be confirmed by
  /// it and fail with `leadershipLost`; their callers retry (with the same session, so writes
  /// stay exactly-once). Committed ones stay: they will be applied (a leader that removed
  /// itself steps down as soon as its removal commits, before applying it).
  mutating func failProposals(above committed: UInt64) {
    for index in proposals.keys.sorted() where index > committed {
      takeProposal(at: index)?.complete(.failure(.leadershipLost))
    }
  }

  /// The role or the leader changed: reads still waiting for a read index fail with
  /// `leadershipLost` (the leader that would confirm them is gone). Confirmed reads stay.
  mutating func failUnconfirmedReads() {
    let waiting = reads.values.map(\.complete)
    reads.removeAll()
    for complete in waiting { complete(.failure(.leadershipLost)) }
  }

  /// Fails every request whose deadline has passed with `timeout`.
  mutating func expire(now: ContinuousClock.Instant) {
    for (index, request) in proposals where request.deadline <= now {
      takeProposal(at: index)?.complete(.failure(.timeout))
    }
    for (id, request) in reads where request.deadline <= now {
      reads[id] = nil
      request.complete(.failure(.timeout))
    }
    confirmedReads.removeAll { read in
      guard read.request.deadline <= now else { return false }
      read.request.complete(.failure(.timeout))
      return true
    }
  }

  /// Fails every request (the node stopped).
  mutating func failAll(_ error: RaftNodeError) {
    let all =
      proposals.values.map(\.complete) + reads.values.map(\.complete) + confirmedReads.map(\.request.complete)
    proposals.removeAll()
    proposalBytes = 0
    reads.removeAll()
    confirmedReads.removeAll()
    for complete in all { complete(.failure(error)) }
  }

  private mutating func takeProposal(at index: UInt64) -> Request? {
    guard let request = proposals.removeValue(forKey: index) else { return nil }
    proposalBytes -= request.bytes
    return request
  }
}
