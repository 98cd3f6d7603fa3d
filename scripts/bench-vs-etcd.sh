#!/usr/bin/env bash
# ShardKV's Raft runtime against etcd on etcd's own benchmark tool (BENCHMARKS.md, "Raft runtime
# vs etcd's benchmark (issue 11)"), in one run on this machine:
#   1. builds kvd, kvctl and kvbench in release mode; installs Debian's etcd-server and
#      etcd-client if missing;
#   2. builds etcd's `benchmark` tool (tools/benchmark) from Debian's own etcd source package,
#      once, into .build-etcd/ (kept between runs, ignored by git): adds a deb-src entry that
#      mirrors /etc/apt/sources.list.d/debian.sources if there is none, `apt-get source etcd`,
#      then with golang-go and golang-etcd-server-dev builds it in GOPATH mode (GO111MODULE=off)
#      from a tree that overlays the source package's tools/benchmark on the packaged
#      /usr/share/gocode/src/go.etcd.io/etcd (every import is in /usr/share/gocode);
#   3. starts three etcd members on loopback and runs, for each client count of CLIENTS: puts
#      (`benchmark put`, 8 B keys, 256 B values, distinct sequential keys) and linearizable gets
#      (`benchmark range KEY --consistency=l`), every shape with min(clients, 100) connections,
#      all to the leader (--target-leader, as kvbench's clients go to the leader); stops them;
#   4. starts a three-node ShardKV group on loopback and runs the same shapes with `kvbench kv`
#      (--total, --connections: the same request counts, connections shared the same way; every
#      get is linearizable, by ReadIndex); stops it;
#   5. prints one table: workload | etcd ops/s, p50 | ShardKV ops/s, p50 | ratios, and the CPU
#      seconds each side spent on each shape (servers, load generator) with the machine's busy
#      share, for what bounds each figure.
# With PROFILE=1 it then runs ShardKV's put once more at each of PROFILE_CLIENTS, sampling the
# leader with `perf record -e cpu-clock -g`, and prints the top of `perf report` for each.
# Both systems fsync every write (etcd by default, kvd always). Every process it starts is
# stopped on exit, also on failure or Ctrl-C; the whole run is bounded by DEADLINE seconds.
#
# Knobs (environment): CLIENTS (default 1,256,1000), BENCH_TOTAL requests per shape with more
# than one client (default 100000, as etcd's performance guide), BENCH_TOTAL_1 requests per
# 1-client shape (default 10000), MAX_CONNS (100), PROFILE (0), PROFILE_CLIENTS (1,256),
# DEADLINE (3600), DATA_ROOT where data directories go ($TMPDIR or /tmp), BASE_PORT (24000:
# kvd API +0..2 and peer +100..102, etcd client +200..202 and peer +300..302; keep below the
# kernel's ephemeral range), SKIP_BUILD=1 to use the binaries already in BIN (default
# .build/release; BIN=.build/debug SKIP_BUILD=1 tries the script out without a release build,
# and its ShardKV figures then mean nothing).
set -euo pipefail
cd "$(dirname "$0")/.."

clients_list=${CLIENTS:-1,256,1000}
total_many=${BENCH_TOTAL:-100000}
total_one=${BENCH_TOTAL_1:-10000}
max_conns=${MAX_CONNS:-100}
profile=${PROFILE:-0}
profile_clients=${PROFILE_CLIENTS:-1,256}
deadline=${DEADLINE:-3600}
base=${BASE_PORT:-24000}
key_size=8
value_size=256

bin=${BIN:-.build/release}
etcd_build=$PWD/.build-etcd
work=$(mktemp -d "${DATA_ROOT:-${TMPDIR:-/tmp}}/shardkv-bench-vs-etcd.XXXXXX")
bench_name=bench-vs-etcd
bench_keep_logs=1
# shellcheck source=scripts/lib/bench-common.sh
source scripts/lib/bench-common.sh
bench_traps
bench_watchdog "$deadline"
bench_check_ports "$base" 0 1 2 100 101 102 200 201 202 300 301 302

IFS=, read -r -a counts <<<"$clients_list"
for c in "${counts[@]}"; do [[ $c =~ ^[1-9][0-9]*$ ]] || fail "CLIENTS must be positive numbers: $clients_list"; done
total_for() { if (($1 == 1)); then echo "$total_one"; else echo "$total_many"; fi; }
conns_for() { echo $(($1 < max_conns ? $1 : max_conns)); }

section "Machine"
bench_machine disk
uptime_before=$(uptime_line)
echo "uptime before: $uptime_before"

section "Build (release), etcd"
if [[ ${SKIP_BUILD:-0} == 1 ]]; then
  echo "not built (SKIP_BUILD=1): using the binaries in $bin"
else
  bench_build_release
fi
bench_install_etcd

section "etcd's benchmark tool, from Debian's etcd source package"
# Builds $etcd_build/bin/benchmark unless it is there.
build_etcd_benchmark() {
  local tool=$etcd_build/bin/benchmark
  if [[ -x $tool ]]; then
    echo "present: $tool (delete $etcd_build to rebuild)"
    return
  fi
  if ! command -v go >/dev/null || [[ ! -d /usr/share/gocode/src/go.etcd.io/etcd ]] ||
    ! command -v dpkg-source >/dev/null; then
    bench_apt_install golang-go golang-etcd-server-dev dpkg-dev
  fi
  mkdir -p "$etcd_build/source"
  if ! compgen -G "$etcd_build/source/etcd-*/tools/benchmark" >/dev/null; then
    if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ &&
      ! grep -qs '^deb-src' /etc/apt/sources.list; then
      [[ -f /etc/apt/sources.list.d/debian.sources ]] ||
        fail "no deb-src entry and no /etc/apt/sources.list.d/debian.sources to mirror"
      sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources |
        as_root tee /etc/apt/sources.list.d/debian-src.sources >/dev/null
      echo "added /etc/apt/sources.list.d/debian-src.sources (deb-src, mirroring debian.sources)"
      as_root apt-get update >/dev/null
    fi
    (cd "$etcd_build/source" && apt-get source etcd >"$work/apt-source.log" 2>&1) || {
      as_root apt-get update >/dev/null
      (cd "$etcd_build/source" && apt-get source etcd >"$work/apt-source.log" 2>&1) ||
        fail "apt-get source etcd failed (see $work/apt-source.log)"
    }
  fi
  local source
  source=$(compgen -G "$etcd_build/source/etcd-*/tools/benchmark" | head -n 1)
  [[ -n $source ]] || fail "the etcd source package has no tools/benchmark"
  echo "source: ${source%/tools/benchmark}"
  # GOPATH mode: go.etcd.io/etcd is the packaged tree (symbolic links), with the source
  # package's tools/benchmark laid over it; every other import comes from /usr/share/gocode.
  local gopath=$etcd_build/gopath
  rm -rf "$gopath"
  mkdir -p "$gopath/src/go.etcd.io" "$etcd_build/bin"
  cp -rs /usr/share/gocode/src/go.etcd.io/etcd "$gopath/src/go.etcd.io/etcd"
  rm -rf "$gopath/src/go.etcd.io/etcd/tools/benchmark"
  mkdir -p "$gopath/src/go.etcd.io/etcd/tools"
  cp -r "$source" "$gopath/src/go.etcd.io/etcd/tools/benchmark"
  (cd "$gopath/src/go.etcd.io/etcd/tools/benchmark" &&
    GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" GOFLAGS= GOCACHE="$etcd_build/cache" \
      go build -o "$tool" .) || fail "building etcd's benchmark tool failed"
  echo "built: $tool ($(go version))"
}
build_etcd_benchmark
etcd_benchmark=$etcd_build/bin/benchmark

# CPU seconds (user + system) a process has used so far; 0 once it is gone.
cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' \
    "/proc/$1/stat" 2>/dev/null || echo 0
}
servers_cpu() {
  local sum=0 pid
  for pid in "${group[@]}"; do sum=$(awk -v a="$sum" -v b="$(cpu_seconds "$pid")" 'BEGIN { print a + b }'); done
  echo "$sum"
}
# The machine's busy and total jiffies so far (every core, every process).
machine_ticks() { awk '/^cpu / { idle = $5 + $6; total = 0; for (i = 2; i <= NF; i++) total += $i; print total - idle, total }' /proc/stat; }

declare -A result
# Runs a load generator ($2...) for shape $1 (SYSTEM-OP-CLIENTS), its output into
# $work/$1.out; records wall time, CPU seconds of the servers and of the load generator, and
# the machine's busy share into result[$1,...]. With $profile_pid set, samples that process.
measure() {
  local shape=$1 before_cpu after_cpu start end busy0 total0 busy1 total1 perf_pid=
  shift
  before_cpu=$(servers_cpu)
  read -r busy0 total0 < <(machine_ticks)
  if [[ -n ${profile_pid:-} ]]; then
    perf record -e cpu-clock -g -F 499 -p "$profile_pid" -o "$work/$shape.perf.data" \
      >"$work/$shape.perf.log" 2>&1 &
    perf_pid=$!
    monitors+=("$perf_pid")
  fi
  start=$(now_ms)
  local TIMEFORMAT='%U %S'
  { time "$@" >"$work/$shape.out" 2>"$work/$shape.err"; } 2>"$work/$shape.time" ||
    { cat "$work/$shape.err" >&2; fail "$shape: the load generator failed"; }
  end=$(now_ms)
  if [[ -n $perf_pid ]]; then kill -INT "$perf_pid" 2>/dev/null || true; wait "$perf_pid" 2>/dev/null || true; fi
  after_cpu=$(servers_cpu)
  read -r busy1 total1 < <(machine_ticks)
  result[$shape,wall]=$(awk -v ms=$((end - start)) 'BEGIN { printf "%.1f", ms / 1000 }')
  result[$shape,server_cpu]=$(awk -v a="$before_cpu" -v b="$after_cpu" 'BEGIN { printf "%.1f", b - a }')
  result[$shape,load_cpu]=$(awk '{ printf "%.1f", $1 + $2 }' "$work/$shape.time")
  result[$shape,busy]=$(awk -v b=$((busy1 - busy0)) -v t=$((total1 - total0)) \
    'BEGIN { printf "%.0f%%", (t > 0 ? 100 * b / t : 0) }')
}

# etcd's benchmark prints "Requests/sec:\tN" and "  50% in S secs." (report.go).
parse_etcd() {
  local out=$work/$1.out
  result[$1,ops]=$(awk '/Requests\/sec:/ { printf "%.0f", $2 }' "$out")
  result[$1,p50]=$(awk '$1 == "50%" && $2 == "in" { printf "%.2f", $3 * 1000 }' "$out")
  [[ -n ${result[$1,ops]} && -n ${result[$1,p50]} ]] || fail "$1: no summary in etcd's benchmark output ($out)"
}

section "etcd: three members; benchmark put and range --consistency=l"
start_etcd
endpoints=$(etcd_endpoints)
# --target-leader: every connection goes to the leader, as kvbench's clients do (--target
# leader, its default); --precise: latencies in full precision, not to 0.1 ms.
etcd_flags=(--endpoints="$endpoints" --target-leader --precise)
range_key=$(printf '%0*d' "$key_size" 0)
ETCDCTL_API=3 etcdctl --endpoints "$endpoints" put "$range_key" "$(head -c "$value_size" /dev/zero | tr '\0' v)" >/dev/null
for c in "${counts[@]}"; do
  total=$(total_for "$c")
  conns=$(conns_for "$c")
  measure "etcd-put-$c" "$etcd_benchmark" "${etcd_flags[@]}" --conns="$conns" --clients="$c" put \
    --key-size="$key_size" --val-size="$value_size" --total="$total" --sequential-keys \
    --key-space-size="$total"
  parse_etcd "etcd-put-$c"
  echo "put, $c clients: ${result[etcd-put-$c,ops]} ops/s, p50 ${result[etcd-put-$c,p50]} ms"
  measure "etcd-get-$c" "$etcd_benchmark" "${etcd_flags[@]}" --conns="$conns" --clients="$c" range \
    "$range_key" --consistency=l --total="$total"
  parse_etcd "etcd-get-$c"
  echo "get, $c clients: ${result[etcd-get-$c,ops]} ops/s, p50 ${result[etcd-get-$c,p50]} ms"
done
stop_group

section "ShardKV: a three-node group; kvbench kv put, get (same shapes)"
start_group shardkv
servers="$(kvd_api 0),$(kvd_api 1),$(kvd_api 2)"
# The pid of the leader's kvd (kvctl leader names its peer address).
leader_pid() {
  local leader i
  leader=$("$bin/kvctl" -a "$(kvd_api 0)" --timeout 2 leader)
  for i in 0 1 2; do [[ $(kvd_peer $i) == "$leader" ]] && { echo "${group[$i]}"; return; }; done
  fail "the leader $leader is none of the group's members"
}
for c in "${counts[@]}"; do
  total=$(total_for "$c")
  conns=$(conns_for "$c")
  # One kvbench run per client count: the put phase, then the gets of the keys it wrote.
  measure "shardkv-$c" "$bin/kvbench" kv --servers "$servers" --clients "$c" --connections "$conns" \
    --key-size "$key_size" --value-size "$value_size" --total "$total" --ops put,get
  cat "$work/shardkv-$c.out"
  for op in put get; do
    line=$(awk -v op="$op" -v c="$c" '$1 == op && $2 == c' "$work/shardkv-$c.out")
    [[ -n $line ]] || fail "kvbench printed no $op line at $c clients"
    result[shardkv-$op-$c,ops]=$(awk '{ print $3 }' <<<"$line")
    result[shardkv-$op-$c,p50]=$(awk '{ print $4 }' <<<"$line")
    errors=$(awk '{ print $(NF) }' <<<"$line")
    [[ $errors =~ ^[0-9]+$ ]] && ((errors == 0)) || echo "warning: kvbench counted errors at $op $c: $line"
  done
done

# Profiles: one more put run per PROFILE_CLIENTS count, with the leader sampled (the measured
# runs above ran without perf).
profile_counts=()
if [[ $profile == 1 ]]; then IFS=, read -r -a profile_counts <<<"$profile_clients"; fi
for c in "${profile_counts[@]+"${profile_counts[@]}"}"; do
  shape=profile-put-$c
  profile_pid=$(leader_pid)
  measure "$shape" "$bin/kvbench" kv --servers "$servers" --clients "$c" --connections "$(conns_for "$c")" \
    --key-size "$key_size" --value-size "$value_size" --total "$(total_for "$c")" --ops put
  profile_pid=
  section "perf record -e cpu-clock -g -F 499 of ShardKV's leader: put, $c clients"
  grep '^put' "$work/$shape.out" || true
  echo "wall ${result[$shape,wall]} s; CPU s: servers ${result[$shape,server_cpu]}, leader sampled;" \
    "kvbench ${result[$shape,load_cpu]}; machine busy ${result[$shape,busy]}"
  if [[ ! -s $work/$shape.perf.data ]]; then
    echo "no profile: $(tail -n 3 "$work/$shape.perf.log" 2>/dev/null)"
    continue
  fi
  echo "-- by shared object"
  perf report -i "$work/$shape.perf.data" --stdio --no-children --sort dso -g none 2>/dev/null |
    grep -Ev '^#|^$' | head -n 12 | cut -c 1-150 || true
  echo "-- by symbol (≥ 1%)"
  perf report -i "$work/$shape.perf.data" --stdio --no-children --sort symbol --percent-limit 1 -g none \
    2>/dev/null | grep -Ev '^#|^$' | head -n 30 | cut -c 1-150 || true
done
stop_group

uptime_after=$(uptime_line)
section "Results (${key_size} B keys, ${value_size} B values; connections = min(clients, $max_conns))"
echo "uptime before: $uptime_before"
echo "uptime after:  $uptime_after"
echo "ShardKV binaries: $bin"
echo
printf '%-10s %8s %12s %10s %12s %10s %9s %9s\n' workload requests "etcd ops/s" "etcd p50" \
  "ShardKV/s" "SKV p50" "ops ratio" "p50 ratio"
for op in put get; do
  for c in "${counts[@]}"; do
    e_ops=${result[etcd-$op-$c,ops]} e_p50=${result[etcd-$op-$c,p50]}
    s_ops=${result[shardkv-$op-$c,ops]} s_p50=${result[shardkv-$op-$c,p50]}
    awk -v w="$op $c" -v n="$(total_for "$c")" -v eo="$e_ops" -v ep="$e_p50" -v so="$s_ops" -v sp="$s_p50" \
      'BEGIN { printf "%-10s %8d %12d %7.2f ms %12d %7.2f ms %8.2fx %8.2fx\n", w, n, eo, ep, so, sp,
        (eo > 0 ? so / eo : 0), (ep > 0 ? sp / ep : 0) }'
  done
done
echo
echo "What each run used (CPU seconds; servers = the three members together; busy = the"
echo "machine's busy share over the run, every process included; ShardKV's put and get at one"
echo "client count are one kvbench run):"
printf '%-16s %8s %12s %12s %8s\n' run "wall s" "servers CPU" "loadgen CPU" busy
for c in "${counts[@]}"; do
  for shape in "etcd-put-$c" "etcd-get-$c" "shardkv-$c"; do
    printf '%-16s %8s %12s %12s %8s\n' "$shape" "${result[$shape,wall]}" "${result[$shape,server_cpu]}" \
      "${result[$shape,load_cpu]}" "${result[$shape,busy]}"
  done
done
