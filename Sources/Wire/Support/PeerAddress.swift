/// A `host:port` network address as peers and clients name each other (`127.0.0.1:7001`,
/// `node-1.local:7001`, `[::1]:7001`).
///
/// Nodes are named by these strings throughout ShardKV (membership lists, `leader` output), so the
/// textual form is the identity; this type only splits it for socket calls.
public struct PeerAddress: Sendable, Hashable, CustomStringConvertible {
  /// Host name or IP literal, without IPv6 brackets.
  public var host: String
  /// TCP port, 0...65535 (0 asks the OS to pick one when binding).
  public var port: Int

  public init(host: String, port: Int) {
    self.host = host
    self.port = port
  }

  /// Parses `host:port` or `[ipv6]:port`.
  ///
  /// - Throws: `RPCError.invalidAddress` when the host is empty or the port is not a number in
  ///   0...65535.
  public init(parsing text: String) throws(RPCError) {
    guard let colon = text.lastIndex(of: ":") else {
      throw .invalidAddress(text)
    }
    var host = String(text[..<colon])
    let portText = text[text.index(after: colon)...]
    if host.hasPrefix("[") && host.hasSuffix("]") && host.count >= 2 {
      host = String(host.dropFirst().dropLast())
    }
    guard !host.isEmpty, let port = Int(portText), (0...65_535).contains(port) else {
      throw .invalidAddress(text)
    }
    self.host = host
    self.port = port
  }

  /// `host:port`, with brackets around IPv6 literals.
  public var description: String {
    host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
  }
}
