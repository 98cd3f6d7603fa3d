#!/usr/bin/env bash
# The router benchmark of BENCHMARKS.md ("Router and Redis protocol (issue 9)"), in one run:
#   1. builds kvd, kvctl and kvbench in release mode; installs Debian's redis-server (which
#      brings redis-benchmark and redis-cli) if redis-server or redis-benchmark is missing;
#   2. starts a one-replica shard controller, three replica groups of three members and a
#      router with the Redis protocol (`kvd --router --resp`) on loopback, registers the groups;
#      starts its own redis-server (append-only file, fsync on every write, no RDB snapshots);
#   3. `redis-benchmark -t set|get -c 50 -n N -q`, without and with `-P 16`, and the same with
#      random keys (`-r`), against the router's RESP port and against redis-server; N is chosen
#      by a short probe run so that each measured run lasts at least RB_SECONDS;
#   4. `kvbench kv` (put, then get) at each of KV_CLIENTS clients, once through the router's API
#      address and once straight to the groups' leaders (`--controllers`: clerks route by the
#      controller's configuration);
#   5. profiles the router (`perf record -e cpu-clock -g`) during one more RESP SET -P 16 run,
#      when perf works here (PROFILE=0 skips it);
#   6. prints one table: rates, latencies, per-process CPU seconds of every phase (from
#      /proc/PID/stat; the load generator's from its own rusage) and the machine's busy share.
# Every process it starts is stopped on exit (also on failure or Ctrl-C); the whole run is
# bounded by DEADLINE seconds, and each load run by a timeout (a hang is reported, with the
# router's log, and the run goes on). The router's log is kept when anything failed.
#
# Knobs (environment): RB_SECONDS least duration of a measured redis-benchmark run (12),
# RB_CLIENTS connections (50), RB_PIPELINE the pipelined depth (16), RB_KEYSPACE the -r range of
# the random-key runs (100000; 0 skips them), KV_SECONDS per kvbench phase (10), KV_CLIENTS
# (1,64), PROFILE (1), PROFILE_SECONDS (10), DEADLINE for the whole run (1500), DATA_ROOT
# where data directories go ($TMPDIR or /tmp), BASE_PORT (25000: controller +0/+100, group g
# member i API +10g+i, peer +100+10g+i, router API +90, RESP +91, redis-server +92; keep below
# the kernel's ephemeral range).
set -euo pipefail
cd "$(dirname "$0")/.."

rb_seconds=${RB_SECONDS:-12}
rb_clients=${RB_CLIENTS:-50}
rb_pipeline=${RB_PIPELINE:-16}
rb_keyspace=${RB_KEYSPACE:-100000}
kv_seconds=${KV_SECONDS:-10}
kv_clients=${KV_CLIENTS:-1,64}
profile=${PROFILE:-1}
profile_seconds=${PROFILE_SECONDS:-10}
deadline=${DEADLINE:-1500}
base=${BASE_PORT:-25000}

bin=.build/release
work=$(mktemp -d "${DATA_ROOT:-${TMPDIR:-/tmp}}/shardkv-bench-router.XXXXXX")
bench_name=bench-router
bench_keep_logs=1
# shellcheck source=scripts/lib/bench-common.sh
source scripts/lib/bench-common.sh
findings=()
bench_traps

# The whole run is bounded: past DEADLINE seconds the script stops itself (and cleans up).
bench_watchdog "$deadline"

bench_check_ports "$base" 0 100 11 12 13 21 22 23 31 32 33 111 112 113 121 122 123 131 132 133 90 91 92

section "Machine"
bench_machine

section "Build (release) and redis-server"
bench_build_release
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  apt-get install -y redis-server >/dev/null || { apt-get update >/dev/null && apt-get install -y redis-server >/dev/null; }
fi
echo "$(redis-server --version)"
uptime_before=$(uptime_line)
echo "uptime before: $uptime_before"

ctl_api="127.0.0.1:$base"
ctl_peer="127.0.0.1:$((base + 100))"
router_api="127.0.0.1:$((base + 90))"
resp_port=$((base + 91))
redis_port=$((base + 92))
api() { echo "127.0.0.1:$((base + 10 * $1 + $2))"; }
peer() { echo "127.0.0.1:$((base + 100 + 10 * $1 + $2))"; }
members() { echo "$(api "$1" 1),$(api "$1" 2),$(api "$1" 3)"; }
declare -A node_pid
names=(ctrl g1-n1 g1-n2 g1-n3 g2-n1 g2-n2 g2-n3 g3-n1 g3-n2 g3-n3 router redis)

kvctl() { "$bin/kvctl" --timeout 5 "$@"; }

section "Cluster: controller (1 replica), groups 1-3 (3 members each), router; redis-server"
"$bin/kvd" --controller -a "$ctl_api" -p "$ctl_peer" --peers "$ctl_peer" \
  --data "$work/ctrl" 2>>"$work/ctrl.log" &
pids+=($!)
node_pid[ctrl]=$!
for g in 1 2 3; do
  peers="$(peer "$g" 1),$(peer "$g" 2),$(peer "$g" 3)"
  for i in 1 2 3; do
    "$bin/kvd" -a "$(api "$g" "$i")" -p "$(peer "$g" "$i")" --peers "$peers" --group "$g" \
      --controllers "$ctl_api" --data "$work/g$g-n$i" 2>>"$work/g$g-n$i.log" &
    pids+=($!)
    node_pid[g$g-n$i]=$!
  done
done

wait_leader() {
  for _ in $(seq 1 100); do
    for name in "${!node_pid[@]}"; do
      kill -0 "${node_pid[$name]}" 2>/dev/null || fail "$name exited at start"
    done
    if kvctl -a "$1" leader >/dev/null 2>&1; then return; fi
    sleep 0.1
  done
  fail "no leader at $1 within 10 s"
}
wait_leader "$ctl_api"
for g in 1 2 3; do wait_leader "$(api "$g" 1)"; done

config_num() { kvctl -a "$ctl_api" config --json | sed -n 's/^{"num":\([0-9]*\).*/\1/p'; }
# Waits (at most 30 s) until the member at $1 is at configuration ≥ $2, every shard serving.
wait_settled() {
  local json
  for _ in $(seq 1 300); do
    json=$(kvctl -a "$1" shards --json 2>/dev/null || true)
    if [[ $json =~ \"config\":([0-9]+) ]] && ((BASH_REMATCH[1] >= $2)) &&
      ! grep -qE 'pulling|handing_off' <<<"$json"; then
      return
    fi
    sleep 0.1
  done
  fail "$1 did not settle at configuration $2 within 30 s: $json"
}
for g in 1 2 3; do
  out=$(kvctl -a "$ctl_api" group join "$g" "$(members "$g")")
  [[ $out == OK* ]] || fail "group join $g: $out"
done
num=$(config_num)
for g in 1 2 3; do for i in 1 2 3; do wait_settled "$(api "$g" "$i")" "$num"; done; done
echo "configuration $num: $(kvctl -a "$ctl_api" config --json | cut -c 1-400)"

"$bin/kvd" --router -a "$router_api" --controllers "$ctl_api" --resp "127.0.0.1:$resp_port" \
  2>>"$work/router.log" &
pids+=($!)
node_pid[router]=$!

mkdir -p "$work/redis"
redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$work/redis" --appendonly yes \
  --appendfsync always --save '' --daemonize no --logfile "$work/redis.log" &
pids+=($!)
node_pid[redis]=$!

ready=0
for _ in $(seq 1 100); do
  kill -0 "${node_pid[router]}" 2>/dev/null || fail "the router exited at start"
  if [[ $(redis-cli -p "$resp_port" SET bench:ready 1 2>/dev/null) == OK ]] &&
    kvctl -a "$router_api" put bench:api 1 >/dev/null 2>&1 &&
    [[ $(redis-cli -p "$redis_port" PING 2>/dev/null) == PONG ]]; then
    ready=1
    break
  fi
  sleep 0.1
done
((ready)) || fail "the router (RESP 127.0.0.1:$resp_port, API $router_api) or redis-server did not answer within 10 s"
echo "router: API $router_api, RESP 127.0.0.1:$resp_port; redis-server 127.0.0.1:$redis_port (appendfsync always)"
echo "redis-benchmark's key without -r, 'key:__rand_int__': $(kvctl -a "$router_api" locate 'key:__rand_int__' | tr '\n\t' '  ')"

# --- Accounting: per-process CPU (utime + stime, in clock ticks) and the machine's busy time.
ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# busy and total jiffies of the whole machine (all CPUs); iowait counts as idle.
machine_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
declare -A snap
# snapshot LABEL: every process's ticks and the machine's, under LABEL.
snapshot() {
  local name
  for name in "${names[@]}"; do snap[$1,$name]=$(cpu_ticks "${node_pid[$name]}"); done
  read -r snap[$1,busy] snap[$1,total] <<<"$(machine_ticks)"
  snap[$1,ms]=$(now_ms)
}
declare -A row
rows=()
# account ROW FROM TO GENERATOR_SECONDS: the CPU seconds each process used between two
# snapshots, into row[ROW,*].
account() {
  local id=$1 from=$2 to=$3 name sum=0 kvd=0 used
  for name in "${names[@]}"; do
    used=$((${snap[$to,$name]} - ${snap[$from,$name]}))
    row[$id,$name]=$(awk -v t="$used" -v hz="$ticks" 'BEGIN {printf "%.1f", t / hz}')
    sum=$((sum + used))
    if [[ $name == g* ]]; then kvd=$((kvd + used)); fi
  done
  row[$id,kvd]=$(awk -v t="$kvd" -v hz="$ticks" 'BEGIN {printf "%.1f", t / hz}')
  row[$id,gen]=$4
  row[$id,wall]=$(awk -v ms="$((${snap[$to,ms]} - ${snap[$from,ms]}))" 'BEGIN {printf "%.1f", ms / 1000}')
  # This benchmark's own processes (all of the above and the generator) in % of the cores.
  row[$id,ours]=$(awk -v t="$sum" -v hz="$ticks" -v g="$4" -v ms="$((${snap[$to,ms]} - ${snap[$from,ms]}))" \
    -v cores="$(nproc)" 'BEGIN {printf "%.0f", (ms > 0 ? 100 * (t / hz + g) / (ms / 1000) / cores : 0)}')
  row[$id,busy]=$(awk -v b="$((${snap[$to,busy]} - ${snap[$from,busy]}))" \
    -v t="$((${snap[$to,total]} - ${snap[$from,total]}))" 'BEGIN {printf "%.0f", (t > 0 ? 100 * b / t : 0)}')
}

# --- redis-benchmark
# rb_run OUT PORT TEST PIPELINE KEYSPACE N: one redis-benchmark run; sets rb_rps, rb_p50,
# rb_gen (its user + system CPU seconds) and rb_status (ok, error, hang).
rb_run() {
  local out=$1 port=$2 test=$3 pipeline=$4 keyspace=$5 n=$6 limit args
  args=(-p "$port" -t "$test" -c "$rb_clients" -n "$n" -q)
  ((pipeline > 1)) && args+=(-P "$pipeline")
  ((keyspace > 0)) && args+=(-r "$keyspace")
  limit=$((rb_seconds * 8 + 60))
  echo "+ redis-benchmark ${args[*]}" >>"$out"
  local TIMEFORMAT='%U %S' status=0 times
  times=$({ time timeout "$limit" redis-benchmark "${args[@]}" >>"$out.raw" 2>&1; } 2>&1) || status=$?
  tr '\r' '\n' <"$out.raw" | grep -v 'rps=' | grep -v '^ *$' >>"$out" || true
  rm -f "$out.raw"
  rb_gen=$(awk '{printf "%.1f", $1 + $2}' <<<"$times")
  local line
  line=$(grep -E "^${test^^}: [0-9.]+ requests per second" "$out" | tail -n 1 || true)
  rb_rps=$(sed -n 's/^[A-Z]*: \([0-9.]*\) requests per second.*/\1/p' <<<"$line")
  rb_p50=$(sed -n 's/.*p50=\([0-9.]*\) msec.*/\1/p' <<<"$line")
  if ((status == 124)); then
    rb_status=hang
  elif ((status != 0)) || [[ -z $rb_rps ]] || grep -qi 'error' "$out"; then
    rb_status=error
  else
    rb_status=ok
  fi
}

# rb_phase ID TARGET PORT TEST PIPELINE KEYSPACE: probes for N, then the measured run.
rb_phase() {
  local id=$1 target=$2 port=$3 test=$4 pipeline=$5 keyspace=$6 n start elapsed
  local out="$work/rb-$id.out"
  : >"$out"
  # Probe: grow N until a run takes 1.5 s, then scale it to RB_SECONDS (+50 %: the rate can
  # rise after the probe).
  n=$((1000 * pipeline))
  while true; do
    start=$(now_ms)
    rb_run "$out" "$port" "$test" "$pipeline" "$keyspace" "$n"
    elapsed=$(($(now_ms) - start))
    if [[ $rb_status != ok ]] || ((elapsed >= 1500 || n >= 2000000)); then break; fi
    n=$((n * 8))
  done
  if [[ $rb_status == ok ]]; then
    n=$(awk -v n="$n" -v ms="$elapsed" -v s="$rb_seconds" 'BEGIN {printf "%d", n / (ms / 1000) * s * 1.5}')
    ((n < 1000)) && n=1000
    snapshot "$id.0"
    start=$(now_ms)
    rb_run "$out" "$port" "$test" "$pipeline" "$keyspace" "$n"
    snapshot "$id.1"
    elapsed=$(($(now_ms) - start))
    account "$id" "$id.0" "$id.1" "$rb_gen"
  else
    snapshot "$id.0"
    snapshot "$id.1"
    account "$id" "$id.0" "$id.1" "$rb_gen"
  fi
  local label="redis-benchmark -t $test -c $rb_clients -n $n"
  ((pipeline > 1)) && label+=" -P $pipeline"
  ((keyspace > 0)) && label+=" -r $keyspace"
  row[$id,what]="$target: $label"
  row[$id,rate]=${rb_rps:--}
  row[$id,lat]=${rb_p50:+p50 ${rb_p50} ms}
  row[$id,time]=$(awk -v ms="$elapsed" 'BEGIN {printf "%.1f", ms / 1000}')
  row[$id,status]=$rb_status
  rows+=("$id")
  printf '%-60s %12s/s  %-14s %6s s  %s\n' "${row[$id,what]}" "${row[$id,rate]}" "${row[$id,lat]:-}" \
    "${row[$id,time]}" "$rb_status"
  if [[ $rb_status != ok ]]; then
    keep_logs=1
    findings+=("$id ($target, $label): $rb_status; see $out and the router's log")
    echo "--- $out"
    tail -n 20 "$out"
    echo "--- router log (last 20 lines)"
    tail -n 20 "$work/router.log" | cut -c 1-300
  fi
}

section "redis-benchmark: router (RESP) vs redis-server (appendfsync always), $rb_clients connections, ≥ ${rb_seconds} s per run"
keyspaces=(0)
((rb_keyspace > 0)) && keyspaces+=("$rb_keyspace")
for keyspace in "${keyspaces[@]}"; do
  for pipeline in 1 "$rb_pipeline"; do
    for test in set get; do
      rb_phase "rb-router-$test-P$pipeline-r$keyspace" router "$resp_port" "$test" "$pipeline" "$keyspace"
      rb_phase "rb-redis-$test-P$pipeline-r$keyspace" redis "$redis_port" "$test" "$pipeline" "$keyspace"
    done
  done
done

# --- kvbench: through the router vs straight to the groups.
# kv_phase ID WHERE CLIENTS ARGS...: one kvbench kv run (put, then get); CPU snapshots at its
# header line (before warm-up), its put line and its get line; kvbench's own CPU is read from
# /proc while it runs, and from its rusage for the get phase (it exits right after).
kv_phase() {
  local id=$1 where=$2 clients=$3
  shift 3
  local out="$work/kv-$id.out" fifo="$work/kv-$id.fifo" kv_pid line status=0 put_gen=0 total_gen
  mkfifo "$fifo"
  echo "+ kvbench kv $* --clients $clients --ops put,get --seconds $kv_seconds" | tee "$out"
  local TIMEFORMAT='%U %S'
  { time timeout $((kv_seconds * 2 + 120)) "$bin/kvbench" kv "$@" --clients "$clients" \
    --ops put,get --seconds "$kv_seconds" --key-size 16 --value-size 128 >"$fifo" 2>>"$out.err"; } \
    2>"$work/kv-$id.time" &
  kv_pid=$!
  local bench_ticks0=0
  while IFS= read -r line; do
    echo "$line" | tee -a "$out"
    local bench_pid
    bench_pid=$(pgrep -f -n -- "$bin/kvbench kv" || true)
    case "$line" in
      kv:*)
        snapshot "$id-put.0"
        bench_ticks0=$(cpu_ticks "${bench_pid:-0}")
        ;;
      put\ *)
        snapshot "$id-put.1"
        snapshot "$id-get.0"
        put_gen=$(($(cpu_ticks "${bench_pid:-0}") - bench_ticks0))
        put_gen_total=$(cpu_ticks "${bench_pid:-0}")
        ;;
      get\ *) snapshot "$id-get.1" ;;
    esac
  done <"$fifo"
  wait "$kv_pid" || status=$?
  rm -f "$fifo"
  cat "$out.err" >>"$out" 2>/dev/null || true
  total_gen=$(awk '{printf "%.2f", $1 + $2}' "$work/kv-$id.time" 2>/dev/null || echo 0)
  local op
  for op in put get; do
    local key="$id-$op"
    row[$key,what]="$where: kvbench kv $op, $clients client(s)"
    rows+=("$key")
    local result
    result=$(grep -E "^$op +$clients " "$out" | tail -n 1 || true)
    if ((status != 0)) || [[ -z $result ]] || [[ -z ${snap[$key.1,ms]:-} ]]; then
      row[$key,status]=$([[ $status == 124 ]] && echo hang || echo error)
      row[$key,rate]=-
      keep_logs=1
      findings+=("$key ($where, kvbench $op, $clients clients): ${row[$key,status]}; see $out")
      echo "--- router log (last 20 lines)"
      tail -n 20 "$work/router.log" | cut -c 1-300
      continue
    fi
    # "op clients ops/s p50 ms p99 ms p99.9 ms max ms stddev ms errors".
    local rate p50 p99 errors
    read -r _ _ rate p50 _ p99 _ _ _ _ _ _ _ errors _ <<<"$result"
    row[$key,rate]=$rate
    row[$key,lat]="p50 $p50 / p99 $p99 ms"
    row[$key,p50]=$p50
    row[$key,status]=$([[ $errors == 0 ]] && echo ok || echo "$errors errors")
    row[$key,time]=$kv_seconds
    local gen
    if [[ $op == put ]]; then
      gen=$(awk -v t="$put_gen" -v hz="$ticks" 'BEGIN {printf "%.1f", t / hz}')
    else
      gen=$(awk -v total="$total_gen" -v t="${put_gen_total:-0}" -v hz="$ticks" \
        'BEGIN {v = total - t / hz; printf "%.1f", (v > 0 ? v : 0)}')
    fi
    account "$key" "$key.0" "$key.1" "$gen"
  done
}

section "kvbench kv: through the router vs straight to the groups' leaders"
kv_help=$("$bin/kvbench" kv --help)
[[ $kv_help == *--controllers* ]] || fail "kvbench kv has no --controllers"
all_members="$(members 1),$(members 2),$(members 3)"
IFS=, read -r -a kv_counts <<<"$kv_clients"
for clients in "${kv_counts[@]}"; do
  kv_phase "kv-router-c$clients" router "$clients" --servers "$router_api"
  kv_phase "kv-direct-c$clients" direct "$clients" --servers "$all_members" --controllers "$ctl_api"
done
uptime_after=$(uptime_line)

# --- Profile of the router during one more RESP SET run (not one of the measured runs).
profile_note="not taken"
if ((profile)) && perf record -q -e cpu-clock -o "$work/probe.data" -- true >/dev/null 2>&1; then
  section "perf record -e cpu-clock -g of the router, ${profile_seconds} s of redis-benchmark -t set -P $rb_pipeline -r $rb_keyspace"
  rm -f "$work/probe.data"
  n=$(awk -v r="${row[rb-router-set-P$rb_pipeline-r$rb_keyspace,rate]:-${row[rb-router-set-P$rb_pipeline-r0,rate]:-1000}}" \
    -v s="$profile_seconds" 'BEGIN {r = (r == "-" ? 1000 : r); printf "%d", r * s * 1.5}')
  args=(-p "$resp_port" -t set -c "$rb_clients" -n "$n" -q -P "$rb_pipeline")
  ((rb_keyspace > 0)) && args+=(-r "$rb_keyspace")
  timeout $((profile_seconds * 4 + 30)) redis-benchmark "${args[@]}" >"$work/profile-load.out" 2>&1 &
  load_pid=$!
  monitors+=("$load_pid")
  sleep 1
  perf record -q -e cpu-clock -F 999 -g -p "${node_pid[router]}" -o "$work/router.perf" \
    -- sleep "$profile_seconds" >"$work/perf-record.log" 2>&1 || true
  wait "$load_pid" 2>/dev/null || true
  for sort in dso sym; do
    echo "router, by $sort (self time):"
    perf report -i "$work/router.perf" --no-children --sort "$sort" --stdio 2>/dev/null |
      grep -E '^ +[0-9]' | head -n 25 | { swift demangle --simplified 2>/dev/null || cat; } |
      cut -c 1-170 || true
  done | tee "$work/profile.out"
  echo "router, by comm (thread):"
  perf report -i "$work/router.perf" --no-children --sort comm --stdio 2>/dev/null |
    grep -E '^ +[0-9]' | head -n 10 || true
  echo "router, by symbol with children (inclusive):"
  perf report -i "$work/router.perf" --children --sort sym --stdio -g none 2>/dev/null |
    grep -E '^ +[0-9]' | head -n 30 | { swift demangle --simplified 2>/dev/null || cat; } |
    cut -c 1-170 || true
  profile_note="taken"
elif ((profile)); then
  echo "perf cannot sample here (perf record -e cpu-clock failed): no profile"
fi

section "Results"
echo "uptime before: $uptime_before"
echo "uptime after:  $uptime_after"
echo "CPU s per process over each measured run (/proc/PID/stat utime+stime; 'gen' = the load"
echo "generator; kvd = the nine group members; ours = all of these in % of the $(nproc) cores; busy ="
echo "the machine's non-idle share of its cores, whoever used them)."
printf '| run | rate/s | latency | s | status | router | kvd (9) | ctrl | redis-server | gen | ours %% | busy %% |\n'
printf '|---|---|---|---|---|---|---|---|---|---|---|---|\n'
for id in "${rows[@]}"; do
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "${row[$id,what]}" \
    "${row[$id,rate]:--}" "${row[$id,lat]:--}" "${row[$id,time]:-${row[$id,wall]:--}}" "${row[$id,status]}" \
    "${row[$id,router]:--}" "${row[$id,kvd]:--}" "${row[$id,ctrl]:--}" "${row[$id,redis]:--}" \
    "${row[$id,gen]:--}" "${row[$id,ours]:--}" "${row[$id,busy]:--}"
done

echo
echo "Router vs redis-server (SET target: ≥ 1/3 of Redis's rate):"
for keyspace in "${keyspaces[@]}"; do
  for pipeline in 1 "$rb_pipeline"; do
    for test in set get; do
      r=${row[rb-router-$test-P$pipeline-r$keyspace,rate]:--}
      d=${row[rb-redis-$test-P$pipeline-r$keyspace,rate]:--}
      printf '  %s -P %s%s: router %s/s, redis %s/s, ratio %s\n' "${test^^}" "$pipeline" \
        "$( ((keyspace > 0)) && echo " -r $keyspace")" "$r" "$d" \
        "$(awk -v a="$r" -v b="$d" 'BEGIN {if (a != "-" && b != "-" && b > 0) printf "%.3f", a / b; else print "-"}')"
    done
  done
done
echo
echo "kvbench through the router vs direct (--controllers):"
for clients in "${kv_counts[@]}"; do
  for op in put get; do
    r="kv-router-c$clients-$op" d="kv-direct-c$clients-$op"
    printf '  %s, %s client(s): router %s/s p50 %s ms; direct %s/s p50 %s ms; added p50 %s ms; throughput ratio %s\n' \
      "$op" "$clients" "${row[$r,rate]:--}" "${row[$r,p50]:--}" "${row[$d,rate]:--}" "${row[$d,p50]:--}" \
      "$(awk -v a="${row[$r,p50]:-}" -v b="${row[$d,p50]:-}" 'BEGIN {if (a != "" && b != "") printf "%.2f", a - b; else print "-"}')" \
      "$(awk -v a="${row[$r,rate]:--}" -v b="${row[$d,rate]:--}" 'BEGIN {if (a != "-" && b != "-" && b > 0) printf "%.2f", a / b; else print "-"}')"
  done
done
echo "profile: $profile_note"
if ((${#findings[@]})); then
  echo
  echo "FAILURES (findings):"
  for finding in "${findings[@]}"; do echo "  $finding"; done
fi
