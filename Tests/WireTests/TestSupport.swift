import Synchronization
import XCTest

@testable import Wire

/// Polls `condition` until it holds or `timeout` passes (generous by default: tests must not
/// depend on how fast a loaded machine is).
func eventually(
  timeout: Duration = .seconds(20), _ message: String = "condition never held",
  file: StaticString = #filePath, line: UInt = #line, _ condition: () async -> Bool
) async {
  let clock = ContinuousClock()
  let deadline = clock.now + timeout
  while clock.now < deadline {
    if await condition() {
      return
    }
    try? await Task.sleep(for: .milliseconds(10))
  }
  XCTFail(message, file: file, line: line)
}

/// Runs `bind` with a port below the kernel's ephemeral range, moving to the next port while
/// binding fails (taken): tests never bind port 0, which the kernel would pick from that
/// range, where an outgoing connection of another test could already hold it.
func onTestPort<T>(_ bind: (Int) async throws -> T) async throws -> T {
  let low = 20000
  let high = ephemeralPortFloor()
  var port = Int.random(in: low..<high)
  var failures: [String] = []
  for _ in 0..<64 {
    do {
      return try await bind(port)
    } catch {
      failures.append("\(port): \(error)")
      port = low + (port - low + 1) % (high - low)
    }
  }
  throw TestPortError(description: "no free test port: \(failures.suffix(3))")
}

struct TestPortError: Error, CustomStringConvertible { let description: String }

/// The lowest port of the kernel's ephemeral range.
func ephemeralPortFloor() -> Int {
  guard
    let text = try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8),
    let first = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first,
    let floor = Int(first), floor > 20001
  else { return 32768 }
  return floor
}

/// Runs `body` and returns the error it threw as an `RPCError`, or nil if it returned.
///
/// (Closures are inferred as `throws(any Error)` without the FullTypedThrows feature, hence the
/// cast; the transports' signatures themselves are typed.)
func rpcError(
  file: StaticString = #filePath, line: UInt = #line, _ body: () async throws -> [UInt8]
) async -> RPCError? {
  do {
    _ = try await body()
    return nil
  } catch let error as RPCError {
    return error
  } catch {
    XCTFail("threw a non-RPC error: \(error)", file: file, line: line)
    return nil
  }
}

/// A thread-safe counter / recorder for handlers.
final class Recorder<Value: Sendable>: Sendable {
  private let values = Mutex<[Value]>([])

  func append(_ value: Value) {
    values.withLock { $0.append(value) }
  }

  var all: [Value] {
    values.withLock { $0 }
  }

  var count: Int {
    values.withLock { $0.count }
  }
}

/// Handlers used across the RPC tests.
func testHandlers() -> RPCHandlers {
  var handlers = RPCHandlers()
  handlers.register("echo") { $0 }
  handlers.register("fail") { _ in
    struct Failure: Error, CustomStringConvertible {
      var description: String { "the handler failed on purpose" }
    }
    throw Failure()
  }
  handlers.register("hang") { _ in
    try await Task.sleep(for: .seconds(3600))
    return []
  }
  // Sleeps as many milliseconds as the payload's first byte says, then echoes the payload.
  handlers.register("sleepEcho") { payload in
    try await Task.sleep(for: .milliseconds(Int(payload.first ?? 0)))
    return payload
  }
  return handlers
}

/// `XCTAssertEqual` for expressions that need `await` (XCTest's autoclosures are synchronous).
func assertEqual<T: Equatable>(
  _ expression: @autoclosure () async throws -> T, _ expected: @autoclosure () async throws -> T,
  _ message: String = "", file: StaticString = #filePath, line: UInt = #line
) async {
  do {
    let value = try await expression()
    let expectedValue = try await expected()
    XCTAssertEqual(value, expectedValue, message, file: file, line: line)
  } catch {
    XCTFail("threw \(error)", file: file, line: line)
  }
}
