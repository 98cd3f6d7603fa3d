import Foundation
import Storage
import SwiftProtobuf
import Wire

/// The API address of each member of a replicated group, as the members published them through
/// the group's own log: etcd's member attributes. Both services keep one in their replicated
/// state (the KV groups in `meta`, the controller in `ctrler`), so that a follower answering
/// "not the leader" can name its leader's **API** address, which clients can use, and not only
/// its peer address (the `NodeID` Raft knows it by).
///
/// Invariants, and why they hold:
/// - Every replica holds the same directory at the same log index: it changes only by applying
///   entries (a `MemberAddress` command, or a membership entry that drops non-members), and it
///   is written in the same batch as the applied index and travels in snapshots.
/// - An entry names a current member or a member that was removed after it published (the
///   next membership entry drops it): the leader records only members, and every membership
///   entry applied drops whoever it does not list.
/// - A member's entry is its API address as of its latest start: each member republishes
///   whenever its entry is missing or differs (`NodeCommandService.publishAddress`), so a
///   restart on another API address, or a removal and re-add, is corrected within one check.
///
/// Persistence: one record per member under `prefix` (peer address → API address) in the
/// owner's column family. Every mutating method stages its records in the batch it is given;
/// the caller writes the batch.
public struct MemberDirectory: Sendable, Equatable {
  public static let defaultPrefix = Array("member/".utf8)
  /// Longest peer or API address recorded.
  public static let maxAddressBytes = 255

  private var addresses: [String: String] = [:]
  private let prefix: [UInt8]

  public init(prefix: [UInt8] = MemberDirectory.defaultPrefix) {
    self.prefix = prefix
  }

  /// Loads the records stored under `prefix` in `family`.
  public init(
    loadingFrom db: RocksDB, family: ColumnFamily, prefix: [UInt8] = MemberDirectory.defaultPrefix
  ) throws {
    self.prefix = prefix
    for pair in try db.scan(family, prefix: prefix) {
      addresses[String(decoding: pair.key.dropFirst(prefix.count), as: UTF8.self)] = String(
        decoding: pair.value, as: UTF8.self)
    }
  }

  /// The API address `member` published, if its publication has been applied here.
  public func apiAddress(of member: NodeID) -> String? { addresses[member.rawValue] }

  public var count: Int { addresses.count }

  /// Every entry, by peer address (a deterministic order, for snapshots).
  public var all: [Shardkv_MemberAddress] {
    addresses.keys.sorted().map { peer in
      var entry = Shardkv_MemberAddress()
      entry.peer = peer
      entry.api = addresses[peer] ?? ""
      return entry
    }
  }

  /// Whether `address` can be recorded: non-empty, `HOST:PORT`-shaped (or a name of the
  /// in-memory test network), without whitespace, at most `maxAddressBytes`.
  public static func isRecordable(_ address: String) -> Bool {
    !address.isEmpty && address.utf8.count <= maxAddressBytes && address.contains(":")
      && !address.contains(where: \.isWhitespace)
  }

  /// Records `entry` (applying a published address). An entry that is not recordable is
  /// ignored, the same way on every replica.
  public mutating func publish(
    _ entry: Shardkv_MemberAddress, in batch: inout WriteBatch, family: ColumnFamily
  ) {
    guard Self.isRecordable(entry.peer), Self.isRecordable(entry.api), addresses[entry.peer] != entry.api
    else { return }
    addresses[entry.peer] = entry.api
    batch.put(key: key(entry.peer), value: Array(entry.api.utf8), in: family)
  }

  /// Drops every entry whose member `membership` does not list (applying a membership entry).
  public mutating func retain(_ membership: Membership, in batch: inout WriteBatch, family: ColumnFamily) {
    let members = Set(membership.all.map(\.rawValue))
    for peer in addresses.keys.sorted() where !members.contains(peer) {
      addresses[peer] = nil
      batch.delete(key(peer), in: family)
    }
  }

  /// Replaces the whole directory (a snapshot install), staging the deletion of every stored
  /// record and the writing of the new ones.
  public mutating func replace(
    with restored: [Shardkv_MemberAddress], in batch: inout WriteBatch, family: ColumnFamily
  ) {
    batch.deleteRange(from: prefix, to: RocksDB.upperBound(forPrefix: prefix) ?? [0xFF], in: family)
    addresses = [:]
    for entry in restored { publish(entry, in: &batch, family: family) }
  }

  private func key(_ peer: String) -> [UInt8] { prefix + Array(peer.utf8) }
}

/// Where a service's replicated member directory is read and how a publication is written into
/// its log. The KV and controller state machines provide it; `NodeCommandService` uses it to
/// name the leader's API address in hints and to publish this member's own.
public protocol MemberAddressBook: Sendable {
  /// The API address `member` published, as of the last entry applied here.
  func apiAddress(of member: NodeID) -> String?
  /// The log command that records `entry` when applied (the service's own command framing),
  /// stamped by the proposing leader.
  func publicationCommand(_ entry: Shardkv_MemberAddress) throws -> [UInt8]
}
