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

  /// Replaces the whole state with a snapshot image; afterwards `appliedIndex` is
  /// `metadata.index`.
  func restore(_ metadata: SnapshotMetadata, from pieces: [[UInt8]]) throws
}

/// A state machine image being read out, one piece at a time.
public protocol SnapshotReader: AnyObject, Sendable {
  /// The applied index the image stands at.
  var index: UInt64 { get }
  /// The next piece of the image, or nil at the end.
  func nextPiece() throws -> [UInt8]?
}
