import Dispatch
import Foundation
import Logging
import Raft
import Router
import ShardCtrler
import ShardKV
import Storage
import Synchronization
import Wire

// libFuzzer target for the protobuf request handlers of the API and peer addresses: a
// single-node KV group, a single-node shard controller (real RocksDB in a temporary
// directory, the in-memory network) and a router serve every method kvd registers; the first input byte
// picks the method, the rest is its payload. A handler may answer or throw, within its own
// timeout; a crash, a sanitizer report or a handler that never returns is a finding. Built like
// RESPFuzz (see Sources/Fuzz/RESPFuzz/RESPFuzz.swift): `scripts/fuzz.sh HandlerFuzz SECONDS`;
// the ordinary build replays inputs (`swift run HandlerFuzz FILE...`).

@_cdecl("LLVMFuzzerTestOneInput")
public func handlerFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
  let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
  HandlerFuzzCheck.run(input)
  return 0
}

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func llvmFuzzerRunDriver(
  _ argc: UnsafeMutablePointer<CInt>,
  _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
  _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt
#endif

@main
struct HandlerFuzzMain {
  static func main() throws {
    #if FUZZING
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(llvmFuzzerRunDriver(&argc, &argv, handlerFuzzTestOneInput))
    #else
    let paths = CommandLine.arguments.dropFirst()
    if paths.isEmpty {
      print("usage: HandlerFuzz FILE... (replays fuzz inputs; scripts/fuzz.sh builds the fuzzer)")
      print("methods: \(HandlerFuzzCheck.harness.methods.map(\.name).joined(separator: " "))")
      return
    }
    for path in paths {
      let data = try Data(contentsOf: URL(fileURLWithPath: path))
      HandlerFuzzCheck.run([UInt8](data))
      print("ok \(path)")
    }
    exit(0)  // The nodes' tasks would keep the process alive.
    #endif
  }
}

/// Runs async work from the fuzzer's synchronous callback, waiting at most `timeout`.
func runBlocking(timeout: Duration, _ work: @escaping @Sendable () async -> Void) -> Bool {
  let done = DispatchSemaphore(value: 0)
  Task {
    await work()
    done.signal()
  }
  let (seconds, attoseconds) = timeout.components
  let nanoseconds = Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)
  return done.wait(timeout: .now() + .nanoseconds(nanoseconds)) == .success
}

enum HandlerFuzzCheck {
  /// Far above every handler's own timeout (1 s here): only a hang reaches it.
  static let hangLimit: Duration = .seconds(20)

  static let harness = Harness.make()

  static func run(_ input: [UInt8]) {
    guard let selector = input.first else { return }
    let methods = harness.methods
    let method = methods[Int(selector) % methods.count]
    let payload = Array(input.dropFirst())
    let returned = runBlocking(timeout: hangLimit) {
      _ = try? await method.handler(payload)
    }
    guard returned else { fatalError("\(method.name) did not return within \(hangLimit)") }
  }
}

/// A single-node KV group and controller and every handler they register, API and peer.
final class Harness: Sendable {
  struct Method: Sendable {
    var name: String
    var handler: RPCHandler
  }

  let methods: [Method]
  private let keep: [RaftNode]

  private init(methods: [Method], keep: [RaftNode]) {
    self.methods = methods
    self.keep = keep
  }

  static func make() -> Harness {
    let box = Mutex<Harness?>(nil)
    let started = runBlocking(timeout: .seconds(60)) {
      do {
        box.withLock { $0 = nil }
        let harness = try await start()
        box.withLock { $0 = harness }
      } catch {
        FileHandle.standardError.write(Data("HandlerFuzz: cannot start: \(error)\n".utf8))
      }
    }
    guard started, let harness = box.withLock({ $0 }) else {
      fatalError("HandlerFuzz: the nodes did not start")
    }
    return harness
  }

  private static func start() async throws -> Harness {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent(
      "handlerfuzz-\(UUID().uuidString)"
    ).path
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    let network = InMemoryNetwork(seed: 1)
    var logger = Logger(label: "fuzz")
    logger.logLevel = .critical
    var options = RaftNodeOptions()
    options.tickInterval = .milliseconds(5)
    var api = RPCHandlers()
    var peer = RPCHandlers()

    let kvDB = try RocksDB(
      path: root + "/kv", columnFamilies: RocksLogStorage.columnFamilies + KVStateMachine.columnFamilies)
    let kvMachine = try KVStateMachine(db: kvDB, options: .init(apiAddress: "kv:api"))
    let kvTransport = network.transport(for: "kv:peer")
    let kvNode = try RaftNode(
      id: NodeID("kv:peer"), options: options, storage: try RocksLogStorage(db: kvDB),
      stateMachine: kvMachine,
      transport: WireRaftTransport(transport: kvTransport), bootstrapVoters: [NodeID("kv:peer")],
      logger: logger)
    var kv = KVGroupServer(node: kvNode, stateMachine: kvMachine, peers: kvTransport)
    kv.requestTimeout = .seconds(1)
    kv.nodeCommands.forwardTimeout = .seconds(1)
    // A join waits for the new member to catch up (30 s in kvd): an unreachable one never does.
    kv.nodeCommands.membershipTimeout = .seconds(1)
    kv.registerClientMethods(in: &api)
    kv.registerForwardedMethods(in: &peer)
    WireRaftTransport.register(kvNode, in: &peer)

    let ctrlDB = try RocksDB(
      path: root + "/ctrl",
      columnFamilies: RocksLogStorage.columnFamilies + ControllerStateMachine.columnFamilies)
    let ctrlMachine = try ControllerStateMachine(db: ctrlDB, options: .init(shardCount: 8))
    let ctrlTransport = network.transport(for: "ctrl:peer")
    let ctrlNode = try RaftNode(
      id: NodeID("ctrl:peer"), options: options, storage: try RocksLogStorage(db: ctrlDB),
      stateMachine: ctrlMachine, transport: WireRaftTransport(transport: ctrlTransport),
      bootstrapVoters: [NodeID("ctrl:peer")], logger: logger)
    var ctrl = ControllerServer(node: ctrlNode, stateMachine: ctrlMachine, peers: ctrlTransport)
    ctrl.requestTimeout = .seconds(1)
    ctrl.nodeCommands.forwardTimeout = .seconds(1)
    // A join waits for the new member to catch up (30 s in kvd): an unreachable one never does.
    ctrl.nodeCommands.membershipTimeout = .seconds(1)
    var ctrlAPI = RPCHandlers()
    var ctrlPeer = RPCHandlers()
    ctrl.registerClientMethods(in: &ctrlAPI)
    ctrl.registerForwardedMethods(in: &ctrlPeer)
    WireRaftTransport.register(ctrlNode, in: &ctrlPeer)

    // A router whose controller never answers (nothing listens at its address): every method
    // answers within its own short deadline.
    var router = RouterServer(
      apiAddress: "router:api", controllers: ["ctrl:api"], transport: network.transport(for: "router:api"))
    router.joinTimeout = .seconds(1)
    router.router.defaultTimeout = .seconds(1)
    router.router.maxTimeout = .seconds(1)
    router.router.callTimeout = .milliseconds(200)
    var routerAPI = RPCHandlers()
    router.registerMethods(in: &routerAPI)

    await kvNode.start()
    await ctrlNode.start()
    var methods: [Method] = []
    for (prefix, table) in [
      ("kv-api ", api), ("kv-peer ", peer), ("ctrl-api ", ctrlAPI), ("ctrl-peer ", ctrlPeer),
      ("router-api ", routerAPI),
    ] {
      for name in table.methods {
        guard let handler = table[name] else { continue }
        methods.append(Method(name: prefix + name, handler: handler))
      }
    }
    return Harness(methods: methods, keep: [kvNode, ctrlNode])
  }
}
