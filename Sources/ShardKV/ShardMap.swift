/// Which shard a key belongs to. A shard is a contiguous range of a 64-bit hash space:
/// `shard = (hash64(key) * shardCount) >> 64`, so shard `i` owns the hashes in
/// `[i * 2^64 / S, (i + 1) * 2^64 / S)`.
///
/// Invariant: the hash below never changes for a cluster, because the shard of every stored
/// key depends on it. It is FNV-1a 64 over the key's bytes followed by the SplitMix64
/// finalizer (FNV alone mixes its high bits poorly, and the range mapping uses exactly those).
///
/// Hash tags work as in Redis Cluster: if the key contains `{`, and a later `}` with at least
/// one byte between them, only the bytes between the first `{` and that `}` are hashed, so
/// `user:{42}:name` and `user:{42}:email` share a shard.
public struct ShardMap: Hashable, Sendable {
  public let shardCount: Int

  /// - Precondition: `shardCount` is between 1 and 65,536.
  public init(shardCount: Int) {
    precondition((1...65_536).contains(shardCount), "shard count must be in 1...65536")
    self.shardCount = shardCount
  }

  public func shard(of key: some Collection<UInt8>) -> Int {
    let hash = Self.hash64(Self.hashedPart(of: key))
    return Int(hash.multipliedFullWidth(by: UInt64(shardCount)).high)
  }

  /// The bytes that decide the shard: the hash tag if there is one, else the whole key.
  static func hashedPart<C: Collection<UInt8>>(of key: C) -> C.SubSequence {
    let open = UInt8(ascii: "{")
    let close = UInt8(ascii: "}")
    if let start = key.firstIndex(of: open) {
      let afterOpen = key.index(after: start)
      if let end = key[afterOpen...].firstIndex(of: close), end != afterOpen {
        return key[afterOpen..<end]
      }
    }
    return key[...]
  }

  static func hash64(_ bytes: some Sequence<UInt8>) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in bytes {
      hash ^= UInt64(byte)
      hash = hash &* 0x100_0000_01b3
    }
    hash = (hash ^ (hash >> 30)) &* 0xBF58_476D_1CE4_E5B9
    hash = (hash ^ (hash >> 27)) &* 0x94D0_49BB_1331_11EB
    return hash ^ (hash >> 31)
  }
}
