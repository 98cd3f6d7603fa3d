import Foundation
import Linearizability
import XCTest

/// The checker must reject what is not linearizable, or every history test is vacuous.
final class LinearizabilityCheckerTests: XCTestCase {
  typealias Op = LinearizabilityChecker.Operation

  private func op(
    _ kind: LinearizabilityChecker.Kind, _ value: String = "", out: String? = nil, _ call: UInt64,
    _ returned: UInt64?, client: Int = 0, key: String = "k"
  ) -> Op {
    Op(client: client, kind: kind, key: key, value: value, output: out, call: call, returned: returned)
  }

  func testSequentialHistoryPasses() {
    let history = [
      op(.put, "a", 0, 1), op(.append, "b", 2, 3), op(.get, out: "ab", 4, 5), op(.delete, "", 6, 7),
      op(.get, out: nil, 8, 9),
    ]
    XCTAssertNil(LinearizabilityChecker.firstViolation(in: history))
  }

  func testStaleReadAfterACompletedWriteFails() {
    let history = [op(.put, "a", 0, 1), op(.put, "b", 2, 3), op(.get, out: "a", 4, 5)]
    XCTAssertEqual(LinearizabilityChecker.firstViolation(in: history), "k")
  }

  func testConcurrentWritesMayOrderEitherWay() {
    let history = [
      op(.put, "a", 0, 10, client: 1), op(.put, "b", 1, 9, client: 2), op(.get, out: "a", 11, 12),
    ]
    XCTAssertNil(LinearizabilityChecker.firstViolation(in: history))
  }

  func testAReadCannotSeeAValueGoBackwards() {
    let history = [
      op(.put, "a", 0, 1), op(.put, "b", 2, 20, client: 1), op(.get, out: "b", 3, 4, client: 2),
      op(.get, out: "a", 5, 6, client: 2),
    ]
    XCTAssertEqual(LinearizabilityChecker.firstViolation(in: history), "k")
  }

  func testAnUnknownWriteMayOrMayNotHaveHappened() {
    XCTAssertNil(
      LinearizabilityChecker.firstViolation(in: [op(.append, "x", 0, nil), op(.get, out: nil, 5, 6)]))
    XCTAssertNil(
      LinearizabilityChecker.firstViolation(in: [op(.append, "x", 0, nil), op(.get, out: "x", 5, 6)]))
    XCTAssertNotNil(
      LinearizabilityChecker.firstViolation(in: [op(.append, "x", 0, nil), op(.get, out: "xx", 5, 6)]))
  }

  func testAppendsAppliedTwiceAreCaught() {
    let history = [op(.append, "x", 0, 1), op(.get, out: "xx", 2, 3)]
    XCTAssertEqual(LinearizabilityChecker.firstViolation(in: history), "k")
  }

  func testASearchOverItsBudgetIsInconclusiveNotAPass() {
    // Twenty overlapping appends and a read no order explains: proving that takes exponential
    // time, so a small budget runs out.
    var history = (0..<20).map { op(.append, "\($0);", 0, 100, client: $0) }
    history.append(op(.get, out: "impossible", 101, 102, client: 99))
    XCTAssertEqual(LinearizabilityChecker.check(history, stepsPerKey: 10_000), .inconclusive(key: "k"))
  }

  func testALostUpdateIsCaught() {
    // Two acknowledged appends, then a read that holds only one of them: one was lost.
    let history = [
      op(.put, "", 0, 1), op(.append, "a", 2, 5, client: 1), op(.append, "b", 3, 6, client: 2),
      op(.get, out: "b", 7, 8),
    ]
    XCTAssertEqual(LinearizabilityChecker.firstViolation(in: history), "k")
    let kept = history.dropLast() + [op(.get, out: "ba", 7, 8)]
    XCTAssertNil(LinearizabilityChecker.firstViolation(in: Array(kept)))
  }

  func testAStaleReadConcurrentWithNothingIsCaughtAmongOtherKeys() {
    // Keys are independent: key j is fine, key k has a stale read.
    let history = [
      op(.put, "1", 0, 1, key: "j"), op(.get, out: "1", 2, 3, key: "j"),
      op(.put, "1", 0, 1), op(.put, "2", 2, 3, client: 1), op(.get, out: "1", 4, 5, client: 2),
    ]
    XCTAssertEqual(LinearizabilityChecker.check(history, stepsPerKey: .max), .violation(key: "k"))
  }

  func testAReadMayNotSeeAWriteBeforeItsCall() {
    // Reading a value before anyone called the write that produces it.
    let history = [op(.get, out: "x", 0, 1), op(.put, "x", 2, 3, client: 1)]
    XCTAssertEqual(LinearizabilityChecker.firstViolation(in: history), "k")
  }

  func testADeleteMakesTheKeyMissing() {
    XCTAssertNil(
      LinearizabilityChecker.firstViolation(in: [
        op(.put, "a", 0, 1), op(.delete, "", 2, 3), op(.append, "b", 4, 5), op(.get, out: "b", 6, 7),
      ]))
    XCTAssertNotNil(
      LinearizabilityChecker.firstViolation(in: [
        op(.put, "a", 0, 1), op(.delete, "", 2, 3), op(.get, out: "a", 4, 5),
      ]))
  }

  func testFailedOperationsAndUnansweredGetsAreIgnored() {
    var failed = op(.put, "x", 0, 1)
    failed.failed = true
    XCTAssertNil(
      LinearizabilityChecker.firstViolation(in: [
        failed, op(.get, out: "y", 0, nil), op(.get, out: nil, 2, 3),
      ]))
  }

  func testALongSequentialHistoryIsCheckedWithoutRecursion() {
    // Tens of thousands of operations on one key: a recursive search would need as many frames.
    var history: [Op] = []
    var value = ""
    for i in 0..<20_000 {
      let t = UInt64(i) * 10
      if i % 2 == 0 {
        history.append(op(.append, "\(i % 7)", t, t + 5))
        value += "\(i % 7)"
      } else {
        history.append(op(.get, out: value, t, t + 5))
      }
    }
    XCTAssertEqual(LinearizabilityChecker.check(history, stepsPerKey: 10_000_000), .linearizable)
    history.append(op(.get, out: "wrong", 1_000_000, 1_000_001))
    XCTAssertEqual(LinearizabilityChecker.check(history, stepsPerKey: 10_000_000), .violation(key: "k"))
  }

  func testAPassedDeadlineIsInconclusive() {
    var history = (0..<20).map { op(.append, "\($0);", 0, 100, client: $0) }
    history.append(op(.get, out: "impossible", 101, 102, client: 99))
    let limits = LinearizabilityChecker.Limits(deadline: .now - .seconds(1))
    XCTAssertEqual(LinearizabilityChecker.checkKey(history, limits: limits), .inconclusive)
  }

  func testTheShortestFailingPrefixEndsAtTheContradiction() throws {
    let history = [
      op(.put, "a", 0, 1), op(.put, "b", 2, 3), op(.get, out: "b", 4, 5), op(.get, out: "a", 6, 7),
      op(.put, "c", 8, 9), op(.get, out: "c", 10, 11),
    ]
    let prefix = try XCTUnwrap(LinearizabilityChecker.shortestFailingPrefix(history, limits: .init()))
    XCTAssertEqual(prefix.map(\.call), [0, 2, 4, 6])
    XCTAssertNil(LinearizabilityChecker.shortestFailingPrefix(Array(history.prefix(3)), limits: .init()))
  }

  func testTheHistoryFileFormatRoundTrips() throws {
    var failed = op(.delete, "", 3, 4, client: 2)
    failed.failed = true
    let history = [
      op(.append, "x", 0, 1), op(.get, out: nil, 1, 2, client: 1), op(.put, "y", 5, nil), failed,
    ]
    let lines = try history.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
    XCTAssertTrue(lines[2].contains("\"result\":\"unknown\""), lines[2])
    let decoded = try lines.map { try JSONDecoder().decode(Op.self, from: Data($0.utf8)) }
    XCTAssertEqual(decoded, history)
    let bad = #"{"client":1,"op":"get","key":"k","call":5,"return":4,"result":"ok"}"#
    XCTAssertThrowsError(try JSONDecoder().decode(Op.self, from: Data(bad.utf8)))
  }
}
