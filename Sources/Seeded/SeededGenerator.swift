/// A small, fast, deterministic random number generator (SplitMix64).
///
/// Everything in ShardKV that makes a random choice in tests — fault injection in Wire's
/// in-memory network, election jitter in Raft — draws from one of these so that a seed replays a
/// run exactly. SplitMix64 passes BigCrush, needs 8 bytes of state and accepts any seed,
/// including 0.
///
/// It lives in this leaf module, which imports nothing, so that both Wire and Raft's pure core
/// can use it; both re-export it, so `import Wire` or `import Raft` is enough to name it.
///
/// Not cryptographically secure.
public struct SeededGenerator: RandomNumberGenerator, Sendable, Hashable {
  /// The current state; two generators with equal state produce equal sequences.
  public private(set) var state: UInt64

  /// Creates a generator whose sequence is fully determined by `seed`.
  public init(seed: UInt64) {
    state = seed
  }

  public mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  /// A new generator seeded from this one, for handing an independent but reproducible stream
  /// to a component (e.g. one per simulated node).
  public mutating func split() -> SeededGenerator {
    SeededGenerator(seed: next())
  }
}
