import XCTest

@testable import Raft

final class RaftSmokeTests: XCTestCase {
  func testModuleLinks() {}
}
