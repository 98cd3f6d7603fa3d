import CoreMetrics
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus

/// `kvd --metrics HOST:PORT`: every metric the node records, in the Prometheus text
/// exposition format, at `GET /metrics` (a small HTTP/1.1 server; any other path is a 404).
///
/// Bootstrapping swift-metrics is process-wide and happens once, before the node starts, so
/// every counter the modules create afterwards lands in this registry.
enum MetricsEndpoint {
  static func start(host: String, port: Int) async throws -> any Channel {
    let registry = PrometheusCollectorRegistry()
    MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
    return try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
      .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          try channel.pipeline.syncOperations.configureHTTPServerPipeline()
          try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(registry: registry))
        }
      }
      .bind(host: host, port: port).get()
  }
}

/// Answers each request on the event loop: the registry's exposition, or 404/405.
final class MetricsHTTPHandler: ChannelInboundHandler {
  typealias InboundIn = HTTPServerRequestPart
  typealias OutboundOut = HTTPServerResponsePart

  private let registry: PrometheusCollectorRegistry
  private var head: HTTPRequestHead?

  init(registry: PrometheusCollectorRegistry) { self.registry = registry }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    switch unwrapInboundIn(data) {
    case .head(let request):
      head = request
    case .body:
      break
    case .end:
      guard let request = head else { return }
      head = nil
      let (status, body): (HTTPResponseStatus, [UInt8])
      if request.method != .GET {
        (status, body) = (.methodNotAllowed, Array("only GET\n".utf8))
      } else if request.uri.split(separator: "?").first != "/metrics" {
        (status, body) = (.notFound, Array("metrics are at /metrics\n".utf8))
      } else {
        (status, body) = (.ok, registry.emitToBuffer())
      }
      var headers = HTTPHeaders()
      headers.add(name: "Content-Type", value: "text/plain; version=0.0.4; charset=utf-8")
      headers.add(name: "Content-Length", value: "\(body.count)")
      let keepAlive = request.isKeepAlive
      if !keepAlive { headers.add(name: "Connection", value: "close") }
      context.write(
        wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))),
        promise: nil)
      context.write(
        wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
      let channel = context.channel
      context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
        if !keepAlive { channel.close(promise: nil) }
      }
    }
  }
}
