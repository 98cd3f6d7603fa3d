import Foundation
import ShardCtrler
import Storage
import SwiftProtobuf
import Wire

/// What a group serves to the groups it hands shards to, and to operators.
extension KVStateMachine {
  /// The next page of `shard`, handed off in configuration `configNum`, for its new owner.
  ///
  /// Any member that has applied that configuration can answer, leader or not: the shard is
  /// frozen from that configuration on (no write to it is applied any more), so every such
  /// member holds the same bytes. The page is read from a RocksDB snapshot taken with the
  /// table check, so it is consistent even if the shard is deleted meanwhile; the last page
  /// carries the client sessions.
  public func page(
    of shard: Int, handedOffIn configNum: UInt64, after resumeAfter: [UInt8]?, maxBytes: Int
  ) throws -> Shardkv_Group_PullShardReply {
    var reply = Shardkv_Group_PullShardReply()
    let checked = try state.withLock {
      state throws -> (RocksSnapshot, ColumnFamily, [Shardkv_ClientSession])? in
      guard state.table.config.num >= configNum else {
        reply.error = .notReady
        reply.message = "this member is at configuration \(state.table.config.num), not yet \(configNum)"
        return nil
      }
      guard let holding = state.table.holdings[shard], case .handingOff = holding.phase,
        holding.configNum == configNum
      else {
        reply.error = .notHeld
        reply.message = "shard \(shard) is not being handed off in configuration \(configNum) here"
        return nil
      }
      return (try db.snapshot(), state.data, state.sessions.all)
    }
    guard let checked else { return reply }
    let (snapshot, data, sessions) = checked
    defer { snapshot.close() }
    let range = Self.range(of: shard)
    let start = resumeAfter.map { Self.dataKey(shard: shard, $0) + [0] } ?? range.start
    let iterator = try db.makeIterator(in: data, snapshot: snapshot, lowerBound: start, upperBound: range.end)
    defer { iterator.close() }
    iterator.seekToFirst()
    var page = Shardkv_Group_ShardPage()
    var bytes = 0
    var lastKey = resumeAfter ?? []
    while iterator.isValid, let entry = iterator.entry, page.records.isEmpty || bytes < maxBytes {
      var record = Shardkv_Group_ShardPage.Record()
      let userKey = Array(entry.key.dropFirst(4))
      record.key = Data(userKey)
      record.value = Data(entry.value)
      page.records.append(record)
      bytes += entry.key.count + entry.value.count
      lastKey = userKey
      iterator.next()
    }
    try iterator.checkStatus()
    reply.last = !iterator.isValid
    if reply.last { page.sessions = sessions }
    reply.page = Data(try Zstd.compress(try page.serializedBytes()))
    reply.resumeAfter = Data(lastKey)
    reply.error = .ok
    return reply
  }

  /// Keys and bytes (keys + values, user keys) of `shard` stored on this node.
  public func storedSize(of shard: Int) throws -> (keys: UInt64, bytes: UInt64) {
    let range = Self.range(of: shard)
    let data = state.withLock { $0.data }
    let iterator = try db.makeIterator(in: data, lowerBound: range.start, upperBound: range.end)
    defer { iterator.close() }
    iterator.seekToFirst()
    var keys: UInt64 = 0
    var bytes: UInt64 = 0
    while iterator.isValid, let entry = iterator.entry {
      keys += 1
      bytes += UInt64(entry.key.count - 4 + entry.value.count)
      iterator.next()
    }
    try iterator.checkStatus()
    return (keys, bytes)
  }

  /// `kvctl shards`: the group's configuration and every shard it holds, with sizes.
  public func shardsReport() throws -> Shardkv_ShardsReply {
    let (table, applied) = state.withLock { ($0.table, $0.applied) }
    var reply = Shardkv_ShardsReply()
    reply.group = table.group
    reply.configNum = table.config.num
    reply.appliedIndex = applied
    for shard in table.holdings.keys.sorted() {
      guard let holding = table.holdings[shard] else { continue }
      var info = Shardkv_ShardInfo()
      info.shard = UInt32(shard)
      info.phase = holding.phase.message
      info.peerGroup = holding.phase.peerGroup
      (info.keys, info.bytes) = try storedSize(of: shard)
      reply.shards.append(info)
    }
    return reply
  }
}
