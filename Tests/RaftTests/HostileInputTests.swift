import XCTest

@testable import Raft

/// Messages a faulty or hostile peer could send: each is dropped with a reason, changes
/// neither the term, the leader, the log nor the peers heard from, and never traps.
final class HostileInputTests: XCTestCase {
  private let n1 = NodeID("n1")
  private let n2 = NodeID("n2")
  private let n3 = NodeID("n3")
  private let outsider = NodeID("mallory")

  /// n2, a follower of n1 in term 2 of the group {n1, n2, n3}, with entries 1...5 (terms 1, 1,
  /// 2, 2, 2) of which 1...3 are committed.
  private func follower() -> RaftCore {
    let terms: [UInt64] = [1, 1, 2, 2, 2]
    let entries = terms.enumerated().map {
      Entry(term: $1, index: UInt64($0 + 1), payload: .command([UInt8($0)]))
    }
    let restored = RestoredState(
      hardState: HardState(term: 2, vote: nil, commit: 3),
      snapshot: SnapshotMetadata(index: 0, term: 0, membership: Membership(voters: [n1, n2, n3])),
      entries: entries, applied: 0)
    var core = RaftCore(id: n2, restored: restored, seed: 7)
    var heartbeat = Message(kind: .heartbeat, from: n1, to: n2, term: 2)
    heartbeat.commit = 3
    XCTAssertEqual(core.step(heartbeat), .accepted)
    XCTAssertEqual(core.leader, n1)
    return core
  }

  private func assertDropped(
    _ message: Message, by core: inout RaftCore, because expected: RaftInputError,
    file: StaticString = #filePath, line: UInt = #line
  ) {
    let before = (core.term, core.leader, core.entries, core.commitIndex, core.status.peers.map(\.id))
    XCTAssertEqual(core.step(message), .dropped(expected), file: file, line: line)
    XCTAssertEqual(core.term, before.0, "term changed", file: file, line: line)
    XCTAssertEqual(core.leader, before.1, "leader changed", file: file, line: line)
    XCTAssertEqual(core.entries, before.2, "log changed", file: file, line: line)
    XCTAssertEqual(core.commitIndex, before.3, "commit changed", file: file, line: line)
    XCTAssertEqual(core.status.peers.map(\.id), before.4, "peers changed", file: file, line: line)
  }

  func testHeartbeatFromANonMemberWithAHigherTermChangesNeitherTermNorLeader() {
    var core = follower()
    var forged = Message(kind: .heartbeat, from: outsider, to: n2, term: 99)
    forged.commit = 5
    assertDropped(forged, by: &core, because: .notMember(outsider))
    XCTAssertFalse(core.unreachablePeers.contains(outsider))
    for kind in [MessageKind.append, .vote, .preVote, .timeoutNow, .readIndex] {
      var message = Message(kind: kind, from: outsider, to: n2, term: 99)
      message.logTerm = 2
      assertDropped(message, by: &core, because: .notMember(outsider))
    }
  }

  func testAppendWithAGapIsDropped() {
    var core = follower()
    var append = Message(kind: .append, from: n1, to: n2, term: 2)
    append.index = 5
    append.logTerm = 2
    append.entries = [Entry(term: 2, index: 7, payload: .noop)]
    assertDropped(append, by: &core, because: .entriesNotContiguous(expected: 6, found: 7))
  }

  func testAppendConflictingWithCommittedEntriesIsDropped() {
    var core = follower()
    var append = Message(kind: .append, from: n1, to: n2, term: 3)
    append.index = 1
    append.logTerm = 1
    append.entries = [Entry(term: 3, index: 2, payload: .noop), Entry(term: 3, index: 3, payload: .noop)]
    assertDropped(append, by: &core, because: .conflictsWithCommitted(index: 2))
  }

  func testEntryTermsOutOfOrderOrAboveTheMessageTermAreDropped() {
    var core = follower()
    var append = Message(kind: .append, from: n1, to: n2, term: 2)
    append.index = 5
    append.logTerm = 2
    append.entries = [Entry(term: 3, index: 6, payload: .noop)]
    assertDropped(append, by: &core, because: .entryTermOutOfOrder(index: 6, term: 3))
    append.entries = [Entry(term: 1, index: 6, payload: .noop)]
    assertDropped(append, by: &core, because: .entryTermOutOfOrder(index: 6, term: 1))
    append.entries = []
    append.logTerm = 5
    assertDropped(append, by: &core, because: .logTermAboveTerm(logTerm: 5, term: 2))
  }

  func testIndicesNearTheTopOfTheRangeAreDroppedInsteadOfOverflowing() {
    var core = follower()
    var append = Message(kind: .append, from: n1, to: n2, term: 2)
    append.index = .max
    append.logTerm = 2
    append.entries = [Entry(term: 2, index: 0, payload: .noop)]
    assertDropped(append, by: &core, because: .termOrIndexTooLarge(.max))
    var snapshot = Message(kind: .snapshot, from: n1, to: n2, term: 2)
    snapshot.snapshot = Snapshot(
      metadata: SnapshotMetadata(index: .max, term: 2, membership: Membership(voters: [n1])))
    assertDropped(snapshot, by: &core, because: .termOrIndexTooLarge(.max))
  }

  func testSnapshotWithoutVotersOrWithoutMetadataIsDropped() {
    var core = follower()
    var snapshot = Message(kind: .snapshot, from: n1, to: n2, term: 2)
    assertDropped(snapshot, by: &core, because: .snapshotMissing)
    snapshot.snapshot = Snapshot(metadata: SnapshotMetadata(index: 9, term: 2, membership: Membership()))
    assertDropped(snapshot, by: &core, because: .invalidSnapshot("no voters"))
  }

  func testOversizedMessagesAreDropped() {
    var core = follower()
    var append = Message(kind: .append, from: n1, to: n2, term: 2)
    append.index = 5
    append.logTerm = 2
    let limit = RaftInputLimits().maxEntriesPerMessage
    append.entries = (0...limit).map { Entry(term: 2, index: 6 + UInt64($0), payload: .noop) }
    assertDropped(append, by: &core, because: .tooManyEntries(count: limit + 1, limit: limit))
    var read = Message(kind: .readIndex, from: n1, to: n2, term: 2)
    read.context = Array(repeating: 0, count: 4096)
    assertDropped(read, by: &core, because: .contextTooLarge(bytes: 4096, limit: 1024))
  }

  func testReadIndexResponseFromAMemberThatIsNotTheLeaderIsDropped() {
    var core = follower()
    var response = Message(kind: .readIndexResponse, from: n3, to: n2, term: 2)
    response.index = 5
    assertDropped(
      response, by: &core, because: .unsolicitedResponse("read index from n3, which is not the leader"))
  }

  func testLeaderDropsAcknowledgementsOfEntriesItNeverSent() {
    let restored = RestoredState.bootstrap(voters: [n1, n2, n3])
    var core = RaftCore(id: n1, restored: restored, seed: 1)
    while core.role != .candidate && core.role != .preCandidate { core.tick() }
    for voter in [n2, n3] {
      var grant = Message(
        kind: core.role == .preCandidate ? .preVoteResponse : .voteResponse, from: voter, to: n1,
        term: core.term + (core.role == .preCandidate ? 1 : 0))
      grant.reject = false
      core.step(grant)
    }
    if core.role == .candidate {
      for voter in [n2, n3] { core.step(Message(kind: .voteResponse, from: voter, to: n1, term: core.term)) }
    }
    XCTAssertEqual(core.role, .leader)
    var ack = Message(kind: .appendResponse, from: n2, to: n1, term: core.term)
    ack.index = 1_000
    let last = core.lastIndex
    assertDropped(
      ack, by: &core,
      because: .unsolicitedResponse("append acknowledged through 1000, past the last index \(last)"))
    var heartbeatAck = Message(kind: .heartbeatResponse, from: n2, to: n1, term: core.term)
    heartbeatAck.readRound = 50
    assertDropped(heartbeatAck, by: &core, because: .unsolicitedResponse("read round 50 not started"))
  }

  func testStandbyHearsOnlyALeaderWhoseConfigurationNamesIt() {
    var standby = RaftCore(id: n2, restored: .bootstrap(voters: []), seed: 3)
    var vote = Message(kind: .vote, from: outsider, to: n2, term: 5)
    vote.logTerm = 1
    assertDropped(vote, by: &standby, because: .notMember(outsider))
    let added = Membership(voters: [n1], learners: [n2])
    var append = Message(kind: .append, from: n1, to: n2, term: 4)
    append.entries = [Entry(term: 4, index: 1, payload: .membership(added))]
    // Leader traffic that does not name the standby, or names nobody, is not heard.
    assertDropped(append, by: &standby, because: .notMember(n1))
    append.senderMembership = IndexedMembership(index: 1, membership: Membership(voters: [n1, n3]))
    assertDropped(append, by: &standby, because: .notMember(n1))
    append.senderMembership = IndexedMembership(index: 1, membership: added)
    XCTAssertEqual(standby.step(append), .accepted)
    XCTAssertEqual(standby.leader, n1)
    XCTAssertEqual(standby.membership, Membership(voters: [n1], learners: [n2]))
    // Now a member: it hears its configuration only.
    assertDropped(
      Message(kind: .heartbeat, from: outsider, to: n2, term: 9), by: &standby, because: .notMember(outsider))
  }

  func testMembersOfTheCommittedConfigurationAreHeardWhileANewerOneIsUncommitted() {
    // n2 holds an uncommitted entry removing n3; n3 may still win the election that truncates it.
    let restored = RestoredState(
      hardState: HardState(term: 2, vote: nil, commit: 1),
      snapshot: SnapshotMetadata(index: 0, term: 0, membership: Membership(voters: [n1, n2, n3])),
      entries: [
        Entry(term: 1, index: 1, payload: .noop),
        Entry(term: 2, index: 2, payload: .membership(Membership(voters: [n1, n2]))),
      ], applied: 0)
    var core = RaftCore(id: n2, restored: restored, seed: 5)
    XCTAssertEqual(core.membership.voters, [n1, n2])
    var append = Message(kind: .append, from: n3, to: n2, term: 3)
    append.index = 1
    append.logTerm = 1
    append.entries = [Entry(term: 3, index: 2, payload: .noop)]
    XCTAssertEqual(core.step(append), .accepted)
    XCTAssertEqual(core.leader, n3)
    XCTAssertEqual(core.membership.voters, [n1, n2, n3])
  }

  func testAMemberThatMissedTheEntryAddingTheLeaderHearsItThroughTheCarriedConfiguration() {
    // n2 committed {n1, n2, n3} through index 3 and was cut off while n4 was added at index 6;
    // n4 now leads a term n2 has never seen.
    var core = follower()
    let n4 = NodeID("n4")
    let newer = Membership(voters: [n2, n3, n4])
    var heartbeat = Message(kind: .heartbeat, from: n4, to: n2, term: 5)
    assertDropped(heartbeat, by: &core, because: .notMember(n4))
    // A configuration no newer than n2's committed one proves nothing (a removed node's is
    // older than the one that removed it).
    heartbeat.senderMembership = IndexedMembership(index: 0, membership: newer)
    assertDropped(heartbeat, by: &core, because: .notMember(n4))
    // One that does not name the recipient neither.
    heartbeat.senderMembership = IndexedMembership(index: 6, membership: Membership(voters: [n1, n3, n4]))
    assertDropped(heartbeat, by: &core, because: .notMember(n4))
    heartbeat.senderMembership = IndexedMembership(index: 6, membership: newer)
    XCTAssertEqual(core.step(heartbeat), .accepted)
    XCTAssertEqual(core.leader, n4)
    XCTAssertEqual(core.term, 5)
    // A snapshot vouches with its own configuration.
    var snapshot = Message(kind: .snapshot, from: n4, to: n2, term: 5)
    snapshot.snapshot = Snapshot(metadata: SnapshotMetadata(index: 9, term: 5, membership: newer))
    XCTAssertEqual(core.step(snapshot), .accepted)
    // Only appends, heartbeats and vote requests may carry one.
    var ack = Message(kind: .appendResponse, from: n4, to: n2, term: 5)
    ack.senderMembership = IndexedMembership(index: 6, membership: newer)
    assertDropped(ack, by: &core, because: .misplacedSenderMembership(.appendResponse))
  }

  func testAStandbyHearsALeaderThatIsRemovingItselfFromTheConfigurationThatNamesTheStandby() {
    // n1 leads {n1, n2}; it added the standby n3 and then proposed its own removal: until that
    // commits (which needs n3), it leads the configuration {n2, n3} that does not name it.
    var standby = RaftCore(id: n3, restored: .bootstrap(voters: []), seed: 8)
    var heartbeat = Message(kind: .heartbeat, from: n1, to: n3, term: 2)
    heartbeat.senderMembership = IndexedMembership(index: 12, membership: Membership(voters: [n2, n3]))
    XCTAssertEqual(standby.step(heartbeat), .accepted)
    XCTAssertEqual(standby.leader, n1)
  }

  func testAStandbyVotesForACandidateWhoseConfigurationNamesIt() {
    // {n1, n2} was cut down to n1 and the standby n3 was added and promoted before it heard
    // anything; n1 then lost its leadership. Only n3's vote can elect anyone.
    var standby = RaftCore(id: n3, restored: .bootstrap(voters: []), seed: 4)
    var vote = Message(kind: .vote, from: n1, to: n3, term: 4)
    vote.index = 9
    vote.logTerm = 3
    assertDropped(vote, by: &standby, because: .notMember(n1))
    vote.senderMembership = IndexedMembership(index: 9, membership: Membership(voters: [n1, n3]))
    XCTAssertEqual(standby.step(vote), .accepted)
    XCTAssertEqual(standby.term, 4)
    guard let ready = standby.ready() else { return XCTFail("the standby did not answer") }
    let answer = ready.messages.first { $0.kind == .voteResponse }
    XCTAssertEqual(answer?.to, n1)
    XCTAssertEqual(answer?.reject, false, "the standby refused its vote")
    XCTAssertEqual(ready.hardState?.vote, n1)
  }

  func testACandidateCarriesItsConfigurationOnEveryVoteRequest() {
    var core = RaftCore(id: n1, restored: .bootstrap(voters: [n1, n2, n3]), seed: 6)
    var requests: [Message] = []
    while requests.isEmpty {
      core.tick()
      requests = drain(&core).filter { $0.kind == .vote || $0.kind == .preVote }
    }
    for request in requests {
      XCTAssertEqual(request.senderMembership?.membership, Membership(voters: [n1, n2, n3]))
    }
  }

  func testALeaderCarriesItsConfigurationOnlyToPeersThatHaveNotAcknowledgedIt() {
    var core = RaftCore(id: n1, restored: .bootstrap(voters: [n1]), seed: 2)
    while core.role != .leader { core.tick() }
    drain(&core)
    let index = try? core.proposeMembershipChange(.addLearner(n2))
    XCTAssertNotNil(index)
    var sent = drain(&core).filter { $0.to == n2 }
    XCTAssertFalse(sent.isEmpty, "nothing was sent to the new learner")
    for message in sent {
      XCTAssertEqual(message.senderMembership?.index, index, "\(message.kind) lacks the configuration")
      XCTAssertEqual(message.senderMembership?.membership, Membership(voters: [n1], learners: [n2]))
    }
    // n2 acknowledges the entry: from then on the leader's messages to it carry nothing.
    var ack = Message(kind: .appendResponse, from: n2, to: n1, term: core.term)
    ack.index = core.lastIndex
    XCTAssertEqual(core.step(ack), .accepted)
    for _ in 0..<5 { core.tick() }
    sent = drain(&core).filter { $0.to == n2 }
    XCTAssertFalse(sent.isEmpty, "no heartbeat reached the learner")
    for message in sent { XCTAssertNil(message.senderMembership, "\(message.kind) still carries it") }
  }

  /// Runs the core's Readies until it has none, as an owner with an instant disk would, and
  /// returns the messages they held.
  @discardableResult
  private func drain(_ core: inout RaftCore) -> [Message] {
    var messages: [Message] = []
    while let ready = core.ready() {
      messages += ready.messages
      core.advance(ready)
    }
    return messages
  }

  func testRaftLogRefusesAGapAndACommittedRewriteInsteadOfTrapping() {
    var log = RaftLog(
      snapshot: SnapshotMetadata(index: 0, term: 0, membership: Membership(voters: [n1])),
      entries: [Entry(term: 1, index: 1, payload: .noop), Entry(term: 1, index: 2, payload: .noop)],
      committed: 2, applied: 0)
    XCTAssertThrowsError(try log.append([Entry(term: 1, index: 5, payload: .noop)])) { error in
      XCTAssertEqual(error as? RaftInputError, .entriesNotContiguous(expected: 3, found: 5))
    }
    XCTAssertThrowsError(try log.append([Entry(term: 2, index: 2, payload: .noop)])) { error in
      XCTAssertEqual(error as? RaftInputError, .conflictsWithCommitted(index: 2))
    }
    XCTAssertThrowsError(
      try log.append([Entry(term: 1, index: 3, payload: .noop), Entry(term: 1, index: 9, payload: .noop)])
    ) { error in
      XCTAssertEqual(error as? RaftInputError, .entriesNotContiguous(expected: 4, found: 9))
    }
    XCTAssertEqual(log.lastIndex, 2)
  }
}
