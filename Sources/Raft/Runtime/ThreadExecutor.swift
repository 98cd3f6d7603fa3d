import Dispatch
import Synchronization

/// A serial executor that runs its jobs on one thread of its own: a node's actor, its peer
/// pipes and the tasks they start run here, as etcd runs a node's loop in one goroutine.
///
/// Why a thread and not Swift's cooperative pool: a request used to cross the node's actor
/// (a pool thread), a DispatchQueue for the log write, the peer pipe's actor and another
/// queue for the apply, and each crossing could wake a sleeping thread; at one client that
/// cost more than the fsync (BENCHMARKS.md). On this thread the node writes its log inline,
/// blocking nothing but itself: proposals and messages that arrive meanwhile queue as jobs
/// and share the next write (group commit), exactly as a goroutine's channel fills while it
/// writes.
///
/// Invariants: jobs run one at a time, in the order they were enqueued, each with this
/// executor as both its serial and its task executor (so work a task starts here stays
/// here unless it asks otherwise). The thread is a Dispatch worker held for as long as jobs
/// keep coming; after `idleTimeout` without one it is given back, and the next job takes
/// one again, so a stopped node leaves no thread behind and nothing enqueued later is lost.
final class ThreadExecutor: SerialExecutor, TaskExecutor, Sendable {
  private struct State {
    var jobs: [UnownedJob] = []
    /// A loop is running (or about to), and will see every job enqueued.
    var running = false
    /// The loop is waiting (or about to wait) on `wakeUp`: an enqueue must signal it.
    var sleeping = false
  }

  private let state = Mutex(State())
  private let wakeUp = DispatchSemaphore(value: 0)
  private let queue: DispatchQueue
  private let idleTimeout: Duration

  init(label: String, idleTimeout: Duration = .seconds(1)) {
    queue = DispatchQueue(label: label)
    self.idleTimeout = idleTimeout
  }

  func enqueue(_ job: consuming ExecutorJob) {
    let job = UnownedJob(job)
    let (start, signal) = state.withLock { state -> (Bool, Bool) in
      state.jobs.append(job)
      if !state.running {
        state.running = true
        return (true, false)
      }
      if state.sleeping {
        state.sleeping = false
        return (false, true)
      }
      return (false, false)
    }
    if start { queue.async { self.runLoop() } }
    if signal { wakeUp.signal() }
  }

  func asUnownedSerialExecutor() -> UnownedSerialExecutor {
    UnownedSerialExecutor(ordinary: self)
  }

  func asUnownedTaskExecutor() -> UnownedTaskExecutor {
    UnownedTaskExecutor(ordinary: self)
  }

  private func runLoop() {
    let serial = asUnownedSerialExecutor()
    let task = asUnownedTaskExecutor()
    let timeout = Double(idleTimeout.components.seconds) + Double(idleTimeout.components.attoseconds) / 1e18
    while true {
      let batch = state.withLock { state -> [UnownedJob] in
        let jobs = state.jobs
        state.jobs.removeAll(keepingCapacity: true)
        if jobs.isEmpty { state.sleeping = true }
        return jobs
      }
      if batch.isEmpty {
        if wakeUp.wait(timeout: .now() + timeout) == .timedOut {
          let idle = state.withLock { state -> Bool in
            guard state.jobs.isEmpty else {
              state.sleeping = false
              return false
            }
            state.running = false
            state.sleeping = false
            return true
          }
          // A signal that raced with the timeout leaves the semaphore counted once; the next
          // loop's first wait then returns at once and finds its jobs, or waits again.
          if idle { return }
        }
        continue
      }
      for job in batch { job.runSynchronously(isolatedTo: serial, taskExecutor: task) }
    }
  }
}
