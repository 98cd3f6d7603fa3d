import ArgumentParser
import Logging
import Wire
import WireTLS

/// kvd's TLS flags (etcd's names) and the two transports they make.
///
/// A node dials two kinds of address, each with its own transport:
/// - peer addresses (Raft, forwarding to the leader): TLS with `--peer-cert/--peer-key`,
///   trusting `--peer-ca`, which the peer listener also requires of every client (mutual TLS);
/// - API addresses (the controller's replicas, other groups for shard pulls, a router for
///   JOIN_CLUSTER; a router dials only these): TLS when this node's own API address is, with
///   the node's `--api-cert/--api-key` as client certificate and trusting `--api-ca`, else
///   `--peer-ca`, else the system's roots. One cluster uses TLS on every API address or on none.
struct TLSOptions: ParsableArguments {
  @Option(
    help: ArgumentHelp(
      "Peer address: this node's certificate (PEM). With --peer-key and --peer-ca: mutual TLS.",
      valueName: "file"))
  var peerCert: String?

  @Option(help: ArgumentHelp("Peer address: the private key of --peer-cert (PEM).", valueName: "file"))
  var peerKey: String?

  @Option(
    help: ArgumentHelp(
      "Peer address: the CA (PEM) that signs every member's --peer-cert; only its certificates get in.",
      valueName: "file"))
  var peerCa: String?

  @Option(
    help: ArgumentHelp(
      "API address: this node's certificate (PEM); with --api-key, the API address speaks TLS.",
      valueName: "file"))
  var apiCert: String?

  @Option(help: ArgumentHelp("API address: the private key of --api-cert (PEM).", valueName: "file"))
  var apiKey: String?

  @Option(
    help: ArgumentHelp("API address: require client certificates signed by this CA (PEM).", valueName: "file")
  )
  var apiCa: String?

  func validate() throws {
    let peer = [peerCert, peerKey, peerCa]
    if peer.contains(where: { $0 != nil }) && peer.contains(where: { $0 == nil }) {
      throw ValidationError("--peer-cert, --peer-key and --peer-ca go together (mutual TLS between members)")
    }
    if (apiCert == nil) != (apiKey == nil) {
      throw ValidationError("--api-cert and --api-key go together")
    }
    if apiCa != nil && apiCert == nil {
      throw ValidationError("--api-ca needs --api-cert and --api-key (client certificates need a TLS server)")
    }
  }

  var peerTLS: Bool { peerCert != nil }

  /// The transport for peer addresses: calls and the peer listener.
  func peerTransport() throws(TLSSetupError) -> TCPTransport {
    guard let peerCert, let peerKey, let peerCa else { return TCPTransport() }
    let identity = TLSIdentity(certificate: peerCert, key: peerKey)
    return TCPTransport(
      client: .init(tls: try ClientTLS(trustRoots: peerCa, identity: identity)),
      server: .init(tls: try ServerTLS(identity: identity, clientCA: peerCa)))
  }

  /// The transport for API addresses: calls and the API listener.
  func apiTransport() throws(TLSSetupError) -> TCPTransport {
    guard let apiCert, let apiKey else { return TCPTransport() }
    let identity = TLSIdentity(certificate: apiCert, key: apiKey)
    return TCPTransport(
      client: .init(tls: try ClientTLS(trustRoots: apiCa ?? peerCa, identity: identity)),
      server: .init(tls: try ServerTLS(identity: identity, clientCA: apiCa)))
  }

  /// Says once, at start, what is and is not authenticated.
  func logSecurity(_ logger: Logger, isRouter: Bool) {
    if !isRouter && !peerTLS {
      logger.warning(
        """
        peer traffic is unauthenticated plain TCP: anything that reaches the peer address can \
        take part in Raft (give --peer-cert, --peer-key and --peer-ca for mutual TLS)
        """)
    }
    if apiCert == nil {
      logger.info("the API address speaks plain TCP (no --api-cert)")
    } else if apiCa == nil {
      logger.info("the API address speaks TLS; clients are not authenticated (no --api-ca)")
    }
  }
}

extension TLSOptions {
  /// `peerTransport()` and `apiTransport()`, or exit 1 naming the file that cannot be used.
  func transportsOrExit() -> (peer: TCPTransport, api: TCPTransport) {
    do {
      return (try peerTransport(), try apiTransport())
    } catch {
      KVD.fail("TLS: \(error)")
    }
  }
}
