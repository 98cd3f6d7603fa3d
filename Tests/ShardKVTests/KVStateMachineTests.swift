import Foundation
import Raft
import ShardCtrler
import Storage
import SwiftProtobuf
import Synchronization
import Wire
import XCTest

@testable import ShardKV

final class KVStateMachineTests: XCTestCase {
  private var path = ""
  private var db: RocksDB?
  private var index: UInt64 = 0

  override func setUp() {
    path = FileManager.default.temporaryDirectory.appendingPathComponent("kvsm-\(UUID().uuidString)").path
    index = 0
  }

  override func tearDown() {
    db?.close()
    try? FileManager.default.removeItem(atPath: path)
  }

  private func open(
    _ options: KVStateMachine.Options = .init(), at path: String? = nil
  ) throws
    -> KVStateMachine
  {
    db?.close()
    let opened = try RocksDB(path: path ?? self.path, columnFamilies: KVStateMachine.columnFamilies)
    db = opened
    return try KVStateMachine(db: opened, options: options)
  }

  private func command(
    _ op: Shardkv_KvOp, _ key: String, _ value: String = "", client: UInt64 = 0, sequence: UInt64 = 0,
    stamp: UInt64 = 0
  ) throws -> Entry {
    var request = Shardkv_KvRequest()
    request.op = op
    request.key = Data(key.utf8)
    request.value = Data(value.utf8)
    request.clientID = client
    request.sequence = sequence
    var command = Shardkv_Group_Command()
    command.request = request
    command.stampMs = stamp
    index += 1
    return Entry(term: 1, index: index, payload: .command(try command.serializedBytes()))
  }

  @discardableResult
  private func apply(_ sm: KVStateMachine, _ entries: Entry...) throws -> [Shardkv_KvReply] {
    try sm.apply(entries).map { try Shardkv_KvReply(serializedBytes: $0) }
  }

  private func value(_ sm: KVStateMachine, _ key: String) throws -> String? {
    try sm.localValue(for: Array(key.utf8)).map { String(decoding: $0, as: UTF8.self) }
  }

  func testPutAppendGetDelete() throws {
    let sm = try open()
    try apply(sm, try command(.put, "a", "1"), try command(.append, "a", "2"), try command(.append, "b", "x"))
    XCTAssertEqual(try value(sm, "a"), "12")
    XCTAssertEqual(try value(sm, "b"), "x", "append on a missing key acts as put")
    let get = try apply(sm, try command(.get, "a"), try command(.get, "missing"))
    XCTAssertEqual(get[0].error, .ok)
    XCTAssertEqual(get[0].value, Data("12".utf8))
    XCTAssertEqual(get[1].error, .noKey)
    let deleted = try apply(sm, try command(.delete, "a"), try command(.delete, "never-there"))
    XCTAssertEqual(deleted.map(\.error), [.ok, .ok])
    XCTAssertNil(try value(sm, "a"))
    XCTAssertEqual(sm.appliedIndex, index)
  }

  func testARetriedWriteExecutesOnceAndAnOlderOneNever() throws {
    let sm = try open()
    let first = try apply(sm, try command(.append, "k", "x", client: 7, sequence: 1))
    let retry = try apply(sm, try command(.append, "k", "x", client: 7, sequence: 1))
    XCTAssertEqual(first, retry)
    XCTAssertEqual(try value(sm, "k"), "x")
    try apply(sm, try command(.append, "k", "y", client: 7, sequence: 2))
    try apply(sm, try command(.append, "k", "z", client: 7, sequence: 1))
    XCTAssertEqual(try value(sm, "k"), "xy")
    // Another client's sequence numbers are its own.
    try apply(sm, try command(.append, "k", "w", client: 8, sequence: 1))
    XCTAssertEqual(try value(sm, "k"), "xyw")
  }

  func testDuplicatesInsideOneBatchSeeEarlierWrites() throws {
    let sm = try open()
    try apply(
      sm, try command(.append, "k", "a", client: 1, sequence: 1),
      try command(.append, "k", "a", client: 1, sequence: 1), try command(.append, "k", "b"))
    XCTAssertEqual(try value(sm, "k"), "ab")
  }

  func testBadInputGetsAClearErrorAndChangesNothing() throws {
    let sm = try open(.init(limits: KVLimits(maxKeyBytes: 8, maxValueBytes: 4)))
    let replies = try apply(
      sm, try command(.put, "", "v"), try command(.put, "much-too-long", "v"),
      try command(.put, "k", "12345"), try command(.unspecified, "k", "v"))
    XCTAssertEqual(
      replies.map(\.error), [.invalidArgument, .invalidArgument, .invalidArgument, .invalidArgument])
    XCTAssertTrue(replies[0].message.contains("empty"), replies[0].message)
    XCTAssertTrue(replies[2].message.contains("limit is 4"), replies[2].message)
    XCTAssertNil(try value(sm, "k"))
    index += 1
    let garbage = try sm.apply([Entry(term: 1, index: index, payload: .command([0xFF, 0xFF]))])
    XCTAssertEqual(try Shardkv_KvReply(serializedBytes: garbage[0]).error, .invalidArgument)
    XCTAssertEqual(sm.appliedIndex, index, "a bad command still advances the applied index")
  }

  func testDataSessionsAndAppliedIndexSurviveReopening() throws {
    var sm = try open()
    try apply(
      sm, try command(.put, "a", "1", client: 3, sequence: 5), Entry(term: 1, index: 2, payload: .noop))
    index = 2
    sm = try open()
    XCTAssertEqual(sm.appliedIndex, 2)
    XCTAssertEqual(try value(sm, "a"), "1")
    try apply(sm, try command(.put, "a", "2", client: 3, sequence: 5))
    XCTAssertEqual(try value(sm, "a"), "1", "the reopened session still deduplicates")
  }

  func testKeysAreStoredUnderTheirShard() throws {
    let sm = try open()
    try apply(sm, try command(.put, "user:{9}:name", "v"))
    let db = try XCTUnwrap(self.db)
    let rows = try db.scan(try db.columnFamily("kv"), prefix: [])
    let shard = UInt32(sm.options.shardMap.shard(of: Array("9".utf8)))
    XCTAssertEqual(rows.map(\.key), [BigEndian.bytes(shard) + Array("user:{9}:name".utf8)])
  }

  func testIdleSessionsExpireByLogTime() throws {
    let sm = try open(.init(sessionTimeout: .seconds(10), sessionSweepInterval: 1))
    try apply(sm, try command(.put, "a", "1", client: 1, sequence: 1, stamp: 1_000))
    try apply(sm, try command(.put, "b", "1", client: 2, sequence: 1, stamp: 9_000))
    XCTAssertEqual(sm.sessionCount, 2)
    try apply(sm, try command(.put, "c", "1", client: 3, sequence: 1, stamp: 15_000))
    XCTAssertEqual(sm.sessionCount, 2, "client 1, idle for 14 s, is dropped; 2 and 3 stay")
    try apply(sm, try command(.put, "a", "2", client: 1, sequence: 1, stamp: 16_000))
    XCTAssertEqual(try value(sm, "a"), "2", "an expired session starts over")
  }

  private func publication(_ sm: KVStateMachine, _ peer: String, _ api: String) throws -> Entry {
    var entry = Shardkv_MemberAddress()
    entry.peer = peer
    entry.api = api
    index += 1
    return Entry(term: 1, index: index, payload: .command(try sm.publicationCommand(entry)))
  }

  private func membership(_ members: [String]) -> Entry {
    index += 1
    return Entry(term: 1, index: index, payload: .membership(Membership(voters: members.map { NodeID($0) })))
  }

  /// The member directory: published addresses are applied, a later one wins, unrecordable
  /// ones are ignored, a membership entry drops non-members, and it all survives reopening.
  func testMemberDirectoryFollowsPublicationsAndMembershipAndSurvivesReopening() throws {
    var sm = try open()
    try apply(
      sm, try publication(sm, "a:peer", "a:api"), try publication(sm, "b:peer", "b:api-old"),
      try publication(sm, "b:peer", "b:api"), try publication(sm, "c:peer", "c:api"),
      try publication(sm, "d:peer", "has space:1"), try publication(sm, "", "e:api"))
    XCTAssertEqual(sm.apiAddress(of: "a:peer"), "a:api")
    XCTAssertEqual(sm.apiAddress(of: "b:peer"), "b:api", "the latest publication wins")
    XCTAssertNil(sm.apiAddress(of: "d:peer"), "an address that is not HOST:PORT is not recorded")
    XCTAssertEqual(sm.memberDirectory.count, 3)
    try apply(sm, membership(["a:peer", "b:peer"]))
    XCTAssertNil(sm.apiAddress(of: "c:peer"), "a membership entry without c drops it")
    XCTAssertEqual(sm.appliedIndex, index)
    sm = try open()
    XCTAssertEqual(sm.memberDirectory.all.map(\.peer), ["a:peer", "b:peer"])
    XCTAssertEqual(sm.apiAddress(of: "b:peer"), "b:api")
    XCTAssertNil(sm.apiAddress(of: "c:peer"), "the removal was written to disk")
  }

  /// A snapshot carries the member directory; installing it replaces the target's own.
  func testSnapshotCarriesTheMemberDirectory() throws {
    let source = try open()
    try apply(source, try publication(source, "a:peer", "a:api"), try publication(source, "b:peer", "b:api"))
    let reader = try source.makeSnapshot()
    var pieces: [[UInt8]] = []
    while let piece = try reader.nextPiece() { pieces.append(piece) }

    let otherPath = path + "-copy"
    defer { try? FileManager.default.removeItem(atPath: otherPath) }
    var target = try open(at: otherPath)
    index = 0
    try apply(target, try publication(target, "stale:peer", "stale:api"))
    try target.restore(
      SnapshotMetadata(index: reader.index, term: 1, membership: Membership()), from: PiecesReader(pieces))
    XCTAssertEqual(target.memberDirectory, source.memberDirectory)
    target = try open(at: otherPath)
    XCTAssertEqual(
      target.memberDirectory.all.map(\.api), ["a:api", "b:api"], "installed on disk, stale entry gone")
  }

  func testSnapshotRestoresDataSessionsAndIndexElsewhere() throws {
    let source = try open()
    for i in 0..<3_000 {
      try apply(
        source,
        try command(.put, "key-\(i)", String(repeating: "v", count: 300), client: 1, sequence: UInt64(i + 1)))
    }
    let reader = try source.makeSnapshot()
    var pieces: [[UInt8]] = []
    while let piece = try reader.nextPiece() { pieces.append(piece) }
    XCTAssertGreaterThan(pieces.count, 1, "a large image comes in several pieces")
    XCTAssertEqual(reader.index, source.appliedIndex)
    // Writes after the snapshot are not in it.
    try apply(source, try command(.put, "late", "x"))

    let otherPath = path + "-copy"
    defer { try? FileManager.default.removeItem(atPath: otherPath) }
    let target = try open(at: otherPath)
    try apply(target, Entry(term: 1, index: 1, payload: .noop))
    try target.restore(
      SnapshotMetadata(index: reader.index, term: 1, membership: Membership()), from: PiecesReader(pieces))
    XCTAssertEqual(target.appliedIndex, reader.index)
    XCTAssertEqual(try value(target, "key-2999")?.count, 300)
    XCTAssertNil(try value(target, "late"))
    XCTAssertEqual(target.sessionCount, 1)
    index = reader.index
    try apply(target, try command(.put, "key-0", "changed", client: 1, sequence: 3_000))
    XCTAssertEqual(try value(target, "key-0")?.count, 300, "the restored session deduplicates")
  }

  // MARK: - Shards (a sharded group's state machine)

  private func entry(_ command: Shardkv_Group_Command) throws -> Entry {
    index += 1
    return Entry(term: 1, index: index, payload: .command(try command.serializedBytes()))
  }

  private func reconfigure(_ num: UInt64, _ shards: [UInt64]) throws -> Entry {
    var groups: [UInt64: [String]] = [:]
    for gid in Set(shards) where gid != 0 { groups[gid] = ["g\(gid)"] }
    var command = Shardkv_Group_Command()
    command.reconfigure.config = ShardConfiguration(num: num, shards: shards, groups: groups).message
    return try entry(command)
  }

  private func install(
    _ shard: Int, config: UInt64, sequence: UInt64, from reply: Shardkv_Group_PullShardReply
  ) throws -> Entry {
    var command = Shardkv_Group_Command()
    command.installShard.shard = UInt32(shard)
    command.installShard.configNum = config
    command.installShard.sequence = sequence
    command.installShard.resumeAfter = reply.resumeAfter
    command.installShard.page = reply.page
    command.installShard.last = reply.last
    return try entry(command)
  }

  /// Keys of `shard` among key-0 ... key-(n-1), for a map of `count` shards.
  private func keys(in shard: Int, count: Int, among n: Int = 400) -> [String] {
    (0..<n).map { "key-\($0)" }.filter { ShardMap(shardCount: count).shard(of: Array($0.utf8)) == shard }
  }

  /// A shard handed off by one group is pulled page by page into another: a page applied
  /// twice takes effect once, the shard serves only after its last page, the sessions come
  /// along, and the old copy is deleted only for the configuration it was handed off in.
  func testAShardMovesPageByPageWithItsSessions() throws {
    let oldOwner = try open(.init(group: 1))
    try apply(oldOwner, try reconfigure(1, [1, 1]))
    let moving = keys(in: 1, count: 2)
    for (i, key) in moving.enumerated() {
      try apply(
        oldOwner,
        try command(.put, key, String(repeating: "v", count: 100), client: 7, sequence: UInt64(i + 1)))
    }
    let replies = try apply(oldOwner, try command(.put, moving[0], "x", client: 1, sequence: 1))
    XCTAssertEqual(replies[0].error, .ok)
    XCTAssertEqual(try oldOwner.page(of: 1, handedOffIn: 2, after: nil, maxBytes: 1000).error, .notReady)
    try apply(oldOwner, try reconfigure(2, [1, 2]))
    XCTAssertEqual(oldOwner.shardTable.handingOff, [1])
    // Frozen: a write to the shard is refused and changes nothing.
    let refused = try apply(oldOwner, try command(.put, moving[1], "late", client: 9, sequence: 1))
    XCTAssertEqual(refused[0].error, .wrongGroup)
    XCTAssertEqual(refused[0].ownerGroup, 2)
    XCTAssertEqual(refused[0].ownerServers, ["g2"])

    let newPath = path + "-new"
    defer { try? FileManager.default.removeItem(atPath: newPath) }
    let newDB = try RocksDB(path: newPath, columnFamilies: KVStateMachine.columnFamilies)
    defer { newDB.close() }
    let newOwner = try KVStateMachine(db: newDB, options: .init(group: 2))
    let saved = index
    index = 0
    try apply(newOwner, try reconfigure(1, [1, 1]))
    try apply(newOwner, try reconfigure(2, [1, 2]))
    XCTAssertEqual(newOwner.shardTable.pulling, [1])
    XCTAssertEqual(try newOwner.read(Array(moving[0].utf8)).error, .shardNotReady)

    var after: [UInt8]? = nil
    var sequence: UInt64 = 0
    var pages = 0
    while true {
      let page = try oldOwner.page(of: 1, handedOffIn: 2, after: after, maxBytes: 1000)
      XCTAssertEqual(page.error, .ok)
      let entry = try install(1, config: 2, sequence: sequence, from: page)
      _ = try newOwner.apply([entry])
      _ = try newOwner.apply([entry])  // a duplicate proposal of the same page
      pages += 1
      sequence += 1
      after = [UInt8](page.resumeAfter)
      if page.last { break }
      XCTAssertEqual(try newOwner.read(Array(moving[0].utf8)).error, .shardNotReady)
    }
    XCTAssertGreaterThan(pages, 3, "a shard larger than a page comes in several")
    XCTAssertEqual(newOwner.shardTable.access(shard: 1), .serve)
    for key in moving.dropFirst() {
      XCTAssertEqual(try newOwner.read(Array(key.utf8)).value.count, 100, key)
    }
    XCTAssertEqual(try newOwner.read(Array(moving[0].utf8)).value, Data("x".utf8))
    // The sessions came along: client 7's last write is not executed again.
    let retried = try apply(
      newOwner, try command(.put, moving[1], "again", client: 7, sequence: UInt64(moving.count)))
    XCTAssertEqual(retried[0].error, .ok)
    XCTAssertEqual(try newOwner.read(Array(moving[1].utf8)).value.count, 100)

    index = saved
    var stale = Shardkv_Group_Command()
    stale.deleteShard.shard = 1
    stale.deleteShard.configNum = 1
    _ = try oldOwner.apply([try entry(stale)])
    XCTAssertEqual(oldOwner.shardTable.handingOff, [1], "a delete for another configuration is ignored")
    var delete = Shardkv_Group_Command()
    delete.deleteShard.shard = 1
    delete.deleteShard.configNum = 2
    _ = try oldOwner.apply([try entry(delete)])
    XCTAssertTrue(oldOwner.shardTable.isSettled)
    XCTAssertEqual(try oldOwner.storedSize(of: 1).keys, 0)
    XCTAssertNil(try oldOwner.localValue(for: Array(moving[0].utf8)))
    XCTAssertEqual(try oldOwner.page(of: 1, handedOffIn: 2, after: nil, maxBytes: 1000).error, .notHeld)
  }

  /// The shard table is durable with the data, travels in snapshots, and a data directory
  /// refuses to open as another group.
  func testShardTableSurvivesRestartAndSnapshotAndKeepsItsGroup() throws {
    var machine = try open(.init(group: 3))
    try apply(machine, try reconfigure(1, [3, 3, 0, 3]))
    let key = try XCTUnwrap(keys(in: 0, count: 4).first)
    XCTAssertEqual(try apply(machine, try command(.put, key, "v"))[0].error, .ok)
    let table = machine.shardTable
    machine = try open(.init(group: 3))
    XCTAssertEqual(machine.shardTable, table)
    XCTAssertThrowsError(try open(.init(group: 4))) {
      XCTAssertEqual($0 as? KVStateError, .wrongGroup(stored: 3, configured: 4))
    }
    XCTAssertThrowsError(try open(.init())) {
      XCTAssertEqual($0 as? KVStateError, .wrongGroup(stored: 3, configured: 0))
    }
    machine = try open(.init(group: 3))
    let reader = try machine.makeSnapshot()
    var pieces: [[UInt8]] = []
    while let piece = try reader.nextPiece() { pieces.append(piece) }
    let otherPath = path + "-copy"
    defer { try? FileManager.default.removeItem(atPath: otherPath) }
    let target = try open(.init(group: 3), at: otherPath)
    try target.restore(
      SnapshotMetadata(index: reader.index, term: 1, membership: Membership()), from: PiecesReader(pieces))
    XCTAssertEqual(target.shardTable, table)
    XCTAssertEqual(try value(target, key), "v")
  }

  /// `restore` writes the image piece by piece into the spare data family and switches to it
  /// in one batch. One cut short after some pieces (as a crash would cut it) leaves the old
  /// state and applied index, also after a reopen, which empties the partial image; a complete
  /// one replaces everything and survives a reopen; the next one switches back to `kv`.
  func testARestoreCutShortLeavesTheOldStateAndCompleteOnesAlternateFamilies() throws {
    let source = try open()
    for i in 0..<3_000 {
      try apply(
        source,
        try command(.put, "new-\(i)", String(repeating: "n", count: 300), client: 1, sequence: UInt64(i + 1)))
    }
    let reader = try source.makeSnapshot()
    var pieces: [[UInt8]] = []
    while let piece = try reader.nextPiece() { pieces.append(piece) }
    XCTAssertGreaterThan(pieces.count, 1, "the image spans pieces")
    let metadata = SnapshotMetadata(index: reader.index, term: 1, membership: Membership())
    XCTAssertEqual(metadata.index, 3_000)

    let targetPath = path + "-target"
    defer { try? FileManager.default.removeItem(atPath: targetPath) }
    index = 0
    var target = try open(at: targetPath)
    try apply(target, try command(.put, "old", "o"))
    func rows(_ family: String) throws -> Int {
      let db = try XCTUnwrap(self.db)
      return try db.scan(try db.columnFamily(family), prefix: []).count
    }

    XCTAssertThrowsError(try target.restore(metadata, from: PiecesReader(pieces, failingAfter: 1)))
    XCTAssertGreaterThan(try rows("kv_b"), 0, "the cut-short restore wrote its first pieces")
    for reopened in [false, true] {
      if reopened { target = try open(at: targetPath) }
      XCTAssertEqual(target.appliedIndex, 1, "reopened: \(reopened)")
      XCTAssertEqual(try value(target, "old"), "o", "reopened: \(reopened)")
      XCTAssertNil(try value(target, "new-0"), "reopened: \(reopened)")
    }
    XCTAssertEqual(try rows("kv_b"), 0, "opening empties the partial image")

    try target.restore(metadata, from: PiecesReader(pieces))
    for reopened in [false, true] {
      if reopened { target = try open(at: targetPath) }
      XCTAssertEqual(target.appliedIndex, 3_000, "reopened: \(reopened)")
      XCTAssertNil(try value(target, "old"), "reopened: \(reopened)")
      XCTAssertEqual(try value(target, "new-2999")?.count, 300, "reopened: \(reopened)")
      XCTAssertEqual(target.sessionCount, 1, "reopened: \(reopened)")
    }
    XCTAssertEqual(try rows("kv"), 0, "the old family was emptied")
    XCTAssertEqual(try rows("kv_b"), 3_000)

    index = 3_000
    try apply(target, try command(.put, "after", "a"))
    try target.restore(metadata, from: PiecesReader(pieces))
    target = try open(at: targetPath)
    XCTAssertEqual(target.appliedIndex, 3_000)
    XCTAssertNil(try value(target, "after"))
    XCTAssertEqual(try value(target, "new-0")?.count, 300)
    XCTAssertEqual(try rows("kv"), 3_000)
    XCTAssertEqual(try rows("kv_b"), 0)
  }
}

/// An image already in memory, read back one piece at a time (as `restore` reads a staged one);
/// optionally it fails after some pieces, as a crash would cut a restore short.
private final class PiecesReader: SnapshotReader {
  struct CutShort: Error {}
  let index: UInt64 = 0
  private let state: Mutex<(pieces: [[UInt8]], left: Int)>

  init(_ pieces: [[UInt8]], failingAfter limit: Int = .max) {
    state = Mutex((pieces.reversed(), limit))
  }

  func nextPiece() throws -> [UInt8]? {
    try state.withLock { state throws -> [UInt8]? in
      guard state.left > 0 else { throw CutShort() }
      state.left -= 1
      return state.pieces.popLast()
    }
  }
}
