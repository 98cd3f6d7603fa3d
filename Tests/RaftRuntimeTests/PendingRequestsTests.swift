import XCTest

@testable import Raft

/// The rules by which a node answers the requests it holds: each exactly once, with the right
/// outcome, and the proposal bytes it counts always equal to what it holds.
final class PendingRequestsTests: XCTestCase {
  /// Outcomes by request name, in the order they arrived; a second completion is recorded too.
  private final class Outcomes {
    var seen: [(String, Result<[UInt8], RaftNodeError>)] = []
    func of(_ name: String) -> [Result<[UInt8], RaftNodeError>] { seen.filter { $0.0 == name }.map(\.1) }
  }

  private let start = ContinuousClock.now

  private func request(
    _ name: String, term: UInt64 = 1, after seconds: Int = 60, bytes: Int = 0, into outcomes: Outcomes
  ) -> PendingRequests.Request {
    PendingRequests.Request(
      term: term, deadline: start + .seconds(seconds), bytes: bytes,
      complete: { outcomes.seen.append((name, $0)) })
  }

  private func entry(_ index: UInt64, term: UInt64) -> Entry {
    Entry(term: term, index: index, payload: .command([UInt8(index)]))
  }

  func testAProposalResolvesWithItsResultOnlyIfItsTermIsTheAppliedEntrysTerm() {
    let outcomes = Outcomes()
    var pending = PendingRequests()
    pending.addProposal(request("kept", term: 2, bytes: 10, into: outcomes), at: 5)
    pending.addProposal(request("lost", term: 2, bytes: 7, into: outcomes), at: 6)
    XCTAssertEqual(pending.proposalBytes, 17)
    // Index 6 was overwritten by a later leader's entry of term 3.
    pending.resolve(applied: [entry(5, term: 2), entry(6, term: 3)], results: [[1], [2]])
    XCTAssertEqual(outcomes.of("kept"), [.success([1])])
    XCTAssertEqual(outcomes.of("lost"), [.failure(.leadershipLost)])
    XCTAssertEqual(pending.proposalBytes, 0)
    XCTAssertTrue(pending.isEmpty)
    // Applying again (a replay) answers nobody twice.
    pending.resolve(applied: [entry(5, term: 2)], results: [[1]])
    XCTAssertEqual(outcomes.seen.count, 2)
  }

  func testAProposalReplacedAtItsIndexFailsAndItsBytesAreNotCountedTwice() {
    let outcomes = Outcomes()
    var pending = PendingRequests()
    pending.addProposal(request("first", bytes: 100, into: outcomes), at: 9)
    pending.addProposal(request("second", term: 2, bytes: 30, into: outcomes), at: 9)
    XCTAssertEqual(outcomes.of("first"), [.failure(.leadershipLost)])
    XCTAssertEqual(pending.proposalBytes, 30)
  }

  func testAReadWaitsForItsConfirmationThenForItsIndexToBeApplied() {
    let outcomes = Outcomes()
    var pending = PendingRequests()
    pending.addRead(request("read", into: outcomes), id: 1)
    pending.releaseReads(appliedThrough: 100)
    XCTAssertTrue(outcomes.seen.isEmpty, "a read was released before its index was confirmed")
    pending.confirmRead(id: 1, at: 12)
    pending.releaseReads(appliedThrough: 11)
    XCTAssertTrue(outcomes.seen.isEmpty, "a read was released before its index was applied")
    pending.releaseReads(appliedThrough: 12)
    XCTAssertEqual(outcomes.of("read"), [.success([])])
    // A confirmation for a read no longer held (timed out) changes nothing.
    pending.confirmRead(id: 1, at: 13)
    XCTAssertTrue(pending.isEmpty)
  }

  func testLosingLeadershipFailsOnlyUncommittedProposalsAndUnconfirmedReads() {
    let outcomes = Outcomes()
    var pending = PendingRequests()
    pending.addProposal(request("committed", bytes: 1, into: outcomes), at: 4)
    pending.addProposal(request("uncommitted", bytes: 2, into: outcomes), at: 5)
    pending.addRead(request("unconfirmed", into: outcomes), id: 1)
    pending.addRead(request("confirmed", into: outcomes), id: 2)
    pending.confirmRead(id: 2, at: 4)
    pending.failProposals(above: 4)
    pending.failUnconfirmedReads()
    XCTAssertEqual(outcomes.of("uncommitted"), [.failure(.leadershipLost)])
    XCTAssertEqual(outcomes.of("unconfirmed"), [.failure(.leadershipLost)])
    XCTAssertEqual(pending.proposalBytes, 1)
    // What stays is still answered normally.
    pending.resolve(applied: [entry(4, term: 1)], results: [[4]])
    pending.releaseReads(appliedThrough: 4)
    XCTAssertEqual(outcomes.of("committed"), [.success([4])])
    XCTAssertEqual(outcomes.of("confirmed"), [.success([])])
    XCTAssertTrue(pending.isEmpty)
  }

  func testExpiryTimesOutEveryKindOfRequestPastItsDeadlineAndNoOther() {
    let outcomes = Outcomes()
    var pending = PendingRequests()
    pending.addProposal(request("late proposal", after: 1, bytes: 5, into: outcomes), at: 1)
    pending.addProposal(request("proposal", after: 10, bytes: 3, into: outcomes), at: 2)
    pending.addRead(request("late read", after: 1, into: outcomes), id: 1)
    pending.addRead(request("late confirmed read", after: 1, into: outcomes), id: 2)
    pending.confirmRead(id: 2, at: 50)
    pending.expire(now: start + .seconds(2))
    for name in ["late proposal", "late read", "late confirmed read"] {
      XCTAssertEqual(outcomes.of(name), [.failure(.timeout)], name)
    }
    XCTAssertTrue(outcomes.of("proposal").isEmpty)
    XCTAssertEqual(pending.proposalBytes, 3)
  }

  func testStoppingFailsEverythingOnce() {
    let outcomes = Outcomes()
    var pending = PendingRequests()
    pending.addProposal(request("proposal", bytes: 8, into: outcomes), at: 3)
    pending.addRead(request("read", into: outcomes), id: 1)
    pending.addRead(request("confirmed", into: outcomes), id: 2)
    pending.confirmRead(id: 2, at: 3)
    pending.failAll(.stopped)
    XCTAssertEqual(outcomes.seen.count, 3)
    XCTAssertTrue(outcomes.seen.allSatisfy { $0.1 == .failure(.stopped) })
    XCTAssertEqual(pending.proposalBytes, 0)
    XCTAssertTrue(pending.isEmpty)
    pending.failAll(.stopped)
    XCTAssertEqual(outcomes.seen.count, 3)
  }
}
