// swift-tools-version: 6.0
import PackageDescription

let package = Package(
  name: "ShardKV",
  platforms: [.macOS(.v15)],
  products: [
    .executable(name: "kvd", targets: ["kvd"]),
    .executable(name: "kvctl", targets: ["kvctl"]),
    .executable(name: "kvbench", targets: ["kvbench"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
    .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
    .package(url: "https://github.com/LebJe/TOMLKit.git", from: "0.6.0"),
    .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
    .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
  ],
  targets: [
    // C module maps over the system headers (librocksdb-dev, libzstd-dev).
    .systemLibrary(
      name: "CRocksDB",
      pkgConfig: "rocksdb",
      providers: [.apt(["librocksdb-dev"])]
    ),
    .systemLibrary(
      name: "CZstd",
      pkgConfig: "libzstd",
      providers: [.apt(["libzstd-dev"])]
    ),
    .target(name: "Storage", dependencies: ["CRocksDB", "CZstd"]),
    // The one seeded random number generator: a leaf with no dependencies, so that both Wire
    // and the pure Raft core can use it (and re-export it).
    .target(name: "Seeded"),
    // No NIOSSL here: every fuzz target reaches Wire, and scripts/fuzz.sh would compile
    // BoringSSL again, instrumented. TLS is WireTLS, plugged into Wire's configurations.
    .target(
      name: "Wire",
      dependencies: [
        "Seeded",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        .product(name: "Logging", package: "swift-log"),
      ]
    ),
    // ServerTLS and ClientTLS (swift-nio-ssl) for RPCServer and RPCClient: kvd, kvctl and
    // WireTests depend on it, no library and no fuzz target does.
    .target(
      name: "WireTLS",
      dependencies: [
        "Wire",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
        .product(name: "NIOTLS", package: "swift-nio"),
      ]
    ),
    .target(
      name: "Raft",
      dependencies: [
        "Seeded", "Storage", "Wire",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "CoreMetrics", package: "swift-metrics"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ]
    ),
    .target(
      name: "ShardCtrler",
      dependencies: [
        "Raft", "Storage", "Wire",
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ]
    ),
    .target(
      name: "ShardKV",
      dependencies: [
        "Raft", "ShardCtrler", "Storage", "Wire",
        .product(name: "CoreMetrics", package: "swift-metrics"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ]
    ),
    // The Redis protocol (RESP2) codec: pure, standard library only (the fuzz target builds it
    // alone).
    .target(name: "RESP"),
    .target(
      name: "Router",
      dependencies: [
        "RESP", "ShardKV", "ShardCtrler", "Raft", "Wire",
        .product(name: "CoreMetrics", package: "swift-metrics"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        .product(name: "Logging", package: "swift-log"),
      ]
    ),
    // Linearizability checking of recorded key-value histories: pure, standard library only
    // (the in-process tests and `kvbench check`/`kvbench nemesis` share it).
    .target(name: "Linearizability"),
    // Cluster files (TOML): parsing, checking, and the kvd flags each node gets.
    .target(name: "ClusterConfig", dependencies: [.product(name: "TOMLKit", package: "TOMLKit")]),
    .executableTarget(
      name: "kvd",
      dependencies: [
        "Router", "ShardKV", "ShardCtrler", "Raft", "Wire", "WireTLS", "Storage", "ClusterConfig",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "CoreMetrics", package: "swift-metrics"),
        .product(name: "Prometheus", package: "swift-prometheus"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
        .product(name: "Logging", package: "swift-log"),
      ],
      path: "Sources/Tools/kvd"
    ),
    .executableTarget(
      name: "kvctl",
      dependencies: [
        "Router", "ShardKV", "ShardCtrler", "Raft", "Wire", "WireTLS", "ClusterConfig",
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ],
      path: "Sources/Tools/kvctl"
    ),
    .executableTarget(
      name: "kvbench",
      dependencies: [
        "Router", "ShardKV", "ShardCtrler", "Raft", "Storage", "Wire", "Linearizability",
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Histogram", package: "hdrhistogram-swift"),
      ],
      path: "Sources/Tools/kvbench"
    ),
    // libFuzzer target for the RESP request parser: scripts/fuzz.sh builds it with
    // `-sanitize=fuzzer,address -DFUZZING`; the ordinary build makes a replayer of fuzz inputs.
    .executableTarget(name: "RESPFuzz", dependencies: ["RESP"], path: "Sources/Fuzz/RESPFuzz"),
    // libFuzzer targets for hostile peer input, built the same way: the Raft codec, validator
    // and core step (RaftFuzz); the RPC frame decoder (FrameFuzz). Like HandlerFuzz they reach
    // Wire but not WireTLS, so their instrumented builds do not compile BoringSSL.
    .executableTarget(name: "RaftFuzz", dependencies: ["Raft"], path: "Sources/Fuzz/RaftFuzz"),
    // Every protobuf request handler of a KV group's and a controller's API and peer addresses.
    .executableTarget(
      name: "HandlerFuzz",
      dependencies: [
        "ShardKV", "ShardCtrler", "Raft", "Router", "Storage", "Wire",
        .product(name: "Logging", package: "swift-log"),
      ],
      path: "Sources/Fuzz/HandlerFuzz"),
    .executableTarget(
      name: "FrameFuzz",
      dependencies: ["Wire", .product(name: "NIOCore", package: "swift-nio")],
      path: "Sources/Fuzz/FrameFuzz"),
    .testTarget(name: "SeededTests", dependencies: ["Seeded"]),
    .testTarget(name: "RESPTests", dependencies: ["RESP"]),
    .testTarget(name: "ClusterConfigTests", dependencies: ["ClusterConfig"]),
    .testTarget(name: "StorageTests", dependencies: ["Storage"]),
    // WireTLS too, for the TLS tests: a test target is no fuzz target, so linking NIOSSL costs nothing.
    .testTarget(name: "WireTests", dependencies: ["Wire", "WireTLS"]),
    .testTarget(name: "RaftTests", dependencies: ["Raft"]),
    .testTarget(name: "RaftRuntimeTests", dependencies: ["Raft", "Storage", "Wire"]),
    .testTarget(name: "ShardCtrlerTests", dependencies: ["ShardCtrler", "Raft", "Storage", "Wire"]),
    // In-process clusters of groups, controllers and routers.
    .testTarget(
      name: "ShardKVTests", dependencies: ["ShardKV", "Router", "Raft", "Storage", "Wire", "Linearizability"]),
    .testTarget(name: "LinearizabilityTests", dependencies: ["Linearizability"]),
    .testTarget(
      name: "RouterTests", dependencies: ["Router", "ShardKV", "ShardCtrler", "Raft", "Storage", "Wire"]),
    // Real kvd processes on loopback, driven through kvctl (and kvbench); depends on the tools so that
    // `swift build --build-tests` builds them.
    // kvbench for KVBenchProcessTests; Raft, Storage and Wire for the forged peer of HostilePeerProcessTests (real frames).
    .testTarget(
      name: "ProcessTests",
      dependencies: [
        "kvd", "kvctl", "kvbench", "Raft", "Seeded", "Storage", "Wire",
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ]),
  ],
  swiftLanguageModes: [.v6]
)
