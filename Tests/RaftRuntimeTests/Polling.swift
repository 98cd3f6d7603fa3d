import Raft
import XCTest

/// Polls `condition` every few milliseconds until it holds (real time: these are not
/// simulation tests); past `timeout` it records a failure naming `what` and throws.
func waitUntil(
  _ what: String, timeout: Duration = .seconds(10), _ condition: () async throws -> Bool
) async throws {
  let deadline = ContinuousClock.now + timeout
  while try await !condition() {
    guard ContinuousClock.now < deadline else {
      XCTFail("timed out waiting for \(what)")
      throw RaftNodeError.timeout
    }
    try await Task.sleep(for: .milliseconds(5))
  }
}
