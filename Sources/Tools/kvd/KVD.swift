import ArgumentParser
import ClusterConfig
import Dispatch
import Foundation
import Logging
import NIOCore
import Raft
import ShardCtrler
import ShardKV
import Storage
import Wire

@main
struct KVD: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "kvd",
    abstract:
      "A ShardKV server: a member of a replicated key-value group, a shard controller replica, or a router.",
    discussion: """
      Every node has an API address (-a: clients and kvctl) and a peer address
      (-p: Raft traffic). A node is named by its peer address everywhere.

        kvd -a API -p PEER --peers P1,P2,P3   one member of a static group
        kvd -a API -p PEER -l                 a new group with this node alone
        kvd -a API -c CLUSTER -l              the same; the peer address is -c's
        kvd -a API -p PEER [-c CLUSTER]       a standby until `kvctl join` adds it

      With --controller the node is a shard controller replica (same flags):

        kvd --controller -a API -p PEER --peers P1,P2,P3 --shards 64

      With --group it is a member of replica group GID of a sharded cluster: it
      serves the shards the controller (C = its replicas' API addresses) assigns
      to GID, and pulls and hands off shards as they move:

        kvd -a API -p PEER --peers P1,P2,P3 --group GID --controllers C1,C2,C3

      Register the group with `kvctl -a C1 group join GID API1,API2,API3`.
      Without --group a node is a standalone group that serves every key.

      With --router it is a stateless router: one address for the whole
      cluster (data and admin commands, JOIN_CLUSTER), and with --resp the
      Redis protocol:

        kvd --router -a API --controllers C1,C2,C3 [--resp HOST:PORT]

      A new node joins a group through a router (JOIN_CLUSTER; without --group
      the router picks the group with the fewest members):

        kvd -a API -p PEER -c ROUTER [--group GID]

      A node with state in its data directory resumes it and ignores -l and
      --peers. A controller's shard count is fixed by its first operation.
      """)

  @Option(name: [.customShort("a"), .customLong("api")], help: "API address HOST:PORT.")
  var api: String = ""

  @Option(help: "Run the node --node names in this cluster file (TOML); other flags override the file's.")
  var config: String?

  @Option(help: "With --config: the node's name in the file.")
  var node: String?

  @Option(name: [.customShort("p"), .customLong("peer")], help: "Peer address HOST:PORT (default: -c's).")
  var peer: String?

  @Option(
    name: [.customShort("c"), .customLong("cluster")],
    help: "The cluster address; the peer address when -p is not given.")
  var cluster: String?

  @Flag(
    name: [.customShort("l"), .customLong("leader")], help: "Bootstrap a new group with this node alone.")
  var bootstrapAlone = false

  @Option(help: "Bootstrap a static group with these peer addresses (comma-separated, this node included).")
  var peers: String?

  @Flag(help: "Run a replica of the shard controller instead of a KV group member.")
  var controller = false

  @Option(help: "Shard count of a new controller (default 64; --controller only).")
  var shards: Int?

  @Option(help: "Run as a member of this replica group of a sharded cluster (needs --controllers).")
  var group: UInt64?

  @Option(help: "The shard controller replicas' API addresses (comma-separated; --group or --router).")
  var controllers: String?

  @Flag(help: "Run a stateless router in front of the whole cluster (needs --controllers).")
  var router = false

  @Option(help: "With --router: also serve the Redis protocol (RESP2) on this HOST:PORT.")
  var resp: String?

  @Option(help: "Data directory (default: ./kvd-data/HOST_PORT of the peer address).")
  var data: String?

  @Option(help: "Leader heartbeat interval in milliseconds.")
  var heartbeatMs = 100

  @Option(help: "Minimum election timeout in milliseconds (randomized up to twice this).")
  var electionMs = 500

  @Option(help: "A member silent for longer than this many milliseconds is reported by `dropped`.")
  var failureMs = 1000

  @Option(help: "Largest key in bytes.")
  var maxKeyBytes = 4096

  @Option(help: "Largest value in bytes.")
  var maxValueBytes = 1 << 20

  @Option(help: "Compact the Raft log once it holds more entries than this.")
  var maxLogEntries = 10_000

  @Option(help: "Applied entries kept after a compaction (a follower further behind gets a snapshot).")
  var retainedEntries = 1_000

  @Option(help: "Serve Prometheus metrics at http://HOST:PORT/metrics.")
  var metrics: String?

  @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
  var logLevel = "info"

  @OptionGroup(title: "Limits")
  var limits: LimitOptions
  @OptionGroup(title: "Mutual TLS") var tls: TLSOptions

  private static let tickMs = 10

  func validate() throws {
    if config != nil || node != nil {
      guard config != nil, node != nil else { throw ValidationError("--config and --node go together") }
      return  // checked once the file's flags are merged in (run)
    }
    guard !api.isEmpty else { throw ValidationError("-a API is required (or --config FILE --node NAME)") }
    _ = try parsed(api, "-a")
    if router {
      guard !controller, group == nil, peer == nil, peers == nil, cluster == nil, !bootstrapAlone,
        !tls.peerTLS
      else {
        throw ValidationError(
          "--router takes only -a, --controllers, --resp and --api-* (a router has no peers and no data)")
      }
      guard let controllers, !peerList(controllers).isEmpty else {
        throw ValidationError(
          "--router needs --controllers C1,C2,... (the controller replicas' API addresses)")
      }
      for address in peerList(controllers) { _ = try parsed(address, "--controllers") }
      if let resp { _ = try parsed(resp, "--resp") }
      try validateCommon()
      return
    }
    if resp != nil { throw ValidationError("--resp needs --router") }
    guard peer != nil || cluster != nil else {
      throw ValidationError("a peer address is needed: give -p PEER (or -c CLUSTER)")
    }
    _ = try parsed(peerAddress, "-p")
    if bootstrapAlone && peers != nil { throw ValidationError("-l and --peers exclude each other") }
    if let peers {
      let list = peerList(peers)
      guard !list.isEmpty else { throw ValidationError("--peers is empty") }
      for address in list { _ = try parsed(address, "--peers") }
      guard list.contains(peerAddress) else {
        throw ValidationError("--peers must include this node's peer address \(peerAddress)")
      }
    }
    try validateCommon()
    if let group {
      guard !controller else { throw ValidationError("--group and --controller exclude each other") }
      guard group != 0 else { throw ValidationError("--group 0 is reserved (it means unassigned)") }
      if let controllers {
        for address in peerList(controllers) { _ = try parsed(address, "--controllers") }
      } else if !joinsThroughRouter {
        throw ValidationError(
          "--group needs --controllers C1,C2,... (the controller replicas' API addresses), "
            + "or -c ROUTER to join through a router")
      }
    } else if controllers != nil {
      throw ValidationError("--controllers needs --group GID (or --router)")
    }
    if let shards {
      guard controller else { throw ValidationError("--shards needs --controller") }
      guard (1...65536).contains(shards) else { throw ValidationError("--shards must be in 1...65536") }
    }
  }

  /// Timing, limits and logging, for every kind of node.
  private func validateCommon() throws {
    // The core counts in ticks of tickMs: compare what it will see, not the milliseconds.
    let (heartbeatTicks, electionTicks, failureTicks) =
      (heartbeatMs / Self.tickMs, electionMs / Self.tickMs, failureMs / Self.tickMs)
    guard heartbeatTicks >= 1, electionTicks > heartbeatTicks, failureTicks >= heartbeatTicks else {
      throw ValidationError(
        "need --heartbeat-ms ≥ \(Self.tickMs), --election-ms at least \(Self.tickMs) ms above --heartbeat-ms, "
          + "--failure-ms ≥ --heartbeat-ms (all counted in \(Self.tickMs) ms ticks)")
    }
    guard maxKeyBytes > 0, maxValueBytes >= 0 else { throw ValidationError("limits must be positive") }
    try LimitOptions.checkValueFitsFrame(maxKeyBytes: maxKeyBytes, maxValueBytes: maxValueBytes)
    guard maxLogEntries >= 1, (0..<maxLogEntries).contains(retainedEntries) else {
      throw ValidationError("need --max-log-entries ≥ 1 and 0 ≤ --retained-entries < --max-log-entries")
    }
    if let metrics { _ = try parsed(metrics, "--metrics") }
    guard Logger.Level(rawValue: logLevel) != nil else {
      throw ValidationError("unknown --log-level \(logLevel)")
    }
  }

  private var peerAddress: String { peer ?? cluster ?? "" }

  /// `-p PEER -c ADDR` without --peers or -l: a new node that asks ADDR to add it. When ADDR is
  /// a router this is JOIN_CLUSTER; when it is a standalone group's member, the node waits as
  /// a standby for `kvctl join`.
  var joinsThroughRouter: Bool {
    peer != nil && cluster != nil && peers == nil && !bootstrapAlone && !controller
  }

  private func peerList(_ text: String) -> [String] {
    text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
  }

  private func parsed(_ address: String, _ flag: String) throws -> PeerAddress {
    do {
      return try PeerAddress(parsing: address)
    } catch {
      throw ValidationError("\(flag): '\(address)' is not HOST:PORT")
    }
  }

  func run() async throws {
    if let config, let node {
      // The file's flags first, then the command line's: a repeated option takes its last value.
      let file: ClusterFile
      do {
        file = try ClusterFile.load(path: config)
      } catch {
        Self.fail(error.description)
      }
      guard let derived = file.kvdArguments(for: node) else {
        Self.fail(
          "\(config): no node named \(node) (nodes: \(file.nodes.map(\.node.name).joined(separator: ", ")))")
      }
      var own = Array(CommandLine.arguments.dropFirst())
      for flag in ["--config", "--node"] {
        while let at = own.firstIndex(of: flag) { own.removeSubrange(at..<min(at + 2, own.count)) }
      }
      if file.node(named: node)?.role != .router {
        try FileManager.default.createDirectory(atPath: file.dataDirectory, withIntermediateDirectories: true)
      }
      let merged = try KVD.parse(derived + own)
      try await merged.run()
      return
    }
    let level = Logger.Level(rawValue: logLevel) ?? .info
    LoggingSystem.bootstrap { label in
      var handler = StreamLogHandler.standardError(label: label)
      handler.logLevel = level
      return handler
    }
    let logger = Logger(label: "kvd")
    tls.logSecurity(logger, isRouter: router)
    var metricsChannel: (any Channel)?
    if let metrics {
      do {
        let address = try PeerAddress(parsing: metrics)
        metricsChannel = try await MetricsEndpoint.start(host: address.host, port: address.port)
        logger.info("metrics at http://\(metrics)/metrics")
      } catch {
        Self.fail("cannot serve metrics on \(metrics): \(error)")
      }
    }
    defer { if let metricsChannel { metricsChannel.close(promise: nil) } }
    if router {
      await runRouter(logger: logger)
      return
    }
    let id = NodeID(peerAddress)
    let directory = data ?? "kvd-data/" + peerAddress.replacingOccurrences(of: ":", with: "_")

    let db: RocksDB
    do {
      try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
      db = try RocksDB(
        path: directory,
        columnFamilies: RocksLogStorage.columnFamilies
          + (controller ? ControllerStateMachine.columnFamilies : KVStateMachine.columnFamilies))
    } catch {
      Self.fail("cannot open the data directory \(directory): \(error)")
    }

    var options = RaftNodeOptions()
    options.tickInterval = .milliseconds(Self.tickMs)
    options.raft = RaftConfig(
      electionTicks: electionMs / Self.tickMs, heartbeatTicks: heartbeatMs / Self.tickMs,
      unreachableTicks: failureMs / Self.tickMs)
    limits.apply(to: &options)
    options.snapshotStagingDirectory = directory + "/snapshot-staging"
    options.maxLogEntries = maxLogEntries
    options.retainedEntries = retainedEntries
    let voters: [NodeID]
    if bootstrapAlone {
      voters = [id]
    } else if let peers {
      voters = peerList(peers).map { NodeID($0) }
    } else {
      voters = []
    }

    let (transport, apiTransport) = tls.transportsOrExit()
    var group = self.group
    var controllerList = controllers.map(peerList) ?? []
    // JOIN_CLUSTER: -c names a router, which says which group (and controller) to join.
    var joinRouter: String?
    if joinsThroughRouter, let address = cluster {
      let stored: GroupID?
      do {
        stored = try KVStateMachine.storedGroup(in: db)
      } catch {
        Self.fail("cannot read the data directory \(directory): \(error)")
      }
      let join = ClusterJoin(
        router: address, peer: peerAddress, api: api, transport: apiTransport, logger: logger)
      switch await join.pick(group: stored ?? group ?? 0) {
      case .joining(let picked, let controllers):
        group = picked
        if controllerList.isEmpty { controllerList = controllers }
        joinRouter = address
      case .notARouter:
        if group != nil {
          Self.fail("-c \(address) is not a router; a group member needs --controllers or -c ROUTER")
        }
      case .refused(let why):
        Self.fail("JOIN_CLUSTER through \(address): \(why)")
      }
    }
    var kvMachine: KVStateMachine?
    let node: RaftNode
    let nodeCommands: NodeCommandService
    var peerHandlers = RPCHandlers()
    var apiHandlers = RPCHandlers()
    do {
      let stateMachine: any StateMachine
      let register: (RaftNode, inout RPCHandlers, inout RPCHandlers) -> NodeCommandService
      if controller {
        let machine = try ControllerStateMachine(db: db, options: .init(shardCount: shards ?? 64))
        if let shards, machine.appliedIndex > 0, machine.shardCount != shards {
          logger.warning(
            "--shards ignored: this controller's shard count is already fixed",
            metadata: ["shards": "\(machine.shardCount)"])
        }
        stateMachine = machine
        register = { node, apiHandlers, peerHandlers in
          let server = ControllerServer(node: node, stateMachine: machine, peers: transport, apiAddress: api)
          server.registerClientMethods(in: &apiHandlers)
          server.registerForwardedMethods(in: &peerHandlers)
          return server.nodeCommands
        }
      } else {
        let machine = try KVStateMachine(
          db: db,
          options: .init(
            limits: KVLimits(maxKeyBytes: maxKeyBytes, maxValueBytes: maxValueBytes), group: group ?? 0,
            controllers: controllerList, apiAddress: api))
        stateMachine = machine
        kvMachine = machine
        register = { node, apiHandlers, peerHandlers in
          let server = KVGroupServer(node: node, stateMachine: machine, peers: transport, api: apiTransport)
          server.registerClientMethods(in: &apiHandlers)
          server.registerForwardedMethods(in: &peerHandlers)
          return server.nodeCommands
        }
      }
      node = try RaftNode(
        id: id, options: options, storage: try RocksLogStorage(db: db), stateMachine: stateMachine,
        transport: WireRaftTransport(transport: transport, messageTimeout: .milliseconds(electionMs)),
        bootstrapVoters: voters, logger: logger)
      WireRaftTransport.register(node, in: &peerHandlers)
      nodeCommands = register(node, &apiHandlers, &peerHandlers)
    } catch {
      Self.fail("cannot start from \(directory): \(error)")
    }

    let listeners: [any TransportListener]
    do {
      let peerListener = try await transport.listen(
        on: peerAddress, handlers: peerHandlers, limits: limits.peerLimits)
      let apiListener = try await apiTransport.listen(
        on: api, handlers: apiHandlers, limits: limits.apiLimits)
      listeners = [peerListener, apiListener]
    } catch {
      Self.fail("cannot listen: \(error)")
    }
    await node.start()
    // This member's API address in the group's member directory, for the leader hints.
    let publishing = nodeCommands.publishAddress()
    var migration: ShardMigration?
    if let group, let kvMachine {
      migration = ShardMigration(
        node: node, stateMachine: kvMachine, transport: apiTransport, controllers: controllerList,
        logger: logger
      )
      await migration?.start()
      logger.info(
        "kvd serving (replica group \(group))", metadata: ["api": "\(api)", "peer": "\(peerAddress)"])
      if let joinRouter {
        let join = ClusterJoin(
          router: joinRouter, peer: peerAddress, api: api, transport: apiTransport, logger: logger)
        Task { await join.join(group: group) }
      }
    } else {
      logger.info(
        controller ? "kvd serving (shard controller)" : "kvd serving",
        metadata: ["api": "\(api)", "peer": "\(peerAddress)", "data": "\(directory)"])
    }

    if let failure = await Termination.wait(orUntilStopped: node) {
      // Raft's promises rest on the disk: a node that cannot write stops serving altogether,
      // and whatever supervises it sees a failed process, not a live one with a frozen state.
      // It exits at once, as a crash would (RocksDB recovers from that): a graceful close, or
      // RocksDB's own no-space recovery thread, writes through a log writer that has failed,
      // and Debian's librocksdb (built with assertions) aborts the process there.
      FileHandle.standardError.write(Data("kvd: stopped: \(failure)\n".utf8))
      _exit(1)
    }
    logger.info("kvd shutting down")
    publishing.cancel()
    await migration?.stop()
    await node.stop()
    for listener in listeners { await listener.close() }
    await transport.shutdown()
    await apiTransport.shutdown()
    db.close()
  }

  static func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("kvd: \(message)\n".utf8))
    Foundation.exit(1)
  }
}
