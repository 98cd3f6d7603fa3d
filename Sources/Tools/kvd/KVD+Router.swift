import Foundation
import Logging
import Router
import Wire

extension KVD {
  /// `kvd --router`: serves the router's methods on the API address (and RESP2 on --resp)
  /// until SIGINT or SIGTERM.
  func runRouter(logger: Logger) async {
    let transport = TCPTransport()
    let controllerList = (controllers ?? "").split(separator: ",").map {
      $0.trimmingCharacters(in: .whitespaces)
    }.filter { !$0.isEmpty }
    let server = RouterServer(apiAddress: api, controllers: controllerList, transport: transport)
    var handlers = RPCHandlers()
    server.registerMethods(in: &handlers)
    let listener: any TransportListener
    do {
      listener = try await transport.listen(on: api, handlers: handlers)
    } catch {
      Self.fail("cannot listen on \(api): \(error)")
    }
    let watcher = server.watchConfiguration()
    logger.info(
      "kvd serving (router)",
      metadata: ["api": "\(api)", "controllers": "\(controllerList.joined(separator: ","))"])
    await Self.waitForTermination()
    logger.info("kvd shutting down")
    watcher.cancel()
    await listener.close()
    await transport.shutdown()
  }
}
