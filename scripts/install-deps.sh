#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build and test ShardKV: the RocksDB and zstd
# development packages (and pkg-config, which SwiftPM uses to find them), and redis-tools
# (redis-cli, redis-benchmark) for the router's RESP tests, iproute2 for the nemesis, openssl for
# the TLS tests, and Python's prometheus_client for the metrics test. Does nothing when
# they are present. Needs root (or sudo) only when something is missing.
set -euo pipefail

missing=()
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if command -v pkg-config >/dev/null 2>&1; then
  pkg-config --exists rocksdb || missing+=(librocksdb-dev)
  pkg-config --exists libzstd || missing+=(libzstd-dev)
else
  missing+=(librocksdb-dev libzstd-dev)
fi
# The router's process tests drive it with the real redis-cli and redis-benchmark.
command -v redis-benchmark >/dev/null 2>&1 || missing+=(redis-tools)
# The nemesis puts each node in its own network namespace (ip); the TLS tests make their
# certificates with openssl (scripts/make-certs.sh).
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
for extra in "$@"; do
  dpkg -s "$extra" >/dev/null 2>&1 || missing+=("$extra")
done

# The metrics process test parses /metrics with the Prometheus project's own parser.
if ! python3 -c "import prometheus_client" >/dev/null 2>&1; then
  echo "install-deps: installing prometheus_client (PyPI)" >&2
  python3 -m pip install -q prometheus_client >/dev/null 2>&1 \
    || python3 -m pip install -q --break-system-packages prometheus_client >/dev/null
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "install-deps: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
