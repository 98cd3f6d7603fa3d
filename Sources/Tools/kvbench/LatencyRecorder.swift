/// Collects latencies and reports percentiles. Keeps every sample: benchmark runs are short,
/// and exact percentiles beat a histogram's bucket error at this size.
struct LatencyRecorder: Sendable {
  private(set) var samples: [Duration] = []

  mutating func record(_ latency: Duration) { samples.append(latency) }
  mutating func merge(_ other: LatencyRecorder) { samples.append(contentsOf: other.samples) }

  func percentile(_ p: Double) -> Duration {
    guard !samples.isEmpty else { return .zero }
    let sorted = samples.sorted()
    let rank = min(sorted.count - 1, Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1)
    return sorted[max(0, rank)]
  }

  var summary: String {
    "p50 \(Self.format(percentile(50)))  p99 \(Self.format(percentile(99)))  "
      + "p99.9 \(Self.format(percentile(99.9)))  max \(Self.format(percentile(100)))"
  }

  static func format(_ duration: Duration) -> String {
    let micros = Double(duration.components.seconds) * 1e6 + Double(duration.components.attoseconds) / 1e12
    if micros >= 1000 { return String(format3(micros / 1000)) + " ms" }
    return String(format3(micros)) + " µs"
  }

  private static func format3(_ value: Double) -> String {
    let scaled = (value * 1000).rounded() / 1000
    return "\(scaled)"
  }
}
