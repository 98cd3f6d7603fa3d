import ShardCtrler
import Wire

/// What a client knows of where shards live: the latest configuration it has read from the
/// shard controller, and the controller's addresses (given, or learned from WRONG_GROUP
/// replies). Clerks route each key by it and refresh it when a group says it is stale.
///
/// It is only a hint: the group that applies an operation decides whether it owns the key's
/// shard, so a stale routing costs a redirect, never correctness.
public actor ShardRouting {
  private let transport: any Transport
  private var controllers: [String]
  private var clerk: ControllerClerk?
  public private(set) var configuration: ShardConfiguration?
  /// How long one refresh may take.
  private let refreshDeadline: Duration

  public init(controllers: [String] = [], transport: any Transport, refreshDeadline: Duration = .seconds(2)) {
    self.controllers = controllers
    self.transport = transport
    self.refreshDeadline = refreshDeadline
  }

  /// The API addresses of the group owning `key`'s shard in the latest configuration known,
  /// or nil when unknown (no configuration yet, or the shard unassigned).
  public func servers(for key: [UInt8]) -> [String]? {
    guard let configuration, let shard = Self.shard(of: key, in: configuration) else { return nil }
    let owner = configuration.shards[shard]
    guard owner != 0, let members = configuration.groups[owner], !members.isEmpty else { return nil }
    return members
  }

  /// `key`'s shard, its owner and the owner's API addresses in the latest configuration known
  /// (owner 0 and no servers while the shard is unassigned); nil before any configuration.
  public func owner(of key: [UInt8]) -> (shard: Int, group: GroupID, servers: [String])? {
    guard let configuration, let shard = Self.shard(of: key, in: configuration) else { return nil }
    let owner = configuration.shards[shard]
    return (shard, owner, configuration.groups[owner] ?? [])
  }

  /// The controller's addresses as known.
  public var controllerAddresses: [String] { controllers }

  /// Whether the controller is known but its configuration not read yet.
  public var needsFirstRefresh: Bool { configuration == nil && !controllers.isEmpty && !refreshedOnce }
  private var refreshedOnce = false

  /// Remembers the controller's addresses (from a reply), if none were known.
  public func learn(controllers addresses: [String]) {
    guard controllers.isEmpty, !addresses.isEmpty else { return }
    controllers = addresses
  }

  /// Reads the latest configuration from the controller; returns it, or nil when the
  /// controller is unknown or does not answer in time. Concurrent callers share one query (a
  /// router refreshes on behalf of many requests at once).
  @discardableResult
  public func refresh() async -> ShardConfiguration? {
    guard !controllers.isEmpty else { return nil }
    refreshedOnce = true
    if let inFlight { return await inFlight.value }
    let clerk =
      self.clerk ?? ControllerClerk(servers: controllers, transport: transport, deadline: refreshDeadline)
    self.clerk = clerk
    let query = Task { try? await clerk.query() }
    inFlight = query
    let latest = await query.value
    inFlight = nil
    if let latest, latest.num >= (configuration?.num ?? 0) { configuration = latest }
    return latest == nil ? nil : configuration
  }
  private var inFlight: Task<ShardConfiguration?, Never>?

  static func shard(of key: [UInt8], in configuration: ShardConfiguration) -> Int? {
    guard (1...65_536).contains(configuration.shardCount) else { return nil }
    return ShardMap(shardCount: configuration.shardCount).shard(of: key)
  }
}
