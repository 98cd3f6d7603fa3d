/// Big-endian (network order) integer encoding for keys.
///
/// Keys compare bytewise in RocksDB, and only big-endian integers sort bytewise in numeric
/// order; that is why the Raft log's key is its index as 8 big-endian bytes and a `kv` key
/// starts with the shard as 4 big-endian bytes.
public enum BigEndian {
  /// The 8 big-endian bytes of `value`.
  public static func bytes(_ value: UInt64) -> [UInt8] {
    var result: [UInt8] = []
    result.reserveCapacity(8)
    append(value, to: &result)
    return result
  }

  /// The 4 big-endian bytes of `value`.
  public static func bytes(_ value: UInt32) -> [UInt8] {
    var result: [UInt8] = []
    result.reserveCapacity(4)
    append(value, to: &result)
    return result
  }

  /// Appends the 8 big-endian bytes of `value` to `buffer`.
  public static func append(_ value: UInt64, to buffer: inout [UInt8]) {
    for shift in stride(from: 56, through: 0, by: -8) {
      buffer.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
    }
  }

  /// Appends the 4 big-endian bytes of `value` to `buffer`.
  public static func append(_ value: UInt32, to buffer: inout [UInt8]) {
    for shift in stride(from: 24, through: 0, by: -8) {
      buffer.append(UInt8(truncatingIfNeeded: value >> UInt32(shift)))
    }
  }

  /// Decodes 8 big-endian bytes starting at `offset`, or `nil` if `bytes` is too short
  /// (bytes read from disk or the network are never trusted to be long enough).
  public static func uint64(from bytes: some RandomAccessCollection<UInt8>, at offset: Int = 0) -> UInt64? {
    guard offset >= 0, bytes.count - offset >= 8 else { return nil }
    var value: UInt64 = 0
    for byte in bytes.dropFirst(offset).prefix(8) {
      value = value << 8 | UInt64(byte)
    }
    return value
  }

  /// Decodes 4 big-endian bytes starting at `offset`, or `nil` if `bytes` is too short.
  public static func uint32(from bytes: some RandomAccessCollection<UInt8>, at offset: Int = 0) -> UInt32? {
    guard offset >= 0, bytes.count - offset >= 4 else { return nil }
    var value: UInt32 = 0
    for byte in bytes.dropFirst(offset).prefix(4) {
      value = value << 8 | UInt32(byte)
    }
    return value
  }
}
