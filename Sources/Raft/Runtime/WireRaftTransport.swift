import Wire

/// `RaftTransport` over a Wire `Transport` (TCP in production, the in-memory network in tests).
/// Peers are addressed by their peer address, which is also their `NodeID`.
public struct WireRaftTransport: RaftTransport {
  /// The method that carries a batch of Raft messages.
  public static let messagesMethod = "raft.messages"
  /// The method that carries one snapshot chunk.
  public static let snapshotMethod = "raft.snapshot"

  private let transport: any Transport
  private let messageTimeout: Duration
  private let chunkTimeout: Duration

  /// `messageTimeout` bounds how long a silent peer holds up the next batch to it; it should
  /// be about an election timeout.
  public init(
    transport: any Transport, messageTimeout: Duration = .seconds(1),
    chunkTimeout: Duration = .seconds(30)
  ) {
    self.transport = transport
    self.messageTimeout = messageTimeout
    self.chunkTimeout = chunkTimeout
  }

  public func send(_ messages: [Message], clusterID: UInt64, to peer: NodeID) async throws {
    let payload = try RaftCodec.serialize(messages, clusterID: clusterID)
    _ = try await transport.call(
      peer.rawValue, method: Self.messagesMethod, payload: payload, timeout: messageTimeout)
  }

  public func sendSnapshotChunk(_ chunk: SnapshotChunk, to peer: NodeID) async throws {
    let payload = try RaftCodec.serialize(chunk)
    _ = try await transport.call(
      peer.rawValue, method: Self.snapshotMethod, payload: payload, timeout: chunkTimeout)
  }

  /// Registers the handlers through which `node` hears from its peers. Malformed payloads are
  /// answered with an error and change nothing.
  public static func register(_ node: RaftNode, in handlers: inout RPCHandlers) {
    register(in: &handlers) { node }
  }

  /// The same for a node created after its server is bound (its name is its address, known
  /// only once the port is): until `node` returns one, peers get an error and retry.
  public static func register(
    in handlers: inout RPCHandlers, node: @escaping @Sendable () -> RaftNode?
  ) {
    handlers.register(messagesMethod) { payload in
      guard let target = node() else { throw RaftNodeError.stopped }
      let batch = try RaftCodec.deserializeBatch(payload)
      await target.receive(batch.messages, clusterID: batch.clusterID)
      return []
    }
    handlers.register(snapshotMethod) { payload in
      guard let target = node() else { throw RaftNodeError.stopped }
      let chunk = try RaftCodec.deserializeSnapshotChunk(payload)
      try await target.receiveSnapshotChunk(chunk)
      return []
    }
  }
}
