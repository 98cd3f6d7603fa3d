import XCTest

@testable import Raft

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An actor on a `ThreadExecutor`, recording which thread ran each call.
private actor Pinned {
  private nonisolated let executor: ThreadExecutor
  nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
  private(set) var calls: [Int] = []
  private(set) var threads: Set<UInt> = []

  init(_ executor: ThreadExecutor) { self.executor = executor }

  func record(_ call: Int) {
    calls.append(call)
    #if canImport(Glibc)
    threads.insert(UInt(pthread_self()))
    #else
    threads.insert(UInt(bitPattern: pthread_self()))
    #endif
  }

  /// Blocks the actor's thread, as a log write does.
  func block(forMilliseconds milliseconds: UInt32) {
    usleep(milliseconds * 1000)
  }
}

private actor Free {
  func ping() -> Bool { true }
}

final class ThreadExecutorTests: XCTestCase {
  /// Calls from one task run in the order made, all on one thread.
  func testCallsRunInOrderOnOneThread() async {
    let pinned = Pinned(ThreadExecutor(label: "test.pinned"))
    for call in 0..<500 { await pinned.record(call) }
    let calls = await pinned.calls
    let threads = await pinned.threads
    XCTAssertEqual(calls, Array(0..<500))
    XCTAssertEqual(threads.count, 1, "calls ran on \(threads.count) threads")
  }

  /// A call blocking the executor's thread holds back its own actor only: an actor on
  /// Swift's pool answers meanwhile (a node's fsync must not stall the process).
  func testABlockedThreadHoldsBackOnlyItsOwnActor() async throws {
    let pinned = Pinned(ThreadExecutor(label: "test.blocked"))
    let blocking = Task { await pinned.block(forMilliseconds: 2000) }
    try await Task.sleep(for: .milliseconds(50))
    let started = ContinuousClock.now
    let answered = await Free().ping()
    XCTAssertTrue(answered)
    XCTAssertLessThan(ContinuousClock.now - started, .seconds(1))
    await blocking.value
  }

  /// After its idle timeout the executor gives its thread back; work that comes later still
  /// runs (on a thread taken again), in order.
  func testWorkAfterTheThreadWentIdleStillRuns() async throws {
    let pinned = Pinned(ThreadExecutor(label: "test.idle", idleTimeout: .milliseconds(5)))
    for round in 0..<20 {
      await pinned.record(round)
      try await Task.sleep(for: .milliseconds(round % 2 == 0 ? 20 : 1))
    }
    let calls = await pinned.calls
    XCTAssertEqual(calls, Array(0..<20))
  }

  /// Many tasks calling at once: every call runs exactly once.
  func testConcurrentCallersAreSerialized() async {
    let pinned = Pinned(ThreadExecutor(label: "test.concurrent", idleTimeout: .milliseconds(1)))
    await withTaskGroup(of: Void.self) { group in
      for call in 0..<2000 { group.addTask { await pinned.record(call) } }
    }
    let calls = await pinned.calls
    XCTAssertEqual(calls.sorted(), Array(0..<2000))
  }
}
