// `SeededGenerator` (fault injection in `InMemoryNetwork`) lives in the leaf module `Seeded`,
// which Raft's pure core shares. Re-exported so that `import Wire` names it.
@_exported import Seeded
