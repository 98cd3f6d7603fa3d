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
}
