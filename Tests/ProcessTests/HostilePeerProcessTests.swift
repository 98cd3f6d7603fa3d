import Foundation
import Raft
import Storage
import SwiftProtobuf
import Wire
import XCTest

/// Real kvd processes attacked by a forged peer that speaks the real frame format and Raft
/// RPCs (`RaftCodec`, `RPCClient`): each attack is dropped, every process stays up, and the
/// group keeps serving its clients.
final class HostilePeerProcessTests: XCTestCase {
  private var forger: RPCClient!

  override func setUp() {
    forger = RPCClient()
  }

  override func tearDown() async throws {
    await forger.shutdown()
  }

  /// A static group of three with these extra flags, with one write committed; returns the
  /// leader's index.
  private func startGroup(_ cluster: ProcessCluster, _ flags: [String] = []) throws -> Int {
    let peers = cluster.peers([0, 1, 2])
    for i in 0..<3 { try cluster.start(i, ["--peers", peers] + flags) }
    var leader: Int?
    let elected = cluster.eventually(within: .seconds(15)) {
      guard let out = try? cluster.kvctl(0, "leader", timeout: 2), out.status == 0 else { return false }
      leader = cluster.node(peer: out.stdout.trimmingCharacters(in: .newlines))
      return leader != nil
    }
    XCTAssertTrue(elected, cluster.logTails([0, 1, 2]))
    let put = try cluster.kvctl(0, "put", "before", "attack", timeout: 10)
    XCTAssertEqual(put.stdout, "OK\n", put.summary)
    return try XCTUnwrap(leader)
  }

  private func status(_ cluster: ProcessCluster, _ i: Int) async throws -> Shardkv_StatusReply {
    let reply = try await forger.call(
      cluster.nodes[i].api, method: NodeMethod.status, payload: [], timeout: .seconds(5))
    return try Shardkv_StatusReply(serializedBytes: reply)
  }

  /// The cluster id every member of `--peers` derived at bootstrap.
  private func clusterID(_ cluster: ProcessCluster) -> UInt64 {
    ClusterIdentity.derived(fromVoters: (0..<3).map { NodeID(cluster.nodes[$0].peer) })
  }

  private func sendMessages(_ messages: [Raft.Message], clusterID: UInt64, to peer: String) async throws {
    _ = try await forger.call(
      peer, method: WireRaftTransport.messagesMethod,
      payload: try RaftCodec.serialize(messages, clusterID: clusterID), timeout: .seconds(5))
  }

  /// Every process runs and answers a write and a read through node `i`.
  private func assertServing(_ cluster: ProcessCluster, through i: Int, _ key: String) throws {
    for node in 0..<3 {
      XCTAssertTrue(cluster.isRunning(node), "node \(node) died: \(cluster.logTail(node))")
    }
    let put = try cluster.kvctl(i, "put", key, "value", timeout: 10)
    XCTAssertEqual(put.stdout, "OK\n", put.summary)
    let get = try cluster.kvctl(i, "get", key, timeout: 10)
    XCTAssertEqual(get.stdout, "Key:\t\(key)\nValue:\tvalue\n", get.summary)
  }

  func testHeartbeatsFromNonMembersWithAHigherTermChangeNeitherLeaderNorTerm() async throws {
    let cluster = try ProcessCluster(size: 3)
    defer { cluster.stopAll() }
    let leader = try startGroup(cluster)
    let follower = (leader + 1) % 3
    let before = try await status(cluster, follower)
    let forgedTerm = before.term + 1000
    // Many invented senders, with this cluster's own id: only membership stops them.
    for sender in 0..<500 {
      var heartbeat = Raft.Message(
        kind: .heartbeat, from: NodeID("10.9.\(sender / 256).\(sender % 256):7000"),
        to: NodeID(cluster.nodes[follower].peer), term: forgedTerm)
      heartbeat.commit = 1_000_000
      try await sendMessages([heartbeat], clusterID: clusterID(cluster), to: cluster.nodes[follower].peer)
    }
    let after = try await status(cluster, follower)
    XCTAssertLessThan(after.term, forgedTerm, "the follower adopted the forged term")
    XCTAssertTrue(
      (0..<3).map { cluster.nodes[$0].peer }.contains(after.leader),
      "the follower follows \(after.leader)")
    XCTAssertEqual(after.term, before.term, "the term moved (an election during the test?)")
    XCTAssertTrue(cluster.logTail(follower, lines: 200).contains("dropped peer input"))
    try assertServing(cluster, through: follower, "after-heartbeats")
  }

  func testAppendsWithAGapOrRewritingCommittedEntriesLeaveEveryProcessServing() async throws {
    let cluster = try ProcessCluster(size: 3)
    defer { cluster.stopAll() }
    let leader = try startGroup(cluster)
    let follower = (leader + 1) % 3
    let state = try await status(cluster, follower)
    let from = NodeID(cluster.nodes[leader].peer)
    let to = NodeID(cluster.nodes[follower].peer)
    var attacks: [Raft.Message] = []
    // In the leader's own name and term, with the cluster's id: only validation stops these.
    for index in [state.appliedIndex, state.appliedIndex + 1] {
      var gap = Raft.Message(kind: .append, from: from, to: to, term: state.term)
      gap.index = index
      gap.logTerm = state.term
      gap.entries = [Entry(term: state.term, index: index + 5, payload: .command([1]))]
      gap.commit = index + 5
      attacks.append(gap)
      var rewrite = Raft.Message(kind: .append, from: from, to: to, term: state.term + 1)
      rewrite.index = index
      rewrite.logTerm = state.term
      rewrite.entries = [Entry(term: state.term + 1, index: 1, payload: .command([2]))]
      attacks.append(rewrite)
      var overflow = Raft.Message(kind: .append, from: from, to: to, term: state.term)
      overflow.index = .max
      overflow.entries = [Entry(term: state.term, index: 0, payload: .noop)]
      attacks.append(overflow)
    }
    for attack in attacks {
      try await sendMessages([attack], clusterID: clusterID(cluster), to: cluster.nodes[follower].peer)
    }
    // And at every member, in one batch each.
    for i in 0..<3 where i != leader {
      let batch = attacks.map { message -> Raft.Message in
        var copy = message
        copy.to = NodeID(cluster.nodes[i].peer)
        return copy
      }
      try await sendMessages(batch, clusterID: clusterID(cluster), to: cluster.nodes[i].peer)
    }
    try assertServing(cluster, through: follower, "after-appends")
    let get = try cluster.kvctl(leader, "get", "before", timeout: 10)
    XCTAssertEqual(get.stdout, "Key:\tbefore\nValue:\tattack\n", get.summary)
  }

  /// Runs kvd with `arguments` until it exits; its status and stderr.
  private func runKVD(_ arguments: [String]) throws -> (status: Int32, stderr: String) {
    let process = Process()
    process.executableURL = ProcessCluster.binaries.appendingPathComponent("kvd")
    process.arguments = arguments
    let errors = Pipe()
    process.standardError = errors
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, text)
  }

  func testTimingAndSizeFlagsThatCannotWorkAreRefusedAtStartUp() throws {
    let ports = try ProcessCluster.freePorts(2)
    let base = [
      "-a", "127.0.0.1:\(ports[0])", "-p", "127.0.0.1:\(ports[1])", "-l", "--data",
      NSTemporaryDirectory() + "kvd-flags-\(UUID().uuidString)",
    ]
    // 100 ms and 105 ms are both 10 ticks of 10 ms: the election would not outlast a heartbeat.
    let timing = try runKVD(base + ["--heartbeat-ms", "100", "--election-ms", "105"])
    XCTAssertEqual(timing.status, 64, timing.stderr)
    XCTAssertTrue(timing.stderr.contains("--election-ms"), timing.stderr)
    let value = try runKVD(base + ["--max-value-bytes", "\(20 << 20)"])
    XCTAssertEqual(value.status, 64, value.stderr)
    XCTAssertTrue(value.stderr.contains("frame limit"), value.stderr)
    let limits = try runKVD(base + ["--max-connections", "0"])
    XCTAssertEqual(limits.status, 64, limits.stderr)
    XCTAssertTrue(limits.stderr.contains("--max-connections"), limits.stderr)
  }

  /// VmRSS of a process, in bytes.
  private func residentBytes(_ pid: Int32) throws -> Int {
    let text = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
    let line = try XCTUnwrap(text.split(separator: "\n").first { $0.hasPrefix("VmRSS:") })
    let kilobytes = try XCTUnwrap(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]))
    return kilobytes * 1024
  }

  func testTenThousandSnapshotChunksWithoutAnEndLeaveMemoryBounded() async throws {
    let cluster = try ProcessCluster(size: 3)
    defer { cluster.stopAll() }
    let leader = try startGroup(cluster, ["--max-snapshot-mb", "64"])
    let follower = (leader + 1) % 3
    let pid = try XCTUnwrap(cluster.pid(follower))
    let baseline = try residentBytes(pid)
    // 256 KiB of image per chunk, a few hundred bytes on the wire: 10,000 of them would hold
    // 2.5 GiB. A new transfer every 1,000 chunks restarts the cap's count.
    let piece = try Zstd.compress([UInt8](repeating: 0x5A, count: 256 << 10))
    var refused = 0
    var peak = baseline
    for n in 0..<10_000 {
      let chunk = SnapshotChunk(
        from: NodeID(cluster.nodes[leader].peer), to: NodeID(cluster.nodes[follower].peer), term: 1,
        transferID: UInt64(1 + n / 1000), sequence: UInt64(n % 1000), data: piece, isLast: false,
        metadata: nil, clusterID: clusterID(cluster))
      do {
        _ = try await forger.call(
          cluster.nodes[follower].peer, method: WireRaftTransport.snapshotMethod,
          payload: try RaftCodec.serialize(chunk), timeout: .seconds(10))
      } catch RPCError.remote(_, let message) {
        // The cap, or (after it dropped a transfer) the sequence it no longer expects.
        XCTAssertTrue(message.contains("in flight") || message.contains("expected 0"), message)
        refused += 1
      }
      if n % 500 == 0 { peak = max(peak, try residentBytes(pid)) }
    }
    peak = max(peak, try residentBytes(pid))
    XCTAssertGreaterThan(refused, 5000, "the cap never refused a chunk")
    XCTAssertLessThan(
      peak - baseline, 256 << 20, "RSS grew from \(baseline >> 20) MiB to \(peak >> 20) MiB")
    try assertServing(cluster, through: follower, "after-chunks")
  }

  func testTwoThousandIdleConnectionsLeaveTheNodeServing() throws {
    let cluster = try ProcessCluster(size: 3)
    defer { cluster.stopAll() }
    let leader = try startGroup(cluster, ["--max-connections", "1000"])
    let address = try PeerAddress(parsing: cluster.nodes[leader].api)
    var sockets: [Int32] = []
    defer { for socket in sockets { close(socket) } }
    for _ in 0..<2000 {
      let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
      XCTAssertGreaterThanOrEqual(fd, 0)
      var sin = sockaddr_in()
      sin.sin_family = sa_family_t(AF_INET)
      sin.sin_port = in_port_t(UInt16(address.port).bigEndian)
      sin.sin_addr.s_addr = inet_addr(address.host)
      let connected = withUnsafePointer(to: &sin) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
          connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
      }
      XCTAssertEqual(connected, 0, "connect failed: errno \(errno)")
      sockets.append(fd)
    }
    try assertServing(cluster, through: leader, "after-idle-connections")
    // The listener holds at most its limit: the quietest connections made room.
    let pid = try XCTUnwrap(cluster.pid(leader))
    let open = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count
    XCTAssertLessThan(open, 1500, "kvd holds \(open) descriptors")
  }
}
