import Foundation
import Raft
import Storage
import SwiftProtobuf
import Synchronization
import Wire
import XCTest

@testable import ShardCtrler

final class ControllerStateMachineTests: XCTestCase {
  var root = ""

  override func setUp() {
    root = FileManager.default.temporaryDirectory.appendingPathComponent("ctrlsm-\(UUID().uuidString)").path
    try? FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
  }

  override func tearDown() {
    try? FileManager.default.removeItem(atPath: root)
  }

  func open(
    _ name: String, shardCount: Int = 8, sessionTimeout: Duration = .seconds(3600)
  ) throws -> (RocksDB, ControllerStateMachine) {
    let db = try RocksDB(path: root + "/" + name, columnFamilies: ControllerStateMachine.columnFamilies)
    let options = ControllerStateMachine.Options(
      shardCount: shardCount, sessionTimeout: sessionTimeout, sessionSweepInterval: 1)
    return (db, try ControllerStateMachine(db: db, options: options))
  }

  func command(
    _ op: Shardkv_Ctrler_CtrlerRequest.OneOf_Op, client: UInt64 = 1, sequence: UInt64, shardCount: UInt32 = 8,
    stampMs: UInt64 = 1000
  ) -> [UInt8] {
    var command = Shardkv_Ctrler_Command()
    command.request.op = op
    command.request.clientID = client
    command.request.sequence = sequence
    command.shardCount = shardCount
    command.stampMs = stampMs
    return (try? command.serializedBytes()) ?? []
  }

  func join(_ gid: GroupID, _ members: [String]? = nil) -> Shardkv_Ctrler_CtrlerRequest.OneOf_Op {
    var join = Shardkv_Ctrler_JoinOp()
    join.groups = [gid: Shardkv_Ctrler_Members(members ?? ["m\(gid)"])]
    return .join(join)
  }

  func entries(_ commands: [[UInt8]], from index: UInt64 = 1) -> [Entry] {
    commands.enumerated().map {
      Entry(term: 1, index: index + UInt64($0.offset), payload: .command($0.element))
    }
  }

  func testAppliedStateSurvivesReopeningAndRetriesAnswerFromTheSession() throws {
    var (db, machine) = try open("a")
    let results = try machine.apply(entries([command(join(1), sequence: 1), command(join(2), sequence: 2)]))
    XCTAssertEqual(try Shardkv_Ctrler_CtrlerReply(serializedBytes: results[1]).config.num, 2)
    db.close()
    (db, machine) = try open("a")
    XCTAssertEqual(machine.appliedIndex, 2)
    XCTAssertEqual(machine.latestNum, 2)
    XCTAssertEqual(Set(machine.configuration(-1).groups.keys), [1, 2])
    // The same (client, sequence) again: the stored reply, no new configuration.
    let retry = try machine.apply(entries([command(join(2), sequence: 2)], from: 3))
    let reply = try Shardkv_Ctrler_CtrlerReply(serializedBytes: retry[0])
    XCTAssertEqual(reply.error, .ok)
    XCTAssertEqual(reply.config.num, 2)
    XCTAssertEqual(machine.latestNum, 2)
    db.close()
  }

  func testFirstCommandFixesTheShardCount() throws {
    let (db, machine) = try open("b", shardCount: 64)
    _ = try machine.apply(entries([command(join(1), sequence: 1, shardCount: 16)]))
    XCTAssertEqual(machine.shardCount, 16)
    XCTAssertEqual(machine.configuration(0).shardCount, 16)
    _ = try machine.apply(entries([command(join(2), sequence: 2, shardCount: 32)], from: 2))
    XCTAssertEqual(machine.configuration(-1).shardCount, 16)
    db.close()
  }

  func testSnapshotRestoresEveryConfigurationAndSession() throws {
    let (db, machine) = try open("c")
    let commands = (1...300).map { command(join(GroupID($0)), sequence: UInt64($0)) }
    _ = try machine.apply(entries(commands))
    let reader = try machine.makeSnapshot()
    var pieces: [[UInt8]] = []
    while let piece = try reader.nextPiece() { pieces.append(piece) }
    XCTAssertGreaterThan(pieces.count, 1, "300 configurations should span pieces")

    let (otherDB, other) = try open("d", shardCount: 99)
    try other.restore(
      SnapshotMetadata(index: reader.index, term: 1, membership: Membership(voters: [])),
      from: PiecesReader(pieces))
    XCTAssertEqual(other.appliedIndex, 300)
    XCTAssertEqual(other.shardCount, 8)
    for num in Int64(0)...300 { XCTAssertEqual(other.configuration(num), machine.configuration(num)) }
    // Sessions came along: a retry of the last write answers from the session.
    let retry = try other.apply(entries([command(join(300), sequence: 300)], from: 301))
    XCTAssertEqual(try Shardkv_Ctrler_CtrlerReply(serializedBytes: retry[0]).error, .ok)
    XCTAssertEqual(other.latestNum, 300)
    db.close()
    otherDB.close()
  }

  func publication(_ machine: ControllerStateMachine, _ peer: String, _ api: String) throws -> [UInt8] {
    var entry = Shardkv_MemberAddress()
    entry.peer = peer
    entry.api = api
    return try machine.publicationCommand(entry)
  }

  /// A replica's address publication goes into the member directory (kept on disk, in
  /// snapshots, pruned by membership entries) and does not fix the shard count: the first
  /// client command still does.
  func testMemberDirectoryIsReplicatedStateThatLeavesTheShardCountAlone() throws {
    var (db, machine) = try open("g", shardCount: 64)
    _ = try machine.apply(
      entries([try publication(machine, "c0:peer", "c0:api"), try publication(machine, "c1:peer", "c1:api")]))
    XCTAssertEqual(machine.apiAddress(of: "c1:peer"), "c1:api")
    _ = try machine.apply(entries([command(join(1), sequence: 1, shardCount: 16)], from: 3))
    XCTAssertEqual(machine.shardCount, 16, "the first client command fixes the shard count")
    let reader = try machine.makeSnapshot()
    var pieces: [[UInt8]] = []
    while let piece = try reader.nextPiece() { pieces.append(piece) }
    let (otherDB, other) = try open("h")
    try other.restore(
      SnapshotMetadata(index: reader.index, term: 1, membership: Membership()), from: PiecesReader(pieces))
    XCTAssertEqual(other.memberDirectory, machine.memberDirectory)
    otherDB.close()
    _ = try machine.apply([Entry(term: 1, index: 4, payload: .membership(Membership(voters: ["c0:peer"])))])
    XCTAssertNil(machine.apiAddress(of: "c1:peer"), "c1 was removed")
    db.close()
    (db, machine) = try open("g")
    XCTAssertEqual(machine.memberDirectory.all.map(\.peer), ["c0:peer"])
    db.close()
  }

  func testUndecodableCommandIsRejectedAndStateUnchanged() throws {
    let (db, machine) = try open("e")
    let results = try machine.apply(entries([[0xFF, 0xFF, 0xFF]]))
    XCTAssertEqual(try Shardkv_Ctrler_CtrlerReply(serializedBytes: results[0]).error, .invalidArgument)
    XCTAssertEqual(machine.appliedIndex, 1)
    XCTAssertEqual(machine.latestNum, 0)
    db.close()
  }

  func testIdleSessionsExpireByLogTimeAndStayExpiredAfterReopening() throws {
    var (db, machine) = try open("f", sessionTimeout: .seconds(10))
    _ = try machine.apply(
      entries([
        command(join(1), client: 1, sequence: 1, stampMs: 1_000),
        command(join(2), client: 2, sequence: 1, stampMs: 8_000),
      ]))
    XCTAssertEqual(machine.sessionCount, 2)
    // At log time 15 s client 1 has been idle 14 s (> 10 s) and client 2 only 7 s.
    _ = try machine.apply(entries([command(join(3), client: 3, sequence: 1, stampMs: 15_000)], from: 3))
    XCTAssertEqual(machine.sessionCount, 2)
    db.close()
    (db, machine) = try open("f", sessionTimeout: .seconds(10))
    XCTAssertEqual(machine.sessionCount, 2, "the expiry was written to disk")
    db.close()
  }
}

/// An image already in memory, read back one piece at a time (as `restore` reads a staged one).
private final class PiecesReader: SnapshotReader {
  let index: UInt64 = 0
  private let pieces: Mutex<[[UInt8]]>

  init(_ pieces: [[UInt8]]) { self.pieces = Mutex(pieces.reversed()) }

  func nextPiece() throws -> [UInt8]? { pieces.withLock { $0.popLast() } }
}
