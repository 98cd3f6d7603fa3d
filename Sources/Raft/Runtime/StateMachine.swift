/// How a replicated service plugs into Raft. The controller and the KV groups are two
/// implementations.
///
/// The state machine is durable on its own: `apply` writes the entries' effects and the new
/// applied index in one atomic write, so a restarted node resumes from `appliedIndex` instead
/// of replaying the log from the start, and log compaction only needs to drop entries.
///
/// The runtime calls every method from one serial I/O context, never concurrently.
public protocol StateMachine: AnyObject, Sendable {
  /// The last entry whose effect is in this state machine.
  var appliedIndex: UInt64 { get }

  /// Applies committed entries in log order and returns one result per entry (empty for
  /// no-op and membership entries, which must still advance `appliedIndex`).
  func apply(_ entries: [Entry]) throws -> [[UInt8]]

  /// Makes everything applied so far durable. Called before the log is compacted past it.
  func sync() throws

  /// A consistent image of the state at `appliedIndex` at the moment of the call, read in
  /// pieces so that it never has to be in memory at once.
  func makeSnapshot() throws -> any SnapshotReader

  /// Replaces the whole state with the image `image` yields; afterwards `appliedIndex` is
  /// `metadata.index`.
  ///
  /// The image is read one piece at a time (a received image comes back from its staging file
  /// on disk), so an implementation that can apply a piece at a time never holds the image in
  /// memory. Whatever it does, a crash during the call must leave either the old state, with
  /// the old `appliedIndex`, or the whole new one: the install's restart rule (`DurableState.open`)
  /// keeps or forgets the install by comparing `appliedIndex` with the image's index. One that
  /// writes piece by piece therefore writes the new state beside the old and switches to it,
  /// with the new applied index, in one atomic write at the end (as `KVStateMachine` does).
  func restore(_ metadata: SnapshotMetadata, from image: any SnapshotReader) throws
}

/// A state machine image being read, one piece at a time: one a state machine is making
/// (`StateMachine.makeSnapshot`), or one received from a leader and read back from disk for
/// `StateMachine.restore`. Pieces are opaque to Raft; each is what its state machine wrote.
public protocol SnapshotReader: AnyObject, Sendable {
  /// The applied index the image stands at.
  var index: UInt64 { get }
  /// The next piece of the image, or nil at the end.
  func nextPiece() throws -> [UInt8]?
}
