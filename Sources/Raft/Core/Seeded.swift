// The core's one dependency beyond the standard library: the seeded generator, from the leaf
// module `Seeded` (which itself imports nothing). Re-exported so that `import Raft` names
// `SeededGenerator` without importing `Seeded` too.
@_exported import Seeded
