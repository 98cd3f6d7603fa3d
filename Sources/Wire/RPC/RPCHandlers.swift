/// Serves one method: takes the request payload, returns the reply payload.
///
/// Payloads are opaque serialized messages; a handler that throws makes the caller see
/// `RPCError.remote(code: .handlerFailed, message:)` with the error's description. Handlers may
/// run concurrently with each other and with themselves, and (over an unreliable in-memory network
/// or when a client retries) more than once for one logical request.
public typealias RPCHandler = @Sendable (_ payload: [UInt8]) async throws -> [UInt8]

/// The methods a server answers, by name: what a node hands to `Transport.listen`.
public struct RPCHandlers: Sendable {
  private var table: [String: RPCHandler]

  public init() {
    table = [:]
  }

  public init(_ handlers: [String: RPCHandler]) {
    table = handlers
  }

  /// Registers `handler` for `method`, replacing any previous one.
  public mutating func register(_ method: String, _ handler: @escaping RPCHandler) {
    table[method] = handler
  }

  /// The handler for `method`, if any.
  public subscript(method: String) -> RPCHandler? {
    table[method]
  }

  /// The registered method names, sorted.
  public var methods: [String] {
    table.keys.sorted()
  }

  /// Runs the handler for `method`, turning "no such method" and a thrown error into the
  /// `RPCError.remote` the caller will see. Both transports go through here so that they agree.
  func dispatch(method: String, payload: [UInt8]) async -> Result<[UInt8], RPCError> {
    guard let handler = table[method] else {
      return .failure(.remote(code: .unknownMethod, message: "unknown method '\(method)'"))
    }
    do {
      return .success(try await handler(payload))
    } catch {
      return .failure(.remote(code: .handlerFailed, message: String(describing: error)))
    }
  }
}
