import Raft
import XCTest

final class RaftCodecTests: XCTestCase {
  func testEveryMessageKindRoundTrips() throws {
    let members = Membership(voters: ["a:1", "b:1"], learners: ["c:1"])
    var messages: [Message] = []
    for kind in MessageKind.allCases {
      var m = Message(kind: kind, from: "a:1", to: "b:1", term: 7)
      m.logTerm = 6
      m.index = 41
      m.entries = [
        Entry(term: 6, index: 42, payload: .noop),
        Entry(term: 7, index: 43, payload: .command([1, 2, 3])),
        Entry(term: 7, index: 44, payload: .membership(members)),
      ]
      m.commit = 40
      m.reject = true
      m.rejectHint = 12
      m.conflictTerm = 3
      m.snapshot = Snapshot(metadata: SnapshotMetadata(index: 30, term: 5, membership: members))
      m.context = [9, 9]
      m.readRound = 77
      m.isTransfer = true
      messages.append(m)
    }
    let decoded = try RaftCodec.deserializeMessages(RaftCodec.serialize(messages))
    XCTAssertEqual(decoded, messages)
  }

  func testDurableRecordsRoundTrip() throws {
    let hardState = HardState(term: 3, vote: "x:1", commit: 9)
    XCTAssertEqual(try RaftCodec.deserializeHardState(RaftCodec.serialize(hardState)), hardState)
    XCTAssertEqual(try RaftCodec.deserializeHardState(RaftCodec.serialize(HardState())), HardState())
    let metadata = SnapshotMetadata(index: 5, term: 2, membership: Membership(voters: ["a:1"]))
    XCTAssertEqual(try RaftCodec.deserializeSnapshotMetadata(RaftCodec.serialize(metadata)), metadata)
    let chunk = SnapshotChunk(
      from: "a:1", to: "b:1", term: 4, transferID: 99, sequence: 3, data: [1, 2], isLast: true,
      metadata: metadata)
    XCTAssertEqual(try RaftCodec.deserializeSnapshotChunk(RaftCodec.serialize(chunk)), chunk)
  }

  func testGarbageIsATypedError() {
    for garbage: [UInt8] in [[0xFF], [0x0A, 0x05, 0x01], Array(repeating: 0xFF, count: 64)] {
      XCTAssertThrowsError(try RaftCodec.deserializeMessages(garbage)) { error in
        XCTAssertTrue(error is RaftCodecError, "\(error)")
      }
      XCTAssertThrowsError(try RaftCodec.deserializeEntry(garbage))
    }
  }
}
