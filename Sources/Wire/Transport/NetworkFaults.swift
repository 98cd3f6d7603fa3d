import Seeded

/// The probabilistic faults of an `InMemoryNetwork`, applied to every call independently.
///
/// A call is two messages, the request and the reply. Each is lost with `dropProbability` and
/// delayed by a uniform draw from `delay`; because every message draws its own delay, messages
/// overtake each other whenever the range is wider than the gap between sends (reordering).
/// With `duplicateProbability` the request is delivered a second time, after its own delay: the
/// handler runs twice and the caller sees the first reply only.
public struct NetworkFaults: Sendable, Hashable {
  /// Chance that a request, or a reply, is lost (0...1). The caller then sees `.timeout` at its
  /// deadline.
  public var dropProbability: Double
  /// Chance that a request is delivered twice (0...1).
  public var duplicateProbability: Double
  /// Per-message delay, drawn uniformly from the range (real time).
  public var delay: ClosedRange<Duration>

  /// A perfect network: nothing lost, duplicated or delayed.
  public static let none = NetworkFaults()

  public init(
    dropProbability: Double = 0, duplicateProbability: Double = 0,
    delay: ClosedRange<Duration> = .zero ... .zero
  ) {
    self.dropProbability = dropProbability
    self.duplicateProbability = duplicateProbability
    self.delay = delay
  }
}

/// What the network decided for one call. Drawn under the network's lock from its seeded
/// generator, always consuming the same number of draws, so the k-th call's fate depends only on
/// the seed, k and the fault settings — not on timing or on what happened to earlier calls.
struct MessageFate: Sendable, Hashable {
  var requestDropped: Bool
  var requestDelay: Duration
  /// When the request is duplicated: the duplicate's own delay.
  var duplicateDelay: Duration?
  var replyDropped: Bool
  var replyDelay: Duration

  static func draw(using generator: inout SeededGenerator, faults: NetworkFaults) -> MessageFate {
    let requestDropped = Double.random(in: 0..<1, using: &generator) < faults.dropProbability
    let requestDelay = uniform(faults.delay, using: &generator)
    let duplicated = Double.random(in: 0..<1, using: &generator) < faults.duplicateProbability
    let duplicateDelay = uniform(faults.delay, using: &generator)
    let replyDropped = Double.random(in: 0..<1, using: &generator) < faults.dropProbability
    let replyDelay = uniform(faults.delay, using: &generator)
    return MessageFate(
      requestDropped: requestDropped, requestDelay: requestDelay,
      duplicateDelay: duplicated ? duplicateDelay : nil,
      replyDropped: replyDropped, replyDelay: replyDelay)
  }

  private static func uniform(
    _ range: ClosedRange<Duration>, using generator: inout SeededGenerator
  ) -> Duration {
    let lower = range.lowerBound.clampedNanoseconds
    let upper = range.upperBound.clampedNanoseconds
    guard upper > lower else { return .nanoseconds(lower) }
    return .nanoseconds(Int64.random(in: lower...upper, using: &generator))
  }
}

extension Duration {
  /// The duration in whole nanoseconds, saturating at the bounds of `Int64`.
  var clampedNanoseconds: Int64 {
    let (seconds, attoseconds) = components
    let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
    if overflow {
      return seconds < 0 ? .min : .max
    }
    let (total, overflowAgain) = whole.addingReportingOverflow(attoseconds / 1_000_000_000)
    if overflowAgain {
      return seconds < 0 ? .min : .max
    }
    return total
  }
}
