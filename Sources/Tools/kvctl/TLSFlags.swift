import Wire
import WireTLS

/// kvctl's TLS flags: `--cacert FILE` (verify the server against this CA; implies TLS) and
/// `--cert FILE --key FILE` (present this client certificate, for servers started with
/// `--api-ca`). Without them kvctl speaks plain TCP.
struct TLSFlags {
  var cacert: String?
  var cert: String?
  var key: String?

  /// A transport with these settings (plain TCP without flags).
  func transport(connectTimeout: Duration) throws(Failure) -> TCPTransport {
    if (cert == nil) != (key == nil) {
      throw Failure(message: "--cert and --key go together", status: .usage)
    }
    guard let cacert else {
      if cert != nil { throw Failure(message: "--cert and --key need --cacert", status: .usage) }
      return TCPTransport(client: .init(connectTimeout: connectTimeout))
    }
    let identity = cert.flatMap { cert in key.map { TLSIdentity(certificate: cert, key: $0) } }
    do {
      return TCPTransport(
        client: .init(
          connectTimeout: connectTimeout, tls: try ClientTLS(trustRoots: cacert, identity: identity)))
    } catch {
      throw Failure(message: "TLS: \(error)", status: .usage)
    }
  }
}
