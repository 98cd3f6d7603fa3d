/// The name of a Raft member: its peer address (`host:port`).
///
/// Nodes are named by peer address everywhere (membership, `leader`, `dropped`), so the core
/// carries the same string the operator sees. Ordering is by the string, which is what every
/// deterministic walk over peers uses.
public struct NodeID: Hashable, Comparable, Sendable, CustomStringConvertible,
  ExpressibleByStringLiteral
{
  public let rawValue: String

  public init(_ rawValue: String) { self.rawValue = rawValue }
  public init(stringLiteral value: String) { self.rawValue = value }

  public var description: String { rawValue }

  public static func < (lhs: NodeID, rhs: NodeID) -> Bool { lhs.rawValue < rhs.rawValue }
}
