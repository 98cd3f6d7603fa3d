import Foundation
import Linearizability

/// Reading and writing history files: one `RecordedOperation` per line as JSON (the format is
/// documented on `RecordedOperation`'s `Codable` conformance).
enum HistoryFile {
  struct Malformed: Error, CustomStringConvertible {
    var path: String
    var line: Int
    var why: String
    var description: String { "\(path):\(line): \(why)" }
  }

  static func read(_ path: String) throws -> [RecordedOperation] {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    let decoder = JSONDecoder()
    var ops: [RecordedOperation] = []
    for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      let trimmed = line.trimmingCharacters(in: .whitespaces)
      if trimmed.isEmpty { continue }
      do {
        ops.append(try decoder.decode(RecordedOperation.self, from: Data(trimmed.utf8)))
      } catch {
        throw Malformed(path: path, line: number + 1, why: "\(error)")
      }
    }
    return ops
  }

  static func write(_ ops: [RecordedOperation], to path: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    var text = ""
    for op in ops.sorted(by: { ($0.call, $0.client) < ($1.call, $1.client) }) {
      text += String(decoding: try encoder.encode(op), as: UTF8.self) + "\n"
    }
    try text.write(toFile: path, atomically: true, encoding: .utf8)
  }

  /// One operation as a line of a report, times in milliseconds from `origin`.
  static func describe(_ op: RecordedOperation, origin: UInt64) -> String {
    func ms(_ t: UInt64) -> String { String(format: "%.3f", Double(t &- origin) / 1e6) }
    let end = op.returned.map(ms) ?? "?"
    let what: String
    switch op.kind {
    case .get: what = "get \(op.key) -> \(op.returned == nil ? "?" : op.output.map { "\"\($0)\"" } ?? "nil")"
    case .put: what = "put \(op.key) \"\(op.value)\""
    case .append: what = "append \(op.key) \"\(op.value)\""
    case .delete: what = "delete \(op.key)"
    }
    return "  client \(op.client) [\(ms(op.call)), \(end)] ms \(what) (\(op.result.rawValue))"
  }
}
