import Wire

extension ShardConfiguration {
  /// The wire form, as stored, replicated and sent to clients.
  public var message: Shardkv_Ctrler_Config {
    var config = Shardkv_Ctrler_Config()
    config.num = num
    config.shards = shards
    config.groups = groups.mapValues { members in
      var list = Shardkv_Ctrler_Members()
      list.addresses = members
      return list
    }
    return config
  }

  public init(_ message: Shardkv_Ctrler_Config) {
    self.init(num: message.num, shards: message.shards, groups: message.groups.mapValues(\.addresses))
  }
}

extension Shardkv_Ctrler_Members {
  public init(_ addresses: [String]) {
    self.init()
    self.addresses = addresses
  }
}
