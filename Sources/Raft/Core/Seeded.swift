// The core's one dependency beyond the standard library: the seeded generator, from the leaf
// module `Seeded` (which itself imports nothing). Re-exported so that `import Raft` names
// `SeededGenerator` without importing `Seeded` too.
@_exported import Seeded

/// The name the Raft core's generator had before it became the shared `SeededGenerator` (the
/// same SplitMix64 sequence for the same seed). Kept only because code outside Raft still spells
/// it so (Tests/ShardCtrlerTests/RebalancerTests.swift); remove it once that says
/// `SeededGenerator`.
public typealias SplitMix64 = SeededGenerator
