#!/usr/bin/env bash
# The README's run command. Until the replicated KV group exists, the main job is the Raft
# cluster benchmark: three RaftNodes on RocksDB (fsync) over loopback TCP.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product kvbench
.build/release/kvbench raft --seconds 3 --clients 1,16,128
