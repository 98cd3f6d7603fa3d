#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A value guarded by a pthread mutex: the only way in is `withLock`.
///
/// Wire's shared bookkeeping (pending calls, connection pools, the in-memory network) is touched
/// both from NIO event-loop threads, which must not suspend, and from async callers, so it needs
/// a lock rather than an actor. `Synchronization.Mutex` is not used because the package still
/// supports macOS 14, and `NIOLockedValueBox` lives in a module Wire does not declare.
///
/// Critical sections must be short and must not call out to code that could take the same lock
/// (it is not reentrant) nor resume continuations or complete promises: callers collect such work
/// inside the lock and run it after.
final class LockedValue<Value> {
  // Heap-allocated because a pthread mutex must never move in memory.
  private let mutex: UnsafeMutablePointer<pthread_mutex_t>
  // Invariant: read and written only while `mutex` is held.
  private var value: Value

  init(_ value: Value) {
    self.value = value
    mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    mutex.initialize(to: pthread_mutex_t())
    let result = pthread_mutex_init(mutex, nil)
    precondition(result == 0, "pthread_mutex_init failed: \(result)")
  }

  deinit {
    pthread_mutex_destroy(mutex)
    mutex.deinitialize(count: 1)
    mutex.deallocate()
  }

  /// Runs `body` with exclusive access to the value.
  func withLock<Result, Failure: Error>(
    _ body: (inout Value) throws(Failure) -> Result
  ) throws(Failure) -> Result {
    let result = pthread_mutex_lock(mutex)
    precondition(result == 0, "pthread_mutex_lock failed: \(result)")
    defer { pthread_mutex_unlock(mutex) }
    return try body(&value)
  }
}

// Safe because every access to `value` goes through `withLock`, which holds the mutex; the value
// itself must be Sendable because it is handed across threads.
extension LockedValue: @unchecked Sendable where Value: Sendable {}
