import Raft

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

#if !FUZZING
import Foundation
#endif

// libFuzzer target for Raft input: the bytes of one `raft.messages` payload are decoded
// (`RaftCodec.deserializeBatch`), and each message is stepped (validation, then the core) into
// a follower and a leader of the group {n1, n2, n3}, with the core's invariants checked after
// every step. Built like RESPFuzz (see Sources/Fuzz/RESPFuzz/RESPFuzz.swift):
// `scripts/fuzz.sh RaftFuzz SECONDS`. The ordinary build replays inputs
// (`swift run RaftFuzz FILE...`) and writes a seed corpus of real traffic from a small
// simulated group (`swift run RaftFuzz --record DIR`).

@_cdecl("LLVMFuzzerTestOneInput")
public func raftFuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
  let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
  RaftFuzzCheck.run(input)
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
struct RaftFuzzMain {
  static func main() throws {
    #if FUZZING
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(llvmFuzzerRunDriver(&argc, &argv, raftFuzzTestOneInput))
    #else
    let arguments = Array(CommandLine.arguments.dropFirst())
    if arguments.first == "--record", arguments.count == 2 {
      let batches = RaftTraffic.record()
      for (n, batch) in batches.enumerated() {
        let path = arguments[1] + "/traffic-\(n)"
        try Data(batch).write(to: URL(fileURLWithPath: path))
      }
      print("wrote \(batches.count) batches to \(arguments[1])")
      return
    }
    if arguments.isEmpty {
      print("usage: RaftFuzz FILE... (replays fuzz inputs) | RaftFuzz --record DIR (seed corpus)")
      return
    }
    for path in arguments {
      let data = try Data(contentsOf: URL(fileURLWithPath: path))
      RaftFuzzCheck.run([UInt8](data))
      print("ok \(path)")
    }
    #endif
  }
}

/// The checks made on one input; any failure traps, which is what the fuzzer reports.
enum RaftFuzzCheck {
  static let members = [NodeID("n1"), NodeID("n2"), NodeID("n3")]

  static func run(_ input: [UInt8]) {
    guard let batch = try? RaftCodec.deserializeBatch(input) else { return }
    var cores = [follower(), leader()]
    for (n, message) in batch.messages.enumerated() {
      // Alternate targets; keep the sender as written, so that members and strangers both occur.
      var message = message
      message.to = cores[n % 2].id
      step(message, into: &cores[n % 2])
    }
  }

  /// Steps `message` and checks what must hold whatever it was.
  static func step(_ message: Message, into core: inout RaftCore) {
    let before = Snapshot(core)
    let outcome = core.step(message)
    let after = Snapshot(core)
    if case .dropped(let why) = outcome {
      guard before == after else { fatalError("a dropped message (\(why)) changed the core") }
    }
    if case .accepted = outcome {
      do {
        try RaftMessageValidator.validate(message, limits: core.config.inputLimits)
      } catch {
        fatalError("the core accepted a message the validator refuses: \(error)")
      }
    }
    guard after.term >= before.term else { fatalError("term went back from \(before.term) to \(after.term)") }
    checkLog(core, committedBefore: before)
    drain(&core)
    checkLog(core, committedBefore: before)
  }

  /// Hands every Ready back as done, as a runtime would.
  static func drain(_ core: inout RaftCore) {
    var rounds = 0
    while let ready = core.ready() {
      core.advance(ready)
      rounds += 1
      guard rounds < 100 else { fatalError("the core produced Readies without end") }
    }
  }

  static func checkLog(_ core: RaftCore, committedBefore before: Snapshot) {
    guard core.commitIndex <= core.lastIndex else {
      fatalError("commit \(core.commitIndex) past the last index \(core.lastIndex)")
    }
    guard core.commitIndex >= before.commit || core.firstIndex > before.commit else {
      fatalError("commit went back from \(before.commit) to \(core.commitIndex)")
    }
    var previousTerm: UInt64 = 0
    for (offset, entry) in core.entries.enumerated() {
      guard entry.index == core.firstIndex + UInt64(offset) else {
        fatalError("log not contiguous at \(entry.index)")
      }
      guard entry.term >= previousTerm else { fatalError("log terms decrease at \(entry.index)") }
      previousTerm = entry.term
    }
    // A committed entry never changes (a snapshot may compact it away).
    for entry in before.entries where entry.index <= before.commit {
      let offset = Int(truncatingIfNeeded: entry.index &- core.firstIndex)
      guard entry.index >= core.firstIndex, offset < core.entries.count else { continue }
      guard core.entries[offset] == entry else { fatalError("committed entry \(entry.index) changed") }
    }
  }

  /// What a step may or may not change.
  struct Snapshot: Equatable {
    var term: UInt64
    var leader: NodeID?
    var role: RaftRole
    var commit: UInt64
    var entries: [Entry]
    var membership: Membership

    init(_ core: RaftCore) {
      term = core.term
      leader = core.leader
      role = core.role
      commit = core.commitIndex
      entries = core.entries
      membership = core.membership
    }
  }

  /// n2, following n1 in term 2, with entries 1...5 (terms 1, 1, 2, 2, 2), 1...3 committed.
  static func follower() -> RaftCore {
    let terms: [UInt64] = [1, 1, 2, 2, 2]
    let entries = terms.enumerated().map {
      Entry(term: $1, index: UInt64($0 + 1), payload: .command([UInt8($0)]))
    }
    let restored = RestoredState(
      hardState: HardState(term: 2, vote: nil, commit: 3),
      snapshot: SnapshotMetadata(index: 0, term: 0, membership: Membership(voters: members)),
      entries: entries, applied: 0)
    var core = RaftCore(id: members[1], restored: restored, seed: 7)
    var heartbeat = Message(kind: .heartbeat, from: members[0], to: members[1], term: 2)
    heartbeat.commit = 3
    core.step(heartbeat)
    drain(&core)
    return core
  }

  /// n1, elected leader of term 1 of a new group.
  static func leader() -> RaftCore {
    var core = RaftCore(
      id: members[0], config: RaftConfig(preVote: false), restored: .bootstrap(voters: members), seed: 1)
    while core.role != .candidate { core.tick() }
    core.step(Message(kind: .voteResponse, from: members[1], to: members[0], term: core.term))
    drain(&core)
    _ = try? core.propose([1, 2, 3])
    drain(&core)
    return core
  }
}

/// Real traffic for the seed corpus: three cores elect a leader and replicate a few commands;
/// every batch one core sends another is recorded, serialized as on the wire.
enum RaftTraffic {
  static func record() -> [[UInt8]] {
    let ids = RaftFuzzCheck.members
    var cores = ids.enumerated().map { n, id in
      RaftCore(id: id, restored: .bootstrap(voters: ids), seed: UInt64(n + 1))
    }
    var batches: [[UInt8]] = []
    var inFlight: [Message] = []
    for tick in 0..<200 {
      for n in cores.indices {
        cores[n].tick()
        if tick % 20 == 10, cores[n].role == .leader { _ = try? cores[n].propose([UInt8(tick), 1, 2]) }
        if let ready = cores[n].ready() {
          inFlight += ready.messages
          cores[n].advance(ready)
        }
      }
      let grouped = Dictionary(grouping: inFlight) { "\($0.from)->\($0.to)" }
      inFlight = []
      for key in grouped.keys.sorted() {
        let messages = grouped[key] ?? []
        if let bytes = try? RaftCodec.serialize(messages, clusterID: 7), batches.count < 64 {
          batches.append(bytes)
        }
        for message in messages {
          guard let target = ids.firstIndex(of: message.to) else { continue }
          cores[target].step(message)
        }
      }
    }
    return batches
  }
}
