import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The connections of one `RPCClient` to one peer, plus the peer's reconnect backoff.
///
/// A fixed number of slots (`connectionsPerPeer`), each idle, connecting or connected. Calls are
/// spread over the slots round-robin; a slot connects lazily, the first time a call lands on it.
/// While another slot is connected, that call uses the live connection and the new one opens in
/// the background, so growing the pool never delays a call.
///
/// Backoff: each failed connection attempt doubles the wait before the next one (from
/// `initialBackoff` up to `maximumBackoff`); inside that window calls fail immediately with
/// `.unreachable` instead of waiting for their deadlines — Raft heartbeats to a dead peer must
/// not pile up. Reconnecting is lazy: the first call after the window tries again. A successful
/// connection resets the backoff.
final class PeerConnectionPool: Sendable {
  let peer: String
  private let address: PeerAddress
  private let configuration: RPCClient.Configuration
  private let group: any EventLoopGroup
  private let state: Mutex<State>

  private enum Slot: Sendable {
    case idle
    case connecting(EventLoopFuture<RPCConnection>)
    case connected(RPCConnection)
  }

  private struct State: Sendable {
    var slots: [Slot]
    var nextSlot = 0
    var consecutiveFailures = 0
    /// Calls fail fast until then; nil when the last attempt succeeded.
    var retryAt: NIODeadline?
    var lastFailure = ""
    var isShutdown = false

    var anyConnection: RPCConnection? {
      for case .connected(let connection) in slots {
        return connection
      }
      return nil
    }
  }

  /// What a caller does after deciding under the lock.
  private enum Step {
    case use(RPCConnection)
    case useAndGrow(RPCConnection, slot: Int, EventLoopPromise<RPCConnection>)
    case wait(EventLoopFuture<RPCConnection>)
    case connect(slot: Int, EventLoopPromise<RPCConnection>)
    case fail(RPCError)
  }

  init(peer: String, address: PeerAddress, configuration: RPCClient.Configuration, group: any EventLoopGroup)
  {
    self.peer = peer
    self.address = address
    self.configuration = configuration
    self.group = group
    self.state = Mutex(
      State(slots: Array(repeating: .idle, count: max(1, configuration.connectionsPerPeer))))
  }

  /// A connection to the peer, opening one if needed and allowed.
  ///
  /// - Throws: `.unreachable` (connecting failed now or recently), `.timeout` when connecting
  ///   outlasts `deadline`, `.cancelled`, `.shutdown`.
  func connection(method: String, deadline: NIODeadline) async throws(RPCError) -> RPCConnection {
    let now = NIODeadline.now()
    let eventLoop = group.next()
    let step = state.withLock { state -> Step in
      guard !state.isShutdown else { return .fail(.shutdown) }
      let index = state.nextSlot
      state.nextSlot = (index + 1) % state.slots.count
      switch state.slots[index] {
      case .connected(let connection):
        return .use(connection)
      case .connecting(let future):
        if let connection = state.anyConnection {
          return .use(connection)
        }
        return .wait(future)
      case .idle:
        if let retryAt = state.retryAt, now < retryAt {
          if let connection = state.anyConnection {
            return .use(connection)
          }
          let wait = (retryAt - now).nanoseconds / 1_000_000
          return .fail(
            .unreachable(
              peer: peer,
              reason: "\(state.consecutiveFailures) failed attempt(s), last: \(state.lastFailure); "
                + "next attempt in \(wait) ms"))
        }
        let promise = eventLoop.makePromise(of: RPCConnection.self)
        state.slots[index] = .connecting(promise.futureResult)
        if let connection = state.anyConnection {
          return .useAndGrow(connection, slot: index, promise)
        }
        return .connect(slot: index, promise)
      }
    }
    switch step {
    case .use(let connection):
      return connection
    case .fail(let error):
      throw error
    case .useAndGrow(let connection, let slot, let promise):
      startConnecting(slot: slot, promise: promise)
      return connection
    case .connect(let slot, let promise):
      startConnecting(slot: slot, promise: promise)
      return try await Self.wait(
        for: promise.futureResult, until: deadline, timeout: .timeout(peer: peer, method: method))
    case .wait(let future):
      return try await Self.wait(for: future, until: deadline, timeout: .timeout(peer: peer, method: method))
    }
  }

  /// Closes every connection (failing their calls with `.shutdown`) and refuses new ones.
  func shutdown() {
    let connections = state.withLock { state -> [RPCConnection] in
      state.isShutdown = true
      var connections: [RPCConnection] = []
      for case .connected(let connection) in state.slots {
        connections.append(connection)
      }
      state.slots = state.slots.map { _ in .idle }
      return connections
    }
    for connection in connections {
      connection.close(because: .shutdown)
    }
  }

  private func startConnecting(slot: Int, promise: EventLoopPromise<RPCConnection>) {
    let pending = PendingCalls()
    let peer = self.peer
    let configuration = self.configuration
    let address = self.address
    // With TLS, the connection is open once its handshake is done; without, once TCP is.
    let handshake = configuration.tls.map { _ in promise.futureResult.eventLoop.makePromise(of: Void.self) }
    ClientBootstrap(group: promise.futureResult.eventLoop)
      .connectTimeout(TimeAmount(configuration.connectTimeout))
      .channelOption(.socketOption(.tcp_nodelay), value: 1)
      .channelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          if let tls = configuration.tls, let handshake {
            try tls.addHandlers(
              to: channel.pipeline.syncOperations, host: address.host, port: address.port,
              connectTimeout: configuration.connectTimeout, handshake: handshake)
          }
          try channel.pipeline.syncOperations.addHandlers([
            ByteToMessageHandler(FrameDecoder(maximumFrameSize: configuration.maximumFrameSize)),
            FrameEncoder(maximumFrameSize: configuration.maximumFrameSize),
            RPCClientHandler(peer: peer, pending: pending, logger: configuration.logger),
          ])
        }
      }
      .connect(host: address.host, port: address.port)
      .flatMap { channel in
        guard let handshake else { return channel.eventLoop.makeSucceededFuture(channel) }
        return handshake.futureResult.map { channel }.flatMapErrorThrowing { error in
          channel.close(promise: nil)
          throw error
        }
      }
      .whenComplete { [self] result in
        switch result {
        case .success(let channel):
          connected(
            slot: slot, connection: RPCConnection(peer: peer, channel: channel, pending: pending),
            promise: promise)
        case .failure(let error):
          handshake?.fail(error)  // Connecting failed before the handshake began.
          connectFailed(slot: slot, error: error, promise: promise)
        }
      }
  }

  private func connected(slot: Int, connection: RPCConnection, promise: EventLoopPromise<RPCConnection>) {
    let accepted = state.withLock { state -> Bool in
      guard !state.isShutdown else { return false }
      state.slots[slot] = .connected(connection)
      state.consecutiveFailures = 0
      state.retryAt = nil
      return true
    }
    guard accepted else {
      connection.close(because: .shutdown)
      promise.fail(RPCError.shutdown)
      return
    }
    configuration.logger.debug("connected to \(peer)")
    connection.channel.closeFuture.whenComplete { [self] _ in
      state.withLock { state in
        if case .connected(let current) = state.slots[slot], current === connection {
          state.slots[slot] = .idle
        }
      }
    }
    promise.succeed(connection)
  }

  private func connectFailed(slot: Int, error: any Error, promise: EventLoopPromise<RPCConnection>) {
    let reason = String(describing: error)
    let failures = state.withLock { state -> Int in
      state.slots[slot] = .idle
      state.consecutiveFailures += 1
      state.lastFailure = reason
      state.retryAt = .now() + TimeAmount(backoff(afterFailures: state.consecutiveFailures))
      return state.consecutiveFailures
    }
    if failures == 1 {
      configuration.logger.info("cannot connect to \(peer): \(reason)")
    }
    promise.fail(RPCError.unreachable(peer: peer, reason: reason))
  }

  /// `initialBackoff * 2^(failures-1)`, capped at `maximumBackoff`.
  private func backoff(afterFailures failures: Int) -> Duration {
    var delay = configuration.initialBackoff
    for _ in 1..<max(1, failures) where delay < configuration.maximumBackoff {
      delay *= 2
    }
    return min(delay, configuration.maximumBackoff)
  }

  /// Waits for `future` but no later than `deadline`, and no longer than the calling task lives.
  private static func wait(
    for future: EventLoopFuture<RPCConnection>, until deadline: NIODeadline, timeout: RPCError
  ) async throws(RPCError) -> RPCConnection {
    let eventLoop = future.eventLoop
    let result = eventLoop.makePromise(of: RPCConnection.self)
    // Whoever flips `done` first completes `result`; the others do nothing.
    let done = Mutex(false)
    let claim: @Sendable () -> Bool = {
      done.withLock { done in
        defer { done = true }; return !done
      }
    }
    let timer = eventLoop.scheduleTask(deadline: deadline) {
      if claim() { result.fail(timeout) }
    }
    future.whenComplete { outcome in
      timer.cancel()
      if claim() { result.completeWith(outcome) }
    }
    do {
      return try await withTaskCancellationHandler {
        try await result.futureResult.get()
      } onCancel: {
        if claim() { result.fail(RPCError.cancelled) }
      }
    } catch {
      // Every failure above is an RPCError; anything else would be a bug in this file.
      throw (error as? RPCError) ?? .malformed("unexpected error while connecting: \(error)")
    }
  }
}
