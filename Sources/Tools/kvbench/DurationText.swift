import Foundation

extension Duration {
  /// Seconds with one decimal, as progress lines print them ("12.3").
  var secondsText: String {
    let (seconds, attoseconds) = components
    return String(format: "%.1f", Double(seconds) + Double(attoseconds) / 1e18)
  }
}
