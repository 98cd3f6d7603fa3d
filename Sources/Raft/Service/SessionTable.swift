import Foundation
import Storage
import SwiftProtobuf
import Wire

/// The exactly-once table of a replicated service: the last write of each client session and
/// the reply it got. The KV groups and the shard controller keep one each.
///
/// A client numbers its writes 1, 2, 3, … and sends one at a time, retrying each with the same
/// number until it is answered. So when a write arrives whose number is not above the client's
/// last one, it was executed already: the last one gets its reply again, and an older one
/// (a duplicate delayed in the network) is answered as superseded without executing.
///
/// Sessions idle for longer than a timeout are dropped, measured in the leader-stamped time
/// inside the log, so every replica drops the same ones at the same index.
///
/// Persistence: one record per session under `prefix` in the owner's column family, written in
/// the same batch as the effects it covers. Every mutating method stages its records in the
/// batch it is given; the caller writes the batch.
public struct SessionTable: Sendable {
  public enum Check: Sendable, Equatable {
    /// Not seen before: execute it.
    case fresh
    /// The client's last write, retried: answer with its stored reply.
    case duplicate(reply: [UInt8])
    /// Older than the client's last write: already answered; do not execute.
    case superseded(last: UInt64)
  }

  public static let defaultPrefix = Array("session/".utf8)

  private var sessions: [UInt64: Shardkv_ClientSession] = [:]
  private let prefix: [UInt8]

  public init(prefix: [UInt8] = SessionTable.defaultPrefix) {
    self.prefix = prefix
  }

  /// Loads the records stored under `prefix` in `family`.
  public init(
    loadingFrom db: RocksDB, family: ColumnFamily, prefix: [UInt8] = SessionTable.defaultPrefix,
    snapshot: RocksSnapshot? = nil
  ) throws {
    self.prefix = prefix
    for pair in try db.scan(family, prefix: prefix, snapshot: snapshot) {
      let session = try Shardkv_ClientSession(serializedBytes: pair.value)
      sessions[session.clientID] = session
    }
  }

  public var count: Int { sessions.count }

  /// Every session, by client id (a deterministic order, for snapshots and shard pages).
  public var all: [Shardkv_ClientSession] { sessions.keys.sorted().compactMap { sessions[$0] } }

  /// What to do with write `sequence` of `client` (0: a client without a session, always fresh).
  public func check(client: UInt64, sequence: UInt64) -> Check {
    guard client != 0, let session = sessions[client], sequence <= session.sequence else { return .fresh }
    return sequence == session.sequence
      ? .duplicate(reply: [UInt8](session.reply)) : .superseded(last: session.sequence)
  }

  /// Remembers `reply` as the answer to write `sequence` of `client`, stamped `stampMs`.
  public mutating func record(
    client: UInt64, sequence: UInt64, reply: [UInt8], stampMs: UInt64, in batch: inout WriteBatch,
    family: ColumnFamily
  ) throws {
    guard client != 0 else { return }
    var session = Shardkv_ClientSession()
    session.clientID = client
    session.sequence = sequence
    session.reply = Data(reply)
    session.lastSeenMs = stampMs
    sessions[client] = session
    batch.put(key: key(client), value: try session.serializedBytes(), in: family)
  }

  /// Takes in sessions that travelled with a shard from another group: for each client the
  /// higher sequence wins. Sequence numbers are per client across every group, and a client
  /// sends one write at a time, so the higher one is the client's latest write wherever it ran.
  public mutating func merge(
    _ incoming: [Shardkv_ClientSession], in batch: inout WriteBatch, family: ColumnFamily
  ) throws {
    for session in incoming where session.clientID != 0 {
      if let mine = sessions[session.clientID], mine.sequence >= session.sequence { continue }
      sessions[session.clientID] = session
      batch.put(key: key(session.clientID), value: try session.serializedBytes(), in: family)
    }
  }

  /// Drops sessions idle since before `nowMs - timeout`.
  public mutating func sweep(
    nowMs: UInt64, timeout: Duration, in batch: inout WriteBatch, family: ColumnFamily
  ) {
    let timeoutMs = UInt64(max(0, timeout.components.seconds)) * 1000
    guard nowMs > timeoutMs else { return }
    let horizon = nowMs - timeoutMs
    for client in sessions.keys.sorted() {
      guard let session = sessions[client], session.lastSeenMs < horizon else { continue }
      sessions[client] = nil
      batch.delete(key(client), in: family)
    }
  }

  /// Replaces the whole table (a snapshot install), staging the deletion of every stored
  /// record and the writing of the new ones.
  public mutating func replace(
    with restored: [Shardkv_ClientSession], in batch: inout WriteBatch, family: ColumnFamily
  ) throws {
    batch.deleteRange(from: prefix, to: RocksDB.upperBound(forPrefix: prefix) ?? [0xFF], in: family)
    sessions = [:]
    for session in restored {
      sessions[session.clientID] = session
      batch.put(key: key(session.clientID), value: try session.serializedBytes(), in: family)
    }
  }

  private func key(_ client: UInt64) -> [UInt8] { prefix + BigEndian.bytes(client) }
}
