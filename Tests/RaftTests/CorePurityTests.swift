import Foundation
import XCTest

/// The core must stay deterministic and portable: no imports beyond the standard library, no
/// clocks, queues, tasks or unseeded randomness.
final class CorePurityTests: XCTestCase {
  func testCoreImportsOnlyTheStandardLibraryAndUsesNoClockOrUnseededRandomness() throws {
    let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    let core = tests.appendingPathComponent("../../Sources/Raft/Core").standardizedFileURL
    let files = try FileManager.default.contentsOfDirectory(atPath: core.path)
      .filter { $0.hasSuffix(".swift") }.sorted()
    XCTAssertGreaterThanOrEqual(files.count, 5, "Raft/Core not found at \(core.path)")
    let forbidden = ["Date(", "DispatchQueue", "Task {", "Task.", "Task<", "async", "await", "Thread"]
    for file in files {
      let text = try String(contentsOf: core.appendingPathComponent(file), encoding: .utf8)
      for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
        let line = rawLine.trimmingCharacters(in: .whitespaces)
        if line.hasPrefix("//") { continue }
        let code = line.components(separatedBy: "//")[0]
        let at = "\(file):\(number + 1): \(line)"
        let words = code.split(whereSeparator: { $0 == " " || $0 == "\t" })
        if let importAt = words.firstIndex(where: { $0 == "import" }) {
          let module = importAt + 1 < words.count ? String(words[importAt + 1]) : ""
          XCTAssertEqual(module, "Swift", "Raft/Core imports beyond the standard library — \(at)")
        }
        for token in forbidden where containsWord(code, token) {
          XCTFail("Raft/Core uses \(token) — \(at)")
        }
        if containsWord(code, "random(") {
          XCTAssertTrue(code.contains("using:"), "unseeded randomness in Raft/Core — \(at)")
        }
      }
    }
  }

  /// Whether `token` occurs in `code` not as the tail of a longer identifier.
  private func containsWord(_ code: String, _ token: String) -> Bool {
    var rest = code[...]
    while let range = rest.range(of: token) {
      let before = range.lowerBound == code.startIndex ? nil : code[code.index(before: range.lowerBound)]
      if let before, before.isLetter || before.isNumber || before == "_" {
        rest = rest[range.upperBound...]
        continue
      }
      return true
    }
    return false
  }
}
