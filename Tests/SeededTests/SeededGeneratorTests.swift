import Seeded
import XCTest

final class SeededGeneratorTests: XCTestCase {
  func testSameSeedSameSequence() {
    var first = SeededGenerator(seed: 42)
    var second = SeededGenerator(seed: 42)
    let a = (0..<100).map { _ in first.next() }
    let b = (0..<100).map { _ in second.next() }
    XCTAssertEqual(a, b)
  }

  func testDifferentSeedsDiffer() {
    var first = SeededGenerator(seed: 1)
    var second = SeededGenerator(seed: 2)
    XCTAssertNotEqual((0..<10).map { _ in first.next() }, (0..<10).map { _ in second.next() })
  }

  func testKnownSplitMix64Output() {
    // Reference values of SplitMix64 for seed 0.
    var generator = SeededGenerator(seed: 0)
    XCTAssertEqual(generator.next(), 0xE220_A839_7B1D_CDAF)
    XCTAssertEqual(generator.next(), 0x6E78_9E6A_A1B9_65F4)
  }

  func testSplitIsReproducibleAndIndependentOfItsParent() {
    var first = SeededGenerator(seed: 9)
    var second = SeededGenerator(seed: 9)
    var child = first.split()
    XCTAssertEqual(child, second.split())
    XCTAssertEqual(first, second)
    XCTAssertNotEqual((0..<10).map { _ in child.next() }, (0..<10).map { _ in first.next() })
  }
}
