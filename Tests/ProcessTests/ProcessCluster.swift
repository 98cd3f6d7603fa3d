import Foundation
import XCTest

/// A failed step of a process test, with everything needed to see why (outputs, log tails).
struct ProcessTestFailure: Error, CustomStringConvertible {
  var description: String
}

/// Real `kvd` processes on loopback, each with its own RocksDB directory, driven and observed
/// through real `kvctl` invocations, as the replicated-KVS lab's acceptance tests do.
final class ProcessCluster {
  struct Node {
    var api: String
    var peer: String
    var data: String
  }

  let root: String
  private(set) var nodes: [Node] = []
  /// Node indices by role, in creation order: `ProcessCluster(roles: [3, 1])` has the roles
  /// `[[0, 1, 2], [3]]` (say, three controller replicas and one group member).
  let roles: [[Int]]
  private var processes: [Int: Process] = [:]
  /// The flags each node was last started with, for `restart`.
  private var startFlags: [Int: [String]] = [:]

  /// Where SwiftPM put the test bundle; kvd and kvctl are built beside it.
  static let binaries: URL = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()

  convenience init(size: Int) throws {
    try self.init(roles: [size])
  }

  /// A cluster of `sizes.reduce(0, +)` nodes split into consecutive roles of these sizes.
  init(roles sizes: [Int]) throws {
    var roles: [[Int]] = []
    var next = 0
    for count in sizes {
      roles.append(Array(next..<next + count))
      next += count
    }
    self.roles = roles
    root = FileManager.default.temporaryDirectory.appendingPathComponent("kvd-proc-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    let ports = try Self.freePorts(2 * next)
    for i in 0..<next {
      nodes.append(
        Node(
          api: "127.0.0.1:\(ports[2 * i])", peer: "127.0.0.1:\(ports[2 * i + 1])", data: root + "/node\(i)"))
    }
  }

  deinit {
    for process in processes.values where process.isRunning { kill(process.processIdentifier, SIGKILL) }
    try? FileManager.default.removeItem(atPath: root)
  }

  /// The API addresses of these nodes, comma-separated (for `group join` and `--controllers`).
  func apis(_ indices: [Int]) -> String {
    indices.map { nodes[$0].api }.joined(separator: ",")
  }

  /// The peer addresses of these nodes, comma-separated (for `--peers`).
  func peers(_ indices: [Int]) -> String {
    indices.map { nodes[$0].peer }.joined(separator: ",")
  }

  /// The node whose peer address this is.
  func node(peer: String) -> Int? {
    nodes.firstIndex { $0.peer == peer }
  }

  /// Starts node `i` with extra flags; its log goes to a file (never to a pipe nobody reads),
  /// appended to across restarts, each start marked by a line naming its arguments.
  func start(_ i: Int, _ flags: [String]) throws {
    try start(i, arguments: ["-a", nodes[i].api, "-p", nodes[i].peer, "--data", nodes[i].data] + flags)
    startFlags[i] = flags
  }

  /// Starts kvd as node `i` with exactly `arguments` (a router takes no peer address or data).
  func start(_ i: Int, arguments: [String]) throws {
    let process = Process()
    process.executableURL = Self.binaries.appendingPathComponent("kvd")
    process.arguments = arguments
    let log = logPath(i)
    if !FileManager.default.fileExists(atPath: log) {
      _ = FileManager.default.createFile(atPath: log, contents: nil)
    }
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
    defer { try? handle.close() }
    handle.seekToEndOfFile()
    handle.write(Data("=== test: started kvd \(arguments.joined(separator: " "))\n".utf8))
    process.standardOutput = handle
    process.standardError = handle
    try process.run()
    processes[i] = process
  }

  /// Kills node `i` (if running) and starts it again on its data with the flags it was last
  /// started with.
  func restart(_ i: Int) throws {
    kill9(i)
    guard let flags = startFlags[i] else {
      throw ProcessTestFailure(description: "node \(i) cannot be restarted: it was never started")
    }
    try start(i, flags)
  }

  func isRunning(_ i: Int) -> Bool {
    processes[i]?.isRunning ?? false
  }

  /// Kills node `i` with SIGKILL (only while its process runs: an exited one's pid may have
  /// been reused) and waits for it; the log records which it was.
  func kill9(_ i: Int) {
    guard let process = processes.removeValue(forKey: i) else { return }
    if process.isRunning {
      kill(process.processIdentifier, SIGKILL)
      process.waitUntilExit()
      appendToLog(i, "=== test: kill -9")
    } else {
      appendToLog(i, "=== test: had already exited with status \(process.terminationStatus)")
    }
  }

  func stopAll() {
    for i in processes.keys.sorted() { kill9(i) }
  }

  func logPath(_ i: Int) -> String {
    root + "/node\(i).log"
  }

  /// The last `lines` lines of node `i`'s log (all its runs).
  func logTail(_ i: Int, lines: Int = 25) -> String {
    guard let data = FileManager.default.contents(atPath: logPath(i)) else { return "(no log)" }
    let text = String(decoding: data, as: UTF8.self)
    var all = text.split(separator: "\n", omittingEmptySubsequences: false)
    if all.last?.isEmpty == true { all.removeLast() }
    return all.suffix(lines).joined(separator: "\n")
  }

  /// The log tails of these nodes, each under a header naming the node.
  func logTails(_ indices: [Int], lines: Int = 25) -> String {
    indices.map { i in
      "--- node \(i) (api \(nodes[i].api), peer \(nodes[i].peer), "
        + "\(isRunning(i) ? "running" : "not running")), last \(lines) log lines ---\n"
        + logTail(i, lines: lines)
    }.joined(separator: "\n")
  }

  private func appendToLog(_ i: Int, _ line: String) {
    guard let handle = FileHandle(forWritingAtPath: logPath(i)) else { return }
    defer { try? handle.close() }
    handle.seekToEndOfFile()
    handle.write(Data((line + "\n").utf8))
  }

  struct Output {
    var stdout: String
    var stderr: String
    var status: Int32

    /// The whole output, quoted, for failure messages.
    var summary: String {
      "exit status \(status), stdout \(stdout.debugDescription), stderr \(stderr.debugDescription)"
    }
  }

  /// Runs `kvctl -a <node i's API address> ARGS`.
  @discardableResult
  func kvctl(_ i: Int, _ args: String..., timeout: Int = 5) throws -> Output {
    try Self.kvctl(["-a", nodes[i].api, "--timeout", "\(timeout)"] + args, watchdog: .seconds(timeout + 30))
  }

  /// The arguments of `kvctl -a <node i's API address> --timeout TIMEOUT ARGS`, for `kvctlAll`.
  func kvctlArguments(_ i: Int, _ args: String..., timeout: Int = 5) -> [String] {
    ["-a", nodes[i].api, "--timeout", "\(timeout)"] + args
  }

  /// Runs `kvctl -a ADDRESS ARGS` (a node of this cluster or not).
  @discardableResult
  func kvctl(address: String, _ args: String..., timeout: Int = 5) throws -> Output {
    try Self.kvctl(["-a", address, "--timeout", "\(timeout)"] + args, watchdog: .seconds(timeout + 30))
  }

  /// Runs kvctl with these arguments. A kvctl still running after `watchdog` (it should have
  /// given up by its own --timeout long before) is killed, and says so on its stderr.
  static func kvctl(_ args: [String], watchdog: Duration = .seconds(120)) throws -> Output {
    finish(try launch(args, watchdog: watchdog))
  }

  /// Runs kvbench (built beside the tests) with these arguments.
  static func kvbench(_ args: [String], watchdog: Duration = .seconds(120)) throws -> Output {
    finish(try launch(args, watchdog: watchdog, executable: binaries.appendingPathComponent("kvbench")))
  }

  /// Runs another program (redis-cli, redis-benchmark, python3), found on the PATH as a shell
  /// would (so python3 is the one scripts/install-deps.sh installed packages for).
  static func tool(_ name: String, _ args: [String], watchdog: Duration = .seconds(120)) throws -> Output {
    let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
    guard
      let found = (path.map(String.init) + ["/usr/bin", "/usr/local/bin"]).map({ $0 + "/" + name }).first(
        where: {
          FileManager.default.isExecutableFile(atPath: $0)
        })
    else {
      throw ProcessTestFailure(description: "\(name) is not installed (scripts/install-deps.sh installs it)")
    }
    return finish(try launch(args, watchdog: watchdog, executable: URL(fileURLWithPath: found)))
  }

  /// Runs these kvctl invocations, up to `parallel` at a time, and returns their outputs in the
  /// order given. Once `giveUp(index, output)` holds for a finished one, no further invocation is
  /// started: the outputs are then those of the invocations already started (a prefix).
  static func kvctlAll(
    _ invocations: [[String]], parallel: Int = 6, watchdog: Duration = .seconds(120),
    giveUp: (_ index: Int, _ output: Output) -> Bool = { _, _ in false }
  ) throws -> [Output] {
    var outputs = [Output?](repeating: nil, count: invocations.count)
    var running: [(index: Int, launched: Launched)] = []
    var next = 0
    var stopped = false
    while (!stopped && next < invocations.count) || !running.isEmpty {
      while !stopped && next < invocations.count && running.count < max(parallel, 1) {
        running.append((next, try launch(invocations[next], watchdog: watchdog)))
        next += 1
      }
      let now = ContinuousClock.now
      let done = running.firstIndex { !$0.launched.process.isRunning || now >= $0.launched.deadline }
      if let done {
        let (index, launched) = running.remove(at: done)
        let output = finish(launched)
        outputs[index] = output
        if giveUp(index, output) { stopped = true }
      } else {
        usleep(2_000)
      }
    }
    return outputs.prefix(next).compactMap { $0 }
  }

  private struct Launched {
    var process: Process
    var stdoutPath: String
    var stderrPath: String
    var deadline: ContinuousClock.Instant
  }

  /// Starts kvctl with its stdout and stderr in files (no pipe to fill up and block it).
  private static func launch(_ args: [String], watchdog: Duration, executable: URL? = nil) throws -> Launched
  {
    let base = FileManager.default.temporaryDirectory.path + "/kvctl-\(UUID().uuidString)"
    let stdoutPath = base + ".out"
    let stderrPath = base + ".err"
    guard
      FileManager.default.createFile(atPath: stdoutPath, contents: nil),
      FileManager.default.createFile(atPath: stderrPath, contents: nil)
    else {
      throw ProcessTestFailure(description: "cannot create kvctl output files \(base).out/.err")
    }
    let out = try FileHandle(forWritingTo: URL(fileURLWithPath: stdoutPath))
    defer { try? out.close() }
    let err = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
    defer { try? err.close() }
    let process = Process()
    process.executableURL = executable ?? binaries.appendingPathComponent("kvctl")
    process.arguments = args
    process.standardOutput = out
    process.standardError = err
    try process.run()
    return Launched(
      process: process, stdoutPath: stdoutPath, stderrPath: stderrPath,
      deadline: ContinuousClock.now + watchdog)
  }

  private static func finish(_ launched: Launched) -> Output {
    var killed = false
    while launched.process.isRunning {
      if ContinuousClock.now >= launched.deadline {
        kill(launched.process.processIdentifier, SIGKILL)
        killed = true
        break
      }
      usleep(1_000)
    }
    launched.process.waitUntilExit()
    let stdout = FileManager.default.contents(atPath: launched.stdoutPath) ?? Data()
    var stderr = String(
      decoding: FileManager.default.contents(atPath: launched.stderrPath) ?? Data(), as: UTF8.self)
    try? FileManager.default.removeItem(atPath: launched.stdoutPath)
    try? FileManager.default.removeItem(atPath: launched.stderrPath)
    if killed { stderr += "[test: kvctl was still running at its watchdog deadline and was killed]\n" }
    return Output(
      stdout: String(decoding: stdout, as: UTF8.self), stderr: stderr,
      status: launched.process.terminationStatus)
  }

  /// Polls until `condition` holds or `deadline` passes; returns whether it held.
  func eventually(within deadline: Duration, _ condition: () throws -> Bool) rethrows -> Bool {
    let end = ContinuousClock.now + deadline
    repeat {
      if try condition() { return true }
      usleep(50_000)
    } while ContinuousClock.now < end
    return try condition()
  }

  /// The lowest port of the kernel's ephemeral range (which tests must stay below).
  static func ephemeralPortFloor() -> Int {
    guard
      let text = try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8),
      let first = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first,
      let floor = Int(first)
    else { return 32768 }
    return floor
  }

  /// Ports that were free a moment ago, all below the kernel's ephemeral range (so no outgoing
  /// connection can take one before its node binds it): from a random start in 24000..<31000,
  /// each port upward (wrapping around) is bound on 127.0.0.1 without SO_REUSEADDR, and the
  /// ones that bind are kept, then released together.
  static func freePorts(_ count: Int) throws -> [Int] {
    let low = 24000
    let high = min(ephemeralPortFloor(), 32768)
    guard high - low >= count else {
      throw ProcessTestFailure(
        description: "no room for \(count) test ports in \(low)..<\(high) below the ephemeral range")
    }
    var sockets: [Int32] = []
    defer { sockets.forEach { close($0) } }
    var ports: [Int] = []
    let start = Int.random(in: low..<max(low + 1, min(31000, high)))
    for step in 0..<(high - low) where ports.count < count {
      let port = low + (start - low + step) % (high - low)
      if let fd = try bindLoopback(port) {
        sockets.append(fd)
        ports.append(port)
      }
    }
    guard ports.count == count else {
      throw ProcessTestFailure(
        description: "only \(ports.count) of \(count) test ports free in \(low)..<\(high)")
    }
    return ports
  }

  /// A socket bound to 127.0.0.1:`port` (SO_REUSEADDR off), or nil if the port is taken.
  private static func bindLoopback(_ port: Int) throws -> Int32? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EMFILE) }
    var off: Int32 = 0
    _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &off, socklen_t(MemoryLayout<Int32>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
        bind(fd, pointer, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
      }
    }
    guard bound else {
      close(fd)
      return nil
    }
    return fd
  }
}
