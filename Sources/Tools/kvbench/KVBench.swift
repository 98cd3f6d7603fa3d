import ArgumentParser

@main
struct KVBench: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "kvbench",
    abstract: "ShardKV load generator and benchmarks. Figures, not pass/fail: see BENCHMARKS.md.",
    subcommands: [
      RaftCoreBenchmark.self, RaftClusterBenchmark.self, KVBenchmark.self, ShardPagesBenchmark.self,
    ])
}
