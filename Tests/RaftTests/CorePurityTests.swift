import Foundation
import XCTest

/// The core must stay deterministic and portable: no imports beyond the standard library, no
/// clocks, queues, tasks or unseeded randomness.
///
/// The one import allowed besides `Swift` is `Seeded`, the leaf module holding the shared
/// `SeededGenerator` (the core's election jitter). It is as pure as the core: it imports nothing
/// and its generator is a value seeded by the caller, with no clock or system randomness, so
/// depending on it keeps the core deterministic. It is a module of its own, rather than a file
/// in the core, only so that Wire, which does not depend on Raft, uses the same type.
final class CorePurityTests: XCTestCase {
  func testCoreImportsOnlyTheStandardLibraryAndSeededAndUsesNoClockOrUnseededRandomness() throws {
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
          XCTAssertTrue(
            Self.allowedImports.contains(module),
            "Raft/Core imports beyond the standard library and Seeded — \(at)")
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

  /// The modules Raft/Core may import (see the type's comment for why `Seeded` is one).
  private static let allowedImports: Set<String> = ["Swift", "Seeded"]

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
