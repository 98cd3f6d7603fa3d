import XCTest

@testable import Raft

/// The write path's overlap rules, on cores driven by hand: a leader sends its appends before
/// its own write and counts its entries only once they are persisted; a commit-index change
/// alone is written without a sync and recovered on restart from the applied index; reads
/// asked between two Readies share one heartbeat round; an answer given in an earlier term
/// than the Ready's is never sent.
final class WritePathTests: XCTestCase {
  /// Three cores copied out of a simulation once `n1..n3` have a leader with one committed
  /// command: (leader, its two followers), all idle, everything persisted and delivered.
  private func settledTrio(
    seed: UInt64 = 7, function: String = #function
  ) throws -> (leader: RaftCore, followers: [RaftCore]) {
    let sim = makeSimulation(seed: seed, nodes: 3, function: function)
    let index = sim.one(command("settle"), expected: 3)
    XCTAssertNotNil(index, "seed \(seed): the cluster did not commit its first command")
    sim.run(10)
    let leaderID = try XCTUnwrap(sim.leader, "seed \(seed): no leader")
    let leader = try XCTUnwrap(sim.core(leaderID))
    let followers = try sim.ids.filter { $0 != leaderID }.map { try XCTUnwrap(sim.core($0)) }
    XCTAssertFalse(leader.hasReady, "seed \(seed): the leader is not idle")
    return (leader, followers)
  }

  private func acknowledgement(from follower: inout RaftCore, of append: Message) throws -> Message {
    follower.step(append)
    let ready = try XCTUnwrap(follower.ready(), "the follower has nothing to do after an append")
    XCTAssertTrue(ready.mustSync, "a follower's new entries are synced before it answers")
    XCTAssertFalse(ready.messagesBeforePersisting, "a follower's acknowledgement went before its write")
    follower.advance(ready)
    return try XCTUnwrap(ready.messages.first { $0.kind == .appendResponse && !$0.reject })
  }

  func testLeaderSendsBeforeItsWriteButCountsItsEntryOnlyOncePersisted() throws {
    var (leader, followers) = try settledTrio()
    let index = try leader.propose(command("early"))
    let ready = try XCTUnwrap(leader.ready())
    XCTAssertEqual(ready.entries.map(\.index), [index])
    XCTAssertTrue(ready.mustSync)
    XCTAssertTrue(ready.messagesBeforePersisting, "a leader's appends wait for its own fsync")
    let append = try XCTUnwrap(ready.messages.first { $0.kind == .append && $0.to == followers[0].id })

    // One follower persists and acknowledges while the leader's write is still under way:
    // with the leader's own entry not yet on disk that is one of three, not a quorum.
    let ack = try acknowledgement(from: &followers[0], of: append)
    leader.step(ack)
    XCTAssertLessThan(
      leader.commitIndex, index, "an entry the leader has not persisted counted toward commit")

    // The leader's write completes: now two of three hold it.
    leader.advance(ready)
    XCTAssertEqual(leader.commitIndex, index)
  }

  func testAnAcknowledgementFromAnEarlierTermIsNotSentOnceANewerLeaderReplacedItsEntries() throws {
    // n2 takes entries 2...3 from n1 (term 2), and, before its write, entry 2 of term 3 from
    // n3, which replaces them. Its write holds only n3's entry: telling n1 that it holds 3
    // would make n1 count a replica that no disk has.
    let (n1, n2, n3) = (NodeID("n1"), NodeID("n2"), NodeID("n3"))
    let restored = RestoredState(
      hardState: HardState(term: 2, vote: nil, commit: 1),
      snapshot: SnapshotMetadata(index: 0, term: 0, membership: Membership(voters: [n1, n2, n3])),
      entries: [Entry(term: 1, index: 1, payload: .noop)], applied: 1)
    var follower = RaftCore(id: n2, restored: restored, seed: 3)
    var old = Message(kind: .append, from: n1, to: n2, term: 2)
    (old.index, old.logTerm, old.commit) = (1, 1, 1)
    old.entries = [Entry(term: 2, index: 2, payload: .noop), Entry(term: 2, index: 3, payload: .noop)]
    XCTAssertEqual(follower.step(old), .accepted)
    var new = Message(kind: .append, from: n3, to: n2, term: 3)
    (new.index, new.logTerm, new.commit) = (1, 1, 1)
    new.entries = [Entry(term: 3, index: 2, payload: .noop)]
    XCTAssertEqual(follower.step(new), .accepted)

    let ready = try XCTUnwrap(follower.ready())
    XCTAssertEqual(ready.entries, new.entries)
    XCTAssertFalse(
      ready.messages.contains { $0.to == n1 && $0.kind == .appendResponse && !$0.reject },
      "n2 acknowledges term 2's entries to n1 with only term 3's on its disk: \(ready.messages)")
    let ack = try XCTUnwrap(ready.messages.first { $0.to == n3 && $0.kind == .appendResponse })
    XCTAssertEqual(ack.index, 2)
    XCTAssertEqual(ack.term, 3)
  }

  func testAVoteGrantedInAnEarlierTermIsNotSentOnceTheVoteOnDiskIsForALaterTerm() throws {
    let (n1, n2, n3) = (NodeID("n1"), NodeID("n2"), NodeID("n3"))
    var voter = RaftCore(id: n2, restored: .bootstrap(voters: [n1, n2, n3]), seed: 5)
    XCTAssertEqual(voter.step(Message(kind: .vote, from: n1, to: n2, term: 4)), .accepted)
    XCTAssertEqual(voter.step(Message(kind: .vote, from: n3, to: n2, term: 5)), .accepted)
    let ready = try XCTUnwrap(voter.ready())
    XCTAssertEqual(ready.hardState?.term, 5)
    XCTAssertEqual(ready.hardState?.vote, n3)
    let grants = ready.messages.filter { $0.kind == .voteResponse && !$0.reject }
    XCTAssertEqual(grants.map(\.to), [n3], "a grant of term 4 went out with term 5's vote on disk")
  }

  func testCommitIndexAloneIsWrittenWithoutASyncAndAfterNewEntriesWithOne() throws {
    var (leader, followers) = try settledTrio()
    let index = try leader.propose(command("commit-only"))
    let ready = try XCTUnwrap(leader.ready())
    leader.advance(ready)
    let append = try XCTUnwrap(ready.messages.first { $0.kind == .append && $0.to == followers[0].id })
    leader.step(try acknowledgement(from: &followers[0], of: append))
    XCTAssertEqual(leader.commitIndex, index)

    let next = try XCTUnwrap(leader.ready(), "the leader does not tell its followers the commit")
    XCTAssertEqual(next.hardState?.commit, index)
    XCTAssertTrue(next.entries.isEmpty)
    XCTAssertFalse(next.mustSync, "a commit-index-only change is synced")
    leader.advance(next)
    let commit = try XCTUnwrap(next.messages.first { $0.to == followers[0].id && $0.commit == index })
    followers[0].step(commit)
    let learned = try XCTUnwrap(followers[0].ready())
    XCTAssertEqual(learned.hardState?.commit, index)
    XCTAssertFalse(learned.mustSync, "a follower syncs only to learn a commit index")
  }

  func testRestartRecoversACommitIndexThatWasNotSyncedFromTheAppliedIndex() {
    let voters = [NodeID("n1"), NodeID("n2"), NodeID("n3")]
    let entries = (1...5).map { Entry(term: 1, index: UInt64($0), payload: .command(command("e\($0)"))) }
    let restored = RestoredState(
      hardState: HardState(term: 1, vote: NodeID("n1"), commit: 2),
      snapshot: SnapshotMetadata(index: 0, term: 0, membership: Membership(voters: voters)),
      entries: entries, applied: 4)
    var core = RaftCore(id: NodeID("n2"), restored: restored, seed: 1)
    XCTAssertEqual(core.commitIndex, 4, "the commit index went below what the state machine applied")
    XCTAssertEqual(core.appliedIndex, 4)
    let reapplied = core.ready()?.committedEntries.map(\.index) ?? []
    XCTAssertEqual(reapplied, [], "entries already in the state machine are applied again")
  }

  func testReadsAskedBetweenTwoReadiesShareOneHeartbeatRound() throws {
    var (leader, followers) = try settledTrio()
    let contexts = (0..<20).map { command("read-\($0)") }
    for context in contexts { try leader.readIndex(context: context) }
    let ready = try XCTUnwrap(leader.ready())
    let heartbeats = ready.messages.filter { $0.kind == .heartbeat }
    XCTAssertEqual(heartbeats.count, 2, "20 reads cost \(heartbeats.count) heartbeats, not one per follower")
    XCTAssertEqual(Set(heartbeats.map(\.readRound)).count, 1)
    leader.advance(ready)

    // One follower's answer (with the leader, a quorum) releases all twenty.
    let heartbeat = try XCTUnwrap(heartbeats.first { $0.to == followers[0].id })
    followers[0].step(heartbeat)
    let answer = try XCTUnwrap(
      followers[0].ready()?.messages.first { $0.kind == .heartbeatResponse })
    leader.step(answer)
    let released = try XCTUnwrap(leader.ready()).readStates.map(\.context)
    XCTAssertEqual(released, contexts)
  }
}
