import ArgumentParser

@main
struct KVBench: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "kvbench",
    abstract:
      "ShardKV load generator and benchmarks (figures: BENCHMARKS.md), the nemesis and the history checker (RELIABILITY.md).",
    subcommands: [
      RaftCoreBenchmark.self, RaftClusterBenchmark.self, KVBenchmark.self, ShardPagesBenchmark.self,
      Nemesis.self,
      CheckCommand.self,
    ])
}
