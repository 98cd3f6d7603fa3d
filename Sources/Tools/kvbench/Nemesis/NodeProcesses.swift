import Foundation
import Synchronization

/// The kvd processes of one run, each started in its node's namespace (`ip netns exec`, which
/// execs kvd, so the process id is kvd's): start, kill -9, SIGSTOP/SIGCONT, stop.
///
/// Every process ever started is registered with `NemesisCleanup`, so that Ctrl-C kills them.
final class NodeProcesses: Sendable {
  struct Running: Sendable {
    var process: Process
    var paused: Bool
  }

  private let kvd: String
  private let lab: NetworkLab
  private let topology: NemesisTopology
  private let directory: String
  private let environment: [String: String]
  private let running = Mutex<[Int: Running]>([:])

  init(
    kvd: String, lab: NetworkLab, topology: NemesisTopology, directory: String, environment: [String: String]
  ) {
    self.kvd = kvd
    self.lab = lab
    self.topology = topology
    self.directory = directory
    self.environment = environment
  }

  func dataDirectory(_ node: Int) -> String { "\(directory)/\(topology.nodes[node].name)" }

  /// Starts `node`'s kvd; nothing when it is already running.
  func start(_ node: Int) throws {
    if isRunning(node) { return }
    let spec = topology.nodes[node]
    var arguments = ["netns", "exec", lab.namespace(node), kvd] + spec.arguments + ["--log-level", "notice"]
    if spec.role != .router { arguments += ["--data", dataDirectory(node)] }
    let log = "\(directory)/\(spec.name).log"
    if !FileManager.default.fileExists(atPath: log) {
      guard FileManager.default.createFile(atPath: log, contents: nil) else {
        throw NemesisError.setup("cannot create \(log)")
      }
    }
    guard let handle = FileHandle(forWritingAtPath: log) else {
      throw NemesisError.setup("cannot write \(log)")
    }
    handle.seekToEndOfFile()
    let process = Process()
    process.executableURL = URL(fileURLWithPath: NetworkLab.ip)
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    process.standardOutput = handle
    process.standardError = handle
    try process.run()
    try? handle.close()
    NemesisCleanup.shared.register(process.processIdentifier)
    running.withLock { $0[node] = Running(process: process, paused: false) }
  }

  func isRunning(_ node: Int) -> Bool { running.withLock { $0[node]?.process.isRunning ?? false } }
  func isPaused(_ node: Int) -> Bool { running.withLock { $0[node]?.paused ?? false } }

  /// kill -9, then waits until the process is gone.
  func kill9(_ node: Int) async {
    guard let entry = running.withLock({ $0.removeValue(forKey: node) }) else { return }
    kill(entry.process.processIdentifier, SIGKILL)
    await Self.waitForExit(entry.process, within: .seconds(10))
  }

  func pause(_ node: Int) {
    running.withLock { all in
      guard let entry = all[node], !entry.paused else { return }
      kill(entry.process.processIdentifier, SIGSTOP)
      all[node]?.paused = true
    }
  }

  func resume(_ node: Int) {
    running.withLock { all in
      guard let entry = all[node], entry.paused else { return }
      kill(entry.process.processIdentifier, SIGCONT)
      all[node]?.paused = false
    }
  }

  /// Nodes whose process died on its own (not killed by the nemesis).
  var crashed: [Int] {
    running.withLock { all in all.filter { !$0.value.process.isRunning }.map(\.key).sorted() }
  }

  /// SIGTERM to every node, then waits for each; returns a problem per node that had to be
  /// killed (it did not stop in time) or exited with a failure.
  func stopAll(within limit: Duration = .seconds(15)) async -> [String] {
    let all = running.withLock { all in
      let taken = all
      all = [:]
      return taken
    }
    var problems: [String] = []
    for entry in all.values {
      if entry.paused { kill(entry.process.processIdentifier, SIGCONT) }
      kill(entry.process.processIdentifier, SIGTERM)
    }
    for (node, entry) in all.sorted(by: { $0.key < $1.key }) {
      if await !Self.waitForExit(entry.process, within: limit) {
        problems.append("\(topology.nodes[node].name) did not stop within \(limit) of SIGTERM")
        kill(entry.process.processIdentifier, SIGKILL)
        await Self.waitForExit(entry.process, within: .seconds(10))
      } else if entry.process.terminationStatus != 0 {
        problems.append(
          "\(topology.nodes[node].name) exited with \(entry.process.terminationStatus) on SIGTERM")
      }
    }
    return problems
  }

  /// kill -9 to everything still running.
  func killAll() async {
    let all = running.withLock { all in
      let taken = all
      all = [:]
      return taken
    }
    for entry in all.values { kill(entry.process.processIdentifier, SIGKILL) }
    for entry in all.values { await Self.waitForExit(entry.process, within: .seconds(10)) }
  }

  @discardableResult
  static func waitForExit(_ process: Process, within limit: Duration) async -> Bool {
    let deadline = ContinuousClock.now + limit
    while process.isRunning {
      if ContinuousClock.now >= deadline { return false }
      try? await Task.sleep(for: .milliseconds(20))
    }
    return true
  }
}

/// What Ctrl-C (SIGINT) or SIGTERM must undo: every process started and the namespaces.
final class NemesisCleanup: Sendable {
  static let shared = NemesisCleanup()
  private let state = Mutex<(pids: Set<Int32>, labs: [NetworkLab])>(([], []))

  func register(_ pid: Int32) { state.withLock { _ = $0.pids.insert(pid) } }
  func register(_ lab: NetworkLab) { state.withLock { $0.labs.append(lab) } }
  func forget(_ lab: NetworkLab) { state.withLock { $0.labs.removeAll { $0 === lab } } }

  /// Kills everything registered and deletes the namespaces.
  func now() {
    let (pids, labs) = state.withLock { ($0.pids, $0.labs) }
    for pid in pids {
      kill(pid, SIGCONT)
      kill(pid, SIGKILL)
    }
    usleep(200_000)
    for lab in labs { lab.destroy() }
  }

  /// On SIGINT or SIGTERM: clean up and exit 130.
  func installSignalHandlers() {
    let queue = DispatchQueue(label: "nemesis.signals")
    for number in [SIGINT, SIGTERM] {
      signal(number, SIG_IGN)
      let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
      source.setEventHandler {
        FileHandle.standardError.write(
          Data("nemesis: interrupted; killing the nodes, deleting the namespaces\n".utf8))
        NemesisCleanup.shared.now()
        exit(130)
      }
      source.resume()
      // The handler must live as long as the process: never released.
      _ = Unmanaged.passRetained(source as AnyObject)
    }
  }
}
