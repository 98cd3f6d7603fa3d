/// Why the RPC layer gave up on a request, as the caller sees it.
public typealias RemoteErrorCode = Shardkv_RpcErrorCode

/// Everything that can go wrong with a call or with serving, over any `Transport`.
///
/// The cases say *who* failed: the network or the peer's process (`unreachable`,
/// `connectionClosed`, `timeout`), the peer's RPC layer or handler (`remote`), or this side
/// (`frameTooLarge`, `invalidAddress`, `shutdown`, …). Application-level outcomes (wrong leader,
/// no such key) are not errors here: they travel inside reply payloads.
public enum RPCError: Error, Sendable, Hashable, CustomStringConvertible {
  /// The peer cannot be reached: connecting failed, nobody listens at the address, the link is
  /// down, or the peer is inside its reconnect backoff window (calls then fail immediately
  /// instead of waiting for their deadline).
  case unreachable(peer: String, reason: String)
  /// No reply arrived before the call's deadline. The request may or may not have run.
  case timeout(peer: String, method: String)
  /// The connection carrying the call closed before the reply arrived. The request may or may
  /// not have run.
  case connectionClosed(peer: String)
  /// The peer answered with an ERROR envelope: unknown method, the handler threw, …
  case remote(code: RemoteErrorCode, message: String)
  /// A frame would exceed (or announced a length beyond) the maximum frame size.
  case frameTooLarge(size: Int, limit: Int)
  /// Bytes that are not a valid frame or envelope arrived.
  case malformed(String)
  /// An address string is not `host:port`.
  case invalidAddress(String)
  /// Binding failed because something already listens on the address.
  case addressInUse(String)
  /// Binding failed for another reason.
  case bindFailed(address: String, reason: String)
  /// The calling task was cancelled before the reply arrived.
  case cancelled
  /// The client, server or network has been shut down.
  case shutdown

  public var description: String {
    switch self {
    case .unreachable(let peer, let reason):
      "peer \(peer) is unreachable: \(reason)"
    case .timeout(let peer, let method):
      "call \(method) to \(peer) timed out"
    case .connectionClosed(let peer):
      "connection to \(peer) closed before the reply arrived"
    case .remote(let code, let message):
      message.isEmpty ? "remote error \(code)" : "remote error \(code): \(message)"
    case .frameTooLarge(let size, let limit):
      "frame of \(size) bytes exceeds the limit of \(limit) bytes"
    case .malformed(let detail):
      "malformed frame: \(detail)"
    case .invalidAddress(let text):
      "invalid address '\(text)': expected host:port"
    case .addressInUse(let address):
      "cannot listen on \(address): address already in use"
    case .bindFailed(let address, let reason):
      "cannot listen on \(address): \(reason)"
    case .cancelled:
      "call cancelled"
    case .shutdown:
      "shut down"
    }
  }
}
