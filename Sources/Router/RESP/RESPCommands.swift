import Foundation
import RESP
import ShardKV
import SwiftProtobuf
import Wire

/// The Redis commands a router answers, each turned into the cluster's own operations.
///
/// One RESP connection is one client: its writes carry session ids from a small pool of its
/// own (`RESPSessions`), so a write the router retries inside the cluster executes exactly
/// once. Multi-key commands (MGET, MSET, DEL, EXISTS) are applied key by key and are not
/// atomic across shards; keys that share a `{tag}` share a shard. Errors the router can retry
/// never reach the client: a reply of `-ERR` is final.
public struct RESPCommands: Sendable {
  let router: RequestRouter
  let limits: KVLimits
  /// How long one operation may take inside the cluster before the client gets an error.
  public var timeout: Duration = .seconds(10)

  public init(router: RequestRouter, limits: KVLimits = KVLimits()) {
    self.router = router
    self.limits = limits
  }

  /// What a command does to the connection besides its reply.
  public enum Effect: Sendable, Equatable {
    case none
    /// Close the connection after the reply (QUIT).
    case close
  }

  /// The keys a request touches, for ordering requests of one connection: requests on
  /// disjoint keys may run concurrently, requests sharing a key run in arrival order. Empty for
  /// requests that touch no key.
  public static func keys(of request: [[UInt8]]) -> [[UInt8]] {
    guard let name = request.first.map(Self.upper) else { return [] }
    let args = request.dropFirst()
    switch name {
    case "GET", "SET", "APPEND", "STRLEN": return args.first.map { [$0] } ?? []
    case "DEL", "EXISTS", "MGET": return Array(args)
    case "MSET": return args.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
    default: return []
    }
  }

  static func upper(_ bytes: [UInt8]) -> String {
    String(decoding: bytes, as: UTF8.self).uppercased()
  }

  /// Answers one request; each write takes a session from `sessions` for its duration.
  public func execute(_ request: [[UInt8]], sessions: RESPSessions) async -> (RESPValue, Effect) {
    guard let first = request.first else { return (.error("ERR empty command"), .none) }
    let name = Self.upper(first)
    let args = Array(request.dropFirst())
    func arity(_ valid: Bool) -> RESPValue? {
      valid ? nil : .error("ERR wrong number of arguments for '\(name.lowercased())' command")
    }
    switch name {
    case "PING":
      if let wrong = arity(args.count <= 1) { return (wrong, .none) }
      return (args.first.map { .bulkString($0) } ?? .simpleString("PONG"), .none)
    case "ECHO":
      if let wrong = arity(args.count == 1) { return (wrong, .none) }
      return (.bulkString(args[0]), .none)
    case "QUIT":
      return (.simpleString("OK"), .close)
    case "SELECT":
      if let wrong = arity(args.count == 1) { return (wrong, .none) }
      return (
        Self.upper(args[0]) == "0" ? .simpleString("OK") : .error("ERR DB index is out of range"), .none
      )
    case "CONFIG":
      // redis-benchmark asks for `save` and `appendonly` at start: nothing is configurable here.
      if let wrong = arity(args.count >= 1) { return (wrong, .none) }
      return (
        Self.upper(args[0]) == "GET"
          ? .array([]) : .error("ERR CONFIG \(Self.upper(args[0])) is not supported"), .none
      )
    case "COMMAND":
      return (.array([]), .none)
    case "CLIENT":
      if let wrong = arity(args.count >= 1) { return (wrong, .none) }
      switch Self.upper(args[0]) {
      case "SETNAME", "SETINFO", "NO-EVICT", "NO-TOUCH", "REPLY": return (.simpleString("OK"), .none)
      case "GETNAME": return (.bulkString(nil), .none)
      case "ID": return (.integer(Int64(truncatingIfNeeded: sessions.connectionID)), .none)
      default:
        return (
          .error("ERR unknown subcommand '\(String(decoding: args[0], as: UTF8.self))' for 'client'"), .none
        )
      }
    case "INFO":
      return (.bulkString(Array(await info().utf8)), .none)
    case "GET":
      if let wrong = arity(args.count == 1) { return (wrong, .none) }
      return (await read(args[0]).map { .bulkString($0) }, .none)
    case "SET":
      if let wrong = arity(args.count >= 2) { return (wrong, .none) }
      if args.count > 2 {
        let options = args[2...].map { String(decoding: $0, as: UTF8.self) }.joined(separator: " ")
        return (.error("ERR SET options are not supported (\(options)): only SET key value"), .none)
      }
      return (await write(.put, args[0], args[1], sessions: sessions).map { _ in .simpleString("OK") }, .none)
    case "APPEND":
      if let wrong = arity(args.count == 2) { return (wrong, .none) }
      return (
        await write(.append, args[0], args[1], sessions: sessions).map { .integer(Int64($0.length)) }, .none
      )
    case "DEL":
      if let wrong = arity(!args.isEmpty) { return (wrong, .none) }
      var deleted: Int64 = 0
      for key in args {
        switch await write(.delete, key, [], sessions: sessions) {
        case .success(let reply): deleted += reply.existed ? 1 : 0
        case .failure(let error): return (error.value, .none)
        }
      }
      return (.integer(deleted), .none)
    case "EXISTS":
      if let wrong = arity(!args.isEmpty) { return (wrong, .none) }
      var found: Int64 = 0
      for key in args {
        switch await read(key) {
        case .success(let value): found += value == nil ? 0 : 1
        case .failure(let error): return (error.value, .none)
        }
      }
      return (.integer(found), .none)
    case "STRLEN":
      if let wrong = arity(args.count == 1) { return (wrong, .none) }
      return (await read(args[0]).map { .integer(Int64($0?.count ?? 0)) }, .none)
    case "MGET":
      if let wrong = arity(!args.isEmpty) { return (wrong, .none) }
      var values: [RESPValue] = []
      for key in args {
        switch await read(key) {
        case .success(let value): values.append(.bulkString(value))
        case .failure(let error): return (error.value, .none)
        }
      }
      return (.array(values), .none)
    case "MSET":
      if let wrong = arity(!args.isEmpty && args.count % 2 == 0) { return (wrong, .none) }
      for pair in stride(from: 0, to: args.count, by: 2) {
        if case .failure(let error) = await write(.put, args[pair], args[pair + 1], sessions: sessions) {
          return (error.value, .none)
        }
      }
      return (.simpleString("OK"), .none)
    default:
      let shown = String(decoding: first.prefix(128), as: UTF8.self)
      let rest = args.prefix(8).map { "'\(String(decoding: $0.prefix(64), as: UTF8.self))'" }.joined(
        separator: " ")
      return (.error("ERR unknown command '\(shown)', with args beginning with: \(rest)"), .none)
    }
  }

  /// A final error, as the client will see it.
  public struct Failure: Error, Sendable {
    var value: RESPValue
  }

  private func read(_ key: [UInt8]) async -> Result<[UInt8]?, Failure> {
    var request = Shardkv_KvRequest()
    request.op = .get
    request.key = Data(key)
    return await run(request).map { $0.error == .noKey ? nil : [UInt8]($0.value) }
  }

  private func write(
    _ op: Shardkv_KvOp, _ key: [UInt8], _ value: [UInt8], sessions: RESPSessions
  ) async -> Result<Shardkv_KvReply, Failure> {
    var request = Shardkv_KvRequest()
    request.op = op
    request.key = Data(key)
    request.value = Data(value)
    let session = await sessions.acquire()
    request.clientID = session.clientID
    request.sequence = session.sequence
    let result = await run(request)
    await sessions.release(session)
    return result
  }

  private func run(_ request: Shardkv_KvRequest) async -> Result<Shardkv_KvReply, Failure> {
    let key = [UInt8](request.key)
    let value = request.op == .put || request.op == .append ? [UInt8](request.value) : []
    if let problem = limits.violation(key: key, value: value) {
      return .failure(Failure(value: .error("ERR \(problem)")))
    }
    guard let payload: [UInt8] = try? request.serializedBytes() else {
      return .failure(Failure(value: .error("ERR cannot encode the request")))
    }
    let reply = await router.route(request, payload: payload, timeout: timeout)
    switch reply.error {
    case .ok, .noKey: return .success(reply)
    case .invalidArgument: return .failure(Failure(value: .error("ERR \(reply.message)")))
    default: return .failure(Failure(value: .error("ERR cluster unavailable: \(reply.message)")))
    }
  }

  private func info() async -> String {
    let configuration = await router.routing.configuration
    let groups = configuration?.groups.count ?? 0
    return [
      "# Server", "redis_version:7.0.0", "shardkv_router:1", "redis_mode:standalone", "",
      "# Cluster", "cluster_enabled:0", "shardkv_configuration:\(configuration?.num ?? 0)",
      "shardkv_groups:\(groups)", "shardkv_shards:\(configuration?.shardCount ?? 0)", "",
      "# Keyspace", "",
    ].joined(separator: "\r\n")
  }
}

extension Result where Failure == RESPCommands.Failure {
  /// The reply: the success mapped, or the final error.
  fileprivate func map(_ transform: (Success) -> RESPValue) -> RESPValue {
    switch self {
    case .success(let value): return transform(value)
    case .failure(let failure): return failure.value
    }
  }
}

/// The client sessions of one RESP connection: a few session ids, each with its own sequence,
/// so that several of the connection's writes (on different keys) can be in flight at once,
/// while each session still has at most one (see `GroupClient`).
public actor RESPSessions {
  public struct Session: Sendable {
    public let clientID: UInt64
    public let sequence: UInt64
  }

  public nonisolated let connectionID: UInt64
  private var sequences: [UInt64: UInt64] = [:]
  private var free: [UInt64]
  private var waiting: [CheckedContinuation<Void, Never>] = []

  public init(count: Int = 16) {
    connectionID = UInt64.random(in: 1 ... .max)
    free = (0..<max(1, count)).map { _ in UInt64.random(in: 1 ... .max) }
  }

  /// A free session with its next sequence number; waits while all are in use.
  public func acquire() async -> Session {
    while free.isEmpty { await withCheckedContinuation { waiting.append($0) } }
    let id = free.removeLast()
    let next = (sequences[id] ?? 0) + 1
    sequences[id] = next
    return Session(clientID: id, sequence: next)
  }

  public func release(_ session: Session) {
    free.append(session.clientID)
    if !waiting.isEmpty { waiting.removeFirst().resume() }
  }
}
