import Linearizability
import XCTest

/// Acknowledged writes missing from the final values, and the writes that could legitimately
/// have been overwritten.
final class LostWritesTests: XCTestCase {
  private func op(
    _ kind: RecordedOperation.Kind, _ value: String = "", _ call: UInt64, _ returned: UInt64?,
    key: String = "k"
  ) -> RecordedOperation {
    RecordedOperation(client: 0, kind: kind, key: key, value: value, call: call, returned: returned)
  }

  func testAnAcknowledgedAppendMissingFromTheFinalValueIsLost() {
    let history = [op(.put, "a;", 0, 1), op(.append, "b;", 2, 3), op(.append, "c;", 4, 5)]
    XCTAssertEqual(LostWrites.find(in: history, finalValues: ["k": "a;c;"]).map(\.value), ["b;"])
    XCTAssertEqual(LostWrites.find(in: history, finalValues: ["k": "a;b;c;"]), [])
  }

  func testAWriteAPutOrDeleteMayFollowIsNotJudged() {
    // The delete ran concurrently with the append (and an unknown put may come any time
    // after its call): either may have been ordered after it.
    let concurrent = [op(.append, "b;", 2, 5), op(.delete, "", 3, 4)]
    XCTAssertEqual(LostWrites.find(in: concurrent, finalValues: ["k": nil]), [])
    let unknown = [op(.append, "b;", 2, 3), op(.put, "z;", 1, nil)]
    XCTAssertEqual(LostWrites.find(in: unknown, finalValues: ["k": "z;"]), [])
  }

  func testAnAcknowledgedPutTheFinalValueDoesNotStartWithIsLost() {
    let history = [op(.put, "a;", 0, 1), op(.put, "b;", 2, 3), op(.append, "c;", 4, 5)]
    XCTAssertEqual(LostWrites.find(in: history, finalValues: ["k": "a;c;"]).map(\.value), ["b;"])
    XCTAssertEqual(LostWrites.find(in: history, finalValues: ["k": "b;c;"]), [])
  }

  func testUnknownAndFailedWritesAndUnreadKeysAreNotJudged() {
    var failed = op(.append, "f;", 0, 1)
    failed.failed = true
    let history = [failed, op(.append, "u;", 2, nil), op(.append, "x;", 0, 1, key: "other")]
    XCTAssertEqual(LostWrites.find(in: history, finalValues: ["k": ""]), [])
  }
}
