/// How a `RaftNode` reaches its peers. `WireRaftTransport` implements it over the Wire
/// transports (TCP or the in-memory network of tests).
public protocol RaftTransport: Sendable {
  /// Delivers messages to `peer`, in order, stamped with the sender's cluster id
  /// (`ClusterIdentity`). Losing them is allowed: Raft retransmits.
  func send(_ messages: [Message], clusterID: UInt64, to peer: NodeID) async throws
  /// Delivers one piece of a snapshot transfer; throws if the receiver refused it.
  func sendSnapshotChunk(_ chunk: SnapshotChunk, to peer: NodeID) async throws
}

/// One piece of a state machine image travelling to a follower. Pieces are zstd-compressed
/// one by one and carry their position, so the receiver rebuilds the image in order and a
/// lost piece fails only its transfer.
public struct SnapshotChunk: Hashable, Sendable {
  public var from: NodeID
  public var to: NodeID
  public var term: UInt64
  public var transferID: UInt64
  public var sequence: UInt64
  /// A zstd frame holding the next piece of the image.
  public var data: [UInt8]
  public var isLast: Bool
  /// Where the image stands; set on every chunk (the receiver checks the sender against its
  /// configuration), required on the last.
  public var metadata: SnapshotMetadata?
  /// The sender's cluster id (`ClusterIdentity`).
  public var clusterID: UInt64

  public init(
    from: NodeID, to: NodeID, term: UInt64, transferID: UInt64, sequence: UInt64, data: [UInt8],
    isLast: Bool, metadata: SnapshotMetadata?, clusterID: UInt64 = ClusterIdentity.unknown
  ) {
    self.clusterID = clusterID
    self.from = from
    self.to = to
    self.term = term
    self.transferID = transferID
    self.sequence = sequence
    self.data = data
    self.isLast = isLast
    self.metadata = metadata
  }
}
