import Foundation
import Synchronization

/// Why the nemesis could not do what it meant to.
enum NemesisError: Error, CustomStringConvertible {
  case command(String, status: Int32, output: String)
  case setup(String)

  var description: String {
    switch self {
    case .command(let line, let status, let output):
      return "`\(line)` exited with \(status): \(output.trimmingCharacters(in: .whitespacesAndNewlines))"
    case .setup(let why): return why
    }
  }
}

/// Real network partitions for processes on one machine: every node runs in its own network
/// namespace with its own address (10.213.R.N/24) on a veth port of one bridge, which lives in
/// a hub namespace; the root namespace reaches the bridge through one more veth
/// (10.213.R.254), so clients and the harness talk to every node without routing.
///
/// A dropped directed link i→j is a blackhole route for j's /32 in i's namespace: i's packets
/// to j vanish (TCP retransmits, then times out), as with an iptables DROP. A partition drops
/// both directions of every link across it; a one-way fault drops one direction only (TCP
/// needs both, so connections stall either way, but messages already in flight the other way
/// are delivered). The kernel of the test machine has no netem, tc filters or iptables, so
/// there is no random loss or delay here.
///
/// Names start with `nem<PID>-`; `destroy()` (and `sweep()` for the leftovers of a run that
/// was killed) delete the namespaces, which takes their veths and routes with them.
final class NetworkLab: Sendable {
  struct Link: Hashable, Sendable, Comparable {
    var from: Int
    var to: Int
    static func < (a: Link, b: Link) -> Bool { (a.from, a.to) < (b.from, b.to) }
  }

  let prefix: String
  let subnet: Int
  let count: Int
  private let dropped = Mutex<Set<Link>>([])

  var hub: String { "\(prefix)-hub" }
  func namespace(_ node: Int) -> String { "\(prefix)-n\(node)" }
  func address(_ node: Int) -> String { "10.213.\(subnet).\(node + 1)" }
  var rootAddress: String { "10.213.\(subnet).254" }

  private init(prefix: String, subnet: Int, count: Int) {
    self.prefix = prefix
    self.subnet = subnet
    self.count = count
  }

  /// Namespaces for `count` nodes (at most 250).
  static func create(nodes count: Int) throws -> NetworkLab {
    guard (1...250).contains(count) else { throw NemesisError.setup("a lab holds 1 to 250 nodes") }
    guard getuid() == 0 else {
      throw NemesisError.setup("network namespaces need root (run as root, or under `sudo`)")
    }
    try sweep()
    let used = try run(ip, ["-o", "-4", "addr", "show"])
    // Start the search at a place of our own, so that two campaigns starting at once do not
    // pick the same subnet.
    let offset = Int(getpid()) % 250
    let candidates = (0..<250).map { ($0 + offset) % 250 + 1 }
    guard let subnet = candidates.first(where: { !used.contains("10.213.\($0).") }) else {
      throw NemesisError.setup("no free 10.213.R.0/24 subnet")
    }
    let lab = NetworkLab(prefix: "nem\(getpid())", subnet: subnet, count: count)
    do {
      try lab.build()
    } catch {
      lab.destroy()
      throw error
    }
    return lab
  }

  private func build() throws {
    try Self.ip(["netns", "add", hub])
    try Self.ip(["-n", hub, "link", "set", "lo", "up"])
    try Self.ip(["-n", hub, "link", "add", "br0", "type", "bridge"])
    try Self.ip(["-n", hub, "link", "set", "br0", "up"])
    try Self.ip(["link", "add", prefix, "type", "veth", "peer", "name", "root", "netns", hub])
    try Self.ip(["-n", hub, "link", "set", "root", "master", "br0", "up"])
    try Self.ip(["addr", "add", "\(rootAddress)/24", "dev", prefix])
    try Self.ip(["link", "set", prefix, "up"])
    for node in 0..<count {
      let ns = namespace(node)
      try Self.ip(["netns", "add", ns])
      try Self.ip(["-n", hub, "link", "add", "v\(node)", "type", "veth", "peer", "name", "eth0", "netns", ns])
      try Self.ip(["-n", hub, "link", "set", "v\(node)", "master", "br0", "up"])
      try Self.ip(["-n", ns, "addr", "add", "\(address(node))/24", "dev", "eth0"])
      try Self.ip(["-n", ns, "link", "set", "eth0", "up"])
      try Self.ip(["-n", ns, "link", "set", "lo", "up"])
    }
  }

  /// Drops exactly `links` (directed), restoring every other link.
  func drop(_ links: Set<Link>) throws {
    let (add, remove) = dropped.withLock { current in
      let change = (links.subtracting(current), current.subtracting(links))
      current = links
      return change
    }
    for link in remove.sorted() {
      try Self.ip(["-n", namespace(link.from), "route", "del", "blackhole", "\(address(link.to))/32"])
    }
    for link in add.sorted() {
      try Self.ip(["-n", namespace(link.from), "route", "add", "blackhole", "\(address(link.to))/32"])
    }
  }

  /// Every link restored.
  func heal() throws { try drop([]) }

  var droppedLinks: Set<Link> { dropped.withLock { $0 } }

  /// Deletes the namespaces (their veths and routes go with them). Processes still running in
  /// them must have been killed first.
  func destroy() {
    for node in 0..<count { _ = try? Self.run(Self.ip, ["netns", "delete", namespace(node)]) }
    _ = try? Self.run(Self.ip, ["netns", "delete", hub])
    _ = try? Self.run(Self.ip, ["link", "delete", prefix])
  }

  /// Deletes the namespaces of nemesis runs whose process is gone, killing what runs in them.
  static func sweep() throws {
    let names = try run(ip, ["netns", "list"]).split(separator: "\n").compactMap {
      $0.split(separator: " ").first
    }
    for name in names where name.hasPrefix("nem") {
      guard let dash = name.firstIndex(of: "-"),
        let pid = Int32(name[name.index(name.startIndex, offsetBy: 3)..<dash])
      else { continue }
      if pid == getpid() || kill(pid, 0) == 0 { continue }
      for victim in (try? run(ip, ["netns", "pids", String(name)]))?.split(separator: "\n") ?? [] {
        if let victim = Int32(victim) { kill(victim, SIGKILL) }
      }
      _ = try? run(ip, ["netns", "delete", String(name)])
      _ = try? run(ip, ["link", "delete", "nem\(pid)"])
    }
  }

  static let ip =
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first {
      FileManager.default.isExecutableFile(atPath: $0)
    } ?? "/usr/sbin/ip"

  static func ip(_ arguments: [String]) throws { _ = try run(ip, arguments) }

  /// Runs a command to completion; its stdout, or a `NemesisError` with its output.
  @discardableResult
  static func run(_ executable: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
      throw NemesisError.command(
        ([executable] + arguments).joined(separator: " "), status: process.terminationStatus, output: output)
    }
    return output
  }
}
