import XCTest

@testable import Router

/// Placeholder so the target exists; the router's suites live beside it.
final class RouterModuleTests: XCTestCase {
  func testModuleLoads() {
    XCTAssertFalse(Router.name.isEmpty)
  }
}
