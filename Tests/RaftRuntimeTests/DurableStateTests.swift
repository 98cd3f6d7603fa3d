import Storage
import XCTest

@testable import Raft

/// The rules that keep a node's log and state machine in agreement across a restart
/// (`DurableState.open`), checked one stored situation at a time. The kill-at-every-step test in
/// RaftNodeTests drives the same rules through a whole cluster.
final class DurableStateTests: XCTestCase {
  private let node = NodeID("n1:7000")
  private let members = Membership(voters: [NodeID("n1:7000"), NodeID("n2:7000"), NodeID("n3:7000")])
  private var directory: TemporaryDirectory!
  private var db: RocksDB!

  override func setUp() async throws {
    directory = TemporaryDirectory()
    db = try RocksDB(path: directory.path, columnFamilies: TestStateMachine.columnFamilies)
  }

  override func tearDown() async throws {
    db = nil
    directory.remove()
  }

  private func commands(_ indexes: ClosedRange<UInt64>) -> [Entry] {
    indexes.map { Entry(term: 1, index: $0, payload: .command([UInt8($0)])) }
  }

  /// A log holding entries 1...5, all applied by `stateMachine`.
  private func appliedLog(_ stateMachine: TestStateMachine) throws -> MemoryLogStorage {
    let log = MemoryLogStorage()
    try log.installSnapshot(SnapshotMetadata(index: 0, term: 0, membership: members))
    try log.save(hardState: HardState(term: 1, commit: 5), entries: commands(1...5), sync: true)
    _ = try stateMachine.apply(commands(1...5))
    return log
  }

  /// An image at index 10 holding one command.
  private func image() -> (SnapshotMetadata, ArrayReader) {
    let metadata = SnapshotMetadata(index: 10, term: 2, membership: members)
    let piece = BigEndian.bytes(UInt64(10)) + BigEndian.bytes(UInt32(1)) + [10]
    return (metadata, ArrayReader(index: 10, pieces: [piece]))
  }

  func testAnInstallWhoseRestoreLandedIsFinishedOnOpen() throws {
    let stateMachine = try TestStateMachine(db: db)
    let log = try appliedLog(stateMachine)
    let (metadata, image) = image()
    // Killed after the intent and the restore, before the log's new position.
    try log.beginSnapshotInstall(metadata)
    try stateMachine.restore(metadata, from: image)

    let opened = try DurableState(log: log, stateMachine: stateMachine, node: node)
      .open(bootstrapVoters: [], clusterID: nil)

    XCTAssertEqual(opened.restored.snapshot, metadata)
    XCTAssertEqual(opened.restored.entries, [], "entries the image holds would be applied again")
    XCTAssertEqual(opened.restored.applied, 10)
    XCTAssertNil(try log.load()?.pendingSnapshot)
  }

  func testAnInstallWhoseRestoreDidNotLandIsForgottenOnOpen() throws {
    let stateMachine = try TestStateMachine(db: db)
    let log = try appliedLog(stateMachine)
    let (metadata, _) = image()
    // Killed after the intent, before the restore.
    try log.beginSnapshotInstall(metadata)

    let opened = try DurableState(log: log, stateMachine: stateMachine, node: node)
      .open(bootstrapVoters: [], clusterID: nil)

    XCTAssertEqual(opened.restored.snapshot.index, 0)
    XCTAssertEqual(opened.restored.entries, commands(1...5))
    XCTAssertEqual(opened.restored.applied, 5)
    XCTAssertNil(try log.load()?.pendingSnapshot, "a forgotten install must not be finished later")
  }

  func testAStateMachineBehindTheCompactionPointIsRefused() throws {
    let stateMachine = try TestStateMachine(db: db)
    let log = MemoryLogStorage()
    try log.installSnapshot(SnapshotMetadata(index: 0, term: 0, membership: members))
    try log.save(hardState: HardState(term: 1, commit: 5), entries: commands(1...5), sync: true)
    try log.compact(through: SnapshotMetadata(index: 4, term: 1, membership: members))
    _ = try stateMachine.apply(commands(1...2))

    XCTAssertThrowsError(
      try DurableState(log: log, stateMachine: stateMachine, node: node)
        .open(bootstrapVoters: [], clusterID: nil)
    ) { error in
      guard case .storage(let message) = error as? RaftNodeError else {
        return XCTFail("expected a storage error, got \(error)")
      }
      XCTAssertTrue(message.contains("behind the log's compaction point"), message)
    }
  }

  func testTheThreeWritesOfAnInstallLeaveTheLogAtTheImage() async throws {
    let stateMachine = try TestStateMachine(db: db)
    let log = try appliedLog(stateMachine)
    let (metadata, image) = image()
    let durable = DurableState(log: log, stateMachine: stateMachine, node: node)

    try await durable.installSnapshot(metadata, from: image)

    XCTAssertEqual(stateMachine.appliedIndex, 10)
    XCTAssertEqual(try stateMachine.commands(), [[10]])
    let stored = try XCTUnwrap(try log.load())
    XCTAssertEqual(stored.snapshot, metadata)
    XCTAssertEqual(stored.entries, [])
    XCTAssertNil(stored.pendingSnapshot)
  }

  func testAnEmptyStoreBootstrapsFromItsVotersWithTheirClusterID() throws {
    let voters = members.voters
    let log = MemoryLogStorage()
    let opened = try DurableState(log: log, stateMachine: TestStateMachine(db: db), node: node)
      .open(bootstrapVoters: voters, clusterID: nil)

    XCTAssertEqual(opened.restored, .bootstrap(voters: voters))
    XCTAssertEqual(opened.clusterID, ClusterIdentity.derived(fromVoters: voters))
    XCTAssertEqual(try log.loadClusterID(), opened.clusterID, "the id must survive a restart")
  }

  func testAStandbyOpensWithoutAClusterID() throws {
    let log = MemoryLogStorage()
    let opened = try DurableState(log: log, stateMachine: TestStateMachine(db: db), node: node)
      .open(bootstrapVoters: [], clusterID: nil)

    XCTAssertEqual(opened.clusterID, ClusterIdentity.unknown)
    XCTAssertEqual(opened.restored.snapshot.membership, Membership())
  }
}
