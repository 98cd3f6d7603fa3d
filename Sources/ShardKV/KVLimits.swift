/// Size limits on client data, checked before anything is proposed and again when applied.
///
/// Defaults: keys of 1 B to 4 KiB, values up to 1 MiB. The value limit keeps one Raft entry
/// (and so one append message, and one fsync) bounded; the key limit keeps the shard-prefixed
/// RocksDB keys small.
public struct KVLimits: Hashable, Sendable {
  public var maxKeyBytes: Int
  public var maxValueBytes: Int

  public init(maxKeyBytes: Int = 4096, maxValueBytes: Int = 1 << 20) {
    self.maxKeyBytes = maxKeyBytes
    self.maxValueBytes = maxValueBytes
  }

  /// Why `key` and `value` are unacceptable, or nil if they are fine.
  public func violation(key: [UInt8], value: [UInt8]) -> String? {
    if key.isEmpty { return "the key is empty" }
    if key.count > maxKeyBytes {
      return "the key is \(key.count) bytes; the limit is \(maxKeyBytes)"
    }
    if value.count > maxValueBytes {
      return "the value is \(value.count) bytes; the limit is \(maxValueBytes)"
    }
    return nil
  }
}
