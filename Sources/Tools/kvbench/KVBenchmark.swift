import ArgumentParser
import Foundation
import Histogram
import Logging
import Raft
import ShardKV
import Synchronization
import Wire

/// Load against a running ShardKV group, through the real client library (`KVClerk`) over TCP:
/// what a linearizable put and get cost end to end, at a few levels of concurrency.
struct KVBenchmark: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "kv",
    abstract: "Puts and gets per second and their latency against a running ShardKV group.",
    discussion: """
      Drives a running group (scripts/run-local.sh starts one on the default addresses) through \
      its members' API addresses. For each client count, every client is a KVClerk with its own \
      session and its own TCP connection; each does one untimed put to connect and find the \
      leader, then all clients put distinct keys for --seconds, then get random keys among \
      those written so far for --seconds. Each client keeps one request in flight (closed \
      loop); --rate caps the total request rate across clients, as etcdctl check perf does.

      Latency is measured per request, from send to reply, clerk retries included, into an \
      HdrHistogram (3 significant digits). A request that still fails after the clerk's retries \
      (--op-timeout) counts as an error and is kept out of the latencies. ops/s is completed \
      requests over the phase's wall time (until the last request in flight has returned).

      Keys are the decimal key number, zero-padded to --key-size bytes; values are random bytes.
      """)

  @Option(
    name: [.customShort("s"), .long],
    help: "The members' API addresses HOST:PORT, comma-separated.")
  var servers = "127.0.0.1:20000,127.0.0.1:20001,127.0.0.1:20002"

  @Option(help: "Concurrent clients, comma-separated; one run per count.")
  var clients = "1,16,128"

  @Option(help: "Bytes per key (1-4096; the group's default limit is 4096).")
  var keySize = 16

  @Option(help: "Bytes per value (the group's default limit is 1 MiB).")
  var valueSize = 128

  @Option(help: "Seconds each phase (puts, then gets) runs at each client count.")
  var seconds = 5

  @Option(help: "Phases to run, comma-separated: put, get (get reads keys that put wrote).")
  var ops = "put,get"

  @Option(help: "Cap on requests per second across all clients; 0 for none.")
  var rate = 0

  @Option(
    help: ArgumentHelp(
      "Where clients send first: leader (every client starts at the leader) or spread "
        + "(client i starts at member i mod N, whose follower forwards to the leader).",
      valueName: "leader|spread"))
  var target = Target.leader

  @Option(help: "Seconds one request may take, clerk retries included, before it counts as an error.")
  var opTimeout = 10.0

  @Option(help: "Seconds to wait for the group to answer and to have a leader before giving up.")
  var connectTimeout = 5.0

  enum Target: String, ExpressibleByArgument, CaseIterable {
    case leader
    case spread
  }

  enum Phase: String {
    case put
    case get
  }

  func validate() throws {
    guard !serverList.isEmpty else { throw ValidationError("--servers is empty") }
    for server in serverList {
      guard (try? PeerAddress(parsing: server)) != nil else {
        throw ValidationError("--servers: '\(server)' is not HOST:PORT")
      }
    }
    guard let counts = clientCounts, !counts.isEmpty, counts.allSatisfy({ $0 > 0 }) else {
      throw ValidationError("--clients must be a comma-separated list of positive numbers")
    }
    guard (1...4096).contains(keySize) else { throw ValidationError("--key-size must be 1 to 4096") }
    guard valueSize >= 0 else { throw ValidationError("--value-size must not be negative") }
    guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
    guard rate >= 0 else { throw ValidationError("--rate must not be negative") }
    guard opTimeout > 0, connectTimeout > 0 else {
      throw ValidationError("--op-timeout and --connect-timeout must be positive")
    }
    guard let phases, !phases.isEmpty else {
      throw ValidationError("--ops must be put, get or put,get")
    }
    if phases.contains(.get) && !phases.contains(.put) {
      throw ValidationError("--ops get needs put too: gets read the keys the put phase wrote")
    }
  }

  private var serverList: [String] {
    servers.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
  }

  private var clientCounts: [Int]? {
    let parts = clients.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
    return parts.contains(nil) ? nil : parts.compactMap { $0 }
  }

  /// In execution order: put before get.
  private var phases: [Phase]? {
    var chosen: Set<Phase> = []
    for word in ops.split(separator: ",") {
      guard let phase = Phase(rawValue: word.trimmingCharacters(in: .whitespaces)) else { return nil }
      chosen.insert(phase)
    }
    return [.put, .get].filter { chosen.contains($0) }
  }

  func run() async throws {
    LoggingSystem.bootstrap { label in
      var handler = StreamLogHandler.standardError(label: label)
      handler.logLevel = .error
      return handler
    }
    let servers = serverList
    let counts = clientCounts ?? []
    let phases = phases ?? []
    let view = try await GroupProbe.find(
      servers: servers, within: .milliseconds(Int64(connectTimeout * 1000)))
    for (server, problem) in view.unreachable.sorted(by: { $0.key < $1.key }) {
      FileHandle.standardError.write(
        Data("kvbench kv: warning: \(server) does not answer: \(problem)\n".utf8))
    }

    let keys = KeyGenerator(size: keySize)
    var generator = SystemRandomNumberGenerator()
    let value = (0..<valueSize).map { _ in UInt8.random(in: 0...255, using: &generator) }
    let settings = LoadSettings(
      servers: servers, leaderFirst: target == .leader ? view.leaderAPI : nil, keys: keys, value: value,
      opTimeout: .milliseconds(Int64(opTimeout * 1000)), rate: rate)

    try await Self.preflight(settings)

    let leader =
      view.leaderAPI.map { "\(view.leaderPeer) (API \($0))" }
      ?? "\(view.leaderPeer) (API not among --servers)"
    emit(
      "kv: \(servers.count) servers, leader \(leader); \(keySize) B keys, \(valueSize) B values; "
        + "\(seconds) s per phase; clients start at "
        + (target == .leader && view.leaderAPI != nil ? "the leader" : "member i mod \(servers.count)")
        + "; rate " + (rate > 0 ? "capped at \(rate)/s" : "unlimited"))
    emit(LoadResult.header)
    for count in counts {
      let fleet = Fleet(count: count, settings: settings)
      do {
        do {
          try await fleet.warmUp()
        } catch {
          throw BenchError("warming up \(count) clients failed: \(error)")
        }
        for phase in phases {
          let result = await fleet.run(phase, for: .seconds(seconds))
          emit(result.line(phase: phase, clients: count))
        }
      } catch {
        await fleet.shutdown()
        throw error
      }
      await fleet.shutdown()
    }
  }

  /// One put through a fresh clerk, so that a problem with the request itself (a key or value
  /// over the group's limits) is reported once, clearly, before any load.
  private static func preflight(_ settings: LoadSettings) async throws {
    let fleet = Fleet(count: 1, settings: settings)
    do {
      try await fleet.warmUp()
      await fleet.shutdown()
    } catch {
      await fleet.shutdown()
      throw BenchError("the first put failed: \(error)")
    }
  }
}

/// Writes a line to standard output at once, unbuffered: into a pipe (`| tee`) too, where
/// `print` would hold it until exit, and a phase can run for minutes.
func emit(_ line: String) {
  FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

struct BenchError: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}

/// What `kvbench kv` learned about the group before loading it.
struct GroupProbe {
  /// The leader's peer address.
  var leaderPeer: String
  /// The leader's API address, when the leader is one of the given servers.
  var leaderAPI: String?
  /// Servers that did not answer, and why.
  var unreachable: [String: String]

  /// Asks every server for its status until one names a leader, for at most `limit`.
  static func find(servers: [String], within limit: Duration) async throws -> GroupProbe {
    let transport = TCPTransport(client: .init(connectionsPerPeer: 1, connectTimeout: .seconds(1)))
    do {
      let probe = try await find(servers: servers, within: limit, through: transport)
      await transport.shutdown()
      return probe
    } catch {
      await transport.shutdown()
      throw error
    }
  }

  private static func find(
    servers: [String], within limit: Duration, through transport: TCPTransport
  ) async throws -> GroupProbe {
    let clock = ContinuousClock()
    let end = clock.now + limit
    var problems: [String: String] = [:]
    while true {
      let replies = await withTaskGroup(of: (String, Result<Shardkv_StatusReply, any Error>).self) { group in
        for server in servers {
          group.addTask {
            do {
              let bytes = try await transport.call(
                server, method: NodeMethod.status, payload: [],
                timeout: max(.milliseconds(200), min(.seconds(1), end - clock.now)))
              return (server, .success(try Shardkv_StatusReply(serializedBytes: bytes)))
            } catch {
              return (server, .failure(error))
            }
          }
        }
        var replies: [(String, Result<Shardkv_StatusReply, any Error>)] = []
        for await reply in group { replies.append(reply) }
        return replies
      }
      problems = [:]
      var apiByPeer: [String: String] = [:]
      var leader: String?
      for (server, result) in replies {
        switch result {
        case .success(let status):
          apiByPeer[status.node] = server
          if !status.leader.isEmpty { leader = status.leader }
        case .failure(let error):
          problems[server] = "\(error)"
        }
      }
      if let leader {
        return GroupProbe(leaderPeer: leader, leaderAPI: apiByPeer[leader], unreachable: problems)
      }
      if clock.now >= end {
        if problems.count == servers.count {
          let detail = servers.map { "  \($0): \(problems[$0] ?? "?")" }.joined(separator: "\n")
          throw BenchError(
            "cannot reach the group: none of its \(servers.count) servers answered within "
              + "\(limit):\n\(detail)\nIs a group running there? scripts/run-local.sh starts one on "
              + "the default --servers.")
        }
        throw BenchError(
          "the group has no leader: \(servers.count - problems.count) of \(servers.count) servers "
            + "answered, none knew a leader within \(limit) (is a majority of members up?)")
      }
      try await Task.sleep(for: .milliseconds(100))
    }
  }
}

/// Keys of exactly `size` bytes: the key number in decimal, zero-padded (and, when `size` is
/// under 19 digits, taken modulo 10^size).
struct KeyGenerator: Sendable {
  let size: Int

  func key(_ number: Int) -> [UInt8] {
    var digits = Array(String(number).utf8)
    if digits.count > size { digits.removeFirst(digits.count - size) }
    return [UInt8](repeating: UInt8(ascii: "0"), count: size - digits.count) + digits
  }
}

struct LoadSettings: Sendable {
  var servers: [String]
  /// Every clerk tries this server first; nil spreads clients over `servers`.
  var leaderFirst: String?
  var keys: KeyGenerator
  var value: [UInt8]
  var opTimeout: Duration
  /// Requests per second across all clients; 0 for no cap.
  var rate: Int
}

/// Hands out send times `1/rate` apart: a token bucket of depth one, shared by all clients.
final class Pacer: Sendable {
  private let interval: Duration
  private let next: Mutex<ContinuousClock.Instant>

  init(rate: Int) {
    interval = .nanoseconds(1_000_000_000 / Int64(rate))
    next = Mutex(ContinuousClock.now)
  }

  func slot() -> ContinuousClock.Instant {
    next.withLock { next in
      let slot = max(next, ContinuousClock.now)
      next = slot + interval
      return slot
    }
  }
}

/// The clients of one run: each a clerk with its own session and transport.
struct Fleet: Sendable {
  let clerks: [KVClerk]
  let transports: [TCPTransport]
  let settings: LoadSettings
  private static let sharedCounter = Counter()

  init(count: Int, settings: LoadSettings) {
    self.settings = settings
    var clerks: [KVClerk] = []
    var transports: [TCPTransport] = []
    for index in 0..<count {
      let transport = TCPTransport(client: .init(connectionsPerPeer: 1))
      var order = settings.servers
      if let leader = settings.leaderFirst, let at = order.firstIndex(of: leader) {
        order = [leader] + order[..<at] + order[(at + 1)...]
      } else {
        let shift = index % order.count
        order = Array(order[shift...] + order[..<shift])
      }
      clerks.append(KVClerk(servers: order, transport: transport, deadline: settings.opTimeout))
      transports.append(transport)
    }
    self.clerks = clerks
    self.transports = transports
  }

  /// One untimed put per client: connects it and finds the leader. Throws the first failure.
  func warmUp() async throws {
    let settings = settings
    try await withThrowingTaskGroup(of: Void.self) { group in
      for clerk in clerks {
        group.addTask {
          try await clerk.put(settings.keys.key(Self.sharedCounter.next()), settings.value)
        }
      }
      try await group.waitForAll()
    }
  }

  func run(_ phase: KVBenchmark.Phase, for duration: Duration) async -> LoadResult {
    let settings = settings
    let pacer = settings.rate > 0 ? Pacer(rate: settings.rate) : nil
    let readable = Self.sharedCounter.current
    let clock = ContinuousClock()
    let start = clock.now
    let end = start + duration
    var total = await withTaskGroup(of: LoadResult.self) { group in
      for clerk in clerks {
        group.addTask {
          var result = LoadResult()
          while true {
            var now = clock.now
            if let pacer {
              let slot = pacer.slot()
              if slot >= end { break }
              if slot > now {
                try? await Task.sleep(until: slot, clock: clock)
                now = clock.now
              }
            }
            if now >= end { break }
            do {
              switch phase {
              case .put:
                try await clerk.put(settings.keys.key(Self.sharedCounter.next()), settings.value)
              case .get:
                if try await clerk.get(settings.keys.key(Int.random(in: 0..<max(1, readable)))) == nil {
                  result.missing += 1
                }
              }
              result.record(clock.now - now)
            } catch {
              result.errors += 1
              result.lastError = "\(error)"
            }
          }
          return result
        }
      }
      var total = LoadResult()
      for await result in group { total.merge(result) }
      return total
    }
    total.elapsed = clock.now - start
    return total
  }

  func shutdown() async {
    for transport in transports { await transport.shutdown() }
  }
}

/// Key numbers, shared by every fleet of a process: puts always write new keys, and gets read
/// among all keys written so far.
final class Counter: Sendable {
  private let value = Atomic<Int>(0)
  func next() -> Int { value.wrappingAdd(1, ordering: .relaxed).oldValue }
  var current: Int { value.load(ordering: .relaxed) }
}

/// Latencies in microseconds, counts and errors of one phase.
struct LoadResult: Sendable {
  var latency = Histogram<UInt64>(
    lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
  var errors = 0
  var missing = 0
  var lastError: String?
  var elapsed = Duration.zero

  mutating func record(_ duration: Duration) {
    let micros = duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
    latency.record(UInt64(min(max(micros, 1), 3_600_000_000)))
  }

  mutating func merge(_ other: LoadResult) {
    latency.add(other.latency)
    errors += other.errors
    missing += other.missing
    lastError = other.lastError ?? lastError
  }

  static let header =
    pad("op", 4, left: true) + pad("clients", 8) + pad("ops/s", 10) + pad("p50", 11) + pad("p99", 11)
    + pad("p99.9", 11) + pad("max", 11) + pad("stddev", 11) + pad("errors", 8)

  func line(phase: KVBenchmark.Phase, clients: Int) -> String {
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    let perSecond = seconds > 0 ? Int((Double(latency.totalCount) / seconds).rounded()) : 0
    var line =
      Self.pad(phase.rawValue, 4, left: true) + Self.pad("\(clients)", 8) + Self.pad("\(perSecond)", 10)
      + Self.pad(Self.ms(latency.valueAtPercentile(50)), 11)
      + Self.pad(Self.ms(latency.valueAtPercentile(99)), 11)
      + Self.pad(Self.ms(latency.valueAtPercentile(99.9)), 11) + Self.pad(Self.ms(latency.max), 11)
      + Self.pad(Self.ms(UInt64(latency.stdDeviation.rounded())), 11) + Self.pad("\(errors)", 8)
    if missing > 0 { line += "  (\(missing) gets found no value)" }
    if let lastError, errors > 0 { line += "  (last error: \(lastError))" }
    return line
  }

  private static func ms(_ micros: UInt64) -> String {
    String(format: "%.2f ms", Double(micros) / 1000)
  }

  private static func pad(_ text: String, _ width: Int, left: Bool = false) -> String {
    let fill = String(repeating: " ", count: max(0, width - text.count))
    return left ? text + fill : fill + text
  }
}
