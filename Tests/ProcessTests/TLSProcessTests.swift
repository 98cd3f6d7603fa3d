import Foundation
import XCTest

/// Mutual TLS between real kvd processes and kvctl, with certificates from
/// scripts/make-certs.sh (openssl).
final class TLSProcessTests: XCTestCase {
  /// A CA and its node and client certificates, in a fresh directory.
  struct Certificates {
    let directory: String

    var peerFlags: [String] {
      [
        "--peer-cert", directory + "/node.pem", "--peer-key", directory + "/node-key.pem",
        "--peer-ca", directory + "/ca.pem",
      ]
    }

    var apiFlags: [String] {
      [
        "--api-cert", directory + "/node.pem", "--api-key", directory + "/node-key.pem",
        "--api-ca", directory + "/ca.pem",
      ]
    }

    /// kvctl's flags, trusting `ca`'s CA and presenting this directory's client certificate.
    func clientFlags(trusting ca: Certificates? = nil) -> [String] {
      [
        "--cacert", (ca ?? self).directory + "/ca.pem", "--cert", directory + "/client.pem", "--key",
        directory + "/client-key.pem",
      ]
    }

    static func make() throws -> Certificates {
      let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("kvd-certs-\(UUID().uuidString)").path
      let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../scripts/make-certs.sh").standardizedFileURL.path
      let out = try ProcessCluster.tool("bash", [script, directory], watchdog: .seconds(60))
      guard out.status == 0 else { throw ProcessTestFailure(description: "make-certs.sh: \(out.summary)") }
      return Certificates(directory: directory)
    }
  }

  private func kvctl(
    _ cluster: ProcessCluster, _ i: Int, _ tls: [String], _ args: String..., timeout: Int = 5
  ) throws -> ProcessCluster.Output {
    try ProcessCluster.kvctl(
      ["-a", cluster.nodes[i].api, "--timeout", "\(timeout)"] + tls + args, watchdog: .seconds(timeout + 30))
  }

  /// Three members with peer certificates from one CA and a fourth, listed as a voter too,
  /// with a peer certificate from another: the three elect a leader and serve kvctl over
  /// mutual TLS; the stranger never gets in; plain TCP and foreign client certificates are
  /// refused while the group keeps serving. API certificates come from a third CA, so a call
  /// made with the wrong kind of certificate fails.
  func testMutualTLSGroupServesAndRefusesStrangers() throws {
    let good = try Certificates.make()
    let stranger = try Certificates.make()
    let apiCertificates = try Certificates.make()
    let cluster = try ProcessCluster(size: 4)
    defer { cluster.stopAll() }
    let voters = cluster.peers([0, 1, 2, 3])
    for i in 0..<3 { try cluster.start(i, ["--peers", voters] + good.peerFlags + apiCertificates.apiFlags) }
    try cluster.start(3, ["--peers", voters] + stranger.peerFlags + apiCertificates.apiFlags)
    let client = apiCertificates.clientFlags()

    var leader: String?
    let elected = try cluster.eventually(within: .seconds(20)) {
      let out = try kvctl(cluster, 0, client, "leader")
      leader = out.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
      return out.status == 0 && !(leader ?? "").isEmpty
    }
    XCTAssertTrue(elected, cluster.logTails([0, 1, 2, 3]))
    let leaderIndex = try XCTUnwrap(leader.flatMap { cluster.node(peer: $0) }, "leader \(leader ?? "none")")
    XCTAssertNotEqual(leaderIndex, 3, "the member with a foreign certificate became leader")

    let put = try kvctl(cluster, 0, client, "put", "k", "v1", timeout: 10)
    XCTAssertEqual(put.stdout, "OK\n", put.summary)
    let got = try kvctl(cluster, 1, client, "get", "k", timeout: 10)
    XCTAssertEqual(got.stdout, "Key:\tk\nValue:\tv1\n", got.summary)

    // The stranger's handshakes fail both ways: the leader keeps reporting it as dropped, and
    // its own log says why.
    let dropped = try cluster.eventually(within: .seconds(10)) {
      try kvctl(cluster, leaderIndex, client, "dropped").stdout.contains(cluster.nodes[3].peer)
    }
    XCTAssertTrue(dropped, "the leader does not report the stranger as dropped")
    XCTAssertTrue(cluster.logTail(3, lines: 200).contains("TLS handshake failed"), cluster.logTail(3))
    let strangerView = try kvctl(cluster, 3, client, "get", "k", timeout: 2)
    XCTAssertNotEqual(strangerView.status, 0, "the stranger served a read: \(strangerView.summary)")

    // kvctl without TLS flags: refused, with the reason.
    let plain = try cluster.kvctl(0, "get", "k", timeout: 2)
    XCTAssertNotEqual(plain.status, 0, plain.summary)
    XCTAssertTrue(plain.stderr.contains("accepts only TLS"), plain.summary)
    // A client certificate from another CA (trusting the right server CA): refused.
    let foreign = try kvctl(
      cluster, 0, stranger.clientFlags(trusting: apiCertificates), "get", "k", timeout: 2)
    XCTAssertNotEqual(foreign.status, 0, foreign.summary)
    // A server from another CA: kvctl refuses it.
    let wrongServer = try kvctl(cluster, 0, good.clientFlags(), "get", "k", timeout: 2)
    XCTAssertNotEqual(wrongServer.status, 0, wrongServer.summary)
    XCTAssertTrue(wrongServer.stderr.contains("TLS handshake failed"), wrongServer.summary)

    // A raw TCP connection to a peer address sending a well-formed frame gets the plain-text
    // refusal and a closed connection, never a Raft reply.
    let answer = try rawExchange(cluster.nodes[leaderIndex].peer, frame: [0, 0, 0, 2, 0x08, 0x01])
    XCTAssertTrue(String(decoding: answer, as: UTF8.self).contains("accepts only TLS"), "\(answer)")

    let after = try kvctl(cluster, 2, client, "put", "k", "v2", timeout: 10)
    XCTAssertEqual(after.stdout, "OK\n", after.summary)
    let read = try kvctl(cluster, 0, client, "get", "k", timeout: 10)
    XCTAssertEqual(read.stdout, "Key:\tk\nValue:\tv2\n", read.summary)
    for i in 0..<4 { XCTAssertTrue(cluster.isRunning(i), "node \(i) exited: \(cluster.logTail(i))") }
  }

  /// A sharded cluster with TLS on its API addresses only: a group member reaches the
  /// controller's API address (controller clerk, shard routing) over TLS with its API
  /// certificate, while its peer address stays plain.
  func testShardedClusterWithTLSOnAPIAddresses() throws {
    let good = try Certificates.make()
    let cluster = try ProcessCluster(roles: [1, 1])
    defer { cluster.stopAll() }
    let client = good.clientFlags()
    try cluster.start(0, ["--controller", "-l", "--shards", "4"] + good.apiFlags)
    try cluster.start(1, ["-l", "--group", "1", "--controllers", cluster.apis([0])] + good.apiFlags)
    let joined = try cluster.eventually(within: .seconds(30)) {
      try kvctl(cluster, 0, client, "group", "join", "1", cluster.apis([1]), timeout: 10).status == 0
    }
    XCTAssertTrue(joined, cluster.logTails([0, 1]))
    let served = try cluster.eventually(within: .seconds(30)) {
      try kvctl(cluster, 1, client, "put", "a", "1", timeout: 5).stdout == "OK\n"
    }
    XCTAssertTrue(served, cluster.logTails([0, 1]))
    let located = try kvctl(cluster, 1, client, "locate", "a", timeout: 10)
    XCTAssertTrue(located.stdout.contains("Group:\t1"), located.summary)
  }

  /// A sharded cluster behind a router, every address on TLS (peer and API certificates from
  /// different CAs): admin and data through the router, shards with data moving to a group
  /// that joins later (pulls between groups' API addresses), and a node that joins a group
  /// through the router (JOIN_CLUSTER).
  func testRouterMigrationAndJoinClusterOverTLS() throws {
    let peerCertificates = try Certificates.make()
    let apiCertificates = try Certificates.make()
    let node = peerCertificates.peerFlags + apiCertificates.apiFlags
    let client = apiCertificates.clientFlags()
    let timing = ["--heartbeat-ms", "50", "--election-ms", "300"]
    // 0 controller; 1 group 1; 2 group 2; 3 the router; 4 joins group 1 through the router.
    let cluster = try ProcessCluster(size: 5)
    defer { cluster.stopAll() }
    let controller = cluster.nodes[0].api
    let router = cluster.nodes[3].api
    try cluster.start(0, ["--controller", "-l", "--shards", "8"] + timing + node)
    try cluster.start(1, ["-l", "--group", "1", "--controllers", controller] + timing + node)
    try cluster.start(2, ["-l", "--group", "2", "--controllers", controller] + timing + node)
    try cluster.start(
      3, arguments: ["--router", "-a", router, "--controllers", controller] + apiCertificates.apiFlags)
    func viaRouter(_ args: String..., timeout: Int = 15) throws -> ProcessCluster.Output {
      try ProcessCluster.kvctl(
        ["-a", router, "--timeout", "\(timeout)"] + client + args, watchdog: .seconds(timeout + 30))
    }
    let up = try cluster.eventually(within: .seconds(20)) {
      try [0, 1, 2, 3].allSatisfy { try kvctl(cluster, $0, client, "status").status == 0 }
    }
    XCTAssertTrue(up, cluster.logTails([0, 1, 2, 3]))

    var out = try viaRouter("group", "join", "1", cluster.apis([1]))
    XCTAssertEqual(out.stdout, "OK\n", out.summary + cluster.logTails([0, 3]))
    for i in 0..<10 {
      out = try viaRouter("put", "key\(i)", "value\(i)")
      XCTAssertEqual(out.stdout, "OK\n", out.summary + cluster.logTails([1, 3]))
    }
    // Group 2 pulls its share of the shards, with their data, from group 1's API address.
    out = try viaRouter("group", "join", "2", cluster.apis([2]))
    XCTAssertEqual(out.stdout, "OK\n", out.summary + cluster.logTails([0, 3]))
    let moved = try cluster.eventually(within: .seconds(30)) {
      try viaRouter("migrations").stdout.contains("No shard is moving")
        && (try kvctl(cluster, 2, client, "shards").stdout.contains("serving"))
    }
    let migrations = try viaRouter("migrations").summary
    let shards = try kvctl(cluster, 2, client, "shards").summary
    XCTAssertTrue(moved, migrations + "\n" + shards + "\n" + cluster.logTails([1, 2]))
    for i in 0..<10 {
      out = try viaRouter("get", "key\(i)")
      XCTAssertEqual(
        out.stdout, "Key:\tkey\(i)\nValue:\tvalue\(i)\n", out.summary + cluster.logTails([1, 2, 3]))
    }

    // JOIN_CLUSTER over TLS: the router's API address, then group 1's leader on its peer one.
    try cluster.start(4, ["-c", router, "--group", "1"] + timing + node)
    let joined = try cluster.eventually(within: .seconds(30)) {
      try viaRouter("config", "--json").stdout.contains(cluster.nodes[4].api)
    }
    XCTAssertTrue(joined, "the controller lists the new member: \(cluster.logTails([1, 3, 4]))")
    let groupOneKey = try (0..<10).map { "key\($0)" }.first { key in
      try viaRouter("locate", key).stdout.hasSuffix("Group:\t1\n")
    }
    let key = try XCTUnwrap(groupOneKey, "some key lives in group 1")
    let replicated = try cluster.eventually(within: .seconds(20)) {
      try kvctl(cluster, 4, client, "direct_get", key).stdout
        == "Key:\t\(key)\nValue:\tvalue\(key.dropFirst(3))\n"
    }
    XCTAssertTrue(replicated, "the joined node holds \(key): \(cluster.logTails([1, 4]))")
  }

  /// Bad TLS flags and files stop kvd at start with a clear message and a non-zero status.
  func testBadTLSSettingsStopKVDAtStart() throws {
    let good = try Certificates.make()
    let ports = try ProcessCluster.freePorts(2)
    let base = ["-a", "127.0.0.1:\(ports[0])", "-p", "127.0.0.1:\(ports[1])", "-l"]
    let data = [
      "--data", FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString).path,
    ]
    let cases: [(flags: [String], message: String)] = [
      (["--peer-cert", good.directory + "/node.pem"], "--peer-cert, --peer-key and --peer-ca go together"),
      (
        [
          "--peer-cert", good.directory + "/missing.pem", "--peer-key", good.directory + "/node-key.pem",
          "--peer-ca", good.directory + "/ca.pem",
        ], "cannot read the certificate \(good.directory)/missing.pem: no such file"
      ),
      (
        [
          "--api-cert", good.directory + "/node.pem", "--api-key", good.directory + "/client-key.pem",
        ], "do not work together"
      ),
      (["--api-ca", good.directory + "/ca.pem"], "--api-ca needs --api-cert and --api-key"),
    ]
    for (flags, message) in cases {
      // Through bash: `tool` looks programs up on the PATH, and kvd is beside the test bundle.
      let kvd = ProcessCluster.binaries.appendingPathComponent("kvd").path
      let out = try ProcessCluster.tool(
        "bash", ["-c", "exec \"$0\" \"$@\"", kvd] + base + data + flags, watchdog: .seconds(30))
      XCTAssertNotEqual(out.status, 0, "\(flags): \(out.summary)")
      XCTAssertTrue(out.stderr.contains(message), "\(flags): \(out.summary)")
    }
  }

  /// kvctl's TLS flags without their partners, or with a missing file, are usage errors.
  func testBadKVCtlTLSFlagsAreUsageErrors() throws {
    let good = try Certificates.make()
    let cases: [(flags: [String], message: String)] = [
      (
        ["--cert", good.directory + "/client.pem", "--key", good.directory + "/client-key.pem"],
        "need --cacert"
      ),
      (["--cacert", good.directory + "/ca.pem", "--cert", good.directory + "/client.pem"], "go together"),
      (["--cacert", good.directory + "/nope.pem"], "cannot read the CA certificate"),
    ]
    for (flags, message) in cases {
      let out = try ProcessCluster.kvctl(
        ["-a", "127.0.0.1:1"] + flags + ["get", "k"], watchdog: .seconds(30))
      XCTAssertEqual(out.status, 2, "\(flags): \(out.summary)")
      XCTAssertTrue(out.stderr.contains(message), "\(flags): \(out.summary)")
    }
  }

  /// Connects to `address`, sends `frame`, and returns everything read until the server
  /// closes the connection (or 5 seconds pass).
  private func rawExchange(_ address: String, frame: [UInt8]) throws -> [UInt8] {
    let colon = try XCTUnwrap(address.lastIndex(of: ":"))
    let port = try XCTUnwrap(UInt16(address[address.index(after: colon)...]))
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ProcessTestFailure(description: "socket: errno \(errno)") }
    defer { close(fd) }
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var socketAddress = sockaddr_in()
    socketAddress.sin_family = sa_family_t(AF_INET)
    socketAddress.sin_port = port.bigEndian
    socketAddress.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &socketAddress) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    guard connected == 0 else { throw ProcessTestFailure(description: "connect \(address): errno \(errno)") }
    guard send(fd, frame, frame.count, 0) == frame.count else {
      throw ProcessTestFailure(description: "send to \(address): errno \(errno)")
    }
    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
      let count = recv(fd, &buffer, buffer.count, 0)
      guard count > 0 else { break }
      received += buffer[0..<count]
    }
    return received
  }
}
