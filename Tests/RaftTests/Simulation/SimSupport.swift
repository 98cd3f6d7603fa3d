import Foundation
import XCTest

@testable import Raft

/// Everything random in a simulation draws from one of these, seeded from the test's seed,
/// so a seed replays a whole run.
struct SimRandom {
  private var generator: SeededGenerator

  init(seed: UInt64) { generator = SeededGenerator(seed: seed) }

  mutating func next() -> UInt64 { generator.next() }

  /// True with probability `p`.
  mutating func chance(_ p: Double) -> Bool {
    guard p > 0 else { return false }
    return Double(next() >> 11) / Double(UInt64(1) << 53) < p
  }

  mutating func int(in range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &generator) }

  mutating func element<T>(of values: [T]) -> T? {
    values.isEmpty ? nil : values[int(in: 0...(values.count - 1))]
  }

  mutating func shuffled<T>(_ values: [T]) -> [T] { values.shuffled(using: &generator) }
}

/// Seeds from the environment: `RAFT_SIM_SEED=<n>` replays one seed, `RAFT_SIM_SEEDS=<n>` sets
/// how many seeds the randomized test runs.
enum SimEnvironment {
  static var fixedSeed: UInt64? {
    ProcessInfo.processInfo.environment["RAFT_SIM_SEED"].flatMap { UInt64($0) }
  }

  static func seedCount(default count: Int) -> Int {
    ProcessInfo.processInfo.environment["RAFT_SIM_SEEDS"].flatMap { Int($0) } ?? count
  }

  /// The seeds a scenario runs: the replayed seed if one is set, else `defaults`.
  static func seeds(_ defaults: [UInt64]) -> [UInt64] {
    fixedSeed.map { [$0] } ?? defaults
  }
}

/// The timing used by the simulations: one simulated step is one tick.
extension RaftConfig {
  static let simulation = RaftConfig(electionTicks: 10, heartbeatTicks: 2, unreachableTicks: 10)
}

extension XCTestCase {
  /// `swift test --filter` argument that reruns the calling test.
  func replayFilter(_ function: String) -> String {
    let name = function.hasSuffix("()") ? String(function.dropLast(2)) : function
    return "RaftTests.\(String(describing: type(of: self)))/\(name)"
  }

  /// A simulation whose failures name the calling test for replay.
  func makeSimulation(
    seed: UInt64, nodes: Int, standby: Int = 0, config: RaftConfig = .simulation,
    network: NetworkOptions = .reliable, compactAbove: Int? = nil, function: String = #function
  ) -> RaftSimulation {
    RaftSimulation(
      seed: seed, voters: nodes, standby: standby, config: config, network: network,
      compactAbove: compactAbove, replay: replayFilter(function))
  }
}

/// A command's bytes from a readable label, unique per label.
func command(_ label: String) -> [UInt8] { Array(label.utf8) }

/// Encodes a state machine image: for each applied command, its index (8 bytes, big-endian),
/// length (4 bytes) and bytes.
enum SnapshotImage {
  static func encode(_ commands: [(UInt64, [UInt8])]) -> [UInt8] {
    var out: [UInt8] = []
    for (index, bytes) in commands {
      for shift in stride(from: 56, through: 0, by: -8) {
        out.append(UInt8(truncatingIfNeeded: index >> shift))
      }
      let count = UInt32(bytes.count)
      for shift in stride(from: 24, through: 0, by: -8) {
        out.append(UInt8(truncatingIfNeeded: count >> shift))
      }
      out.append(contentsOf: bytes)
    }
    return out
  }

  static func decode(_ data: [UInt8]) -> [(UInt64, [UInt8])]? {
    var out: [(UInt64, [UInt8])] = []
    var i = 0
    while i < data.count {
      guard i + 12 <= data.count else { return nil }
      var index: UInt64 = 0
      for k in 0..<8 { index = index << 8 | UInt64(data[i + k]) }
      var count = 0
      for k in 8..<12 { count = count << 8 | Int(data[i + k]) }
      i += 12
      guard i + count <= data.count else { return nil }
      out.append((index, Array(data[i..<(i + count)])))
      i += count
    }
    return out
  }
}
