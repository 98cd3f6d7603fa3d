import Dispatch
import Foundation
import Raft
import Synchronization

/// What ends a kvd process: SIGINT or SIGTERM (a clean shutdown), or its Raft node stopping
/// itself because its storage failed.
enum Termination {
  /// Returns on SIGINT or SIGTERM.
  static func wait() async {
    _ = await wait(orUntilStopped: nil)
  }

  /// Returns on SIGINT or SIGTERM (nil), or when `node` stops itself (its error), whichever
  /// comes first.
  static func wait(orUntilStopped node: RaftNode?) async -> RaftNodeError? {
    signal(SIGINT, SIG_IGN)
    signal(SIGTERM, SIG_IGN)
    let queue = DispatchQueue(label: "kvd.signals")
    return await withCheckedContinuation { (continuation: CheckedContinuation<RaftNodeError?, Never>) in
      let sources = [SIGINT, SIGTERM].map { DispatchSource.makeSignalSource(signal: $0, queue: queue) }
      let once = FirstOutcome(continuation, keeping: sources)
      for source in sources {
        source.setEventHandler { once.resume(with: nil) }
        source.resume()
      }
      if let node {
        Task {
          // Only a failure ends the process from here; a clean stop comes from a signal.
          if let failure = await node.waitUntilStopped() { once.resume(with: failure) }
        }
      }
    }
  }
}

/// Resumes the waiting task with the first outcome only, and keeps the signal sources alive.
/// Unchecked: the continuation is only touched under its mutex, and `sources` is never read
/// after `init` (it only holds the sources, which are not `Sendable`, for the process's life).
private final class FirstOutcome: @unchecked Sendable {
  private let continuation: Mutex<CheckedContinuation<RaftNodeError?, Never>?>
  private let sources: [any DispatchSourceSignal]

  init(
    _ continuation: CheckedContinuation<RaftNodeError?, Never>, keeping sources: [any DispatchSourceSignal]
  ) {
    self.continuation = Mutex(continuation)
    self.sources = sources
  }

  func resume(with outcome: RaftNodeError?) {
    let pending = continuation.withLock { continuation in
      defer { continuation = nil }
      return continuation
    }
    pending?.resume(returning: outcome)
  }
}
