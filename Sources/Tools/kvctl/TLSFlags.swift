import Wire

/// kvctl's TLS flags: `--cacert FILE` (verify the server against this CA; implies TLS) and
/// `--cert FILE --key FILE` (present this client certificate, for servers started with
/// `--api-ca`). Without them kvctl speaks plain TCP.
struct TLSFlags {
  var cacert: String?
  var cert: String?
  var key: String?

  static let usage = """
      --cacert FILE      speak TLS, trusting servers whose certificate this CA (PEM) signed
      --cert FILE --key FILE
                         with --cacert: present this client certificate and key (PEM), for
                         nodes started with --api-ca
    """

  /// Takes the value of `flag` (one of the three) from `rest`.
  mutating func parse(_ flag: String, _ rest: inout ArraySlice<String>) throws(Failure) {
    guard let value = rest.popFirst() else { throw Failure(message: "\(flag) needs a file", status: 2) }
    switch flag {
    case "--cacert": cacert = value
    case "--cert": cert = value
    default: key = value
    }
  }

  /// A transport with these settings (plain TCP without flags).
  func transport() throws(Failure) -> TCPTransport {
    if (cert == nil) != (key == nil) { throw Failure(message: "--cert and --key go together", status: 2) }
    guard let cacert else {
      if cert != nil { throw Failure(message: "--cert and --key need --cacert", status: 2) }
      return TCPTransport()
    }
    let identity = cert.flatMap { cert in key.map { TLSIdentity(certificate: cert, key: $0) } }
    do {
      return TCPTransport(client: .init(tls: try ClientTLS(trustRoots: cacert, identity: identity)))
    } catch {
      throw Failure(message: "TLS: \(error)", status: 2)
    }
  }
}
