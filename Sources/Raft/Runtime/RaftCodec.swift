import Foundation
import SwiftProtobuf
import Wire

/// Why bytes from the network or the disk could not be read as a Raft record.
public enum RaftCodecError: Error, Hashable, Sendable, CustomStringConvertible {
  case malformed(String)

  public var description: String {
    switch self {
    case .malformed(let what): return "malformed Raft record: \(what)"
    }
  }
}

/// Converts the core's types to and from their protobuf schemas (Protos/raft.proto). The core
/// stays free of Foundation and generated code; only the runtime sees bytes.
public enum RaftCodec {
  public typealias ProtoMessage = Shardkv_Raft_Message

  // MARK: Bytes

  public static func serialize(
    _ messages: [Message], clusterID: UInt64 = ClusterIdentity.unknown
  ) throws(RaftCodecError) -> [UInt8] {
    var batch = Shardkv_Raft_MessageBatch()
    batch.messages = messages.map(proto)
    batch.clusterID = clusterID
    return try bytes(of: batch)
  }

  /// The most messages one batch may hold. An honest sender batches what it queued for one
  /// peer (at most `RaftNode`'s outbox of 4096); a frame of empty messages could otherwise
  /// decode into millions of objects.
  public static let maxMessagesPerBatch = 8192
  /// The most entries one batch may hold, over all its messages (an honest append carries at
  /// most `RaftConfig.maxBytesPerMessage`, 1 MiB, of entries).
  public static let maxEntriesPerBatch = 262_144

  public static func deserializeMessages(_ bytes: [UInt8]) throws(RaftCodecError) -> [Message] {
    try deserializeBatch(bytes).messages
  }

  /// A batch and the cluster id it carries.
  public static func deserializeBatch(
    _ bytes: [UInt8]
  ) throws(RaftCodecError) -> (clusterID: UInt64, messages: [Message]) {
    // Counted on the raw bytes, before parsing allocates an object per message and entry.
    let counts = try WireScan.countBatch(bytes)
    guard counts.messages <= maxMessagesPerBatch else {
      throw .malformed("batch of \(counts.messages) messages exceeds \(maxMessagesPerBatch)")
    }
    guard counts.entries <= maxEntriesPerBatch else {
      throw .malformed("batch of \(counts.entries) entries exceeds \(maxEntriesPerBatch)")
    }
    let batch: Shardkv_Raft_MessageBatch = try parse(bytes)
    var out: [Message] = []
    out.reserveCapacity(batch.messages.count)
    for message in batch.messages { out.append(try self.message(from: message)) }
    return (batch.clusterID, out)
  }

  public static func serialize(_ entry: Entry) throws(RaftCodecError) -> [UInt8] {
    try bytes(of: proto(entry))
  }

  public static func deserializeEntry(_ bytes: [UInt8]) throws(RaftCodecError) -> Entry {
    try entry(from: parse(bytes))
  }

  public static func serialize(_ hardState: HardState) throws(RaftCodecError) -> [UInt8] {
    var p = Shardkv_Raft_HardState()
    p.term = hardState.term
    p.vote = hardState.vote?.rawValue ?? ""
    p.commit = hardState.commit
    return try bytes(of: p)
  }

  public static func deserializeHardState(_ bytes: [UInt8]) throws(RaftCodecError) -> HardState {
    let p: Shardkv_Raft_HardState = try parse(bytes)
    return HardState(term: p.term, vote: p.vote.isEmpty ? nil : NodeID(p.vote), commit: p.commit)
  }

  public static func serialize(_ metadata: SnapshotMetadata) throws(RaftCodecError) -> [UInt8] {
    try bytes(of: proto(metadata))
  }

  public static func deserializeSnapshotMetadata(
    _ bytes: [UInt8]
  ) throws(RaftCodecError)
    -> SnapshotMetadata
  {
    metadata(from: try parse(bytes))
  }

  public static func serialize(_ chunk: SnapshotChunk) throws(RaftCodecError) -> [UInt8] {
    var p = Shardkv_Raft_SnapshotChunk()
    p.from = chunk.from.rawValue
    p.to = chunk.to.rawValue
    p.term = chunk.term
    p.transferID = chunk.transferID
    p.sequence = chunk.sequence
    p.data = Data(chunk.data)
    p.last = chunk.isLast
    if let metadata = chunk.metadata { p.metadata = proto(metadata) }
    p.clusterID = chunk.clusterID
    return try bytes(of: p)
  }

  public static func deserializeSnapshotChunk(
    _ bytes: [UInt8]
  ) throws(RaftCodecError)
    -> SnapshotChunk
  {
    let p: Shardkv_Raft_SnapshotChunk = try parse(bytes)
    return SnapshotChunk(
      from: NodeID(p.from), to: NodeID(p.to), term: p.term, transferID: p.transferID,
      sequence: p.sequence, data: [UInt8](p.data), isLast: p.last,
      metadata: p.hasMetadata ? metadata(from: p.metadata) : nil, clusterID: p.clusterID)
  }

  // MARK: Records

  static func proto(_ m: Message) -> ProtoMessage {
    var p = ProtoMessage()
    p.kind = protoKind(m.kind)
    p.from = m.from.rawValue
    p.to = m.to.rawValue
    p.term = m.term
    p.logTerm = m.logTerm
    p.index = m.index
    p.entries = m.entries.map(proto)
    p.commit = m.commit
    p.reject = m.reject
    p.rejectHint = m.rejectHint
    p.conflictTerm = m.conflictTerm
    if let snapshot = m.snapshot { p.snapshot = proto(snapshot.metadata) }
    p.context = Data(m.context)
    p.readRound = m.readRound
    p.isTransfer = m.isTransfer
    if let carried = m.senderMembership {
      p.senderMembership.index = carried.index
      p.senderMembership.membership = proto(carried.membership)
    }
    return p
  }

  static func message(from p: ProtoMessage) throws(RaftCodecError) -> Message {
    var m = Message(kind: try kind(from: p.kind), from: NodeID(p.from), to: NodeID(p.to), term: p.term)
    m.logTerm = p.logTerm
    m.index = p.index
    m.entries = []
    m.entries.reserveCapacity(p.entries.count)
    for entry in p.entries { m.entries.append(try self.entry(from: entry)) }
    m.commit = p.commit
    m.reject = p.reject
    m.rejectHint = p.rejectHint
    m.conflictTerm = p.conflictTerm
    if p.hasSnapshot { m.snapshot = Snapshot(metadata: metadata(from: p.snapshot)) }
    m.context = [UInt8](p.context)
    m.readRound = p.readRound
    m.isTransfer = p.isTransfer
    if p.hasSenderMembership {
      m.senderMembership = IndexedMembership(
        index: p.senderMembership.index, membership: membership(from: p.senderMembership.membership))
    }
    return m
  }

  static func proto(_ entry: Entry) -> Shardkv_Raft_Entry {
    var p = Shardkv_Raft_Entry()
    p.term = entry.term
    p.index = entry.index
    switch entry.payload {
    case .noop:
      p.kind = .noop
    case .command(let data):
      p.kind = .command
      p.data = Data(data)
    case .membership(let membership):
      p.kind = .membership
      p.membership = proto(membership)
    }
    return p
  }

  static func entry(from p: Shardkv_Raft_Entry) throws(RaftCodecError) -> Entry {
    let payload: EntryPayload
    switch p.kind {
    case .noop: payload = .noop
    case .command: payload = .command([UInt8](p.data))
    case .membership: payload = .membership(membership(from: p.membership))
    case .UNRECOGNIZED(let raw): throw .malformed("unknown entry kind \(raw)")
    }
    return Entry(term: p.term, index: p.index, payload: payload)
  }

  static func proto(_ membership: Membership) -> Shardkv_Raft_Membership {
    var p = Shardkv_Raft_Membership()
    p.voters = membership.voters.map(\.rawValue)
    p.learners = membership.learners.map(\.rawValue)
    return p
  }

  static func membership(from p: Shardkv_Raft_Membership) -> Membership {
    Membership(voters: p.voters.map { NodeID($0) }, learners: p.learners.map { NodeID($0) })
  }

  static func proto(_ metadata: SnapshotMetadata) -> Shardkv_Raft_SnapshotMetadata {
    var p = Shardkv_Raft_SnapshotMetadata()
    p.index = metadata.index
    p.term = metadata.term
    p.membership = proto(metadata.membership)
    return p
  }

  static func metadata(from p: Shardkv_Raft_SnapshotMetadata) -> SnapshotMetadata {
    SnapshotMetadata(index: p.index, term: p.term, membership: membership(from: p.membership))
  }

  private static let kinds: [(MessageKind, ProtoMessage.Kind)] = [
    (.preVote, .preVote), (.preVoteResponse, .preVoteResponse), (.vote, .vote),
    (.voteResponse, .voteResponse), (.append, .append), (.appendResponse, .appendResponse),
    (.heartbeat, .heartbeat), (.heartbeatResponse, .heartbeatResponse), (.snapshot, .snapshot),
    (.timeoutNow, .timeoutNow), (.readIndex, .readIndex), (.readIndexResponse, .readIndexResponse),
  ]

  static func protoKind(_ kind: MessageKind) -> ProtoMessage.Kind {
    for (core, wire) in kinds where core == kind { return wire }
    return .UNRECOGNIZED(-1)
  }

  static func kind(from wire: ProtoMessage.Kind) throws(RaftCodecError) -> MessageKind {
    for (core, candidate) in kinds where candidate == wire { return core }
    throw .malformed("unknown message kind \(wire.rawValue)")
  }

  // MARK: Protobuf plumbing

  private static func bytes(of message: some SwiftProtobuf.Message) throws(RaftCodecError) -> [UInt8] {
    do {
      return try message.serializedBytes()
    } catch {
      throw .malformed("cannot encode \(type(of: message)): \(error)")
    }
  }

  private static func parse<M: SwiftProtobuf.Message>(_ bytes: [UInt8]) throws(RaftCodecError) -> M {
    do {
      return try M(serializedBytes: bytes)
    } catch {
      throw .malformed("cannot decode \(M.self): \(error)")
    }
  }
}

/// Counts fields in protobuf bytes without parsing them, so that a batch's size in objects is
/// known before any is allocated. Only the wire format's framing is read; anything that does
/// not frame correctly is `malformed`.
enum WireScan {
  /// Messages (MessageBatch field 1) and entries (Message field 7) in a serialized batch.
  static func countBatch(_ bytes: [UInt8]) throws(RaftCodecError) -> (messages: Int, entries: Int) {
    var messages = 0
    var entries = 0
    try forEachField(bytes[...]) { (field, body) throws(RaftCodecError) in
      guard field == 1, let body else { return }
      messages += 1
      try forEachField(body) { (inner, _) throws(RaftCodecError) in
        if inner == 7 { entries += 1 }
      }
    }
    return (messages, entries)
  }

  /// Calls `body` with each field number, and its bytes when it is length-delimited.
  private static func forEachField(
    _ bytes: ArraySlice<UInt8>, _ body: (UInt64, ArraySlice<UInt8>?) throws(RaftCodecError) -> Void
  ) throws(RaftCodecError) {
    var at = bytes.startIndex
    while at < bytes.endIndex {
      let key = try varint(bytes, &at)
      let field = key >> 3
      switch key & 7 {
      case 0:
        _ = try varint(bytes, &at)
        try body(field, nil)
      case 1, 5:
        let width = key & 7 == 1 ? 8 : 4
        guard bytes.endIndex - at >= width else { throw .malformed("truncated fixed field") }
        at += width
        try body(field, nil)
      case 2:
        let length = try varint(bytes, &at)
        guard length <= UInt64(bytes.endIndex - at) else { throw .malformed("truncated field \(field)") }
        let end = at + Int(length)
        try body(field, bytes[at..<end])
        at = end
      default:
        throw .malformed("unsupported wire type \(key & 7)")
      }
    }
  }

  private static func varint(_ bytes: ArraySlice<UInt8>, _ at: inout Int) throws(RaftCodecError) -> UInt64 {
    var value: UInt64 = 0
    var shift: UInt64 = 0
    while at < bytes.endIndex, shift < 64 {
      let byte = bytes[at]
      at += 1
      value |= UInt64(byte & 0x7F) << shift
      if byte & 0x80 == 0 { return value }
      shift += 7
    }
    throw .malformed("bad varint")
  }
}
