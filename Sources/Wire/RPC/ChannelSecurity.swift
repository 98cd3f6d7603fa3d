import NIOCore

// Wire says only where a connection's security goes in its pipeline; the TLS that fills it in
// (`ServerTLS`, `ClientTLS`) lives in the WireTLS module. Wire must not link NIOSSL: every
// fuzz target reaches Wire, and scripts/fuzz.sh would then compile BoringSSL again with the
// address sanitizer on each first build.

/// The security of the connections an `RPCServer` accepts (WireTLS's `ServerTLS` is the one
/// conformer; nil in `RPCServer.Configuration.tls` means plain TCP).
public protocol ServerChannelSecurity: Sendable {
  /// Adds the handlers that secure a newly accepted connection to the front of its pipeline,
  /// before the frame codec; `address` is the listening address, for messages.
  func addHandlers(to pipeline: ChannelPipeline.SynchronousOperations, listening address: String) throws
}

/// The security of the connections an `RPCClient` opens (WireTLS's `ClientTLS` is the one
/// conformer; nil in `RPCClient.Configuration.tls` means plain TCP).
public protocol ClientChannelSecurity: Sendable {
  /// Adds the handlers that secure a new connection to `host:port` to the front of its
  /// pipeline, before the frame codec. The connection counts as open, and carries calls, only
  /// once `handshake` succeeds; failing it (within `connectTimeout`) fails the connection
  /// attempt with that error as the reason.
  func addHandlers(
    to pipeline: ChannelPipeline.SynchronousOperations, host: String, port: Int, connectTimeout: Duration,
    handshake: EventLoopPromise<Void>
  ) throws
}
