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
  usage: kvctl -a ADDR[,ADDR...] [--timeout SECONDS] [--json] COMMAND [ARGS] [--] [ARGS]

  ADDR is a member's, a router's or a controller replica's API address (HOST:PORT); give
  several, comma-separated, and kvctl tries them in turn (a dead one costs a connect timeout,
  not the whole deadline) and keeps to the one that answered. A router takes every data and
  admin command and forwards it inside the cluster. Data commands, join and remove sent to a
  follower are forwarded to its leader; leader, dropped, direct_get and status answer from
  the node at ADDR itself. In a sharded cluster, data commands work on any member of any
  group: a group that does not own the key's shard names its owner, and kvctl goes there.

  commands:
    put KEY VALUE      store VALUE under KEY; prints OK. VALUE may instead come from a file
                       (put KEY --file PATH) or stdin (put KEY -), any bytes, up to the
                       cluster's value limit (1 MiB by default)
    append KEY VALUE   append VALUE to KEY's value (a missing key acts as put); prints OK;
                       --file PATH and - as for put
    get KEY [--out PATH]
                       prints "Key:<TAB>KEY" and "Value:<TAB>VALUE" (the raw bytes; on a
                       terminal, a value that is not printable is shown escaped, \\xHH); a
                       missing key prints the value ERROR and exits 1 (a stored value ERROR
                       exits 0: use the exit status or --json to tell them apart). --out
                       writes the value's bytes to PATH and prints "Key:" and "Bytes:" lines
    del KEY            delete KEY; prints OK (also for a missing key)
    leader             the leader's peer address, as the node at ADDR knows it
    dropped            "Dropped:<TAB>PEER" for each member the node at ADDR has not heard
                       from for longer than the failure threshold
    direct_get KEY [--out PATH]
                       like get, from the node's own state without consensus
    join PEER          add the standby node PEER; prints OK once it is a voting member
                       that has caught up. Waits as long as the node works on it (600 s
                       unless --timeout says otherwise; the node is told), showing on a
                       terminal: learner, catching up N entries, voter
    remove PEER        remove the member PEER; prints OK
    status             role, term, leader, commit and applied index, members and progress;
                       against a router: its configuration, each group's members and
                       leader, and which addresses did not answer
    locate KEY         prints "Shard:<TAB>S" and "Group:<TAB>GID": the key's shard and its
                       owner in the latest configuration ADDR knows (a member or controller)
    shards             the configuration number of ADDR's group and each shard it holds or
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
    config [NUM]       configuration NUM (default: the latest) as a table, or with --json
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
    cluster status [FILE]
                       one line per node (role, group, pid, up/down, leader, applied index)
                       and the shards each group holds
    cluster down [FILE] [--purge]
                       stop every node (SIGTERM, SIGKILL after 10 s); --purge also removes
                       the data

  options (anywhere on the line; -- ends them, so that any value can be stored:
  kvctl put KEY -- --json):
  \(CommandTable.optionsHelp)

  --json (-w json): stdout carries exactly one JSON document, also on failure
  ({"error":NAME,"exit_code":N,"message":TEXT}); what the command would print for people
  goes to stderr. A value is {"encoding":"utf8","value":TEXT}, or "base64" when its bytes are
  not UTF-8; get says "found":true|false.

  exit status:
    0  success
    1  get/direct_get: the key does not exist
    2  usage error (unknown command or option, wrong arguments, unreadable --file)
    3  unavailable: no leader, unreachable, or no answer before the deadline (a write's
       outcome is then unknown)
    4  rejected: invalid argument (empty or too large key or value), wrong kind of node,
       a refused membership or controller change
    130  rebalance interrupted
  """

/// What a command produced: its exit status and its `--json` document.
struct Outcome {
  var status: ExitCode = .success
  var document: JSON
}

/// `{"ok":true}` and these fields.
func ok(_ fields: [(String, JSON)] = []) -> Outcome {
  Outcome(document: .object([("ok", .bool(true))] + fields))
}

func arguments(_ words: [String], _ names: String...) throws(Failure) -> [String] {
  let given = Array(words.dropFirst())
  guard given.count == names.count else {
    throw Failure(
      message: "\(words[0]) takes \(names.isEmpty ? "no arguments" : names.joined(separator: " "))",
      status: .usage)
  }
  return given
}

/// The status a membership reply's error means.
func exitCode(_ error: Shardkv_NodeError) -> ExitCode {
  error == .invalidArgument ? .rejected : .unavailable
}

/// `get` and `direct_get`: the lab's lines (or, with --out, the value's bytes in a file), and
/// the document `{"key":K,"found":B,"encoding":E,"value":V}`.
func showValue(_ key: String, _ value: [UInt8]?, invocation: Invocation) throws(Failure) -> Outcome {
  var fields: [(String, JSON)] = [("key", .string(key)), ("found", .bool(value != nil))]
  if let value, let path = invocation.out {
    try ValueIO.write(value, to: path)
    print("Key:\t\(key)\nBytes:\t\(value.count)")
    fields += [("bytes", .number(Int64(value.count))), ("out", .string(path))]
  } else {
    if !invocation.json { ValueIO.printKeyValue(key, value) }
    if let value { fields += JSON.value(value) }
  }
  return Outcome(status: value == nil ? .notFound : .success, document: .object(fields))
}

func run(_ invocation: Invocation) async throws(Failure) -> Outcome {
  guard let verb = invocation.words.first else {
    throw Failure(message: "no command given; see kvctl --help", status: .usage)
  }
  if verb == "cluster" { return try await runClusterCommand(invocation) }
  guard !invocation.endpoints.isEmpty else { throw Failure(message: "-a ADDR is required", status: .usage) }
  for endpoint in invocation.endpoints {
    do {
      _ = try PeerAddress(parsing: endpoint)
    } catch {
      throw Failure(message: "-a: '\(endpoint)' is not HOST:PORT", status: .usage)
    }
  }
  if invocation.file != nil && !["put", "append"].contains(verb) {
    throw Failure(message: "--file goes with put and append", status: .usage)
  }
  if invocation.out != nil && !["get", "direct_get"].contains(verb) {
    throw Failure(message: "--out goes with get and direct_get", status: .usage)
  }
  let transport = try invocation.tls.transport(connectTimeout: invocation.connectTimeout)
  defer { Task { await transport.shutdown() } }
  let words = invocation.words
  let timeout = invocation.timeout
  let servers = invocation.endpoints
  let endpoints = Endpoints(servers, transport: transport, deadline: timeout)
  let clerk = KVClerk(servers: servers, transport: transport, deadline: timeout)
  do {
    switch verb {
    case "put", "append":
      let given = Array(words.dropFirst())
      guard given.count == (invocation.file == nil ? 2 : 1) else {
        throw Failure(message: "\(verb) takes KEY VALUE, KEY - (stdin) or KEY --file PATH", status: .usage)
      }
      let value = try ValueIO.value(argument: given.count == 2 ? given[1] : nil, file: invocation.file)
      if verb == "put" {
        try await clerk.put(Array(given[0].utf8), value)
      } else {
        try await clerk.append(Array(given[0].utf8), value)
      }
      print("OK")
      return ok([("key", .string(given[0])), ("bytes", .number(Int64(value.count)))])
    case "get":
      let args = try arguments(words, "KEY")
      return try showValue(args[0], try await clerk.get(Array(args[0].utf8)), invocation: invocation)
    case "del", "delete":
      let args = try arguments(words, "KEY")
      try await clerk.delete(Array(args[0].utf8))
      print("OK")
      return ok([("key", .string(args[0]))])
    case "leader":
      _ = try arguments(words)
      let (reply, from) = try await endpoints.call(
        NodeMethod.leader, Shardkv_LeaderRequest(), as: Shardkv_LeaderReply.self)
      guard !reply.leader.isEmpty else {
        throw Failure(message: "\(from) knows no leader (term \(reply.term))")
      }
      print(reply.leader)
      return Outcome(document: .object([("leader", .string(reply.leader)), ("term", .unsigned(reply.term))]))
    case "dropped":
      _ = try arguments(words)
      let (reply, _) = try await endpoints.call(
        NodeMethod.dropped, Shardkv_DroppedRequest(), as: Shardkv_DroppedReply.self)
      for peer in reply.peers { print("Dropped:\t\(peer)") }
      return Outcome(document: .object([("dropped", .array(reply.peers.map { .string($0) }))]))
    case "direct_get":
      let args = try arguments(words, "KEY")
      var request = Shardkv_DirectGetRequest()
      request.key = Data(args[0].utf8)
      let (reply, _) = try await endpoints.call(KVMethod.directGet, request, as: Shardkv_DirectGetReply.self)
      if reply.error == .invalidArgument {
        throw Failure(message: "invalid argument: bad key", status: .rejected)
      }
      return try showValue(args[0], reply.error == .ok ? [UInt8](reply.value) : nil, invocation: invocation)
    case "join":
      let args = try arguments(words, "PEER")
      let members = try await MembershipChange.join(
        args[0], through: endpoints,
        timeout: invocation.timeoutGiven ? timeout : MembershipChange.defaultJoinTimeout)
      print("OK")
      return ok([("peer", .string(args[0])), ("members", .array(members.map { .string($0) }))])
    case "remove":
      let args = try arguments(words, "PEER")
      let members = try await MembershipChange.remove(args[0], through: endpoints, timeout: timeout)
      print("OK")
      return ok([("peer", .string(args[0])), ("members", .array(members.map { .string($0) }))])
    case "status":
      _ = try arguments(words)
      let (reply, from) = try await endpoints.call(
        NodeMethod.status, Shardkv_StatusRequest(), as: Shardkv_StatusReply.self)
      if reply.service == "router" {
        let router = Endpoints([from], transport: transport, deadline: timeout)
        let (view, _) = try await router.call(
          RouterMethod.status, Shardkv_Router_RouterStatusRequest(), as: Shardkv_Router_RouterStatusReply.self
        )
        if !invocation.json { print(StatusFormat.table(view)) }
        return Outcome(document: .encoded(StatusFormat.json(view)))
      }
      if !invocation.json { print(StatusFormat.table(reply)) }
      return Outcome(document: .encoded(StatusFormat.json(reply)))
    case "locate":
      let args = try arguments(words, "KEY")
      let (shard, group) = try await locate(Array(args[0].utf8), through: endpoints)
      print("Shard:\t\(shard)\nGroup:\t\(group)")
      return Outcome(
        document: .object([
          ("key", .string(args[0])), ("shard", .unsigned(UInt64(shard))), ("group", .unsigned(group)),
        ]))
    case "shards":
      _ = try arguments(words)
      let (reply, _) = try await endpoints.call(
        KVMethod.shards, Shardkv_ShardsRequest(), as: Shardkv_ShardsReply.self)
      if !invocation.json { print(ShardsFormat.table(reply)) }
      return Outcome(document: .encoded(ShardsFormat.json(reply)))
    case "rebalance":
      return try await runRebalance(words, servers: servers, transport: transport, timeout: timeout)
    case "migrations":
      _ = try arguments(words)
      return try await Migrations.list(
        through: ControllerClerk(servers: servers, transport: transport, deadline: timeout),
        transport: transport,
        timeout: timeout)
    case "group", "shard", "config":
      let controller = ControllerClerk(servers: servers, transport: transport, deadline: timeout)
      return try await runControllerCommand(
        words, invocation: invocation, clerk: controller, transport: transport)
    default:
      throw Failure(message: "unknown command '\(verb)'; see kvctl --help", status: .usage)
    }
  } catch let error as ControllerClientError {
    switch error {
    case .rejected: throw Failure(message: error.description, status: .rejected)
    case .timeout: throw Failure(message: error.description, status: .unavailable)
    }
  } catch let error as KVClientError {
    switch error {
    case .invalidArgument: throw Failure(message: error.description, status: .rejected)
    case .timeout: throw Failure(message: error.description, status: .unavailable)
    }
  } catch let error as Failure {
    throw error
  } catch {
    throw Failure(message: "\(error)")
  }
}

/// `cluster up|status|down [FILE]` (no -a: the file names every node).
func runClusterCommand(_ invocation: Invocation) async throws(Failure) -> Outcome {
  var words = Array(invocation.words.dropFirst())
  let purge = words.contains("--purge")
  words.removeAll { $0 == "--purge" }
  guard let action = words.first, ["up", "status", "down"].contains(action), words.count <= 2 else {
    throw Failure(
      message: "cluster takes up|status|down [FILE] (default \(ClusterCommands.defaultFile))", status: .usage)
  }
  if purge && action != "down" { throw Failure(message: "--purge goes with cluster down", status: .usage) }
  let transport = try invocation.tls.transport(connectTimeout: invocation.connectTimeout)
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
    throw Failure(message: "\(what) must be a number, not '\(text)'", status: .usage)
  }
  return value
}

/// The shard and owning group of `key`, asked of a group member (its latest configuration) or,
/// when the endpoints are controller replicas, of the controller's latest configuration.
func locate(_ key: [UInt8], through endpoints: Endpoints) async throws -> (shard: UInt32, group: UInt64) {
  if let problem = KVLimits().violation(key: key, value: []) {
    throw Failure(message: "invalid argument: \(problem)", status: .rejected)
  }
  var request = Shardkv_LocateRequest()
  request.key = Data(key)
  do {
    let (reply, _) = try await endpoints.call(KVMethod.locate, request, as: Shardkv_LocateReply.self)
    guard reply.error == .ok else {
      throw Failure(
        message: reply.message, status: reply.error == .invalidArgument ? .rejected : .unavailable)
    }
    return (reply.shard, reply.group)
  } catch let failure as Failure where failure.status == .rejected {
    // Not a group member: a controller replica answers from its configuration.
    let config = try await ControllerClerk(
      servers: endpoints.all, transport: endpoints.transport, deadline: endpoints.deadline
    ).query()
    guard config.shardCount > 0 else { throw Failure(message: "the controller has no shards") }
    let shard = ShardMap(shardCount: config.shardCount).shard(of: key)
    return (UInt32(shard), config.shards[shard])
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
      throw Failure(message: "'\(member)' is not HOST:PORT", status: .usage)
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
      throw Failure(
        message: "\(member) is a shard controller replica, not a member of group \(gid)", status: .rejected)
    }
    if status.groupID == 0 {
      throw Failure(
        message: "\(member) is a standalone store (started without --group), not a member of group \(gid)",
        status: .rejected)
    }
    if status.groupID != gid {
      throw Failure(
        message: "\(member) is a member of group \(status.groupID), not of group \(gid)", status: .rejected)
    }
  }
}

func runControllerCommand(
  _ words: [String], invocation: Invocation, clerk: ControllerClerk, transport: TCPTransport
) async throws -> Outcome {
  switch (words[0], words.dropFirst().first) {
  case ("group", "join"):
    let args = try arguments(Array(words.dropFirst()), "GID", "ADDR1,ADDR2,...")
    let gid = try number(args[0], "GID", as: GroupID.self)
    let members = args[1].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    guard gid != 0 else { throw Failure(message: "GID 0 is reserved (it means unassigned)", status: .usage) }
    guard !members.isEmpty, members.allSatisfy({ !$0.isEmpty }) else {
      throw Failure(message: "group join needs a comma-separated member list", status: .usage)
    }
    try await checkMembers(members, of: gid, transport)
    try await clerk.join([gid: members])
    print("OK")
    return ok([("group", .unsigned(gid)), ("members", .array(members.map { .string($0) }))])
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
    var drained: Bool?
    if wait && !members.isEmpty {
      drained = await Migrations.drain(
        gid, members: members, transport: transport, timeout: invocation.timeout)
    }
    print("OK")
    return ok([("group", .unsigned(gid)), ("drained", drained.map { .bool($0) } ?? .null)])
  case ("shard", "move"):
    let args = try arguments(Array(words.dropFirst()), "SHARD", "GID")
    let shard = try number(args[0], "SHARD", as: Int.self)
    let gid = try number(args[1], "GID", as: GroupID.self)
    try await clerk.move(shard: shard, to: gid)
    print("OK")
    return ok([("shard", .number(Int64(shard))), ("group", .unsigned(gid))])
  case ("config", _):
    guard words.count <= 2 else { throw Failure(message: "config takes [NUM]", status: .usage) }
    let num = try words.count == 2 ? number(words[1], "NUM", as: Int64.self) : -1
    let config = try await clerk.query(num)
    if !invocation.json { print(ConfigFormat.table(config)) }
    return Outcome(document: .encoded(config.jsonLine))
  case ("group", _):
    throw Failure(message: "group takes join GID ADDR1,ADDR2,... or leave GID", status: .usage)
  default:
    throw Failure(message: "shard takes move SHARD GID", status: .usage)
  }
}

// stdout carries only the command's output; library diagnostics go to stderr, errors only.
LoggingSystem.bootstrap { label in
  var handler = StreamLogHandler.standardError(label: label)
  handler.logLevel = .error
  return handler
}

/// Runs the command line: exit status, stdout and stderr as `--help` documents them.
func main() async -> Int32 {
  let invocation: Invocation
  do {
    invocation = try Invocation(Array(CommandLine.arguments.dropFirst()))
  } catch {
    FileHandle.standardError.write(Data("kvctl: \(error.message)\n".utf8))
    // A usage error is a document too when --json was asked for.
    if CommandLine.arguments.contains("--json") { CommandOutput(json: true).emitFailure(error) }
    return error.status.rawValue
  }
  if invocation.help || invocation.words == ["help"] {
    print(usage)
    return ExitCode.success.rawValue
  }
  if invocation.words.isEmpty && invocation.completionShell == nil {
    print(usage)
    return ExitCode.usage.rawValue
  }
  if let shell = invocation.completionShell {
    do {
      print(try CompletionScript.script(for: shell), terminator: "")
      return ExitCode.success.rawValue
    } catch {
      FileHandle.standardError.write(Data("kvctl: \(error.message)\n".utf8))
      return error.status.rawValue
    }
  }
  let output = CommandOutput(json: invocation.json)
  do {
    let outcome = try await run(invocation)
    output.emit(outcome.document)
    return outcome.status.rawValue
  } catch {
    fflush(nil)
    FileHandle.standardError.write(Data("kvctl: \(error.message)\n".utf8))
    output.emitFailure(error)
    return error.status.rawValue
  }
}

let status = await main()
fflush(nil)
exit(status)
