import Foundation
import XCTest

@testable import Storage

/// A test case that hands out unique temporary directories and removes them in `tearDown`.
class TemporaryDirectoryTestCase: XCTestCase {
  private var directories: [URL] = []

  /// A path under the temporary directory that does not exist yet.
  func makeTemporaryPath(_ label: String = "db") -> String {
    let url = FileManager.default.temporaryDirectory
      .appendingPathComponent("StorageTests-\(label)-\(UUID().uuidString)", isDirectory: true)
    directories.append(url)
    return url.path
  }

  override func tearDownWithError() throws {
    for directory in directories {
      try? FileManager.default.removeItem(at: directory)
    }
    directories = []
    try super.tearDownWithError()
  }
}

/// Deterministic pseudo-random bytes (xorshift64*) with runs and a small alphabet, so that
/// the data compresses, but not trivially.
func makeTestData(count: Int, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> [UInt8] {
  var state = seed
  var result = [UInt8]()
  result.reserveCapacity(count)
  while result.count < count {
    state ^= state >> 12
    state ^= state << 25
    state ^= state >> 27
    let random = state &* 0x2545_F491_4F6C_DD1D
    let byte = UInt8(truncatingIfNeeded: random >> 56) % 48
    let run = Int(truncatingIfNeeded: (random >> 8) & 7) + 1
    for _ in 0..<min(run, count - result.count) {
      result.append(byte)
    }
  }
  return result
}

extension Array where Element == UInt8 {
  /// The UTF-8 bytes of `string`.
  init(utf8 string: String) {
    self = Array(string.utf8)
  }
}

extension StorageError {
  var isClosed: Bool {
    if case .closed = self { return true }
    return false
  }
}

/// Asserts that `body` throws a `StorageError` and returns it.
@discardableResult
func assertThrowsStorageError<T>(
  _ body: () throws(StorageError) -> T, file: StaticString = #filePath, line: UInt = #line
) -> StorageError? {
  do {
    _ = try body()
    XCTFail("expected a StorageError", file: file, line: line)
    return nil
  } catch {
    return error
  }
}

/// Asserts that `body` throws a `CompressionError` and returns it.
@discardableResult
func assertThrowsCompressionError<T>(
  _ body: () throws(CompressionError) -> T, file: StaticString = #filePath, line: UInt = #line
) -> CompressionError? {
  do {
    _ = try body()
    XCTFail("expected a CompressionError", file: file, line: line)
    return nil
  } catch {
    return error
  }
}
