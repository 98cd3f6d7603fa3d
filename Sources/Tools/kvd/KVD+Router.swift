import Foundation
import Logging
import RESP
import Router
import ShardKV
import Wire

extension KVD {
  /// `kvd --router`: serves the router's methods on the API address (and RESP2 on --resp)
  /// until SIGINT or SIGTERM.
  func runRouter(logger: Logger) async {
    let transport = tls.transportsOrExit().api
    let controllerList = (controllers ?? "").split(separator: ",").map {
      $0.trimmingCharacters(in: .whitespaces)
    }.filter { !$0.isEmpty }
    let server = RouterServer(apiAddress: api, controllers: controllerList, transport: transport)
    var handlers = RPCHandlers()
    server.registerMethods(in: &handlers)
    let listener: any TransportListener
    do {
      listener = try await transport.listen(on: api, handlers: handlers, limits: limits.apiLimits)
    } catch {
      Self.fail("cannot listen on \(api): \(error)")
    }
    let watcher = server.watchConfiguration()
    var redis: RESPServer?
    if let resp {
      do {
        let address = try PeerAddress(parsing: resp)
        let commands = RESPCommands(
          router: server.router, limits: KVLimits(maxKeyBytes: maxKeyBytes, maxValueBytes: maxValueBytes))
        var limits = RESPLimits()
        limits.maxBulkBytes = maxValueBytes + maxKeyBytes + 1024
        redis = try await RESPServer.bind(
          host: address.host, port: address.port, commands: commands, limits: limits, logger: logger)
      } catch {
        Self.fail("cannot serve RESP on \(resp): \(error)")
      }
    }
    logger.info(
      "kvd serving (router)",
      metadata: [
        "api": "\(api)", "resp": "\(resp ?? "-")", "controllers": "\(controllerList.joined(separator: ","))",
      ])
    await Termination.wait()
    logger.info("kvd shutting down")
    watcher.cancel()
    await redis?.close()
    await listener.close()
    await transport.shutdown()
  }
}
