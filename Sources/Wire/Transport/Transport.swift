/// How a node talks to other nodes: the seam between the Raft runtime / KV clients and the
/// network.
///
/// Two implementations: `TCPTransport` (real sockets, for `kvd`) and the transports handed out
/// by an `InMemoryNetwork` (in-process test clusters with injected faults). Code above this seam
/// must behave the same over both, so both follow the same rules:
/// - peers are named by their `host:port` address strings;
/// - a call either returns the handler's reply or throws an `RPCError`, never hangs past its
///   `timeout`;
/// - a failed call may or may not have run the handler (and, with duplication faults, a handler
///   may run more than once for one call), so requests must be idempotent or deduplicated.
public protocol Transport: Sendable {
  /// Calls `method` on the node listening at `peer` and returns its reply.
  ///
  /// - Throws: `RPCError`, see `RPCClient.call` for the cases.
  func call(
    _ peer: String, method: String, payload: [UInt8], timeout: Duration
  ) async throws(RPCError)
    -> [UInt8]

  /// Starts serving `handlers` at `address` (`host:port`; port 0 picks a free port where the
  /// implementation supports it — see the listener's `address`).
  ///
  /// - Throws: `RPCError.addressInUse` if something already listens there, `.invalidAddress`,
  ///   `.bindFailed`, `.shutdown`.
  func listen(on address: String, handlers: RPCHandlers) async throws(RPCError) -> any TransportListener

  /// Stops calling: later calls fail with `.shutdown` (`TCPTransport` also fails the calls in
  /// flight). Listeners are closed separately, by their owners.
  func shutdown() async
}

/// A running server started by `Transport.listen`.
public protocol TransportListener: Sendable {
  /// The address callers use to reach this listener (with the actual port if 0 was asked).
  var address: String { get }

  /// Stops serving. Calls that arrive later fail with `.unreachable` (over TCP, a call racing the
  /// close may see `.connectionClosed` instead). Idempotent.
  func close() async
}
