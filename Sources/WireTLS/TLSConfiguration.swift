import Foundation
import NIOCore
import NIOSSL
import Wire

/// A certificate (PEM, leaf first, optionally followed by intermediates) and its private key
/// (PEM): what one side of a TLS connection presents.
public struct TLSIdentity: Sendable, Hashable {
  public var certificate: String
  public var key: String

  public init(certificate: String, key: String) {
    self.certificate = certificate
    self.key = key
  }
}

/// How long closing a TLS connection waits for the peer's close_notify (NIOSSL's default is 5
/// seconds): shutting a server down closes its connections one by one, and a dead peer must not
/// hold that up.
let closeTimeout = TimeAmount.milliseconds(500)

/// Why TLS material could not be loaded. Raised at start-up, before anything listens or dials,
/// so that a bad file is a clear error rather than a failure on the first connection.
public enum TLSSetupError: Error, Sendable, Hashable, CustomStringConvertible {
  /// A certificate file is missing, unreadable or holds no PEM certificate.
  case unreadableCertificate(path: String, reason: String)
  /// A private key file is missing, unreadable or holds no PEM private key.
  case unreadableKey(path: String, reason: String)
  /// A CA file is missing, unreadable or holds no PEM certificate.
  case unreadableCA(path: String, reason: String)
  /// The files load but do not make a usable TLS context (e.g. the key does not match the
  /// certificate).
  case unusable(certificate: String, key: String, reason: String)

  public var description: String {
    switch self {
    case .unreadableCertificate(let path, let reason):
      "cannot read the certificate \(path): \(reason)"
    case .unreadableKey(let path, let reason):
      "cannot read the private key \(path): \(reason)"
    case .unreadableCA(let path, let reason):
      "cannot read the CA certificate \(path): \(reason)"
    case .unusable(let certificate, let key, let reason):
      "the certificate \(certificate) and the key \(key) do not work together "
        + "(does the key belong to the certificate?): \(reason)"
    }
  }
}

/// TLS for a listening `RPCServer`: it presents `identity` and, when `clientCA` is given,
/// accepts only clients presenting a certificate signed by that CA (mutual TLS).
///
/// Clients are authenticated by their CA alone: the server does not match a client's
/// certificate against its address (clients dial from any port and, behind NAT, any address).
/// A connection whose first byte is not a TLS handshake record gets one plain ERROR frame
/// saying that TLS is required, so that a plain-TCP client fails with a clear reason.
public struct ServerTLS: ServerChannelSecurity {
  let context: NIOSSLContext
  /// Whether clients must present a certificate signed by the CA.
  public let requiresClientCertificate: Bool

  /// Loads the files now.
  ///
  /// - Throws: `TLSSetupError` naming the file that is missing or unusable.
  public init(identity: TLSIdentity, clientCA: String?) throws(TLSSetupError) {
    let (chain, key) = try identity.load()
    var configuration = NIOSSL.TLSConfiguration.makeServerConfiguration(
      certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
    configuration.minimumTLSVersion = .tlsv12
    configuration.shutdownTimeout = closeTimeout
    if let clientCA {
      configuration.trustRoots = .certificates(try Self.loadCA(clientCA))
      // The CA chain is verified; see the type's comment for why the address is not.
      configuration.certificateVerification = .noHostnameVerification
    }
    requiresClientCertificate = clientCA != nil
    context = try identity.makeContext(configuration)
  }

  /// Reads the PEM certificates of a CA file.
  static func loadCA(_ path: String) throws(TLSSetupError) -> [NIOSSLCertificate] {
    let bytes: [UInt8]
    do {
      bytes = try TLSIdentity.contents(of: path)
    } catch {
      throw .unreadableCA(path: path, reason: error.description)
    }
    guard let certificates = try? NIOSSLCertificate.fromPEMBytes(bytes), !certificates.isEmpty else {
      throw .unreadableCA(path: path, reason: "no PEM certificate in the file")
    }
    return certificates
  }

  /// Adds the TLS handlers in front of a new server connection's pipeline.
  public func addHandlers(
    to pipeline: ChannelPipeline.SynchronousOperations, listening address: String
  ) throws {
    try pipeline.addHandlers([
      PlaintextRefusal(address: address),
      NIOSSLServerHandler(context: context),
    ])
  }
}

/// TLS for an `RPCClient`: it verifies each server's certificate against `trustRoots` (the
/// system's roots when nil) and the address it dialled — an IP address must appear as an IP
/// subject alternative name, a host name as a DNS one — and presents `identity`, when given,
/// to servers that ask for a client certificate.
public struct ClientTLS: ClientChannelSecurity {
  let context: NIOSSLContext

  /// Loads the files now.
  ///
  /// - Throws: `TLSSetupError` naming the file that is missing or unusable.
  public init(trustRoots: String?, identity: TLSIdentity?) throws(TLSSetupError) {
    var configuration = NIOSSL.TLSConfiguration.makeClientConfiguration()
    configuration.minimumTLSVersion = .tlsv12
    configuration.shutdownTimeout = closeTimeout
    configuration.certificateVerification = .fullVerification
    if let trustRoots {
      configuration.trustRoots = .certificates(try ServerTLS.loadCA(trustRoots))
    }
    guard let identity else {
      do {
        context = try NIOSSLContext(configuration: configuration)
      } catch {
        throw .unreadableCA(path: trustRoots ?? "(system roots)", reason: "\(error)")
      }
      return
    }
    let (chain, key) = try identity.load()
    configuration.certificateChain = chain.map { .certificate($0) }
    configuration.privateKey = .privateKey(key)
    context = try identity.makeContext(configuration)
  }

  /// Adds the TLS handlers in front of a new client connection's pipeline; `handshake`
  /// completes once the handshake has (or fails with the reason it has not).
  public func addHandlers(
    to pipeline: ChannelPipeline.SynchronousOperations, host: String, port: Int, connectTimeout: Duration,
    handshake: EventLoopPromise<Void>
  ) throws {
    // SNI and name checks take host names only; for an IP literal NIOSSL checks the
    // certificate's IP addresses against the connected socket's address.
    let isIPLiteral = (try? SocketAddress(ipAddress: host, port: 0)) != nil
    try pipeline.addHandlers([
      try NIOSSLClientHandler(context: context, serverHostname: isIPLiteral ? nil : host),
      TLSHandshakeWait(
        peer: PeerAddress(host: host, port: port).description, promise: handshake, timeout: connectTimeout),
    ])
  }
}

extension TLSIdentity {
  /// The certificate chain and the key, read from their files.
  func load() throws(TLSSetupError) -> ([NIOSSLCertificate], NIOSSLPrivateKey) {
    let chainBytes: [UInt8]
    let keyBytes: [UInt8]
    do {
      chainBytes = try Self.contents(of: certificate)
    } catch {
      throw .unreadableCertificate(path: certificate, reason: error.description)
    }
    do {
      keyBytes = try Self.contents(of: key)
    } catch {
      throw .unreadableKey(path: key, reason: error.description)
    }
    guard let chain = try? NIOSSLCertificate.fromPEMBytes(chainBytes), !chain.isEmpty else {
      throw .unreadableCertificate(path: certificate, reason: "no PEM certificate in the file")
    }
    guard let privateKey = try? NIOSSLPrivateKey(bytes: keyBytes, format: .pem) else {
      throw .unreadableKey(path: key, reason: "no unencrypted PEM private key in the file")
    }
    return (chain, privateKey)
  }

  /// A context for `configuration`, whose certificate and key are this identity's: BoringSSL
  /// refuses a key that does not belong to the certificate here.
  func makeContext(_ configuration: NIOSSL.TLSConfiguration) throws(TLSSetupError) -> NIOSSLContext {
    do {
      return try NIOSSLContext(configuration: configuration)
    } catch {
      throw .unusable(certificate: certificate, key: key, reason: "\(error)")
    }
  }

  /// The bytes of the file at `path`; the error is a reason fit for a message (NIOSSL's own
  /// file loading reports a missing file as an opaque BoringSSL error).
  static func contents(of path: String) throws(TLSFileError) -> [UInt8] {
    guard FileManager.default.fileExists(atPath: path) else { throw TLSFileError("no such file") }
    guard let data = FileManager.default.contents(atPath: path) else {
      throw TLSFileError("not readable (permissions?)")
    }
    return [UInt8](data)
  }
}

/// Why a TLS file could not be read: the reason part of a `TLSSetupError`.
struct TLSFileError: Error, CustomStringConvertible {
  let description: String
  init(_ description: String) { self.description = description }
}
