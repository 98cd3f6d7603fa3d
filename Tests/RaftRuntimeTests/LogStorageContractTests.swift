import Raft
import Storage
import XCTest

/// The `LogStorage` contract, run against both implementations.
final class LogStorageContractTests: XCTestCase {
  private var directories: [TemporaryDirectory] = []

  override func tearDown() {
    directories.forEach { $0.remove() }
    directories.removeAll()
  }

  /// Each storage kind, with a way to "restart": the memory one keeps its instance, the
  /// RocksDB one closes and reopens the database.
  private func storages() throws -> [(name: String, open: () throws -> any LogStorage)] {
    let directory = TemporaryDirectory()
    directories.append(directory)
    let memory = MemoryLogStorage()
    nonisolated(unsafe) var db: RocksDB?
    return [
      ("memory", { memory }),
      (
        "rocksdb",
        {
          db?.close()
          let opened = try RocksDB(path: directory.path, columnFamilies: RocksLogStorage.columnFamilies)
          db = opened
          return try RocksLogStorage(db: opened)
        }
      ),
    ]
  }

  private func entry(_ index: UInt64, _ term: UInt64, _ byte: UInt8 = 0) -> Entry {
    Entry(term: term, index: index, payload: .command([byte]))
  }

  func testEmptyStorageLoadsNothing() throws {
    for (name, open) in try storages() {
      XCTAssertNil(try open().load(), name)
    }
  }

  func testSavedStateSurvivesRestart() throws {
    for (name, open) in try storages() {
      let storage = try open()
      let members = Membership(voters: ["a:1", "b:1"], learners: ["c:1"])
      try storage.save(
        hardState: HardState(term: 3, vote: "b:1", commit: 2),
        entries: [
          entry(1, 1), Entry(term: 2, index: 2, payload: .membership(members)),
          Entry(term: 3, index: 3, payload: .noop),
        ],
        sync: true)
      let loaded = try XCTUnwrap(try open().load(), name)
      XCTAssertEqual(loaded.hardState, HardState(term: 3, vote: "b:1", commit: 2), name)
      XCTAssertEqual(loaded.entries.map(\.index), [1, 2, 3], name)
      XCTAssertEqual(loaded.entries[1].payload, .membership(members), name)
      XCTAssertEqual(loaded.entries[2].payload, .noop, name)
    }
  }

  func testSavedEntriesReplaceTheSuffix() throws {
    for (name, open) in try storages() {
      let storage = try open()
      try storage.save(hardState: nil, entries: (1...6).map { entry($0, 1) }, sync: true)
      try storage.save(hardState: nil, entries: [entry(3, 2, 9), entry(4, 2, 9)], sync: true)
      let loaded = try XCTUnwrap(try open().load(), name)
      XCTAssertEqual(loaded.entries.map(\.index), [1, 2, 3, 4], name)
      XCTAssertEqual(loaded.entries.map(\.term), [1, 1, 2, 2], name)
      XCTAssertEqual(loaded.entries[2].payload, .command([9]), name)
    }
  }

  /// A storage that has not loaded since it opened still replaces the suffix an earlier
  /// process wrote (RocksLogStorage learns its last index from disk), and appends after a
  /// replaced suffix keep the log contiguous.
  func testAReopenedStorageReplacesTheSuffixAnEarlierOneWrote() throws {
    for (name, open) in try storages() {
      try open().save(hardState: nil, entries: (1...6).map { entry($0, 1) }, sync: true)
      try open().save(hardState: nil, entries: [entry(3, 2, 9)], sync: true)
      XCTAssertEqual(try open().load()?.entries.map(\.index), [1, 2, 3], name)
      let storage = try open()
      try storage.save(hardState: nil, entries: [entry(4, 2, 9)], sync: true)
      try storage.save(hardState: nil, entries: [entry(4, 3, 8), entry(5, 3, 8)], sync: true)
      try storage.save(hardState: nil, entries: [entry(6, 3, 8)], sync: true)
      let loaded = try XCTUnwrap(try open().load(), name)
      XCTAssertEqual(loaded.entries.map(\.index), [1, 2, 3, 4, 5, 6], name)
      XCTAssertEqual(loaded.entries.map(\.term), [1, 1, 2, 3, 3, 3], name)
    }
  }

  func testSavingOnlyHardStateKeepsEntries() throws {
    for (name, open) in try storages() {
      let storage = try open()
      try storage.save(hardState: HardState(term: 1), entries: [entry(1, 1)], sync: true)
      try storage.save(hardState: HardState(term: 2, vote: "a:1"), entries: [], sync: false)
      let loaded = try XCTUnwrap(try open().load(), name)
      XCTAssertEqual(loaded.hardState.term, 2, name)
      XCTAssertEqual(loaded.entries.count, 1, name)
    }
  }

  func testCompactionDropsThePrefixAndRecordsThePoint() throws {
    for (name, open) in try storages() {
      let storage = try open()
      try storage.save(hardState: nil, entries: (1...10).map { entry($0, $0 < 5 ? 1 : 2) }, sync: true)
      let point = SnapshotMetadata(index: 6, term: 2, membership: Membership(voters: ["a:1"]))
      try storage.compact(through: point)
      let loaded = try XCTUnwrap(try open().load(), name)
      XCTAssertEqual(loaded.snapshot, point, name)
      XCTAssertEqual(loaded.entries.map(\.index), [7, 8, 9, 10], name)
    }
  }

  func testInstallingASnapshotReplacesTheLog() throws {
    for (name, open) in try storages() {
      let storage = try open()
      try storage.save(
        hardState: HardState(term: 1, commit: 2), entries: (1...5).map { entry($0, 1) }, sync: true)
      let point = SnapshotMetadata(index: 40, term: 4, membership: Membership(voters: ["a:1", "b:1"]))
      try storage.installSnapshot(point)
      let loaded = try XCTUnwrap(try open().load(), name)
      XCTAssertEqual(loaded.snapshot, point, name)
      XCTAssertEqual(loaded.entries, [], name)
      XCTAssertEqual(loaded.hardState.commit, 40, name)
      // The log continues after the snapshot.
      try open().save(hardState: nil, entries: [entry(41, 4)], sync: true)
      XCTAssertEqual(try open().load()?.entries.map(\.index), [41], name)
    }
  }

  func testABegunSnapshotInstallIsReportedUntilItIsInstalledOrForgotten() throws {
    for (name, open) in try storages() {
      try open().save(hardState: HardState(term: 1), entries: (1...3).map { entry($0, 1) }, sync: true)
      let point = SnapshotMetadata(index: 30, term: 2, membership: Membership(voters: ["a:1"]))
      try open().beginSnapshotInstall(point)
      let begun = try XCTUnwrap(try open().load(), name)
      XCTAssertEqual(begun.pendingSnapshot, point, name)
      XCTAssertEqual(begun.entries.map(\.index), [1, 2, 3], "\(name): beginning an install changed the log")
      try open().installSnapshot(point)
      XCTAssertNil(try open().load()?.pendingSnapshot, "\(name): an installed snapshot is still pending")
      try open().beginSnapshotInstall(point)
      try open().beginSnapshotInstall(nil)
      XCTAssertNil(try open().load()?.pendingSnapshot, "\(name): a forgotten install is still pending")
    }
  }
}
