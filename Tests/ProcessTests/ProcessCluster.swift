import Foundation
import XCTest

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
  private var processes: [Int: Process] = [:]

  /// Where SwiftPM put the test bundle; kvd and kvctl are built beside it.
  static let binaries: URL = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()

  init(size: Int) throws {
    root = FileManager.default.temporaryDirectory.appendingPathComponent("kvd-proc-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    let ports = try Self.freePorts(2 * size)
    for i in 0..<size {
      nodes.append(
        Node(
          api: "127.0.0.1:\(ports[2 * i])", peer: "127.0.0.1:\(ports[2 * i + 1])", data: root + "/node\(i)"))
    }
  }

  deinit {
    for process in processes.values where process.isRunning { kill(process.processIdentifier, SIGKILL) }
    try? FileManager.default.removeItem(atPath: root)
  }

  /// Starts node `i` with extra flags; its log goes to a file (never to a pipe nobody reads).
  func start(_ i: Int, _ flags: [String]) throws {
    let process = Process()
    process.executableURL = Self.binaries.appendingPathComponent("kvd")
    process.arguments = ["-a", nodes[i].api, "-p", nodes[i].peer, "--data", nodes[i].data] + flags
    let log = root + "/node\(i).log"
    _ = FileManager.default.createFile(atPath: log, contents: nil)
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
    handle.seekToEndOfFile()
    process.standardOutput = handle
    process.standardError = handle
    try process.run()
    processes[i] = process
  }

  func kill9(_ i: Int) {
    guard let process = processes.removeValue(forKey: i) else { return }
    kill(process.processIdentifier, SIGKILL)
    process.waitUntilExit()
  }

  func stopAll() {
    for i in processes.keys.sorted() { kill9(i) }
  }

  struct Output {
    var stdout: String
    var stderr: String
    var status: Int32
  }

  /// Runs `kvctl -a <node i's API address> ARGS`.
  @discardableResult
  func kvctl(_ i: Int, _ args: String..., timeout: Int = 5) throws -> Output {
    try Self.kvctl(["-a", nodes[i].api, "--timeout", "\(timeout)"] + args)
  }

  static func kvctl(_ args: [String]) throws -> Output {
    let process = Process()
    process.executableURL = binaries.appendingPathComponent("kvctl")
    process.arguments = args
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return Output(
      stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self),
      status: process.terminationStatus)
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

  /// Ports that were free a moment ago (bound to port 0, then released).
  static func freePorts(_ count: Int) throws -> [Int] {
    var sockets: [Int32] = []
    defer { sockets.forEach { close($0) } }
    var ports: [Int] = []
    for _ in 0..<count {
      let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
      guard fd >= 0 else { throw POSIXError(.EMFILE) }
      sockets.append(fd)
      var address = sockaddr_in()
      address.sin_family = sa_family_t(AF_INET)
      address.sin_addr.s_addr = inet_addr("127.0.0.1")
      address.sin_port = 0
      var length = socklen_t(MemoryLayout<sockaddr_in>.size)
      let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
          bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
        }
      }
      guard bound else { throw POSIXError(.EADDRINUSE) }
      ports.append(Int(UInt16(bigEndian: address.sin_port)))
    }
    return ports
  }
}
