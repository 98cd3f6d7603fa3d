import Foundation
import Logging
import Raft
import Router
import ShardCtrler
import ShardKV
import SwiftProtobuf
import Wire

// kvctl: the operator's CLI. Output formats are a contract (the replicated-KVS lab's ctl-test
// and its users parse them): change them only together with the tests that pin them.

let usage = """
  usage: kvctl -a ADDR [--timeout SECONDS] COMMAND [ARGS]

  ADDR is a member's, a router's or a controller replica's API address (HOST:PORT). A
  router takes every data and admin command and forwards it inside the cluster. Data commands, join and remove sent to a
  follower are forwarded to its leader; leader, dropped, direct_get and status answer from
  the node at ADDR itself. In a sharded cluster, data commands work on any member of any
  group: a group that does not own the key's shard names its owner, and kvctl goes there.

  commands:
    put KEY VALUE      store VALUE under KEY; prints OK
    append KEY VALUE   append VALUE to KEY's value (a missing key acts as put); prints OK
    get KEY            prints "Key:<TAB>KEY" and "Value:<TAB>VALUE"; a missing key prints
                       the value ERROR and exits 1
    del KEY            delete KEY; prints OK (also for a missing key)
    leader             the leader's peer address, as the node at ADDR knows it
    dropped            "Dropped:<TAB>PEER" for each member the node at ADDR has not heard
                       from for longer than the failure threshold
    direct_get KEY     like get, from the node's own state without consensus
    join PEER          add the standby node PEER; prints OK once it is a voting member
                       that has caught up
    remove PEER        remove the member PEER; prints OK
    status [--json]    role, term, leader, commit and applied index, members and progress;
                       against a router: its configuration, each group's members and
                       leader, and which addresses did not answer
    locate KEY         prints "Shard:<TAB>S" and "Group:<TAB>GID": the key's shard and its
                       owner in the latest configuration ADDR knows (a member or controller)
    shards [--json]    the configuration number of ADDR's group and each shard it holds or
                       is moving: state (serving, pulling, handing_off), keys and bytes

  shard controller commands (ADDR is a controller replica's API address):
    group join GID ADDR1,ADDR2,...
                       add replica group GID (its members' API addresses) and rebalance;
                       prints OK. A member that answers as part of another group, as a
                       standalone store or as a controller is refused; one that does not
                       answer yet is accepted with a warning
    group leave GID [--no-wait]
                       remove group GID, giving its shards to the others; shows the drain
                       on stderr until the group holds nothing, then prints OK
    migrations         (ADDR: a router or controller) each shard in motion: from, to,
                       pulling or handing off, keys and bytes
    shard move SHARD GID
                       give SHARD to group GID (no rebalance); prints OK
    config [NUM] [--json]
                       configuration NUM (default: the latest) as a table, or with --json
                       as one line {"num":N,"shards":[GID,...],"groups":{"GID":["ADDR",...]}}
    rebalance [--dry-run] [--by count|size] [--max-concurrent N] [--rate MB/s]
              [--threshold PCT] [--yes]
                       (ADDR: a router or controller) move shards through the controller
                       until every group holds ⌊S/G⌋ or ⌈S/G⌉ shards (--by count, the
                       default) or stores within PCT% (default 5) of the mean bytes (--by
                       size); prints the plan, asks "Proceed? [y/N]" unless --yes; at most
                       N moves in flight (default 1); --rate only paces when moves start,
                       the migration itself is not throttled server-side; Ctrl-C finishes
                       the moves in flight and exits 130

  cluster commands (no -a: FILE names every node; default configs/local.toml):
    cluster up [FILE]  start every node of FILE on this machine (logs and data under its data
                       directory), register its groups, wait until a write and a read through
                       the router succeed; the last lines are "Router:<TAB>ADDR" and
                       "RESP:<TAB>ADDR". On a running cluster it changes nothing; on a
                       stopped one it restarts the nodes on their data
    cluster status [FILE] [--json]
                       one line per node (role, group, pid, up/down, leader, applied index)
                       and the shards each group holds
    cluster down [FILE] [--purge]
                       stop every node (SIGTERM, SIGKILL after 10 s); --purge also removes
                       the data

  options:
    -a, --addr ADDR    the node to talk to (required, but for cluster commands)
    --timeout SECONDS  give up after this long (default 10)
    --json             machine-readable output (status, config, shards)
  \(TLSFlags.usage)
    -h, --help         this text
  """

struct Failure: Error {
  var message: String
  var status: Int32 = 1
}

struct Invocation {
  var address: String?
  var timeout: Duration = .seconds(10)
  var json = false
  var words: [String] = []
  var tls = TLSFlags()

  init(_ arguments: [String]) throws(Failure) {
    var rest = arguments[...]
    while let argument = rest.popFirst() {
      switch argument {
      case "-a", "--addr":
        guard let value = rest.popFirst() else {
          throw Failure(message: "\(argument) needs an address", status: 2)
        }
        address = value
      case "--timeout":
        guard let value = rest.popFirst(), let seconds = Double(value), seconds > 0 else {
          throw Failure(message: "--timeout needs a positive number of seconds", status: 2)
        }
        timeout = .milliseconds(Int64(seconds * 1000))
      case "--json":
        json = true
      case "--cacert", "--cert", "--key": try tls.parse(argument, &rest)
      case "-h", "--help":
        words = ["help"]
        return
      default:
        if argument.hasPrefix("-") && words.isEmpty {
          throw Failure(message: "unknown option \(argument)", status: 2)
        }
        words.append(argument)
      }
    }
  }
}

func arguments(_ words: [String], _ names: String...) throws(Failure) -> [String] {
  let given = Array(words.dropFirst())
  guard given.count == names.count else {
    throw Failure(
      message: "\(words[0]) takes \(names.isEmpty ? "no arguments" : names.joined(separator: " "))", status: 2
    )
  }
  return given
}

func call<Reply: SwiftProtobuf.Message>(
  _ transport: TCPTransport, _ address: String, _ method: String, _ request: some SwiftProtobuf.Message,
  timeout: Duration, as: Reply.Type
) async throws(Failure) -> Reply {
  do {
    let bytes = try await transport.call(
      address, method: method, payload: try request.serializedBytes(), timeout: timeout)
    return try Reply(serializedBytes: bytes)
  } catch let error as RPCError {
    throw Failure(message: "\(address): \(error)")
  } catch {
    throw Failure(message: "\(address): bad reply: \(error)")
  }
}

func keyValueLines(_ key: String, _ value: [UInt8]?) -> String {
  "Key:\t\(key)\nValue:\t\(value.map { String(decoding: $0, as: UTF8.self) } ?? "ERROR")"
}

func run(_ invocation: Invocation) async throws(Failure) -> Int32 {
  guard let verb = invocation.words.first, verb != "help" else {
    print(usage)
    return invocation.words.isEmpty ? 2 : 0
  }
  if verb == "cluster" { return try await runClusterCommand(invocation) }
  guard let address = invocation.address else { throw Failure(message: "-a ADDR is required", status: 2) }
  do {
    _ = try PeerAddress(parsing: address)
  } catch {
    throw Failure(message: "-a: '\(address)' is not HOST:PORT", status: 2)
  }
  let transport = try invocation.tls.transport()
  defer { Task { await transport.shutdown() } }
  let words = invocation.words
  let timeout = invocation.timeout
  let clerk = KVClerk(servers: [address], transport: transport, deadline: timeout)
  do {
    switch verb {
    case "put", "append":
      let args = try arguments(words, "KEY", "VALUE")
      if verb == "put" {
        try await clerk.put(Array(args[0].utf8), Array(args[1].utf8))
      } else {
        try await clerk.append(Array(args[0].utf8), Array(args[1].utf8))
      }
      print("OK")
    case "get":
      let args = try arguments(words, "KEY")
      let value = try await clerk.get(Array(args[0].utf8))
      print(keyValueLines(args[0], value))
      return value == nil ? 1 : 0
    case "del", "delete":
      let args = try arguments(words, "KEY")
      try await clerk.delete(Array(args[0].utf8))
      print("OK")
    case "leader":
      _ = try arguments(words)
      let reply = try await call(
        transport, address, NodeMethod.leader, Shardkv_LeaderRequest(), timeout: timeout,
        as: Shardkv_LeaderReply.self)
      guard !reply.leader.isEmpty else {
        throw Failure(message: "\(address) knows no leader (term \(reply.term))")
      }
      print(reply.leader)
    case "dropped":
      _ = try arguments(words)
      let reply = try await call(
        transport, address, NodeMethod.dropped, Shardkv_DroppedRequest(), timeout: timeout,
        as: Shardkv_DroppedReply.self)
      for peer in reply.peers { print("Dropped:\t\(peer)") }
    case "direct_get":
      let args = try arguments(words, "KEY")
      var request = Shardkv_DirectGetRequest()
      request.key = Data(args[0].utf8)
      let reply = try await call(
        transport, address, KVMethod.directGet, request, timeout: timeout, as: Shardkv_DirectGetReply.self)
      let value = reply.error == .ok ? [UInt8](reply.value) : nil
      print(keyValueLines(args[0], value))
      return value == nil ? 1 : 0
    case "join", "remove":
      let args = try arguments(words, "PEER")
      var request = Shardkv_JoinRequest()
      request.peer = args[0]
      let reply = try await call(
        transport, address, verb == "join" ? NodeMethod.join : NodeMethod.remove, request, timeout: timeout,
        as: Shardkv_MembershipReply.self)
      guard reply.error == .ok else {
        throw Failure(
          message: "\(verb) \(args[0]): \(reply.message.isEmpty ? "\(reply.error)" : reply.message)")
      }
      print("OK")
    case "status":
      _ = try arguments(words)
      let reply = try await call(
        transport, address, NodeMethod.status, Shardkv_StatusRequest(), timeout: timeout,
        as: Shardkv_StatusReply.self)
      if reply.service == "router" {
        let view = try await call(
          transport, address, RouterMethod.status, Shardkv_Router_RouterStatusRequest(), timeout: timeout,
          as: Shardkv_Router_RouterStatusReply.self)
        print(invocation.json ? StatusFormat.json(view) : StatusFormat.table(view))
      } else {
        print(invocation.json ? StatusFormat.json(reply) : StatusFormat.table(reply))
      }
    case "locate":
      let args = try arguments(words, "KEY")
      let (shard, group) = try await locate(Array(args[0].utf8), at: address, transport, timeout: timeout)
      print("Shard:\t\(shard)\nGroup:\t\(group)")
    case "shards":
      _ = try arguments(words)
      let reply = try await call(
        transport, address, KVMethod.shards, Shardkv_ShardsRequest(), timeout: timeout,
        as: Shardkv_ShardsReply.self)
      print(invocation.json ? ShardsFormat.json(reply) : ShardsFormat.table(reply))
    case "rebalance":
      return try await runRebalance(words, address: address, transport: transport, timeout: timeout)
    case "migrations":
      _ = try arguments(words)
      return try await Migrations.list(
        through: ControllerClerk(servers: [address], transport: transport, deadline: timeout),
        transport: transport,
        timeout: timeout)
    case "group", "shard", "config":
      let controller = ControllerClerk(servers: [address], transport: transport, deadline: timeout)
      try await runControllerCommand(
        words, invocation: invocation, clerk: controller, transport: transport)
    default:
      throw Failure(message: "unknown command '\(verb)'; see kvctl --help", status: 2)
    }
  } catch let error as ControllerClientError {
    throw Failure(message: error.description)
  } catch let error as KVClientError {
    throw Failure(message: error.description)
  } catch let error as Failure {
    throw error
  } catch {
    throw Failure(message: "\(error)")
  }
  return 0
}

/// `cluster up|status|down [FILE]` (no -a: the file names every node).
func runClusterCommand(_ invocation: Invocation) async throws(Failure) -> Int32 {
  var words = Array(invocation.words.dropFirst())
  let purge = words.contains("--purge")
  words.removeAll { $0 == "--purge" }
  guard let action = words.first, ["up", "status", "down"].contains(action), words.count <= 2 else {
    throw Failure(
      message: "cluster takes up|status|down [FILE] (default \(ClusterCommands.defaultFile))", status: 2)
  }
  if purge && action != "down" { throw Failure(message: "--purge goes with cluster down", status: 2) }
  let transport = try invocation.tls.transport()
  defer { Task { await transport.shutdown() } }
  do {
    let cluster = try ClusterCommands(
      path: words.count == 2 ? words[1] : ClusterCommands.defaultFile, transport: transport)
    switch action {
    case "up": return try await cluster.up()
    case "status": return try await cluster.status(json: invocation.json)
    default: return try await cluster.down(purge: purge)
    }
  } catch let error as Failure {
    throw error
  } catch {
    throw Failure(message: "\(error)")
  }
}

func number<T: FixedWidthInteger>(_ text: String, _ what: String, as: T.Type) throws(Failure) -> T {
  guard let value = T(text) else {
    throw Failure(message: "\(what) must be a number, not '\(text)'", status: 2)
  }
  return value
}

/// The shard and owning group of `key`, asked of a group member (its latest configuration) or,
/// when `address` is a controller replica, of the controller's latest configuration.
func locate(
  _ key: [UInt8], at address: String, _ transport: TCPTransport, timeout: Duration
) async throws -> (shard: UInt32, group: UInt64) {
  if let problem = KVLimits().violation(key: key, value: []) {
    throw Failure(message: "invalid argument: \(problem)")
  }
  var request = Shardkv_LocateRequest()
  request.key = Data(key)
  do {
    let bytes = try await transport.call(
      address, method: KVMethod.locate, payload: try request.serializedBytes(), timeout: timeout)
    let reply = try Shardkv_LocateReply(serializedBytes: bytes)
    guard reply.error == .ok else { throw Failure(message: reply.message) }
    return (reply.shard, reply.group)
  } catch RPCError.remote(code: .unknownMethod, _) {
    let config = try await ControllerClerk(servers: [address], transport: transport, deadline: timeout)
      .query()
    guard config.shardCount > 0 else { throw Failure(message: "the controller has no shards") }
    let shard = ShardMap(shardCount: config.shardCount).shard(of: key)
    return (UInt32(shard), config.shards[shard])
  } catch let error as RPCError {
    throw Failure(message: "\(address): \(error)")
  }
}

/// Checks what each would-be member of group `gid` says it is: a node that answers as a member
/// of another group, as a standalone store or as a controller replica is refused; one that
/// does not answer is accepted with a warning (a group may be registered before it starts).
func checkMembers(_ members: [String], of gid: GroupID, _ transport: TCPTransport) async throws {
  for member in members {
    do {
      _ = try PeerAddress(parsing: member)
    } catch {
      throw Failure(message: "'\(member)' is not HOST:PORT", status: 2)
    }
    let status: Shardkv_StatusReply
    do {
      let bytes = try await transport.call(
        member, method: NodeMethod.status, payload: try Shardkv_StatusRequest().serializedBytes(),
        timeout: .seconds(1))
      status = try Shardkv_StatusReply(serializedBytes: bytes)
    } catch {
      FileHandle.standardError.write(
        Data("kvctl: warning: \(member) does not answer (\(error)); registering it anyway\n".utf8))
      continue
    }
    if status.service == "controller" {
      throw Failure(message: "\(member) is a shard controller replica, not a member of group \(gid)")
    }
    if status.groupID == 0 {
      throw Failure(
        message: "\(member) is a standalone store (started without --group), not a member of group \(gid)")
    }
    if status.groupID != gid {
      throw Failure(message: "\(member) is a member of group \(status.groupID), not of group \(gid)")
    }
  }
}

func runControllerCommand(
  _ words: [String], invocation: Invocation, clerk: ControllerClerk, transport: TCPTransport
) async throws {
  switch (words[0], words.dropFirst().first) {
  case ("group", "join"):
    let args = try arguments(Array(words.dropFirst()), "GID", "ADDR1,ADDR2,...")
    let gid = try number(args[0], "GID", as: GroupID.self)
    let members = args[1].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    guard gid != 0 else { throw Failure(message: "GID 0 is reserved (it means unassigned)", status: 2) }
    guard !members.isEmpty, members.allSatisfy({ !$0.isEmpty }) else {
      throw Failure(message: "group join needs a comma-separated member list", status: 2)
    }
    try await checkMembers(members, of: gid, transport)
    try await clerk.join([gid: members])
    print("OK")
  case ("group", "leave"):
    var rest = Array(words.dropFirst())
    let wait = !rest.contains("--no-wait")
    rest.removeAll { $0 == "--no-wait" }
    let args = try arguments(rest, "GID")
    let gid = try number(args[0], "GID", as: GroupID.self)
    let members = try await clerk.query().groups[gid] ?? []
    try await clerk.leave([gid])
    // The leave is recorded; its shards now move. Wait for the drain unless asked not to
    // (progress on stderr; stdout stays the bare OK scripts expect).
    if wait && !members.isEmpty {
      _ = await Migrations.drain(gid, members: members, transport: transport, timeout: invocation.timeout)
    }
    print("OK")
  case ("shard", "move"):
    let args = try arguments(Array(words.dropFirst()), "SHARD", "GID")
    let shard = try number(args[0], "SHARD", as: Int.self)
    try await clerk.move(shard: shard, to: try number(args[1], "GID", as: GroupID.self))
    print("OK")
  case ("config", _):
    guard words.count <= 2 else { throw Failure(message: "config takes [NUM]", status: 2) }
    let num = try words.count == 2 ? number(words[1], "NUM", as: Int64.self) : -1
    let config = try await clerk.query(num)
    print(invocation.json ? config.jsonLine : ConfigFormat.table(config))
  case ("group", _):
    throw Failure(message: "group takes join GID ADDR1,ADDR2,... or leave GID", status: 2)
  default:
    throw Failure(message: "shard takes move SHARD GID", status: 2)
  }
}

// stdout carries only the command's output; library diagnostics go to stderr, errors only.
LoggingSystem.bootstrap { label in
  var handler = StreamLogHandler.standardError(label: label)
  handler.logLevel = .error
  return handler
}

let status: Int32
do {
  status = try await run(try Invocation(Array(CommandLine.arguments.dropFirst())))
} catch {
  FileHandle.standardError.write(Data("kvctl: \(error.message)\n".utf8))
  status = error.status
}
exit(status)
