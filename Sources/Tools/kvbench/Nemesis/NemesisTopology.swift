import ArgumentParser
import ShardCtrler

/// What the nemesis runs: one standalone group, or a sharded cluster.
enum NemesisShape: String, ExpressibleByArgument, CaseIterable, Sendable {
  /// A standalone group of --nodes members (3 or 5).
  case group
  /// A controller of 3 replicas, 3 replica groups of 3 and 2 routers.
  case sharded
}

/// The nodes of one cluster and their roles; node N lives in the lab's namespace N and listens
/// on the lab's address N (API port 7000, peer port 7100).
struct NemesisTopology: Sendable {
  enum Role: Hashable, Sendable {
    case member(group: GroupID)  // 0: a standalone group
    case controller
    case router
  }

  struct Node: Sendable {
    var name: String
    var role: Role
    var api: String
    var peer: String?
    /// kvd's arguments, without --data.
    var arguments: [String]
  }

  var shape: NemesisShape
  var nodes: [Node]
  /// The Raft groups, each a list of node indices: the standalone group, or the controller
  /// followed by the replica groups 1, 2, 3.
  var raftGroups: [[Int]]
  /// The replica group of each entry of `raftGroups` (nil for the controller).
  var raftGroupIDs: [GroupID?]
  /// Where clients send: the group's members, or the routers.
  var clientServers: [String]
  var controllers: [String]
  /// Replica groups registered at the start (sharded); the others join during the run.
  var initialGroups: [GroupID]
  static let shardCount = 8

  static func make(_ shape: NemesisShape, groupSize: Int, address: (Int) -> String) -> NemesisTopology {
    func api(_ i: Int) -> String { "\(address(i)):7000" }
    func peer(_ i: Int) -> String { "\(address(i)):7100" }
    switch shape {
    case .group:
      let peers = (0..<groupSize).map(peer).joined(separator: ",")
      let nodes = (0..<groupSize).map { i in
        Node(
          name: "n\(i)", role: .member(group: 0), api: api(i), peer: peer(i),
          arguments: ["-a", api(i), "-p", peer(i), "--peers", peers])
      }
      return NemesisTopology(
        shape: shape, nodes: nodes, raftGroups: [Array(0..<groupSize)], raftGroupIDs: [0],
        clientServers: nodes.map(\.api), controllers: [], initialGroups: [])
    case .sharded:
      var nodes: [Node] = []
      let controllerIndices = [0, 1, 2]
      let controllers = controllerIndices.map(api)
      let controllerPeers = controllerIndices.map(peer).joined(separator: ",")
      for i in controllerIndices {
        nodes.append(
          Node(
            name: "c\(i)", role: .controller, api: api(i), peer: peer(i),
            arguments: [
              "--controller", "-a", api(i), "-p", peer(i), "--peers", controllerPeers, "--shards",
              "\(shardCount)",
            ]))
      }
      var raftGroups = [controllerIndices]
      var ids: [GroupID?] = [nil]
      for gid in GroupID(1)...3 {
        let members = (0..<3).map { 3 * Int(gid) + $0 }
        let peers = members.map(peer).joined(separator: ",")
        for (k, i) in members.enumerated() {
          nodes.append(
            Node(
              name: "g\(gid)n\(k)", role: .member(group: gid), api: api(i), peer: peer(i),
              arguments: [
                "-a", api(i), "-p", peer(i), "--peers", peers, "--group", "\(gid)", "--controllers",
                controllers.joined(separator: ","),
              ]))
        }
        raftGroups.append(members)
        ids.append(gid)
      }
      for k in 0..<2 {
        let i = 12 + k
        nodes.append(
          Node(
            name: "r\(k)", role: .router, api: api(i), peer: nil,
            arguments: ["--router", "-a", api(i), "--controllers", controllers.joined(separator: ",")]))
      }
      return NemesisTopology(
        shape: shape, nodes: nodes, raftGroups: raftGroups, raftGroupIDs: ids,
        clientServers: [api(12), api(13)], controllers: controllers, initialGroups: [1, 2])
    }
  }

  /// The members' API addresses of replica group `gid`.
  func members(of gid: GroupID) -> [String] {
    nodes.filter { $0.role == .member(group: gid) }.map(\.api)
  }

  /// The Raft groups that hold keys: (replica group, node indices).
  var keyGroups: [(gid: GroupID, nodes: [Int])] {
    zip(raftGroupIDs, raftGroups).compactMap { gid, nodes in gid.map { ($0, nodes) } }
  }

  func node(withPeer peer: String) -> Int? { nodes.firstIndex { $0.peer == peer } }
}
