import Raft
import Storage
import Wire
import XCTest

/// A peer speaking the real Raft RPCs with forged contents: a foreign cluster id, a flood of
/// snapshot chunks, a batch of millions of empty messages. Each is refused and the group goes on.
final class HostilePeerTests: XCTestCase {
  private func command(_ i: Int) -> [UInt8] { Array("cmd-\(i)".utf8) }

  func testClusterIDIsDerivedFromTheVotersSurvivesARestartAndIsAdoptedByAStandby() async throws {
    let cluster = RaftTestCluster(size: 4)
    addTeardownBlock { await cluster.shutdown() }
    let voters = Array(cluster.ids.prefix(3))
    let standby = cluster.ids[3]
    for id in voters { try await cluster.start(id, bootstrapVoters: voters) }
    try await cluster.start(standby, bootstrapVoters: [])
    let expected = ClusterIdentity.derived(fromVoters: voters)
    for id in voters {
      let clusterID = try await cluster.node(id).clusterID
      XCTAssertEqual(clusterID, expected)
    }
    let standbyBefore = try await cluster.node(standby).clusterID
    XCTAssertEqual(standbyBefore, ClusterIdentity.unknown)
    _ = try await cluster.propose(command(1))
    let leader = try await cluster.waitForLeader()
    try await cluster.node(leader).addMember(standby, timeout: .seconds(10))
    let adopted = try await cluster.node(standby).clusterID
    XCTAssertEqual(adopted, expected)
    await cluster.crash(standby)
    try await cluster.restart(standby)
    let afterRestart = try await cluster.node(standby).clusterID
    XCTAssertEqual(afterRestart, expected)
  }

  /// A bare snapshot message (with the right cluster id, from the leader's address, ahead of
  /// the follower) carries no image: installing it would fail and stop the node, so it is
  /// dropped; the follower keeps serving.
  func testASnapshotMessageOutsideAChunkTransferIsDroppedAndTheNodeKeepsServing() async throws {
    let cluster = RaftTestCluster(size: 3)
    addTeardownBlock { await cluster.shutdown() }
    try await cluster.startAll()
    _ = try await cluster.propose(command(1))
    let leader = try await cluster.waitForLeader()
    let follower = try XCTUnwrap(cluster.ids.first { $0 != leader })
    let node = try cluster.node(follower)
    let status = await node.status
    var forged = Message(kind: .snapshot, from: leader, to: follower, term: status.term)
    forged.snapshot = Snapshot(
      metadata: SnapshotMetadata(
        index: status.lastIndex + 100, term: status.term, membership: Membership(voters: cluster.ids)),
      data: [0, 0, 0, 0, 0, 0, 0, 1])
    let probe = cluster.network.transport(for: "intruder:1")
    _ = try await probe.call(
      follower.rawValue, method: WireRaftTransport.messagesMethod,
      payload: try RaftCodec.serialize([forged], clusterID: await node.clusterID), timeout: .seconds(2))
    _ = try await cluster.propose(command(2))
    try await cluster.waitForCommands([command(1), command(2)])
    let stopped = await node.snapshotsInstalled
    XCTAssertEqual(stopped, 0, "a snapshot without an image was installed")
  }

  func testABatchWithAnotherClusterIDIsDroppedAndTheSameBatchWithOursIsNot() async throws {
    let cluster = RaftTestCluster(size: 3)
    addTeardownBlock { await cluster.shutdown() }
    try await cluster.startAll()
    _ = try await cluster.propose(command(1))
    let leader = try await cluster.waitForLeader()
    let follower = try XCTUnwrap(cluster.ids.first { $0 != leader })
    let node = try cluster.node(follower)
    let ours = await node.clusterID
    let termBefore = await node.status.term
    // A heartbeat claiming to come from a member, in a much higher term.
    let forged = Message(kind: .heartbeat, from: leader, to: follower, term: termBefore + 50)
    let probe = cluster.network.transport(for: "intruder:1")
    _ = try await probe.call(
      follower.rawValue, method: WireRaftTransport.messagesMethod,
      payload: try RaftCodec.serialize([forged], clusterID: ours &+ 1), timeout: .seconds(2))
    let termAfterForeign = await node.status.term
    XCTAssertEqual(termAfterForeign, termBefore, "a foreign cluster id changed the term")
    // The control: with the right id the same message is stepped (the id is what stopped it).
    _ = try await probe.call(
      follower.rawValue, method: WireRaftTransport.messagesMethod,
      payload: try RaftCodec.serialize([forged], clusterID: ours), timeout: .seconds(2))
    let termAfterOurs = await node.status.term
    XCTAssertEqual(termAfterOurs, termBefore + 50)
  }

  func testSnapshotChunksWithoutAnEndAreCappedInTotalBytes() async throws {
    var options = RaftNodeOptions()
    options.tickInterval = .milliseconds(10)
    options.maxSnapshotBytesInFlight = 4 << 20
    let cluster = RaftTestCluster(size: 3, options: options)
    addTeardownBlock { await cluster.shutdown() }
    try await cluster.startAll()
    _ = try await cluster.propose(command(1))
    let leader = try await cluster.waitForLeader()
    let follower = try XCTUnwrap(cluster.ids.first { $0 != leader })
    let clusterID = try await cluster.node(follower).clusterID
    let probe = cluster.network.transport(for: "intruder:1")
    let piece = try Zstd.compress([UInt8](repeating: 7, count: 1 << 20))
    var refusedAt: UInt64?
    for sequence in UInt64(0)..<16 {
      let chunk = SnapshotChunk(
        from: leader, to: follower, term: 1, transferID: 42, sequence: sequence, data: piece,
        isLast: false, metadata: nil, clusterID: clusterID)
      do {
        _ = try await probe.call(
          follower.rawValue, method: WireRaftTransport.snapshotMethod,
          payload: try RaftCodec.serialize(chunk), timeout: .seconds(2))
      } catch RPCError.remote(_, let message) {
        XCTAssertTrue(message.contains("in flight"), message)
        refusedAt = sequence
        break
      }
    }
    XCTAssertEqual(refusedAt, 4, "the fifth MiB passes the 4 MiB cap")
    // A chunk from outside the group is refused before it is even decompressed.
    let outsider = SnapshotChunk(
      from: NodeID("intruder:1"), to: follower, term: 1, transferID: 43, sequence: 0, data: piece,
      isLast: false, metadata: nil, clusterID: clusterID)
    do {
      _ = try await probe.call(
        follower.rawValue, method: WireRaftTransport.snapshotMethod,
        payload: try RaftCodec.serialize(outsider), timeout: .seconds(2))
      XCTFail("a chunk from a non-member was accepted")
    } catch RPCError.remote(_, let message) {
      XCTAssertTrue(message.contains("not a member"), message)
    }
    _ = try await cluster.propose(command(2))
  }

  func testProposalsBeyondTheUncommittedLimitAreRefusedBusy() async throws {
    var options = RaftNodeOptions()
    options.tickInterval = .milliseconds(10)
    options.maxUncommittedBytes = 1000
    // No check-quorum: the leader keeps leading once its followers are gone.
    options.raft = RaftConfig(electionTicks: 10, heartbeatTicks: 2, checkQuorum: false, unreachableTicks: 20)
    let cluster = RaftTestCluster(size: 3, options: options)
    addTeardownBlock { await cluster.shutdown() }
    try await cluster.startAll()
    _ = try await cluster.propose(command(1))
    let leader = try await cluster.waitForLeader()
    // With both followers gone nothing commits: the backlog fills and then refuses.
    for id in cluster.ids where id != leader { await cluster.crash(id) }
    let node = try cluster.node(leader)
    let waiting = Task { try await node.propose([UInt8](repeating: 1, count: 600), timeout: .seconds(30)) }
    try await cluster.waitUntil("the first proposal to be held") {
      await node.uncommittedProposalBytes == 600
    }
    do {
      _ = try await node.propose([UInt8](repeating: 2, count: 600), timeout: .seconds(5))
      XCTFail("a proposal past the limit was taken")
    } catch .busy(let why) {
      XCTAssertTrue(why.contains("limit 1000"), why)
    }
    // Within the limit it is still taken (and waits, since nothing can commit).
    let small = Task { try await node.propose([UInt8](repeating: 3, count: 400), timeout: .seconds(30)) }
    try await cluster.waitUntil("the small proposal to be held") {
      await node.uncommittedProposalBytes == 1000
    }
    small.cancel()
    waiting.cancel()
  }

  func testABatchOfMillionsOfEmptyMessagesIsRefusedBeforeParsing() throws {
    // Field 1 (messages), length 0: two bytes per message.
    let bytes = [UInt8]((0..<(RaftCodec.maxMessagesPerBatch + 1)).lazy.flatMap { _ in [0x0A, 0x00] })
    XCTAssertThrowsError(try RaftCodec.deserializeBatch(bytes)) { error in
      XCTAssertTrue("\(error)".contains("exceeds \(RaftCodec.maxMessagesPerBatch)"), "\(error)")
    }
    let fine = try RaftCodec.deserializeBatch(Array(bytes.prefix(20)))
    XCTAssertEqual(fine.messages.count, 10)
  }
}
