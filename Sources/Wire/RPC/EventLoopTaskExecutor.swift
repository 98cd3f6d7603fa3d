import NIOCore

/// An event loop as a task executor (SE-0417): a task started with it as its executor
/// preference runs its nonisolated code on the loop's thread, and so do the nonisolated async
/// functions it calls.
///
/// Why: a request that arrives on a loop, is handled by a node whose actor runs on that same
/// loop, and is answered on it, then never wakes another thread. Handed to Swift's global pool
/// instead, each such step is a thread wake-up, which on a small virtual machine costs more than
/// the work itself (BENCHMARKS.md, issue 11).
public final class EventLoopTaskExecutor: TaskExecutor {
  public let eventLoop: any EventLoop

  public init(_ eventLoop: any EventLoop) {
    self.eventLoop = eventLoop
  }

  public func enqueue(_ job: consuming ExecutorJob) {
    let job = UnownedJob(job)
    eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
  }
}
