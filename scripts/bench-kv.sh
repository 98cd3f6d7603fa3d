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
pids=()

stop_pids() {
  local pid
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if ((${#pids[@]})); then stop_pids "${pids[@]}"; fi
  if ((status != 0)); then
    for log in "$work"/*.log; do
      [[ -s $log ]] || continue
      echo "--- last lines of $log" >&2
      tail -n 20 "$log" | cut -c 1-300 >&2
    done
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
for offset in 0 1 2 100 101 102 200 201 202 300 301 302; do
  if port_busy $((base + offset)); then
    echo "bench-kv: port $((base + offset)) is in use; set BASE_PORT to a free range" >&2
    exit 1
  fi
done

section() { printf '\n== %s\n' "$*"; }
# Prints a command, then runs it.
run() { printf '+ %s\n' "$*"; "$@"; }

section "Machine"
echo "nproc: $(nproc)"
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -n 1)"
echo "memory: $(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
disk=$(df --output=source "$work" | tail -n 1)
echo "disk under $work: $disk (rotational flag: $(cat "/sys/block/$(basename "$disk")/queue/rotational" 2>/dev/null || echo unknown))"
echo "fsync probe: $(dd if=/dev/zero of="$work/fsync-probe" bs=4k count=500 oflag=dsync 2>&1 | tail -n 1 | sed 's/.*copied, //') for 500 synchronous 4 KiB writes"
rm -f "$work/fsync-probe"
echo "swift: $(swift --version 2>&1 | head -n 1)"
echo "load average before the run: $(cut -d " " -f 1-3 /proc/loadavg)"

section "Build (release)"
for product in kvd kvctl kvbench; do swift build -c release --product "$product"; done

kvd_api() { echo "127.0.0.1:$((base + $1))"; }
kvd_peer() { echo "127.0.0.1:$((base + 100 + $1))"; }
kvd_servers="$(kvd_api 0),$(kvd_api 1),$(kvd_api 2)"
group=()

# Starts a three-node kvd group in $work/$1 and waits for a leader.
start_group() {
  local name=$1 peers i
  peers="$(kvd_peer 0),$(kvd_peer 1),$(kvd_peer 2)"
  group=()
  for i in 0 1 2; do
    "$bin/kvd" -a "$(kvd_api $i)" -p "$(kvd_peer $i)" --peers "$peers" \
      --data "$work/$name/node$i" --log-level warning 2>>"$work/$name-node$i.log" &
    pids+=($!)
    group+=($!)
  done
  for _ in $(seq 1 100); do
    for i in "${group[@]}"; do
      kill -0 "$i" 2>/dev/null || { echo "bench-kv: a kvd node exited at start" >&2; exit 1; }
    done
    if "$bin/kvctl" -a "$(kvd_api 0)" --timeout 1 leader >/dev/null 2>&1; then
      echo "kvd group up (data in $work/$name, fsync on every Raft write)"
      return
    fi
    sleep 0.1
  done
  echo "bench-kv: the kvd group elected no leader within 10 s" >&2
  exit 1
}

stop_group() {
  stop_pids "${group[@]}"
  local remaining=() pid member
  for pid in "${pids[@]}"; do
    member=0
    for g in "${group[@]}"; do [[ $pid == "$g" ]] && member=1; done
    ((member)) || remaining+=("$pid")
  done
  pids=("${remaining[@]+"${remaining[@]}"}")
  group=()
}

section "ShardKV: kvbench kv at $kv_clients clients, 16 B keys, 128 B values"
start_group shardkv
run "$bin/kvbench" kv --servers "$kvd_servers" --clients "$kv_clients" --key-size 16 --value-size 128 \
  --seconds "$kv_seconds"
stop_group

section "etcd: install if missing"
if command -v etcd >/dev/null && command -v etcdctl >/dev/null; then
  echo "present: $(etcd --version | head -n 1)"
else
  as_root() { if ((EUID == 0)); then "$@"; else sudo "$@"; fi; }
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y etcd-server etcd-client; then
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y etcd-server etcd-client
  fi
  echo "installed: $(etcd --version | head -n 1)"
fi
echo "$(etcdctl version | head -n 1)"

section "etcd: three members, etcdctl check perf --load=$load"
etcd_client() { echo "http://127.0.0.1:$((base + 200 + $1))"; }
etcd_peer() { echo "http://127.0.0.1:$((base + 300 + $1))"; }
cluster="m0=$(etcd_peer 0),m1=$(etcd_peer 1),m2=$(etcd_peer 2)"
etcd_endpoints="$(etcd_client 0),$(etcd_client 1),$(etcd_client 2)"
etcd_group=()
for i in 0 1 2; do
  etcd --name "m$i" --data-dir "$work/etcd/m$i" \
    --listen-client-urls "$(etcd_client $i)" --advertise-client-urls "$(etcd_client $i)" \
    --listen-peer-urls "$(etcd_peer $i)" --initial-advertise-peer-urls "$(etcd_peer $i)" \
    --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token bench-kv \
    --logger zap --log-level error 2>>"$work/etcd-m$i.log" &
  pids+=($!)
  etcd_group+=($!)
done
healthy=0
for _ in $(seq 1 100); do
  for i in "${etcd_group[@]}"; do
    kill -0 "$i" 2>/dev/null || { echo "bench-kv: an etcd member exited at start" >&2; exit 1; }
  done
  if ETCDCTL_API=3 etcdctl --endpoints "$etcd_endpoints" endpoint health >/dev/null 2>&1; then
    healthy=1
    break
  fi
  sleep 0.1
done
((healthy)) || { echo "bench-kv: the etcd cluster did not become healthy within 10 s" >&2; exit 1; }
echo "etcd cluster up (data in $work/etcd)"
# It exits non-zero when the cluster fails its thresholds: that is a figure, not an error here.
# Its progress bar is left out of the output.
run env ETCDCTL_API=3 etcdctl --endpoints "$etcd_endpoints" check perf --load="$load" \
  2>&1 | tee "$work/etcd-check-perf.out" | tr '\r' '\n' | grep -Ev '^ *[0-9]+ / [0-9]+ |Boo*m|^ *$' || true
etcd_writes=$(grep -o '[0-9]* writes/s' "$work/etcd-check-perf.out" | awk '{print $1}' | tail -n 1)
group=("${etcd_group[@]}")
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
