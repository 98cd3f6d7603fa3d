/// One key-value operation of a concurrent history, as a client saw it: what it asked, when it
/// asked (`call`), when the answer came (`returned`) and what the answer was.
///
/// Times are nanoseconds on one clock shared by every client of the history (any origin). An
/// operation whose outcome is unknown (the client gave up: a timeout) has no return time: it
/// may take effect at any point after its call, or never. An operation that definitely failed
/// (`failed`: refused before it could take effect) is kept for the record and ignored by the
/// checker.
public struct RecordedOperation: Hashable, Sendable {
  public enum Kind: String, Hashable, Sendable, Codable, CaseIterable {
    case get, put, append, delete
  }

  /// Who issued it: each client has at most one operation in flight.
  public var client: Int
  public var kind: Kind
  public var key: String
  /// Put/Append input; empty for Get and Delete.
  public var value: String
  /// Get output (nil: the key was missing). Ignored for writes.
  public var output: String?
  public var call: UInt64
  /// nil when the outcome is unknown.
  public var returned: UInt64?
  /// The operation definitely did not take effect.
  public var failed: Bool

  public init(
    client: Int, kind: Kind, key: String, value: String = "", output: String? = nil, call: UInt64,
    returned: UInt64?, failed: Bool = false
  ) {
    self.client = client
    self.kind = kind
    self.key = key
    self.value = value
    self.output = output
    self.call = call
    self.returned = returned
    self.failed = failed
  }

  /// How the operation ended, as a history file spells it.
  public enum Result: String, Sendable, Codable {
    case ok, fail, unknown
  }

  public var result: Result { failed ? .fail : returned == nil ? .unknown : .ok }

  /// Whether the checker must account for it: a completed operation, or a write that may have
  /// taken effect. A Get that never returned, or anything that failed, says nothing.
  var constrainsHistory: Bool {
    !failed && (returned != nil || kind != .get)
  }
}

/// The history file format: one JSON object per line,
/// `{"client":1,"op":"append","key":"k3","value":"x","output":null,"call":10,"return":20,"result":"ok"}`
/// (`return` is absent or null when `result` is `unknown`).
extension RecordedOperation: Codable {
  enum CodingKeys: String, CodingKey {
    case client, kind = "op", key, value, output, call, returned = "return", result
  }

  public init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    client = try container.decode(Int.self, forKey: .client)
    kind = try container.decode(Kind.self, forKey: .kind)
    key = try container.decode(String.self, forKey: .key)
    value = try container.decodeIfPresent(String.self, forKey: .value) ?? ""
    output = try container.decodeIfPresent(String.self, forKey: .output)
    call = try container.decode(UInt64.self, forKey: .call)
    let result = try container.decode(Result.self, forKey: .result)
    failed = result == .fail
    returned = result == .unknown ? nil : try container.decodeIfPresent(UInt64.self, forKey: .returned)
    if result == .ok && returned == nil {
      throw DecodingError.dataCorruptedError(
        forKey: .returned, in: container, debugDescription: "an operation with result ok needs a return time")
    }
    if let returned, returned < call {
      throw DecodingError.dataCorruptedError(
        forKey: .returned, in: container, debugDescription: "returned (\(returned)) before its call (\(call))"
      )
    }
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: CodingKeys.self)
    try container.encode(client, forKey: .client)
    try container.encode(kind, forKey: .kind)
    try container.encode(key, forKey: .key)
    try container.encode(value, forKey: .value)
    try container.encode(output, forKey: .output)
    try container.encode(call, forKey: .call)
    try container.encode(returned, forKey: .returned)
    try container.encode(result, forKey: .result)
  }
}
