/// The wire format: every message is one frame, a 4-byte big-endian length `n` followed by `n`
/// bytes holding one serialized `Shardkv_Envelope`.
///
/// The length counts the body only (not the 4 prefix bytes). A reader rejects a length above its
/// maximum before buffering anything, so a corrupt or hostile prefix cannot make it allocate.
public enum Frame {
  /// Size of the length prefix in bytes.
  public static let headerSize = 4
  /// The default maximum body size: 16 MiB, enough for a snapshot chunk with room to spare.
  public static let defaultMaximumSize = 16 * 1024 * 1024
}
