import Linearizability
import Seeded
import ShardKV
import Synchronization
import Wire

/// Records every operation with its call and return times on one monotonic clock.
final class HistoryRecorder: Sendable {
  private let start = ContinuousClock.now
  private let operations = Mutex<[RecordedOperation]>([])

  func now() -> UInt64 {
    let elapsed = start.duration(to: .now)
    return UInt64(elapsed.components.seconds) * 1_000_000_000
      + UInt64(elapsed.components.attoseconds / 1_000_000_000)
  }

  var all: [RecordedOperation] { operations.withLock { $0 } }

  /// Runs one operation through `clerk` and records it: ok, failed (refused, so it did not
  /// take effect) or unknown (the clerk gave up: a write may still take effect).
  @discardableResult
  func run(
    _ clerk: KVClerk, client: Int, _ kind: RecordedOperation.Kind, _ key: String, _ value: String = ""
  ) async -> RecordedOperation {
    let call = now()
    var op = RecordedOperation(client: client, kind: kind, key: key, value: value, call: call, returned: nil)
    do throws(KVClientError) {
      let bytes = Array(key.utf8)
      switch kind {
      case .get: op.output = try await clerk.get(bytes).map { String(decoding: $0, as: UTF8.self) }
      case .put: try await clerk.put(bytes, Array(value.utf8))
      case .append: try await clerk.append(bytes, Array(value.utf8))
      case .delete: try await clerk.delete(bytes)
      }
      op.returned = now()
    } catch {
      switch error {
      case .invalidArgument:
        op.returned = now()
        op.failed = true
      case .timeout: break
      }
    }
    let recorded = op
    operations.withLock { $0.append(recorded) }
    return recorded
  }
}

/// Concurrent clients doing Put/Append/Get/Delete on a small key set until told to stop, each
/// one operation at a time.
/// Every written value is unique (`c<client>.<n>;`), so that a lost append can be seen in the
/// final value.
struct NemesisWorkload: Sendable {
  var clients: Int
  var keys: [String]
  var servers: [String]
  var operationDeadline: Duration

  static func keys(_ count: Int) -> [String] { (0..<count).map { "k\($0)" } }

  func run(
    seed: UInt64, recorder: HistoryRecorder, transport: any Transport, until stop: ContinuousClock.Instant
  )
    async
  {
    var seeds = SeededGenerator(seed: seed ^ 0x5eed_c11e)
    await withTaskGroup(of: Void.self) { group in
      for client in 0..<clients {
        let clientSeed = seeds.next()
        // Client c starts at server c mod N (a follower for most), so that reads reach followers.
        let rotated = Array(servers[(client % servers.count)...] + servers[..<(client % servers.count)])
        let clerk = KVClerk(
          servers: rotated, transport: transport, deadline: operationDeadline, callTimeout: .seconds(1))
        group.addTask {
          var random = SeededGenerator(seed: clientSeed)
          var n = 0
          while ContinuousClock.now < stop {
            let key = keys.randomElement(using: &random) ?? "k0"
            n += 1
            let token = "c\(client).\(n);"
            switch Int.random(in: 0..<20, using: &random) {
            case 0..<4: await recorder.run(clerk, client: client, .get, key)
            case 4..<8:
              // A get through a fresh clerk that starts at a random server: it reaches a
              // follower (or a deposed leader) first as often as not, where the client's own
              // clerk would stay with the leader it learned.
              let start = Int.random(in: 0..<servers.count, using: &random)
              let fresh = KVClerk(
                servers: Array(servers[start...] + servers[..<start]), transport: transport,
                deadline: operationDeadline, callTimeout: .seconds(1))
              await recorder.run(fresh, client: client, .get, key)
            case 8..<11: await recorder.run(clerk, client: client, .put, key, token)
            case 11..<18: await recorder.run(clerk, client: client, .append, key, token)
            default: await recorder.run(clerk, client: client, .delete, key)
            }
          }
        }
      }
    }
  }
}
