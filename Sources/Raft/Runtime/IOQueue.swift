import Dispatch

/// A serial thread for blocking work (fsync, RocksDB writes, snapshot reads), so the node's
/// actor never blocks a cooperative thread. While a write is under way the actor keeps taking
/// proposals; they all share the next write (group commit).
final class IOQueue: Sendable {
  private let queue: DispatchQueue

  init(label: String) { queue = DispatchQueue(label: label) }

  func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
      queue.async { continuation.resume(with: Result { try body() }) }
    }
  }
}
