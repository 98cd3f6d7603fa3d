#!/usr/bin/env bash
# The KV benchmark of BENCHMARKS.md ("KV"), in one run on this machine:
#   1. builds kvd, kvctl and kvbench in release mode;
#   2. starts a three-node kvd group on loopback (fresh temporary data directories; kvd always
#      fsyncs), runs `kvbench kv` at 1, 16 and 128 clients (16 B keys, 128 B values), stops it;
#   3. installs Debian's etcd-server and etcd-client if etcd or etcdctl is missing, starts three
#      etcd members on loopback (fresh data directories; etcd fsyncs by default) and runs
#      `etcdctl check perf --load=l`, then stops them;
#   4. starts a fresh kvd group and runs `kvbench kv` with check perf's load shape (same
#      clients, key and value sizes, rate cap and duration; puts only), and prints the ratio.
# Every process it starts is stopped on exit, also on failure or Ctrl-C.
#
# Knobs (environment): KV_SECONDS seconds per phase in step 2 (default 10), KV_CLIENTS
# (default 1,16,128), ETCD_LOAD check perf's workload s|m|l|xl (default l), BASE_PORT (default
# 27100: kvd uses BASE_PORT..+2 and +100..+102, etcd +200..+202 and +300..+302; keep them
# below the kernel's ephemeral range, where the benchmark's own client sockets could take them).
set -euo pipefail
cd "$(dirname "$0")/.."

kv_seconds=${KV_SECONDS:-10}
kv_clients=${KV_CLIENTS:-1,16,128}
load=${ETCD_LOAD:-l}
base=${BASE_PORT:-27100}

# etcdctl check perf's workloads (etcdctl/ctlv3/command/check.go): every one writes 60 s of
# puts, keys "/etcdctl-check-perf/" + 256 bytes (276 B), values 1024 zero bytes, from `clients`
# clients, paced by a token bucket of `rate` puts/s; it passes at > 90% of `rate`.
case "$load" in
  s) etcd_clients=50 etcd_rate=150 ;;
  m) etcd_clients=200 etcd_rate=1000 ;;
  l) etcd_clients=500 etcd_rate=8000 ;;
  xl) etcd_clients=1000 etcd_rate=15000 ;;
  *) echo "bench-kv: ETCD_LOAD must be s, m, l or xl" >&2; exit 2 ;;
esac
etcd_key=276 etcd_value=1024 etcd_seconds=60

bin=.build/release
work=$(mktemp -d -t shardkv-bench-kv.XXXXXX)
bench_name=bench-kv
# shellcheck source=scripts/lib/bench-common.sh
source scripts/lib/bench-common.sh
bench_traps
bench_check_ports "$base" 0 1 2 100 101 102 200 201 202 300 301 302

section "Machine"
bench_machine disk
echo "load average before the run: $(cut -d " " -f 1-3 /proc/loadavg)"

section "Build (release)"
bench_build_release

kvd_servers="$(kvd_api 0),$(kvd_api 1),$(kvd_api 2)"

section "ShardKV: kvbench kv at $kv_clients clients, 16 B keys, 128 B values"
start_group shardkv
run "$bin/kvbench" kv --servers "$kvd_servers" --clients "$kv_clients" --key-size 16 --value-size 128 \
  --seconds "$kv_seconds"
stop_group

section "etcd: install if missing"
bench_install_etcd

section "etcd: three members, etcdctl check perf --load=$load"
start_etcd
etcd_endpoints=$(etcd_endpoints)
# It exits non-zero when the cluster fails its thresholds: that is a figure, not an error here.
# Its progress bar is left out of the output.
run env ETCDCTL_API=3 etcdctl --endpoints "$etcd_endpoints" check perf --load="$load" \
  2>&1 | tee "$work/etcd-check-perf.out" | tr '\r' '\n' | grep -Ev '^ *[0-9]+ / [0-9]+ |Boo*m|^ *$' || true
etcd_writes=$(grep -o '[0-9]* writes/s' "$work/etcd-check-perf.out" | awk '{print $1}' | tail -n 1)
stop_group
if [[ -z $etcd_writes ]]; then
  echo "bench-kv: etcdctl check perf printed no throughput" >&2
  exit 1
fi

section "ShardKV: check perf's load shape ($etcd_clients clients, $etcd_key B keys," \
  "$etcd_value B values, puts capped at $etcd_rate/s, $etcd_seconds s)"
start_group shardkv-etcd-shape
run "$bin/kvbench" kv --servers "$kvd_servers" --clients "$etcd_clients" --key-size "$etcd_key" \
  --value-size "$etcd_value" --rate "$etcd_rate" --seconds "$etcd_seconds" --ops put \
  --target spread | tee "$work/kvbench-etcd-shape.out"
stop_group
shardkv_writes=$(awk '$1 == "put" {print $3}' "$work/kvbench-etcd-shape.out" | tail -n 1)

section "Comparison (etcdctl check perf --load=$load shape)"
echo "etcd    : $etcd_writes writes/s (etcdctl check perf's own figure)"
echo "ShardKV : $shardkv_writes writes/s (kvbench kv)"
awk -v s="$shardkv_writes" -v e="$etcd_writes" \
  'BEGIN { printf "ratio ShardKV / etcd: %.2f\n", (e > 0 ? s / e : 0) }'
