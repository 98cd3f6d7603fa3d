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

      A router (`kvd --router`) among --servers is found by its status and every client \
      starts there (it routes each key to its group's leader).

      Sharded clusters: with --controllers the clerks route every key by the shard \
      controller's configuration (--servers may then be any members, of any groups), and no \
      leader is probed for. --hash-tag T puts every key in T's shard (keys `{T}:NUMBER`); \
      --exclude-shards skips keys of the given shards (the key number is kept, its digits \
      shifted), so the load stays off a shard that is being moved.

      etcd's benchmark shapes: --total N ends each timed phase (put, get, mixed) after N \
      requests in total across clients instead of after --seconds, as etcd's `benchmark \
      --total` does; --connections N makes the clients share N TCP connections (client i uses \
      connection i mod N, each its own session), as etcd's `--conns` does. Every get is \
      linearizable (ReadIndex), like etcd's `range --consistency=l`.

      Other phases (--ops): `load` writes --load-mb MiB of values as fast as --clients \
      allow, each put a new key with fresh random bytes (so shard pages do not compress), \
      and reports MiB/s; `mixed` runs gets (--read-percent) and puts together for --seconds and \
      reports each. --samples FILE appends every request (phase, op, start time, latency) for \
      analysis of a time window; --stop-file ends a timed phase early once that file exists.
      """)

  @Option(
    name: [.customShort("s"), .long],
    help: "The members' API addresses HOST:PORT, comma-separated.")
  var servers = "127.0.0.1:20000,127.0.0.1:20001,127.0.0.1:20002"

  @Option(help: "Concurrent clients, comma-separated; one run per count.")
  var clients = "1,16,128"

  @Option(help: "Bytes per key (1-4096; the group's default limit is 4096), prefix included.")
  var keySize = 16

  @Option(help: "Bytes per value (the group's default limit is 1 MiB).")
  var valueSize = 128

  @Option(help: "Seconds each timed phase (put, get, mixed) runs at each client count.")
  var seconds = 5

  @Option(
    help: """
      Phases to run, comma-separated, in this order: load (--load-mb of fresh values), put, \
      get (reads keys written before), mixed (gets and puts at once).
      """)
  var ops = "put,get"

  @Option(
    help: ArgumentHelp(
      "End each timed phase (put, get, mixed) after this many requests across all clients, "
        + "instead of after --seconds; 0 for --seconds.", valueName: "requests"))
  var total = 0

  @Option(
    help: ArgumentHelp(
      "TCP connections the clients share (client i uses connection i mod N); 0 for one per client.",
      valueName: "N"))
  var connections = 0

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

  @Option(
    help: ArgumentHelp(
      "The shard controller's API addresses, comma-separated: clerks route each key by its "
        + "configuration (sharded clusters).", valueName: "addresses"))
  var controllers: String?

  @Option(
    help: ArgumentHelp("Prefix every key with these bytes (counted in --key-size).", valueName: "prefix"))
  var keyPrefix: String?

  @Option(
    help: ArgumentHelp("Every key is {TAG}:NUMBER, so all of them share TAG's shard.", valueName: "tag"))
  var hashTag: String?

  @Option(
    help: ArgumentHelp(
      "Skip keys of these shards, comma-separated (needs --controllers, for the shard count).",
      valueName: "shards"))
  var excludeShards: String?

  @Option(help: "MiB of values the load phase writes.")
  var loadMb = 200

  @Option(help: "Percentage of the mixed phase's requests that are gets.")
  var readPercent = 50

  @Option(help: ArgumentHelp("Append every request to this file: PHASE OP START_UNIX_US LATENCY_US OK."))
  var samples: String?

  @Option(help: ArgumentHelp("End a timed phase early once this file exists.", valueName: "path"))
  var stopFile: String?

  enum Target: String, ExpressibleByArgument, CaseIterable {
    case leader
    case spread
  }

  enum Phase: String, CaseIterable {
    case load
    case put
    case get
    case mixed
  }

  func validate() throws {
    guard !serverList.isEmpty else { throw ValidationError("--servers is empty") }
    for server in serverList + controllerList {
      guard (try? PeerAddress(parsing: server)) != nil else {
        throw ValidationError("--servers and --controllers: '\(server)' is not HOST:PORT")
      }
    }
    guard let counts = clientCounts, !counts.isEmpty, counts.allSatisfy({ $0 > 0 }) else {
      throw ValidationError("--clients must be a comma-separated list of positive numbers")
    }
    guard (1...4096).contains(keySize) else { throw ValidationError("--key-size must be 1 to 4096") }
    if keyPrefix != nil && hashTag != nil {
      throw ValidationError("--key-prefix and --hash-tag exclude each other")
    }
    if let tag = hashTag, tag.isEmpty || tag.contains("}") {
      throw ValidationError("--hash-tag must be non-empty and without '}'")
    }
    guard prefix.count < keySize else {
      throw ValidationError("--key-size must leave room for at least one digit after the key prefix")
    }
    guard valueSize >= 0 else { throw ValidationError("--value-size must not be negative") }
    guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
    guard rate >= 0 else { throw ValidationError("--rate must not be negative") }
    guard total >= 0 else { throw ValidationError("--total must not be negative") }
    guard connections >= 0 else { throw ValidationError("--connections must not be negative") }
    guard opTimeout > 0, connectTimeout > 0 else {
      throw ValidationError("--op-timeout and --connect-timeout must be positive")
    }
    guard let phases, !phases.isEmpty else {
      throw ValidationError("--ops must name phases among load, put, get, mixed")
    }
    if phases.contains(.get) && !phases.contains(.put) {
      throw ValidationError("--ops get needs put too: gets read the keys the put phase wrote")
    }
    if phases.contains(.load) {
      guard loadMb > 0, valueSize > 0 else {
        throw ValidationError("the load phase needs a positive --load-mb and --value-size")
      }
    }
    guard (0...100).contains(readPercent) else { throw ValidationError("--read-percent must be 0 to 100") }
    if let excludeShards {
      guard !controllerList.isEmpty else { throw ValidationError("--exclude-shards needs --controllers") }
      guard let excluded, !excluded.isEmpty else {
        throw ValidationError("--exclude-shards: '\(excludeShards)' is not a list of shard numbers")
      }
      guard keySize - prefix.count >= 8 else {
        throw ValidationError("--exclude-shards needs at least 8 key digits (raise --key-size)")
      }
    }
  }

  private var serverList: [String] { Self.list(servers) }
  private var controllerList: [String] { controllers.map(Self.list) ?? [] }

  private static func list(_ text: String) -> [String] {
    text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
  }

  private var clientCounts: [Int]? {
    let parts = clients.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
    return parts.contains(nil) ? nil : parts.compactMap { $0 }
  }

  private var prefix: [UInt8] {
    if let hashTag { return Array("{\(hashTag)}:".utf8) }
    return Array((keyPrefix ?? "").utf8)
  }

  private var excluded: Set<Int>? {
    guard let excludeShards else { return [] }
    let parts = excludeShards.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard !parts.contains(nil), parts.allSatisfy({ $0! >= 0 }) else { return nil }
    return Set(parts.compactMap { $0 })
  }

  /// In execution order: load, put, get, mixed.
  private var phases: [Phase]? {
    var chosen: Set<Phase> = []
    for word in ops.split(separator: ",") {
      guard let phase = Phase(rawValue: word.trimmingCharacters(in: .whitespaces)) else { return nil }
      chosen.insert(phase)
    }
    return Phase.allCases.filter { chosen.contains($0) }
  }

  func run() async throws {
    LoggingSystem.bootstrap { label in
      var handler = StreamLogHandler.standardError(label: label)
      handler.logLevel = .error
      return handler
    }
    let servers = serverList
    let controllers = controllerList
    let counts = clientCounts ?? []
    let phases = phases ?? []

    var leaderFirst: String?
    var placement: String
    if controllers.isEmpty {
      let view = try await GroupProbe.find(
        servers: servers, within: .milliseconds(Int64(connectTimeout * 1000)))
      for (server, problem) in view.unreachable.sorted(by: { $0.key < $1.key }) {
        FileHandle.standardError.write(
          Data("kvbench kv: warning: \(server) does not answer: \(problem)\n".utf8))
      }
      leaderFirst = target == .leader || view.router ? view.leaderAPI : nil
      let leader =
        view.leaderAPI.map { "\(view.leaderPeer) (API \($0))" }
        ?? "\(view.leaderPeer) (API not among --servers)"
      placement =
        view.router
        ? "through the router at \(view.leaderPeer), which routes every key"
        : "\(servers.count) servers, leader \(leader); clients start at "
          + (target == .leader && view.leaderAPI != nil ? "the leader" : "member i mod \(servers.count)")
    } else {
      placement = "sharded, routed by the controller at \(controllers.joined(separator: ","))"
    }

    var keys = KeyGenerator(size: keySize, prefix: prefix)
    if let excluded, !excluded.isEmpty {
      let shardCount = try await Self.shardCount(controllers: controllers, within: connectTimeout)
      guard excluded.allSatisfy({ $0 < shardCount }), excluded.count < shardCount else {
        throw BenchError("--exclude-shards: the cluster has \(shardCount) shards (0-\(shardCount - 1))")
      }
      keys.exclude(excluded, of: ShardMap(shardCount: shardCount))
      placement += "; keys of shards \(excluded.sorted().map(String.init).joined(separator: ",")) skipped"
    }
    if !prefix.isEmpty { placement += "; keys start with \(String(decoding: prefix, as: UTF8.self))" }

    var generator = SystemRandomNumberGenerator()
    let value = (0..<valueSize).map { _ in UInt8.random(in: 0...255, using: &generator) }
    let settings = LoadSettings(
      servers: servers, leaderFirst: leaderFirst, controllers: controllers, keys: keys, value: value,
      opTimeout: .milliseconds(Int64(opTimeout * 1000)), rate: rate, readPercent: readPercent,
      loadBytes: loadMb << 20, stopFile: stopFile, total: total, connections: connections)
    let sampleLog = try samples.map { try SampleLog(path: $0) }

    try await Self.preflight(settings)

    if connections > 0 { placement += "; clients share \(connections) connections" }
    emit(
      "kv: \(placement); \(keySize) B keys, \(valueSize) B values; "
        + (total > 0 ? "\(total) requests" : "\(seconds) s") + " per timed phase; rate "
        + (rate > 0 ? "capped at \(rate)/s" : "unlimited"))
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
          let results = await fleet.run(phase, for: .seconds(seconds), recording: sampleLog != nil)
          for (op, result) in results {
            emit(result.line(op: op, clients: count))
            try sampleLog?.append(result.samples, phase: phase.rawValue, op: op)
          }
          if phase == .load, let first = results.first {
            emit(first.result.loadSummary(valueSize: valueSize))
          }
        }
      } catch {
        await fleet.shutdown()
        throw error
      }
      await fleet.shutdown()
    }
  }

  /// The cluster's shard count, from the controller's latest configuration.
  private static func shardCount(controllers: [String], within seconds: Double) async throws -> Int {
    let transport = TCPTransport(client: .init(connectionsPerPeer: 1, connectTimeout: .seconds(1)))
    let routing = ShardRouting(
      controllers: controllers, transport: transport, refreshDeadline: .milliseconds(Int64(seconds * 1000)))
    let count = await routing.refresh()?.shardCount
    await transport.shutdown()
    guard let count, count > 0 else {
      throw BenchError("the controller at \(controllers.joined(separator: ",")) gave no configuration")
    }
    return count
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
  /// Whether the leader is a router's API address (the first server that answered as one).
  var router = false

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
        case .success(let status) where status.service == "router":
          // A router (`kvd --router`) routes every key itself: send everything there.
          return GroupProbe(leaderPeer: server, leaderAPI: server, unreachable: [:], router: true)
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

/// Keys of exactly `size` bytes: `prefix`, then the key number in decimal, zero-padded (and,
/// when there are under 19 digits, taken modulo 10^digits).
///
/// With excluded shards, a number whose key lands in one of them is shifted: its key is that
/// of `number + k * stride` for the smallest k whose key is outside them, where `stride` is a
/// hundredth of the digits' range. Numbers below `stride` thus keep distinct keys, and every
/// process computes the same key for the same number (gets find what puts wrote).
struct KeyGenerator: Sendable {
  let size: Int
  let prefix: [UInt8]
  private var excluded: Set<Int> = []
  private var map: ShardMap?

  init(size: Int, prefix: [UInt8] = []) {
    self.size = size
    self.prefix = prefix
  }

  mutating func exclude(_ shards: Set<Int>, of map: ShardMap) {
    excluded = shards
    self.map = shards.isEmpty ? nil : map
  }

  func key(_ number: Int) -> [UInt8] {
    guard let map else { return plain(number) }
    let digits = size - prefix.count
    let stride = (0..<min(digits - 2, 17)).reduce(1) { product, _ in product * 10 }
    var candidate = plain(number)
    for shift in 1..<100 where excluded.contains(map.shard(of: candidate)) {
      candidate = plain(number % stride + shift * stride)
    }
    return candidate
  }

  private func plain(_ number: Int) -> [UInt8] {
    let width = size - prefix.count
    var digits = Array(String(number).utf8)
    if digits.count > width { digits.removeFirst(digits.count - width) }
    return prefix + [UInt8](repeating: UInt8(ascii: "0"), count: width - digits.count) + digits
  }
}

struct LoadSettings: Sendable {
  var servers: [String]
  /// Every clerk tries this server first; nil spreads clients over `servers`.
  var leaderFirst: String?
  /// The shard controller's API addresses; empty for a standalone group.
  var controllers: [String]
  var keys: KeyGenerator
  var value: [UInt8]
  var opTimeout: Duration
  /// Requests per second across all clients; 0 for no cap.
  var rate: Int
  /// Gets among the mixed phase's requests, in percent.
  var readPercent: Int
  /// Value bytes the load phase writes.
  var loadBytes: Int
  /// A timed phase ends early once this file exists.
  var stopFile: String?
  /// Requests per timed phase across all clients; 0 to run for the phase's duration instead.
  var total = 0
  /// TCP connections the clients share; 0 for one per client.
  var connections = 0
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

/// The clients of one run: each a clerk with its own session. Each has its own transport (one
/// TCP connection per server it talks to), or, with `settings.connections`, client i uses
/// transport i mod N, its calls multiplexed with the others' on that connection.
struct Fleet: Sendable {
  let clerks: [KVClerk]
  let transports: [TCPTransport]
  let settings: LoadSettings
  private static let sharedCounter = Counter()

  init(count: Int, settings: LoadSettings) {
    self.settings = settings
    var clerks: [KVClerk] = []
    let shared = settings.connections > 0 ? min(settings.connections, count) : count
    let transports = (0..<shared).map { _ in TCPTransport(client: .init(connectionsPerPeer: 1)) }
    for index in 0..<count {
      let transport = transports[index % shared]
      var order = settings.servers
      if let leader = settings.leaderFirst, let at = order.firstIndex(of: leader) {
        order = [leader] + order[..<at] + order[(at + 1)...]
      } else {
        let shift = index % order.count
        order = Array(order[shift...] + order[..<shift])
      }
      clerks.append(
        KVClerk(
          servers: order, transport: transport, deadline: settings.opTimeout,
          controllers: settings.controllers))
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

  /// Runs one phase; returns a result per operation kind, in a fixed order.
  func run(
    _ phase: KVBenchmark.Phase, for duration: Duration, recording: Bool
  ) async -> [(op: String, result: LoadResult)] {
    let settings = settings
    let pacer = settings.rate > 0 ? Pacer(rate: settings.rate) : nil
    let readable = Self.sharedCounter.current
    let reserved = Counter()
    let stop = StopSignal(file: phase == .load ? nil : settings.stopFile)
    // With a total, a timed phase ends after that many requests (each client takes one from
    // the budget before sending), not at a time.
    let budget = phase != .load && settings.total > 0 ? Counter() : nil
    let clock = ContinuousClock()
    let start = clock.now
    let end = phase == .load || budget != nil ? start + .seconds(365 * 86_400) : start + duration
    let totals = await withTaskGroup(of: ClientResults.self) { group in
      for clerk in clerks {
        group.addTask {
          var results = ClientResults()
          var random = FastRandom()
          requests: while !stop.stopped {
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
            if let budget, budget.next() >= settings.total { break }
            let op: Op
            switch phase {
            case .load:
              let before = reserved.add(settings.value.count)
              guard before < settings.loadBytes else { break requests }
              op = .load
            case .put: op = .put
            case .get: op = .get
            case .mixed: op = Int.random(in: 0..<100, using: &random) < settings.readPercent ? .get : .put
            }
            let wall = recording ? SampleLog.nowMicros() : 0
            var outcome = Outcome.done
            do {
              switch op {
              case .put:
                try await clerk.put(settings.keys.key(Self.sharedCounter.next()), settings.value)
              case .load:
                let value = random.bytes(settings.value.count)
                try await clerk.put(settings.keys.key(Self.sharedCounter.next()), value)
              case .get:
                let bound = phase == .mixed ? Self.sharedCounter.current : readable
                let key = settings.keys.key(Int.random(in: 0..<max(1, bound), using: &random))
                if try await clerk.get(key) == nil { outcome = .missing }
              }
            } catch {
              outcome = .failed("\(error)")
              if op == .load { _ = reserved.add(-settings.value.count) }
            }
            let latency = clock.now - now
            switch op {
            case .put: results.put.note(outcome, latency: latency, sentAt: wall, recording: recording)
            case .get: results.get.note(outcome, latency: latency, sentAt: wall, recording: recording)
            case .load: results.load.note(outcome, latency: latency, sentAt: wall, recording: recording)
            }
          }
          return results
        }
      }
      var totals = ClientResults()
      for await results in group {
        totals.put.merge(results.put)
        totals.get.merge(results.get)
        totals.load.merge(results.load)
      }
      return totals
    }
    stop.cancel()
    let elapsed = clock.now - start
    let kinds: [(Op, LoadResult)] =
      switch phase {
      case .load: [(.load, totals.load)]
      case .put: [(.put, totals.put)]
      case .get: [(.get, totals.get)]
      case .mixed: [(.get, totals.get), (.put, totals.put)]
      }
    return kinds.map { op, result in
      var result = result
      result.elapsed = elapsed
      return (op.rawValue, result)
    }
  }

  /// One client's results of a phase, by operation kind.
  private struct ClientResults: Sendable {
    var put = LoadResult()
    var get = LoadResult()
    var load = LoadResult()
  }

  enum Op: String, Sendable {
    case put
    case get
    case load
  }

  func shutdown() async {
    for transport in transports { await transport.shutdown() }
  }
}

/// Set once a phase must end early: when its stop file appears (looked for every 100 ms).
final class StopSignal: Sendable {
  private let flag = Atomic<Bool>(false)
  private let watcher: Mutex<Task<Void, Never>?> = Mutex(nil)

  init(file: String?) {
    guard let file else { return }
    watcher.withLock {
      $0 = Task { [self] in
        while !Task.isCancelled {
          if FileManager.default.fileExists(atPath: file) {
            flag.store(true, ordering: .relaxed)
            return
          }
          try? await Task.sleep(for: .milliseconds(100))
        }
      }
    }
  }

  var stopped: Bool { flag.load(ordering: .relaxed) }

  func cancel() { watcher.withLock { $0?.cancel() } }
}

/// SplitMix64: fast, and good enough for keys to pick and for incompressible values.
struct FastRandom: RandomNumberGenerator {
  private var state = UInt64.random(in: 0 ... .max)

  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  /// `count` fresh random bytes.
  mutating func bytes(_ count: Int) -> [UInt8] {
    [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
      let raw = UnsafeMutableRawBufferPointer(buffer)
      var offset = 0
      while offset + 8 <= count {
        raw.storeBytes(of: next(), toByteOffset: offset, as: UInt64.self)
        offset += 8
      }
      if offset < count {
        var last = next()
        while offset < count {
          raw[offset] = UInt8(truncatingIfNeeded: last)
          last >>= 8
          offset += 1
        }
      }
      initialized = count
    }
  }
}

/// Key numbers, shared by every fleet of a process: puts always write new keys, and gets read
/// among all keys written so far.
final class Counter: Sendable {
  private let value = Atomic<Int>(0)
  func next() -> Int { add(1) }
  /// Adds `amount`; returns the value before.
  func add(_ amount: Int) -> Int { value.wrappingAdd(amount, ordering: .relaxed).oldValue }
  var current: Int { value.load(ordering: .relaxed) }
}

/// One request: when it was sent (wall clock, for windows set by other processes), how long it
/// took, whether it succeeded.
struct Sample: Sendable {
  var startMicros: Int64
  var latency: Duration
  var ok: Bool
}

/// `--samples`: one line per request, `PHASE OP START_UNIX_US LATENCY_US OK` (OK is 1 or 0),
/// appended after each phase.
final class SampleLog: Sendable {
  private let handle: Mutex<FileHandle>

  init(path: String) throws {
    if !FileManager.default.fileExists(atPath: path) {
      guard FileManager.default.createFile(atPath: path, contents: nil) else {
        throw BenchError("--samples: cannot create \(path)")
      }
    }
    guard let handle = FileHandle(forWritingAtPath: path) else {
      throw BenchError("--samples: cannot open \(path)")
    }
    try handle.seekToEnd()
    self.handle = Mutex(handle)
  }

  static func nowMicros() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1000
  }

  func append(_ samples: [Sample], phase: String, op: String) throws {
    var text = ""
    text.reserveCapacity(samples.count * 40)
    for sample in samples {
      text +=
        "\(phase) \(op) \(sample.startMicros) \(LoadResult.micros(sample.latency)) \(sample.ok ? 1 : 0)\n"
    }
    try handle.withLock { try $0.write(contentsOf: Data(text.utf8)) }
  }
}

/// How one request ended.
enum Outcome: Sendable {
  case done
  /// A get that found no value.
  case missing
  case failed(String)
}

/// Latencies in microseconds, counts and errors of one phase.
struct LoadResult: Sendable {
  var latency = Histogram<UInt64>(
    lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
  var errors = 0
  var missing = 0
  var lastError: String?
  var elapsed = Duration.zero
  /// Every request, when recording (`--samples`).
  var samples: [Sample] = []

  mutating func record(_ duration: Duration) {
    latency.record(UInt64(min(max(Self.micros(duration), 1), 3_600_000_000)))
  }

  /// Counts one request: its latency if it succeeded, else the error; and the request itself
  /// when recording.
  mutating func note(_ outcome: Outcome, latency duration: Duration, sentAt wall: Int64, recording: Bool) {
    switch outcome {
    case .done: record(duration)
    case .missing:
      record(duration)
      missing += 1
    case .failed(let error):
      errors += 1
      lastError = error
    }
    if recording {
      var ok = true
      if case .failed = outcome { ok = false }
      samples.append(Sample(startMicros: wall, latency: duration, ok: ok))
    }
  }

  static func micros(_ duration: Duration) -> Int64 {
    duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
  }

  mutating func merge(_ other: LoadResult) {
    latency.add(other.latency)
    errors += other.errors
    missing += other.missing
    lastError = other.lastError ?? lastError
    samples += other.samples
  }

  static let header =
    pad("op", 4, left: true) + pad("clients", 8) + pad("ops/s", 10) + pad("p50", 11) + pad("p99", 11)
    + pad("p99.9", 11) + pad("max", 11) + pad("stddev", 11) + pad("errors", 8)

  private var seconds: Double {
    Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
  }

  func line(op: String, clients: Int) -> String {
    let perSecond = seconds > 0 ? Int((Double(latency.totalCount) / seconds).rounded()) : 0
    var line =
      Self.pad(op, 4, left: true) + Self.pad("\(clients)", 8) + Self.pad("\(perSecond)", 10)
      + Self.pad(Self.ms(latency.valueAtPercentile(50)), 11)
      + Self.pad(Self.ms(latency.valueAtPercentile(99)), 11)
      + Self.pad(Self.ms(latency.valueAtPercentile(99.9)), 11) + Self.pad(Self.ms(latency.max), 11)
      + Self.pad(Self.ms(UInt64(latency.stdDeviation.rounded())), 11) + Self.pad("\(errors)", 8)
    if missing > 0 { line += "  (\(missing) gets found no value)" }
    if let lastError, errors > 0 { line += "  (last error: \(lastError))" }
    return line
  }

  /// The load phase's throughput: `load: N MiB in P puts, S s, M MiB/s`.
  func loadSummary(valueSize: Int) -> String {
    let mib = Double(latency.totalCount) * Double(valueSize) / 1_048_576
    return String(
      format: "load: %.1f MiB in %llu puts of %ld B, %.2f s, %.1f MiB/s", mib, latency.totalCount, valueSize,
      seconds, seconds > 0 ? mib / seconds : 0)
  }

  private static func ms(_ micros: UInt64) -> String {
    String(format: "%.2f ms", Double(micros) / 1000)
  }

  private static func pad(_ text: String, _ width: Int, left: Bool = false) -> String {
    let fill = String(repeating: " ", count: max(0, width - text.count))
    return left ? text + fill : fill + text
  }
}
