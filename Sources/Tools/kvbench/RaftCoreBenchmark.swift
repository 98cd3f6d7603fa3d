import ArgumentParser
import Raft

/// The pure core alone: three `RaftCore`s exchanging messages in memory, no I/O. Measures what
/// the consensus logic itself costs per entry.
struct RaftCoreBenchmark: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "raft-core",
    abstract: "Entries per second through three pure RaftCores over an in-memory network.")

  @Option(help: "Entries to commit.") var entries = 200_000
  @Option(help: "Entries proposed per round.") var batch = 64
  @Option(help: "Bytes per entry.") var valueSize = 128

  func validate() throws {
    guard entries > 0, batch > 0, valueSize >= 0 else {
      throw ValidationError("--entries and --batch must be positive, --value-size not negative")
    }
  }

  func run() throws {
    let ids: [NodeID] = ["n1:1", "n2:1", "n3:1"]
    var cores = ids.enumerated().map { offset, id in
      RaftCore(id: id, restored: .bootstrap(voters: ids), seed: UInt64(offset + 1))
    }
    var inbox: [Message] = []
    func drain(_ cores: inout [RaftCore], _ inbox: inout [Message]) {
      var progress = true
      while progress {
        progress = false
        for i in cores.indices {
          while let ready = cores[i].ready() {
            inbox.append(contentsOf: ready.messages)
            cores[i].advance(ready)
            progress = true
          }
        }
        let delivering = inbox
        inbox.removeAll()
        for message in delivering {
          if let target = ids.firstIndex(of: message.to) { cores[target].step(message) }
          progress = true
        }
      }
    }
    while !cores.contains(where: { $0.role == .leader }) {
      for i in cores.indices { cores[i].tick() }
      drain(&cores, &inbox)
    }
    guard let leader = cores.firstIndex(where: { $0.role == .leader }) else { return }
    let payload = [UInt8](repeating: 7, count: valueSize)
    let clock = ContinuousClock()
    var latency = LatencyRecorder()
    let target = cores[leader].lastIndex + UInt64(entries)
    let start = clock.now
    while cores[leader].commitIndex < target {
      let proposed = clock.now
      let count = min(batch, Int(target - cores[leader].lastIndex))
      if count > 0 {
        _ = try? cores[leader].propose(Array(repeating: payload, count: count))
      }
      drain(&cores, &inbox)
      latency.record(clock.now - proposed)
    }
    let elapsed = clock.now - start
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    print("raft-core: 3 nodes, \(entries) entries of \(valueSize) B, batches of \(batch)")
    print("  \(Int(Double(entries) / seconds)) entries/s")
    print("  commit latency per batch: \(latency.summary)")
  }
}
