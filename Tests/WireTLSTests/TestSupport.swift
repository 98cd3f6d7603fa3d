import Foundation
import Wire
import XCTest

// The few helpers of Tests/WireTests/TestSupport.swift that the TLS tests use, copied: test
// targets cannot share code without a support module of their own.

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

/// Handlers for the TLS tests: `echo` returns its payload.
func testHandlers() -> RPCHandlers {
  var handlers = RPCHandlers()
  handlers.register("echo") { $0 }
  return handlers
}
