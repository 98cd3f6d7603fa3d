/// The router tier: one address for the whole cluster. It keeps the latest configuration and a
/// leader cache per group, forwards each client operation to the leader of the group owning
/// the key's shard (carrying the client's own session), fronts the controller's admin
/// operations and JOIN_CLUSTER, and speaks RESP2 so that Redis clients work against the
/// cluster.
public enum Router {
  public static let name = "router"
}
