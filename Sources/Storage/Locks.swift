#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A pthread reader-writer lock.
///
/// `RocksDB` uses it so that any number of reads and writes proceed in parallel (RocksDB's own
/// handles are thread-safe) while `close()` and snapshot release, which free C objects that those
/// operations dereference, wait for every operation in flight and exclude new ones.
///
/// Not reentrant: a thread that holds the read lock must not ask for the write lock (it would
/// deadlock), so nothing that releases a `RocksSnapshot` may run inside a read-locked region.
/// The standard library has no reader-writer lock (`Synchronization.Mutex`, the package's mutex,
/// would serialize every read and write), hence this one.
final class ReadWriteLock: @unchecked Sendable {
  // Heap-allocated because a pthread lock must never move in memory.
  private let lock: UnsafeMutablePointer<pthread_rwlock_t>

  init() {
    lock = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)
    lock.initialize(to: pthread_rwlock_t())
    let result = pthread_rwlock_init(lock, nil)
    precondition(result == 0, "pthread_rwlock_init failed: \(result)")
  }

  deinit {
    pthread_rwlock_destroy(lock)
    lock.deinitialize(count: 1)
    lock.deallocate()
  }

  func withReadLock<Result, Failure: Error>(
    _ body: () throws(Failure) -> Result
  ) throws(Failure) -> Result {
    let result = pthread_rwlock_rdlock(lock)
    precondition(result == 0, "pthread_rwlock_rdlock failed: \(result)")
    defer { pthread_rwlock_unlock(lock) }
    return try body()
  }

  func withWriteLock<Result, Failure: Error>(
    _ body: () throws(Failure) -> Result
  ) throws(Failure) -> Result {
    let result = pthread_rwlock_wrlock(lock)
    precondition(result == 0, "pthread_rwlock_wrlock failed: \(result)")
    defer { pthread_rwlock_unlock(lock) }
    return try body()
  }
}
