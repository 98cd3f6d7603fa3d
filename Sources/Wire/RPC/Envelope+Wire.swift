import Foundation

extension Shardkv_Envelope {
  /// A request for `method` carrying `payload`.
  static func request(id: UInt64, method: String, payload: [UInt8]) -> Self {
    var envelope = Self()
    envelope.requestID = id
    envelope.kind = .request
    envelope.method = method
    envelope.payload = Data(payload)
    return envelope
  }

  /// A successful reply to request `id`.
  static func response(id: UInt64, payload: [UInt8]) -> Self {
    var envelope = Self()
    envelope.requestID = id
    envelope.kind = .response
    envelope.payload = Data(payload)
    return envelope
  }

  /// A failed reply to request `id` (0: about the connection as a whole). Package-wide: WireTLS
  /// refuses a plain-TCP client with one.
  package static func error(id: UInt64, code: RemoteErrorCode, message: String) -> Self {
    var envelope = Self()
    envelope.requestID = id
    envelope.kind = .error
    envelope.errorCode = code
    envelope.errorMessage = message
    return envelope
  }

  /// The outcome a caller sees for this reply: the payload of a RESPONSE, the error of an ERROR.
  var replyResult: Result<[UInt8], RPCError> {
    switch kind {
    case .response:
      .success([UInt8](payload))
    case .error:
      .failure(.remote(code: errorCode, message: errorMessage))
    case .request, .unspecified, .UNRECOGNIZED:
      .failure(.malformed("expected a reply, got an envelope of kind \(kind)"))
    }
  }
}
