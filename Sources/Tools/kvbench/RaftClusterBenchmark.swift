import ArgumentParser
import Foundation
import Logging
import Raft
import Storage
import Synchronization
import Wire

/// Three `RaftNode`s on RocksDB with fsync, over loopback TCP: what a replicated write costs
/// end to end, and how group commit scales with concurrent clients.
struct RaftClusterBenchmark: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "raft",
    abstract: "Proposals per second and commit latency through a three-node RaftNode cluster "
      + "(RocksDB with fsync, loopback TCP).")

  @Option(help: "Seconds to run each client count.") var seconds = 5
  @Option(help: "Concurrent clients, comma-separated; each client has one proposal in flight.")
  var clients = "1,16,128"
  @Option(help: "Bytes per proposal.") var valueSize = 128
  @Option(help: "Directory for the nodes' RocksDB data (default: a fresh temporary one).")
  var data: String?

  func validate() throws {
    guard seconds > 0, valueSize >= 0 else { throw ValidationError("--seconds must be positive") }
    guard !clientCounts.isEmpty, clientCounts.allSatisfy({ $0 > 0 }) else {
      throw ValidationError("--clients must be a comma-separated list of positive numbers")
    }
  }

  private var clientCounts: [Int] { clients.split(separator: ",").compactMap { Int($0) } }

  func run() async throws {
    LoggingSystem.bootstrap { label in
      var handler = StreamLogHandler.standardError(label: label)
      handler.logLevel = .warning
      return handler
    }
    let root = data ?? NSTemporaryDirectory() + "kvbench-raft-\(UUID().uuidString)"
    let cluster = try await BenchCluster.start(size: 3, root: root)
    defer { if data == nil { try? FileManager.default.removeItem(atPath: root) } }
    let leader = try await cluster.waitForLeader()
    print("raft: 3 RaftNodes, RocksDB (fsync), loopback TCP, \(valueSize) B values, \(seconds) s per run")
    let payload = [UInt8](repeating: 7, count: valueSize)
    for count in clientCounts {
      let (ops, latency) = await Self.load(
        leader: leader, clients: count, payload: payload, duration: .seconds(seconds))
      print("  \(count) clients: \(Int(Double(ops) / Double(seconds))) proposals/s; \(latency.summary)")
    }
    await cluster.stop()
  }

  private static func load(
    leader: RaftNode, clients: Int, payload: [UInt8], duration: Duration
  ) async
    -> (Int, LatencyRecorder)
  {
    let clock = ContinuousClock()
    let end = clock.now + duration
    return await withTaskGroup(of: (Int, LatencyRecorder).self) { group in
      for _ in 0..<clients {
        group.addTask {
          var recorder = LatencyRecorder()
          var done = 0
          while clock.now < end {
            let start = clock.now
            do {
              _ = try await leader.propose(payload, timeout: .seconds(5))
              recorder.record(clock.now - start)
              done += 1
            } catch {
              break
            }
          }
          return (done, recorder)
        }
      }
      var total = 0
      var merged = LatencyRecorder()
      for await (done, recorder) in group {
        total += done
        merged.merge(recorder)
      }
      return (total, merged)
    }
  }
}

/// A state machine that only counts: the benchmark measures Raft, not a store.
final class CountingStateMachine: StateMachine {
  private let applied = Mutex<UInt64>(0)
  var appliedIndex: UInt64 { applied.withLock { $0 } }
  func apply(_ entries: [Entry]) throws -> [[UInt8]] {
    if let last = entries.last { applied.withLock { $0 = last.index } }
    return entries.map { _ in [] }
  }
  func sync() throws {}
  func makeSnapshot() throws -> any SnapshotReader { EmptySnapshot(index: appliedIndex) }
  func restore(_ metadata: SnapshotMetadata, from image: any SnapshotReader) throws {
    while try image.nextPiece() != nil {}
    applied.withLock { $0 = metadata.index }
  }
}

final class EmptySnapshot: SnapshotReader {
  let index: UInt64
  init(index: UInt64) { self.index = index }
  func nextPiece() throws -> [UInt8]? { nil }
}

/// Lets a server's handlers reach a node that is created after the server is bound (the node's
/// name is its address, which is known only once the port is).
final class NodeSlot: Sendable {
  private let node = Mutex<RaftNode?>(nil)
  func set(_ value: RaftNode) { node.withLock { $0 = value } }
  func get() -> RaftNode? { node.withLock { $0 } }
}

struct BenchCluster {
  var nodes: [RaftNode]
  var listeners: [any TransportListener]
  var transports: [TCPTransport]
  var databases: [RocksDB]

  static func start(size: Int, root: String) async throws -> BenchCluster {
    var slots: [NodeSlot] = []
    var listeners: [any TransportListener] = []
    var transports: [TCPTransport] = []
    for _ in 0..<size {
      let slot = NodeSlot()
      var handlers = RPCHandlers()
      WireRaftTransport.register(in: &handlers) { slot.get() }
      let transport = TCPTransport()
      listeners.append(try await transport.listen(on: "127.0.0.1:0", handlers: handlers))
      transports.append(transport)
      slots.append(slot)
    }
    let ids = listeners.map { NodeID($0.address) }
    var nodes: [RaftNode] = []
    var databases: [RocksDB] = []
    for (i, id) in ids.enumerated() {
      let path = root + "/node\(i)"
      try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
      let db = try RocksDB(path: path, columnFamilies: RocksLogStorage.columnFamilies)
      let node = try RaftNode(
        id: id, storage: try RocksLogStorage(db: db), stateMachine: CountingStateMachine(),
        transport: WireRaftTransport(transport: transports[i]), bootstrapVoters: ids)
      slots[i].set(node)
      await node.start()
      nodes.append(node)
      databases.append(db)
    }
    return BenchCluster(nodes: nodes, listeners: listeners, transports: transports, databases: databases)
  }

  func waitForLeader() async throws -> RaftNode {
    for _ in 0..<200 {
      for node in nodes where await node.isLeader { return node }
      try await Task.sleep(for: .milliseconds(50))
    }
    throw ValidationError("no leader was elected within 10 s")
  }

  func stop() async {
    for node in nodes { await node.stop() }
    for listener in listeners { await listener.close() }
    for transport in transports { await transport.shutdown() }
    for db in databases { db.close() }
  }
}
