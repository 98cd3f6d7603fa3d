import Foundation
import TOMLKit

/// Turns a parsed TOML table into a `ClusterFile`, checking every field and naming the line
/// of the first problem. TOMLKit keeps no positions for values, so the reader finds lines in
/// the text itself: the n-th `[[section]]` header, then the `key =` line under it.
struct ClusterFileReader {
  private let lines: [Substring]
  private let path: String
  /// Header lines (1-based) by header name, in order; `group.node` headers by the index of
  /// the `[[group]]` they follow.
  private var headers: [String: [Int]] = [:]
  private var nodeHeaders: [Int: [Int]] = [:]

  init(text: String, path: String) {
    self.path = path
    lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    var groupIndex = -1
    for (offset, line) in lines.enumerated() {
      let trimmed = line.trimmingCharacters(in: .whitespaces)
      guard trimmed.hasPrefix("[") else { continue }
      let name =
        trimmed.trimmingCharacters(in: CharacterSet(charactersIn: "[] "))
        .split(separator: "#").first.map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "[] ")) }
        ?? ""
      if name == "group" { groupIndex += 1 }
      if name == "group.node" {
        nodeHeaders[groupIndex, default: []].append(offset + 1)
      } else {
        headers[name, default: []].append(offset + 1)
      }
    }
  }

  /// Where a field lives: a top-level key, or a key of one occurrence of a section.
  enum Place {
    case top
    case section(String, index: Int)
    case node(group: Int, index: Int)
  }

  func line(of key: String?, in place: Place) -> Int? {
    let start: Int
    switch place {
    case .top: start = 1
    case .section(let name, let index):
      guard let header = headers[name]?[safe: index] else { return nil }
      start = header
    case .node(let group, let index):
      guard let header = nodeHeaders[group]?[safe: index] else { return nil }
      start = header
    }
    guard let key else { return start }
    var number = start + (start == 1 && place.isTop ? 0 : 1)
    while number <= lines.count {
      let text = lines[number - 1].trimmingCharacters(in: .whitespaces)
      if text.hasPrefix("[") { break }
      if text.hasPrefix(key), text.dropFirst(key.count).trimmingCharacters(in: .whitespaces).hasPrefix("=") {
        return number
      }
      number += 1
    }
    return start
  }

  func invalid(_ field: String, _ place: Place, key: String?, _ message: String) -> ClusterFileError {
    .invalid(path: path, line: line(of: key, in: place), field: field, message: message)
  }

  // MARK: - Reading

  mutating func read(_ table: TOMLTable, directory: String) throws(ClusterFileError) -> ClusterFile {
    try onlyKnownKeys(
      table, ["name", "shards", "data", "timing", "controller", "group", "router", "tls"], "", .top)
    guard let name = table["name"]?.string, !name.isEmpty else {
      throw invalid("name", .top, key: "name", "required: the cluster's name (a non-empty string)")
    }
    var shards = 64
    if let value = table["shards"] {
      guard let count = value.int, (1...65_536).contains(count) else {
        throw invalid("shards", .top, key: "shards", "must be a whole number in 1...65536")
      }
      shards = count
    }
    var data = "kvd-data/\(name)"
    if let value = table["data"] {
      guard let text = value.string, !text.isEmpty else {
        throw invalid("data", .top, key: "data", "must be a directory path (a non-empty string)")
      }
      data = text
    }
    func absolute(_ path: String) -> String {
      path.hasPrefix("/")
        ? path : URL(fileURLWithPath: directory).appendingPathComponent(path).standardizedFileURL.path
    }
    let dataDirectory = absolute(data)
    var timing = ClusterFile.Timing()
    if let value = table["timing"] {
      guard let section = value.table else { throw invalid("timing", .top, key: "timing", "must be a table") }
      try onlyKnownKeys(
        section, ["heartbeat_ms", "election_ms", "failure_ms"], "timing.", .section("timing", index: 0))
      func milliseconds(_ key: String) throws(ClusterFileError) -> Int? {
        guard let value = section[key] else { return nil }
        guard let number = value.int, number > 0 else {
          throw invalid(
            "timing.\(key)", .section("timing", index: 0), key: key,
            "must be a positive number of milliseconds")
        }
        return number
      }
      timing = ClusterFile.Timing(
        heartbeatMs: try milliseconds("heartbeat_ms"), electionMs: try milliseconds("election_ms"),
        failureMs: try milliseconds("failure_ms"))
    }

    var tls: ClusterFile.TLS?
    if let value = table["tls"] {
      guard let section = value.table else { throw invalid("tls", .top, key: "tls", "must be a table") }
      let place = Place.section("tls", index: 0)
      try onlyKnownKeys(section, ["ca", "cert", "key"], "tls.", place)
      func file(_ key: String) throws(ClusterFileError) -> String {
        guard let text = section[key]?.string, !text.isEmpty else {
          throw invalid(
            "tls.\(key)", place, key: section[key] == nil ? nil : key,
            "required: a PEM file path (relative paths follow this file)")
        }
        return absolute(text)
      }
      tls = ClusterFile.TLS(ca: try file("ca"), cert: try file("cert"), key: try file("key"))
    }

    let controllerTables = try arrayOfTables(table, "controller", required: true)
    var controllers: [ClusterFile.Node] = []
    for (index, entry) in controllerTables.enumerated() {
      controllers.append(
        try node(entry, "controller[\(index + 1)]", .section("controller", index: index), router: false))
    }
    var groups: [ClusterFile.Group] = []
    for (index, entry) in try arrayOfTables(table, "group", required: true).enumerated() {
      let place = Place.section("group", index: index)
      try onlyKnownKeys(entry, ["id", "node"], "group[\(index + 1)].", place)
      guard let id = entry["id"]?.int, id > 0 else {
        throw invalid(
          "group[\(index + 1)].id", place, key: "id", "required: a group id > 0 (0 means unassigned)")
      }
      guard !groups.contains(where: { $0.id == UInt64(id) }) else {
        throw invalid("group[\(index + 1)].id", place, key: "id", "group \(id) is described twice")
      }
      guard let nodeArray = entry["node"]?.array, !nodeArray.isEmpty else {
        throw invalid(
          "group[\(index + 1)].node", place, key: nil, "group \(id) needs at least one [[group.node]]")
      }
      var nodes: [ClusterFile.Node] = []
      for (nodeIndex, value) in nodeArray.enumerated() {
        let field = "group[\(index + 1)].node[\(nodeIndex + 1)]"
        let nodePlace = Place.node(group: index, index: nodeIndex)
        guard let nodeTable = value.table else {
          throw invalid(field, nodePlace, key: nil, "must be a table")
        }
        nodes.append(try node(nodeTable, field, nodePlace, router: false))
      }
      groups.append(ClusterFile.Group(id: UInt64(id), nodes: nodes))
    }
    var routers: [ClusterFile.Node] = []
    for (index, entry) in try arrayOfTables(table, "router", required: false).enumerated() {
      routers.append(try node(entry, "router[\(index + 1)]", .section("router", index: index), router: true))
    }
    let file = ClusterFile(
      name: name, shards: shards, dataDirectory: dataDirectory, timing: timing, controllers: controllers,
      groups: groups, routers: routers, tls: tls)
    try checkUnique(file)
    return file
  }

  private func arrayOfTables(
    _ table: TOMLTable, _ key: String, required: Bool
  ) throws(ClusterFileError) -> [TOMLTable] {
    guard let value = table[key] else {
      if required { throw invalid(key, .top, key: nil, "required: at least one [[\(key)]] table") }
      return []
    }
    guard let array = value.array else {
      throw invalid(key, .top, key: key, "must be an array of tables ([[\(key)]])")
    }
    var tables: [TOMLTable] = []
    for (index, element) in array.enumerated() {
      guard let entry = element.table else {
        throw invalid("\(key)[\(index + 1)]", .top, key: key, "must be a table")
      }
      tables.append(entry)
    }
    if required && tables.isEmpty {
      throw invalid(key, .top, key: key, "required: at least one [[\(key)]] table")
    }
    return tables
  }

  private func node(
    _ table: TOMLTable, _ field: String, _ place: Place, router: Bool
  ) throws(ClusterFileError) -> ClusterFile.Node {
    try onlyKnownKeys(
      table, router ? ["name", "api", "resp", "metrics"] : ["name", "api", "peer", "metrics"], field + ".",
      place)
    guard let name = table["name"]?.string, !name.isEmpty, !name.contains("/") else {
      throw invalid("\(field).name", place, key: "name", "required: the node's name (no '/')")
    }
    func address(_ key: String, required: Bool) throws(ClusterFileError) -> String? {
      guard let value = table[key] else {
        if required { throw invalid("\(field).\(key)", place, key: nil, "required: a HOST:PORT address") }
        return nil
      }
      guard let text = value.string, Self.isHostPort(text) else {
        throw invalid("\(field).\(key)", place, key: key, "must be HOST:PORT with a port in 1...65535")
      }
      return text
    }
    let api = try address("api", required: true) ?? ""
    let peer = router ? "" : try address("peer", required: true) ?? ""
    return ClusterFile.Node(
      name: name, api: api, peer: peer, metrics: try address("metrics", required: false),
      resp: router ? try address("resp", required: false) : nil)
  }

  private func onlyKnownKeys(
    _ table: TOMLTable, _ known: Set<String>, _ prefix: String, _ place: Place
  ) throws(ClusterFileError) {
    for key in table.keys.sorted() where !known.contains(key) {
      throw invalid(
        prefix + key, place, key: key,
        "unknown field (expected one of: \(known.sorted().joined(separator: ", ")))")
    }
  }

  private func checkUnique(_ file: ClusterFile) throws(ClusterFileError) {
    var names: Set<String> = []
    var addresses: [String: String] = [:]
    for (node, _) in file.nodes {
      guard names.insert(node.name).inserted else {
        throw .invalid(
          path: path, line: firstLine(containing: "\"\(node.name)\""), field: "name",
          message: "node name \(node.name) is used twice")
      }
      for address in [node.api, node.peer, node.metrics ?? "", node.resp ?? ""] where !address.isEmpty {
        if let other = addresses[address] {
          throw .invalid(
            path: path, line: firstLine(containing: "\"\(address)\""), field: "\(node.name)",
            message: "address \(address) is also used by \(other)")
        }
        addresses[address] = node.name
      }
    }
  }

  private func firstLine(containing text: String) -> Int? {
    lines.firstIndex { $0.contains(text) }.map { $0 + 1 }
  }

  static func isHostPort(_ text: String) -> Bool {
    guard let colon = text.lastIndex(of: ":"), colon != text.startIndex else { return false }
    guard let port = Int(text[text.index(after: colon)...]), (1...65_535).contains(port) else { return false }
    return !text[..<colon].contains(where: \.isWhitespace)
  }
}

extension ClusterFileReader.Place {
  fileprivate var isTop: Bool { if case .top = self { true } else { false } }
}

extension Array {
  fileprivate subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}
