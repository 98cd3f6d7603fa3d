import XCTest

@testable import Wire

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

  func testFateSequenceIsDeterministicPerSeed() {
    let faults = NetworkFaults(
      dropProbability: 0.3, duplicateProbability: 0.2, delay: .milliseconds(1) ... .milliseconds(9))
    func fates(seed: UInt64) -> [MessageFate] {
      var generator = SeededGenerator(seed: seed)
      return (0..<1000).map { _ in MessageFate.draw(using: &generator, faults: faults) }
    }
    XCTAssertEqual(fates(seed: 7), fates(seed: 7))
    XCTAssertNotEqual(fates(seed: 7), fates(seed: 8))
    let sample = fates(seed: 7)
    let dropped = sample.filter(\.requestDropped).count
    XCTAssertTrue((200...400).contains(dropped), "dropped \(dropped) of 1000 at p=0.3")
    XCTAssertTrue(
      sample.allSatisfy { (Duration.milliseconds(1)...Duration.milliseconds(9)).contains($0.requestDelay) })
  }
}
