/// Acknowledged writes missing from the final value of their key, where no other write could
/// have overwritten them: an acknowledged Append whose token is not in the final value while
/// every Put and Delete of the key finished before the Append was called; an acknowledged Put
/// the final value does not start with, under the same condition for the other writes.
public enum LostWrites {
  /// - Parameters:
  ///   - finalValues: each key's value read after the run (nil inside: the key was missing);
  ///     keys without one are not judged.
  /// - Returns: the lost writes, in call order. Meaningful only when written values are
  ///   unique (no value a substring of another's).
  public static func find(
    in history: [RecordedOperation], finalValues: [String: String?]
  ) -> [RecordedOperation] {
    let byKey = Dictionary(grouping: history.filter { !$0.failed }, by: \.key)
    var lost: [RecordedOperation] = []
    for (key, ops) in byKey {
      guard let final = finalValues[key] else { continue }
      let overwriters = ops.filter { $0.kind == .put || $0.kind == .delete }
      for write in ops where write.returned != nil && (write.kind == .append || write.kind == .put) {
        let mayBeOverwritten = overwriters.contains { other in
          other != write && (other.returned.map { $0 >= write.call } ?? true)
        }
        if mayBeOverwritten { continue }
        let value = final ?? ""
        let kept = write.kind == .append ? value.contains(write.value) : value.hasPrefix(write.value)
        if !kept { lost.append(write) }
      }
    }
    return lost.sorted { $0.call < $1.call }
  }
}
