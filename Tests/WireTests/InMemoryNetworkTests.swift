import XCTest

@testable import Wire

final class InMemoryNetworkTests: XCTestCase {
  /// A network with nodes "a", "b", "c", each serving `handlers` at its own name.
  private func cluster(
    seed: UInt64 = 1, faults: NetworkFaults = .none, handlers: RPCHandlers = testHandlers()
  ) async throws -> (InMemoryNetwork, [String: InMemoryTransport]) {
    let network = InMemoryNetwork(seed: seed, faults: faults)
    var transports: [String: InMemoryTransport] = [:]
    for node in ["a", "b", "c"] {
      let transport = network.transport(for: node)
      _ = try await transport.listen(on: node, handlers: handlers)
      transports[node] = transport
    }
    return (network, transports)
  }

  func testPerfectNetworkRoundTripAndRemoteErrors() async throws {
    let (_, t) = try await cluster()
    await assertEqual(try await call(t, "a", "b", payload: [4, 2]).get(), [4, 2])
    guard case .failure(.remote(.unknownMethod, _)) = await call(t, "a", "b", method: "nope") else {
      return XCTFail("expected unknownMethod")
    }
    guard case .failure(.remote(.handlerFailed, let message)) = await call(t, "a", "b", method: "fail") else {
      return XCTFail("expected handlerFailed")
    }
    XCTAssertTrue(message.contains("on purpose"))
  }

  func testNobodyListeningFailsFastWithUnreachable() async throws {
    let (_, t) = try await cluster()
    guard case .failure(.unreachable) = await call(t, "a", "nobody", timeout: .seconds(60)) else {
      return XCTFail("expected unreachable")
    }
  }

  func testListeningTwiceOnOneAddressIsAddressInUse() async throws {
    let (network, _) = try await cluster()
    do {
      _ = try await network.transport(for: "d").listen(on: "a", handlers: testHandlers())
      XCTFail("listened twice on one address")
    } catch {
      XCTAssertEqual(error, .addressInUse("a"))
    }
  }

  func testClosedListenerIsUnreachableAndAddressCanBeReused() async throws {
    let network = InMemoryNetwork(seed: 3)
    let a = network.transport(for: "a")
    let b = network.transport(for: "b")
    let listener = try await b.listen(on: "b", handlers: testHandlers())
    await assertEqual(try await a.call("b", method: "echo", payload: [1], timeout: .seconds(10)), [1])
    await listener.close()
    let error = await rpcError { try await a.call("b", method: "echo", payload: [1], timeout: .seconds(60)) }
    guard case .unreachable = error else {
      return XCTFail("expected unreachable, got \(String(describing: error))")
    }
    _ = try await b.listen(on: "b", handlers: testHandlers())
    await assertEqual(try await a.call("b", method: "echo", payload: [2], timeout: .seconds(10)), [2])
  }

  func testDropEverythingTimesOut() async throws {
    let (network, t) = try await cluster(faults: NetworkFaults(dropProbability: 1))
    for _ in 0..<5 {
      await assertEqual(
        await call(t, "a", "b", timeout: .milliseconds(50)), .failure(.timeout(peer: "b", method: "echo")))
    }
    XCTAssertEqual(network.statistics.requestsDropped, 5)
  }

  func testDelayedRepliesTakeAtLeastTheMinimumDelay() async throws {
    let (_, t) = try await cluster(faults: NetworkFaults(delay: .milliseconds(50) ... .milliseconds(80)))
    let clock = ContinuousClock()
    let start = clock.now
    await assertEqual(try await call(t, "a", "b").get(), [1])
    // Request and reply are each delayed by at least 50 ms.
    XCTAssertGreaterThanOrEqual(clock.now - start, .milliseconds(100))
  }

  func testRandomDelaysReorderMessages() async throws {
    var reordered = false
    for seed in UInt64(1)...10 where !reordered {
      let arrivals = Recorder<Int>()
      var handlers = RPCHandlers()
      handlers.register("record") { payload in
        arrivals.append(Int(payload.first ?? 0))
        return []
      }
      let (_, t) = try await cluster(
        seed: seed, faults: NetworkFaults(delay: .zero ... .milliseconds(100)), handlers: handlers)
      let count = 20
      await withTaskGroup(of: Void.self) { group in
        for i in 1...count {
          group.addTask { _ = await call(t, "a", "b", method: "record", payload: [UInt8(i)]) }
          // Space the sends so that they leave in order 1...count.
          try? await Task.sleep(for: .milliseconds(2))
        }
      }
      let order = arrivals.all
      XCTAssertEqual(order.sorted(), Array(1...count))
      reordered = order != Array(1...count)
    }
    XCTAssertTrue(reordered, "no seed reordered any messages")
  }

  func testDuplicationRunsTheHandlerTwiceButRepliesOnce() async throws {
    let invocations = Recorder<[UInt8]>()
    var handlers = RPCHandlers()
    handlers.register("count") { payload in
      invocations.append(payload)
      return payload
    }
    let (network, t) = try await cluster(faults: NetworkFaults(duplicateProbability: 1), handlers: handlers)
    await assertEqual(try await call(t, "a", "b", method: "count", payload: [7]).get(), [7])
    await eventually("the duplicate never arrived") { invocations.count == 2 }
    XCTAssertEqual(invocations.all, [[7], [7]])
    XCTAssertEqual(network.statistics.duplicated, 1)
  }

  func testPartitionCutsAcrossButNotWithin() async throws {
    let (network, t) = try await cluster()
    network.partition([["a", "b"], ["c"]])
    await assertEqual(try await call(t, "a", "b").get(), [1])
    await assertEqual(try await call(t, "b", "a").get(), [1])
    await assertEqual(
      await call(t, "a", "c", timeout: .milliseconds(100)), .failure(.timeout(peer: "c", method: "echo")))
    await assertEqual(
      await call(t, "c", "b", timeout: .milliseconds(100)), .failure(.timeout(peer: "b", method: "echo")))
    // A node always reaches itself.
    await assertEqual(try await call(t, "c", "c").get(), [1])
    network.heal()
    await assertEqual(try await call(t, "a", "c").get(), [1])
  }

  func testIsolateAndHeal() async throws {
    let (network, t) = try await cluster()
    network.isolate("b")
    await assertEqual(
      await call(t, "a", "b", timeout: .milliseconds(100)), .failure(.timeout(peer: "b", method: "echo")))
    await assertEqual(
      await call(t, "b", "c", timeout: .milliseconds(100)), .failure(.timeout(peer: "c", method: "echo")))
    await assertEqual(try await call(t, "a", "c").get(), [1])
    network.heal()
    await assertEqual(try await call(t, "a", "b").get(), [1])
    await assertEqual(try await call(t, "b", "c").get(), [1])
  }

  func testDisconnectFailsFastAndReconnectRestores() async throws {
    let (network, t) = try await cluster()
    network.disconnect("b")
    guard case .failure(.unreachable) = await call(t, "a", "b", timeout: .seconds(60)) else {
      return XCTFail("expected unreachable to a disconnected node")
    }
    guard case .failure(.unreachable) = await call(t, "b", "c", timeout: .seconds(60)) else {
      return XCTFail("expected unreachable from a disconnected node")
    }
    network.reconnect("b")
    await assertEqual(try await call(t, "a", "b").get(), [1])
    network.disconnect("c")
    network.heal()
    await assertEqual(try await call(t, "a", "c").get(), [1])
  }

  func testPartitionMadeWhileAMessageIsInFlightLosesIt() async throws {
    // Long delays so that even a stalled machine partitions before the reply gets through.
    let (network, t) = try await cluster(faults: NetworkFaults(delay: .seconds(1) ... .seconds(1)))
    async let result = call(t, "a", "b", timeout: .seconds(4))
    try await Task.sleep(for: .milliseconds(20))
    network.partition([["a"], ["b"]])
    let outcome = await result
    XCTAssertEqual(outcome, .failure(.timeout(peer: "b", method: "echo")))
  }

  func testFaultsCanChangeAtRuntime() async throws {
    let (network, t) = try await cluster()
    await assertEqual(try await call(t, "a", "b").get(), [1])
    network.faults = NetworkFaults(dropProbability: 1)
    await assertEqual(
      await call(t, "a", "b", timeout: .milliseconds(50)), .failure(.timeout(peer: "b", method: "echo")))
    network.faults = .none
    await assertEqual(try await call(t, "a", "b").get(), [1])
  }

  func testSameSeedSameDropAndDuplicateDecisions() async throws {
    // The statistics after each call record that call's drop and duplicate decisions, which are
    // made at send time and so do not depend on how fast the machine is.
    func decisions(seed: UInt64) async throws -> [InMemoryNetwork.Statistics] {
      let (network, t) = try await cluster(
        seed: seed, faults: NetworkFaults(dropProbability: 0.3, duplicateProbability: 0.3))
      var decisions: [InMemoryNetwork.Statistics] = []
      for i in 0..<30 {
        _ = await call(t, "a", "b", payload: [UInt8(i)], timeout: .milliseconds(50))
        var statistics = network.statistics
        statistics.delivered = 0  // Duplicates land whenever they land.
        decisions.append(statistics)
      }
      return decisions
    }
    let first = try await decisions(seed: 99)
    let second = try await decisions(seed: 99)
    XCTAssertEqual(first, second)
    let last = try XCTUnwrap(first.last)
    XCTAssertGreaterThan(last.requestsDropped + last.repliesDropped, 0)
    XCTAssertLessThan(last.requestsDropped, 30)
    XCTAssertGreaterThan(last.duplicated, 0)
    let other = try await decisions(seed: 100)
    XCTAssertNotEqual(first, other)
  }

  func testShutdownTransportRefusesCalls() async throws {
    let (_, t) = try await cluster()
    await t["a"]?.shutdown()
    await assertEqual(await call(t, "a", "b"), .failure(.shutdown))
  }

  func testFateSequenceIsDeterministicPerSeed() {
    let faults = NetworkFaults(
      dropProbability: 0.3, duplicateProbability: 0.2, delay: .milliseconds(1) ... .milliseconds(9))
    func fates(seed: UInt64) -> [MessageFate] {
      var generator = SeededGenerator(seed: seed)
      return (0..<1000).map { _ in MessageFate.draw(using: &generator, faults: faults) }
    }
    XCTAssertEqual(fates(seed: 7), fates(seed: 7))
    XCTAssertNotEqual(fates(seed: 7), fates(seed: 8))
    let sample = fates(seed: 7)
    let dropped = sample.filter(\.requestDropped).count
    XCTAssertTrue((200...400).contains(dropped), "dropped \(dropped) of 1000 at p=0.3")
    XCTAssertTrue(
      sample.allSatisfy { (Duration.milliseconds(1)...Duration.milliseconds(9)).contains($0.requestDelay) })
  }
}

/// One call from node `from` to address `to`, as a Result.
private func call(
  _ transports: [String: InMemoryTransport], _ from: String, _ to: String, method: String = "echo",
  payload: [UInt8] = [1], timeout: Duration = .seconds(10)
) async -> Result<[UInt8], RPCError> {
  guard let transport = transports[from] else {
    return .failure(.invalidAddress(from))
  }
  do {
    return .success(try await transport.call(to, method: method, payload: payload, timeout: timeout))
  } catch {
    return .failure(error)
  }
}
