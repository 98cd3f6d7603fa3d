import Foundation
import Wire
import WireTLS
import XCTest

/// RPCs over TLS on loopback, with certificates made by scripts/make-certs.sh (openssl).
final class TLSTests: XCTestCase {
  private var servers: [RPCServer] = []
  private var clients: [RPCClient] = []

  override func tearDown() async throws {
    for client in clients { await client.shutdown() }
    for server in servers { await server.shutdown() }
    clients = []
    servers = []
  }

  /// A CA with node and client certificates in a fresh directory.
  struct Certificates {
    let directory: String
    var ca: String { directory + "/ca.pem" }
    var node: TLSIdentity {
      TLSIdentity(certificate: directory + "/node.pem", key: directory + "/node-key.pem")
    }
    var client: TLSIdentity {
      TLSIdentity(certificate: directory + "/client.pem", key: directory + "/client-key.pem")
    }

    /// Runs make-certs.sh (with `--san` when given) into a new temporary directory.
    static func make(san: String? = nil) throws -> Certificates {
      let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("shardkv-tls-\(UUID().uuidString)").path
      let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../scripts/make-certs.sh").standardizedFileURL.path
      let process = Process()
      process.executableURL = URL(fileURLWithPath: "/bin/bash")
      process.arguments = [script] + (san.map { ["--san", $0] } ?? []) + [directory]
      process.standardOutput = FileHandle.nullDevice
      try process.run()
      process.waitUntilExit()
      guard process.terminationStatus == 0 else {
        throw CertificateError(message: "make-certs.sh exited with \(process.terminationStatus)")
      }
      return Certificates(directory: directory)
    }
  }

  struct CertificateError: Error { let message: String }

  private func startServer(_ tls: ServerTLS?) async throws -> String {
    let server = try await onTestPort { port in
      try await RPCServer.bind(
        host: "127.0.0.1", port: port, handlers: testHandlers(), configuration: .init(tls: tls))
    }
    servers.append(server)
    return server.localAddress.description
  }

  private func makeClient(_ tls: ClientTLS?) -> RPCClient {
    // Short backoff, so that a test can retry a refused connection at once.
    let client = RPCClient(configuration: .init(initialBackoff: .milliseconds(1), tls: tls))
    clients.append(client)
    return client
  }

  private func echo(_ client: RPCClient, _ address: String) async throws -> [UInt8] {
    try await client.call(address, method: "echo", payload: Array("ping".utf8), timeout: .seconds(10))
  }

  func testRoundTripOverMutualTLS() async throws {
    let certificates = try Certificates.make()
    let address = try await startServer(ServerTLS(identity: certificates.node, clientCA: certificates.ca))
    let client = makeClient(try ClientTLS(trustRoots: certificates.ca, identity: certificates.client))
    let reply = try await echo(client, address)
    XCTAssertEqual(reply, Array("ping".utf8))
  }

  func testClientCertificateFromAnotherCAIsRefusedAndTheServerKeepsServing() async throws {
    let certificates = try Certificates.make()
    let stranger = try Certificates.make()
    let address = try await startServer(ServerTLS(identity: certificates.node, clientCA: certificates.ca))
    // It trusts the server, but its own certificate comes from another CA.
    let refused = makeClient(try ClientTLS(trustRoots: certificates.ca, identity: stranger.client))
    let error = await rpcError { try await self.echo(refused, address) }
    guard case .unreachable(_, let reason) = error else {
      return XCTFail("expected unreachable, got \(String(describing: error))")
    }
    XCTAssertTrue(reason.contains("refused the TLS connection"), reason)
    // No certificate at all is refused too.
    let anonymous = makeClient(try ClientTLS(trustRoots: certificates.ca, identity: nil))
    let anonymousError = await rpcError { try await self.echo(anonymous, address) }
    XCTAssertNotNil(anonymousError, "a client without a certificate was accepted")
    let good = makeClient(try ClientTLS(trustRoots: certificates.ca, identity: certificates.client))
    let reply = try await echo(good, address)
    XCTAssertEqual(reply, Array("ping".utf8))
  }

  func testServerTLSWithoutClientCAAcceptsClientsWithoutCertificates() async throws {
    let certificates = try Certificates.make()
    let address = try await startServer(ServerTLS(identity: certificates.node, clientCA: nil))
    let client = makeClient(try ClientTLS(trustRoots: certificates.ca, identity: nil))
    let reply = try await echo(client, address)
    XCTAssertEqual(reply, Array("ping".utf8))
  }

  func testServerFromAnotherCAIsRefusedByTheClient() async throws {
    let certificates = try Certificates.make()
    let stranger = try Certificates.make()
    let address = try await startServer(ServerTLS(identity: stranger.node, clientCA: nil))
    let client = makeClient(try ClientTLS(trustRoots: certificates.ca, identity: certificates.client))
    let error = await rpcError { try await self.echo(client, address) }
    guard case .unreachable(_, let reason) = error else {
      return XCTFail("expected unreachable, got \(String(describing: error))")
    }
    XCTAssertTrue(reason.contains("TLS handshake failed"), reason)
  }

  func testServerCertificateWithoutTheDialledIPIsRefused() async throws {
    let certificates = try Certificates.make(san: "DNS:elsewhere.example")
    let address = try await startServer(ServerTLS(identity: certificates.node, clientCA: nil))
    let client = makeClient(try ClientTLS(trustRoots: certificates.ca, identity: nil))
    let error = await rpcError { try await self.echo(client, address) }
    guard case .unreachable(_, let reason) = error else {
      return XCTFail("expected unreachable, got \(String(describing: error))")
    }
    XCTAssertTrue(reason.contains("does not name the address dialled"), reason)
  }

  func testPlainClientIsToldThatTLSIsRequired() async throws {
    let certificates = try Certificates.make()
    let address = try await startServer(ServerTLS(identity: certificates.node, clientCA: certificates.ca))
    let error = await rpcError { try await self.echo(self.makeClient(nil), address) }
    guard case .remote(.malformed, let message) = error else {
      return XCTFail("expected a remote malformed error, got \(String(describing: error))")
    }
    XCTAssertTrue(message.contains("accepts only TLS"), message)
    let good = makeClient(try ClientTLS(trustRoots: certificates.ca, identity: certificates.client))
    let reply = try await echo(good, address)
    XCTAssertEqual(reply, Array("ping".utf8))
  }

  func testTLSClientAgainstAPlainServerFailsToConnect() async throws {
    let certificates = try Certificates.make()
    let address = try await startServer(nil)
    let client = makeClient(try ClientTLS(trustRoots: certificates.ca, identity: certificates.client))
    let error = await rpcError { try await self.echo(client, address) }
    guard case .unreachable = error else {
      return XCTFail("expected unreachable, got \(String(describing: error))")
    }
  }

  func testBadFilesAreClearSetupErrors() throws {
    let certificates = try Certificates.make()
    let missing = certificates.directory + "/missing.pem"
    XCTAssertThrowsError(
      try ServerTLS(identity: TLSIdentity(certificate: missing, key: certificates.node.key), clientCA: nil)
    ) { error in
      XCTAssertEqual(error as? TLSSetupError, .unreadableCertificate(path: missing, reason: "no such file"))
    }
    XCTAssertThrowsError(
      try ServerTLS(
        identity: TLSIdentity(certificate: certificates.node.certificate, key: missing), clientCA: nil)
    ) { error in
      XCTAssertEqual(error as? TLSSetupError, .unreadableKey(path: missing, reason: "no such file"))
    }
    XCTAssertThrowsError(try ClientTLS(trustRoots: missing, identity: nil)) { error in
      XCTAssertEqual(error as? TLSSetupError, .unreadableCA(path: missing, reason: "no such file"))
    }
    // A key file given as the certificate: not a certificate.
    XCTAssertThrowsError(
      try ServerTLS(
        identity: TLSIdentity(certificate: certificates.node.key, key: certificates.node.key), clientCA: nil)
    ) { error in
      guard case .unreadableCertificate = error as? TLSSetupError else {
        return XCTFail("expected unreadableCertificate, got \(error)")
      }
    }
    // The client's key with the node's certificate.
    let mismatched = TLSIdentity(certificate: certificates.node.certificate, key: certificates.client.key)
    XCTAssertThrowsError(try ServerTLS(identity: mismatched, clientCA: nil)) { error in
      guard case .unusable = error as? TLSSetupError else {
        return XCTFail("expected unusable, got \(error)")
      }
    }
    XCTAssertThrowsError(try ClientTLS(trustRoots: certificates.ca, identity: mismatched)) { error in
      guard case .unusable = error as? TLSSetupError else {
        return XCTFail("expected unusable, got \(error)")
      }
    }
  }
}
