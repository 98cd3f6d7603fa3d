import ArgumentParser
import Raft
import Wire

/// kvd's bounds on what peers and clients may hold (docs/ARCHITECTURE.md, "Hostile input and
/// limits"): connections, idle time, requests in flight, proposal backlog, snapshot transfers.
struct LimitOptions: ParsableArguments {
  @Option(help: "Open connections per listener; at the limit the quietest one is closed.")
  var maxConnections = 4096

  @Option(help: "Close an API connection idle (no request running) for this many seconds; 0: never.")
  var idleTimeoutS = 300

  @Option(help: "Requests running at once on one connection; more are answered 'busy'.")
  var maxRequestsPerConnection = 1024

  @Option(help: "Requests running at once per listener; more are answered 'busy'.")
  var maxRequests = 16_384

  @Option(help: "Proposal bytes a leader holds before they commit; more are answered 'busy'.")
  var maxUncommittedMb = 64

  @Option(help: "Bytes of incoming snapshot images staged on disk at once, also the largest image (MiB).")
  var maxSnapshotMb = 1024

  @Option(help: "Cluster id of a group this node bootstraps (default: derived from its voters).")
  var clusterId: UInt64?

  func validate() throws {
    for (flag, value) in [
      ("--max-connections", maxConnections), ("--max-requests-per-connection", maxRequestsPerConnection),
      ("--max-requests", maxRequests), ("--max-uncommitted-mb", maxUncommittedMb),
      ("--max-snapshot-mb", maxSnapshotMb),
    ] where value < 1 {
      throw ValidationError("\(flag) must be at least 1")
    }
    guard idleTimeoutS >= 0 else { throw ValidationError("--idle-timeout-s must not be negative") }
    if clusterId == 0 { throw ValidationError("--cluster-id 0 is reserved (it means none)") }
  }

  /// The limits of the peer listener: no idle timeout (peer links are kept open and busy).
  var peerLimits: ConnectionLimits {
    ConnectionLimits(
      maxConnections: maxConnections, idleTimeout: nil,
      maxRequestsPerConnection: maxRequestsPerConnection, maxRequests: maxRequests)
  }

  /// The limits of the API listener.
  var apiLimits: ConnectionLimits {
    var limits = peerLimits
    limits.idleTimeout = idleTimeoutS > 0 ? .seconds(idleTimeoutS) : nil
    return limits
  }

  func apply(to options: inout RaftNodeOptions) {
    options.maxUncommittedBytes = maxUncommittedMb << 20
    options.maxSnapshotBytesInFlight = maxSnapshotMb << 20
    options.clusterID = clusterId
  }

  /// A key and a value at their limits must fit in one frame (with room for the envelope and
  /// the request's other fields), or a value could be stored that no reply can carry.
  static func checkValueFitsFrame(maxKeyBytes: Int, maxValueBytes: Int) throws {
    let overhead = 64 << 10
    let largest = Frame.defaultMaximumSize - overhead
    guard maxKeyBytes + maxValueBytes <= largest else {
      throw ValidationError(
        "--max-key-bytes + --max-value-bytes must be at most \(largest) (the frame limit of "
          + "\(Frame.defaultMaximumSize) bytes less \(overhead) for the envelope)")
    }
  }
}
