#!/usr/bin/env bash
# The shard migration benchmark of BENCHMARKS.md ("Shard migration (issue 8)"), in one run:
#   1. builds kvd, kvctl and kvbench in release mode;
#   2. starts a one-replica shard controller (8 shards) and two three-node replica groups on
#      loopback, joins group 1, then group 2 (which takes half the shards);
#   3. picks two shards S and T that group 1 owns, a hash tag that maps to each, and loads
#      LOAD_MB MiB of incompressible values into each through `kvbench kv --ops load`;
#   4. steady state: `kvbench kv --ops mixed` (gets and puts) on keys of every other shard for
#      STEADY_SECONDS;
#   5. the same load again while `kvctl shard move S 2` runs: polls group 2's leader
#      (`kvctl shards --json`) every POLL_SECONDS until S serves there, then group 1's leader
#      until its copy of S is deleted; per-process CPU time, bytes written and fsyncs around it;
#   6. moves T to group 2 with no client load (the same counters; PROFILE=1 samples it);
#   7. moves S back to group 1, which held it before, with no client load;
#   8. with the cluster stopped, times the stages alone: `kvbench shard-pages` (the two ends
#      of a move without Raft) and `kvbench raft` with 2 MiB entries (replication alone);
#   9. prints the tables.
# Every process it starts is stopped on exit (also on failure or Ctrl-C); the whole run is
# bounded by DEADLINE seconds. On failure the node logs are kept and their directory printed.
#
# Knobs (environment): LOAD_MB per shard (default 200), VALUE_KB value size of the load (256),
# LOAD_CLIENTS (16), LAT_CLIENTS clients of the latency load (8), LAT_RATE its total request
# cap per second (400), STEADY_SECONDS (10), MOVE_TIMEOUT seconds a move may take (300),
# DEADLINE for the whole run (1800), POLL_SECONDS between two `kvctl shards` polls (0.1; each
# reads the whole shard on the polled member, see BENCHMARKS.md), DATA_ROOT where the data
# directories go (default $TMPDIR or /tmp; /dev/shm takes the disk out), PROFILE=1 also
# samples every kvd with `perf record -e cpu-clock` during the move of T, BASE_PORT (26000:
# controller +0/+100, group g member i API +10g+i, peer +100+10g+i; keep below the kernel's
# ephemeral range).
set -euo pipefail
cd "$(dirname "$0")/.."

load_mb=${LOAD_MB:-200}
value_kb=${VALUE_KB:-256}
load_clients=${LOAD_CLIENTS:-16}
lat_clients=${LAT_CLIENTS:-8}
lat_rate=${LAT_RATE:-400}
steady_seconds=${STEADY_SECONDS:-10}
move_timeout=${MOVE_TIMEOUT:-300}
deadline=${DEADLINE:-1800}
profile=${PROFILE:-0}
poll=${POLL_SECONDS:-0.1}
base=${BASE_PORT:-26000}

bin=.build/release
work=$(mktemp -d "${DATA_ROOT:-${TMPDIR:-/tmp}}/shardkv-bench-migration.XXXXXX")
bench_name=bench-migration
bench_keep_logs=1
# shellcheck source=scripts/lib/bench-common.sh
source scripts/lib/bench-common.sh
bench_traps

# The whole run is bounded: past DEADLINE seconds the script stops itself (and cleans up).
bench_watchdog "$deadline"

bench_check_ports "$base" 0 100 11 12 13 111 112 113 21 22 23 121 122 123

section "Machine"
bench_machine
uptime_before=$(uptime_line)
echo "uptime before: $uptime_before"

section "Build (release)"
bench_build_release

ctl_api="127.0.0.1:$base"
ctl_peer="127.0.0.1:$((base + 100))"
api() { echo "127.0.0.1:$((base + 10 * $1 + $2))"; }
peer() { echo "127.0.0.1:$((base + 100 + 10 * $1 + $2))"; }
members() { echo "$(api "$1" 1),$(api "$1" 2),$(api "$1" 3)"; }
declare -A node_pid

kvctl() { "$bin/kvctl" --timeout 5 "$@"; }

section "Cluster: controller (1 replica, 8 shards), groups 1 and 2 (3 members each)"
"$bin/kvd" --controller -a "$ctl_api" -p "$ctl_peer" --peers "$ctl_peer" --shards 8 \
  --data "$work/ctrl" 2>>"$work/ctrl.log" &
pids+=($!)
node_pid[ctrl]=$!
for g in 1 2; do
  peers="$(peer "$g" 1),$(peer "$g" 2),$(peer "$g" 3)"
  for i in 1 2 3; do
    "$bin/kvd" -a "$(api "$g" "$i")" -p "$(peer "$g" "$i")" --peers "$peers" --group "$g" \
      --controllers "$ctl_api" --data "$work/g$g-n$i" 2>>"$work/g$g-n$i.log" &
    pids+=($!)
    node_pid[g$g-n$i]=$!
  done
done

# Waits (at most 10 s) until the group at API address $1 knows a leader.
wait_leader() {
  for _ in $(seq 1 100); do
    for name in "${!node_pid[@]}"; do
      kill -0 "${node_pid[$name]}" 2>/dev/null || fail "kvd $name exited at start"
    done
    if kvctl -a "$1" leader >/dev/null 2>&1; then return; fi
    sleep 0.1
  done
  fail "no leader at $1 within 10 s"
}
wait_leader "$ctl_api"
wait_leader "$(api 1 1)"
wait_leader "$(api 2 1)"

# The API address of group $1's leader (kvctl leader names its peer address).
leader_api() {
  local leader_peer i
  leader_peer=$(kvctl -a "$(api "$1" 1)" leader 2>/dev/null || kvctl -a "$(api "$1" 2)" leader)
  for i in 1 2 3; do
    if [[ $(peer "$1" "$i") == "$leader_peer" ]]; then
      echo "$(api "$1" "$i")"
      return
    fi
  done
  fail "group $1's leader $leader_peer is none of its members"
}
leader_name() {
  local address=$1 g i
  for g in 1 2; do for i in 1 2 3; do [[ $(api "$g" "$i") == "$address" ]] && echo "g$g-n$i"; done; done
  return 0
}

config_json() { kvctl -a "$ctl_api" config --json; }
# Waits (at most $2 s) until group $1's member at $3 is at configuration ≥ $4 with every shard
# it holds serving.
wait_settled() {
  local g=$1 limit=$2 address=$3 num=$4 json
  for _ in $(seq 1 $((limit * 10))); do
    json=$(kvctl -a "$address" shards --json 2>/dev/null || true)
    if [[ $json =~ \"config\":([0-9]+) ]] && ((BASH_REMATCH[1] >= num)) &&
      ! grep -qE 'pulling|handing_off' <<<"$json"; then
      return
    fi
    sleep 0.1
  done
  fail "group $g ($address) did not settle at configuration $num within $limit s: $json"
}

out=$(kvctl -a "$ctl_api" group join 1 "$(members 1)")
[[ $out == OK* ]] || fail "group join 1: $out"
num=$(config_json | sed -n 's/^{"num":\([0-9]*\).*/\1/p')
for i in 1 2 3; do wait_settled 1 30 "$(api 1 "$i")" "$num"; done
out=$(kvctl -a "$ctl_api" group join 2 "$(members 2)")
[[ $out == OK* ]] || fail "group join 2: $out"
num=$(config_json | sed -n 's/^{"num":\([0-9]*\).*/\1/p')
for g in 1 2; do for i in 1 2 3; do wait_settled "$g" 30 "$(api "$g" "$i")" "$num"; done; done
config=$(config_json)
echo "configuration: $config"

# S and T: the first two shards group 1 owns (S moves under load, T without).
owners=$(sed -n 's/.*"shards":\[\([0-9,]*\)\].*/\1/p' <<<"$config")
IFS=, read -r -a owner_of <<<"$owners"
owned=()
for s in "${!owner_of[@]}"; do
  if [[ ${owner_of[$s]} == 1 ]]; then owned+=("$s"); fi
done
((${#owned[@]} >= 2)) || fail "group 1 owns fewer than two shards: $config"
shard=${owned[0]} other=${owned[1]}
# A hash tag m0..m200 whose keys fall in shard $1.
tag_for() {
  local n located
  for n in $(seq 0 200); do
    located=$(kvctl -a "$(api 1 1)" locate "{m$n}:x")
    if [[ $located == *"Shard:	$1"* ]]; then
      echo "m$n"
      return
    fi
  done
  fail "no hash tag m0..m200 maps to shard $1"
}
tag=$(tag_for "$shard")
other_tag=$(tag_for "$other")
echo "shard S = $shard (group 1), hash tag {$tag}; shard T = $other (group 1), hash tag {$other_tag}"
all_members="$(members 1),$(members 2)"

for s in "$shard" "$other"; do
  section "Load: $load_mb MiB of ${value_kb} KiB values into shard $s ($load_clients clients)"
  run timeout 900 "$bin/kvbench" kv --servers "$all_members" --controllers "$ctl_api" \
    --hash-tag "$([[ $s == "$shard" ]] && echo "$tag" || echo "$other_tag")" --key-size 24 \
    --value-size $((value_kb * 1024)) --clients "$load_clients" --ops load --load-mb "$load_mb" \
    --op-timeout 30 | tee "$work/load-$s.out"
done
load_rate=$(sed -n 's/.* \([0-9.]*\) MiB\/s$/\1/p' "$work/load-$shard.out" | tail -n 1)

g1_leader=$(leader_api 1)
g2_leader=$(leader_api 2)
# Followers apply what the leader committed a little later: wait until every member of group
# 1 reports the same size of S and T.
shard_field() { # $1 shards JSON, $2 shard, $3 field; empty if the shard is not there
  { grep -o "{\"shard\":$2,[^}]*}" <<<"$1" || true; } | sed -n "s/.*\"$3\":\"\{0,1\}\([a-z_0-9]*\).*/\1/p"
}
for _ in $(seq 1 100); do
  sizes=$(for i in 1 2 3; do
    json=$(kvctl -a "$(api 1 "$i")" shards --json)
    echo "$(shard_field "$json" "$shard" bytes) $(shard_field "$json" "$other" bytes)"
  done | sort -u | wc -l)
  ((sizes == 1)) && break
  sleep 0.5
done
before=$(kvctl -a "$g1_leader" shards --json)
shard_bytes=$(shard_field "$before" "$shard" bytes)
shard_keys=$(shard_field "$before" "$shard" keys)
other_bytes=$(shard_field "$before" "$other" bytes)
echo "group 1 leader $g1_leader: $before"
echo "shard $shard holds $shard_keys keys, $shard_bytes bytes (keys + values); shard $other $other_bytes bytes"
poll_start=$(now_ms)
kvctl -a "$g1_leader" shards --json >/dev/null
poll_cost=$(($(now_ms) - poll_start))
echo "one 'kvctl shards --json' on group 1's leader took $poll_cost ms (it reads every key and value it holds)"

lat_args=(--servers "$all_members" --controllers "$ctl_api" --exclude-shards "$shard,$other" --key-size 16
  --value-size 128 --clients "$lat_clients" --rate "$lat_rate" --read-percent 50 --ops mixed)

section "Steady state: gets and puts on the other shards, $lat_clients clients, $lat_rate/s, ${steady_seconds} s"
run timeout $((steady_seconds + 120)) "$bin/kvbench" kv "${lat_args[@]}" --seconds "$steady_seconds" \
  --samples "$work/steady.samples" | tee "$work/steady.out"

# p50 and p99 of the OP requests (ok ones) in samples file $1 sent between $2 and $3 (µs).
window_stats() {
  awk -v op="$4" -v from="$2" -v to="$3" '$2 == op && $5 == 1 && $3 >= from && $3 <= to {print $4}' "$1" |
    sort -n | awk '{v[NR] = $1} END {
      if (NR == 0) { print "- - 0"; exit }
      i50 = int(NR * 0.50 + 0.999999); i99 = int(NR * 0.99 + 0.999999)
      printf "%.2f %.2f %d\n", v[i50] / 1000, v[i99] / 1000, NR }'
}
window_errors() {
  awk -v op="$4" -v from="$2" -v to="$3" '$2 == op && $5 == 0 && $3 >= from && $3 <= to' "$1" | wc -l
}

# Per-process CPU time (utime + stime, clock ticks) and bytes written to storage.
ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
disk_bytes() { sed -n 's/^write_bytes: //p' "/proc/$1/io" 2>/dev/null || echo 0; }
written_bytes() { sed -n 's/^wchar: //p' "/proc/$1/io" 2>/dev/null || echo 0; }
declare -A cpu0 disk0 wchar0
snapshot_usage() {
  local name
  for name in "${!node_pid[@]}"; do
    cpu0[$name]=$(cpu_ticks "${node_pid[$name]}")
    disk0[$name]=$(disk_bytes "${node_pid[$name]}")
    wchar0[$name]=$(written_bytes "${node_pid[$name]}")
  done
}
declare -A cpu_used disk_used wchar_used
usage_since() {
  local name
  for name in "${!node_pid[@]}"; do
    cpu_used[$name]=$(($(cpu_ticks "${node_pid[$name]}") - ${cpu0[$name]}))
    disk_used[$name]=$(($(disk_bytes "${node_pid[$name]}") - ${disk0[$name]}))
    wchar_used[$name]=$(($(written_bytes "${node_pid[$name]}") - ${wchar0[$name]}))
  done
}
# fsync and fdatasync calls per kvd process, and the time spent in them: perf records the
# syscall tracepoints machine-wide (so threads a kvd starts meanwhile count too; `perf -p`
# would miss them) and each call is credited to its process. Skipped where perf cannot.
fsync_events=syscalls:sys_enter_fdatasync,syscalls:sys_exit_fdatasync,syscalls:sys_enter_fsync,syscalls:sys_exit_fsync
fsync_tracing=0
if perf record -q -a -e "$fsync_events" -o "$work/probe.data" -- true >/dev/null 2>&1; then
  fsync_tracing=1
fi
rm -f "$work/probe.data"
start_fsync_counts() {
  ((fsync_tracing)) || return 0
  perf record -q -a -e "$fsync_events" -o "$work/fsync-$1.data" >/dev/null 2>&1 &
  fsync_recorder=$!
  monitors+=("$fsync_recorder")
  sleep 0.5
}
declare -A fsyncs
stop_fsync_counts() {
  fsyncs=()
  ((fsync_tracing)) || return 0
  kill -INT "$fsync_recorder" 2>/dev/null || true
  wait "$fsync_recorder" 2>/dev/null || true
  # Lines "PID/TID TIME: EVENT:"; an exit closes the call its thread entered.
  perf script -i "$work/fsync-$1.data" -F pid,tid,time,event 2>/dev/null | awk '
    { split($1, id, "/"); time = $2; sub(/:$/, "", time)
      if ($3 ~ /enter/) { entered[id[2]] = time }
      else if (id[2] in entered) { calls[id[1]]++; ms[id[1]] += 1000 * (time - entered[id[2]]); delete entered[id[2]] } }
    END { for (pid in calls) printf "%s %d %.0f\n", pid, calls[pid], ms[pid] }' >"$work/fsync-$1.txt"
  local name line
  for name in "${!node_pid[@]}"; do
    line=$(awk -v pid="${node_pid[$name]}" '$1 == pid {printf "%d, %d ms", $2, $3}' "$work/fsync-$1.txt")
    fsyncs[$name]=${line:-0, 0 ms}
  done
}

# Moves shard $1 to group $2 (from group $3; their leaders' API addresses $4 and $5) and times
# it: sets move_ms (move issued → the shard serving at the new owner's leader, polled every
# POLL_SECONDS) and gc_ms (→ the shard gone from the old owner's leader).
move_shard() {
  local shard=$1 to=$2 from=$3 new_leader=$4 old_leader=$5 start json state
  start=$(now_ms)
  move_started_us=$((start * 1000))
  out=$(kvctl -a "$ctl_api" shard move "$shard" "$to")
  [[ $out == OK* ]] || fail "shard move $shard $to: $out"
  echo "$(date +%T.%3N) shard move $shard $to: $out"
  move_ms=""
  local last_state=""
  while true; do
    json=$(kvctl -a "$new_leader" shards --json 2>/dev/null || true)
    state=$(shard_field "$json" "$shard" state)
    if [[ $state != "$last_state" ]]; then
      echo "$(date +%T.%3N) group $to ($new_leader): shard $shard ${state:-absent}" \
        "($(shard_field "$json" "$shard" bytes) bytes)"
      last_state=$state
    fi
    if [[ $state == serving ]]; then
      move_ms=$(($(now_ms) - start))
      break
    fi
    if (($(now_ms) - start > move_timeout * 1000)); then
      echo "bench-migration: shard $shard not serving at group $to after $move_timeout s; last: $json" >&2
      keep_logs=1
      return 1
    fi
    sleep "$poll"
  done
  move_done_us=$(($(now_ms) * 1000))
  gc_ms=""
  while true; do
    json=$(kvctl -a "$old_leader" shards --json 2>/dev/null || true)
    if [[ -n $json && -z $(shard_field "$json" "$shard" state) ]]; then
      gc_ms=$(($(now_ms) - start))
      break
    fi
    if (($(now_ms) - start > move_timeout * 1000)); then
      echo "bench-migration: group $from still holds shard $shard after $move_timeout s: $json" >&2
      keep_logs=1
      return 1
    fi
    sleep "$poll"
  done
  echo "$(date +%T.%3N) group $from ($old_leader): shard $shard deleted"
}

section "Move shard $shard from group 1 to group 2 under the same load"
rm -f "$work/stop"
timeout $((move_timeout + 180)) "$bin/kvbench" kv "${lat_args[@]}" --seconds $((move_timeout + 60)) \
  --samples "$work/during.samples" --stop-file "$work/stop" >"$work/during.out" 2>&1 &
bench_pid=$!
monitors+=("$bench_pid")
sleep 3
snapshot_usage
start_fsync_counts loaded
moved=1
move_shard "$shard" 2 1 "$g2_leader" "$g1_leader" || moved=0
usage_since
stop_fsync_counts loaded
touch "$work/stop"
wait "$bench_pid" || true
cat "$work/during.out"
((moved)) || fail "the loaded move did not complete (node logs follow)"
loaded_move_ms=$move_ms loaded_gc_ms=$gc_ms
loaded_from=$move_started_us loaded_to=$move_done_us
declare -A loaded_cpu loaded_disk loaded_wchar loaded_fsyncs
for name in "${!node_pid[@]}"; do
  loaded_cpu[$name]=${cpu_used[$name]}
  loaded_disk[$name]=${disk_used[$name]}
  loaded_wchar[$name]=${wchar_used[$name]}
  loaded_fsyncs[$name]=${fsyncs[$name]:-}
done
after=$(kvctl -a "$g2_leader" shards --json)
moved_bytes=$(shard_field "$after" "$shard" bytes)
moved_keys=$(shard_field "$after" "$shard" keys)
[[ $moved_bytes == "$shard_bytes" && $moved_keys == "$shard_keys" ]] ||
  echo "WARNING: group 2 holds $moved_keys keys, $moved_bytes bytes of shard $shard; group 1 had $shard_keys, $shard_bytes"

loaded_leaders="group 1 $(leader_name "$g1_leader"), group 2 $(leader_name "$g2_leader")"

section "Move shard $other from group 1 to group 2 with no client load"
# A few seconds for the nodes' background work after the loaded move (RocksDB flushes).
sleep 5
g1_leader=$(leader_api 1)
g2_leader=$(leader_api 2)
idle_leaders="group 1 $(leader_name "$g1_leader"), group 2 $(leader_name "$g2_leader")"
snapshot_usage
start_fsync_counts idle
if ((profile)); then
  kvd_pids=$(for name in g1-n1 g1-n2 g1-n3 g2-n1 g2-n2 g2-n3; do echo "${node_pid[$name]}"; done | paste -sd,)
  perf record -e cpu-clock -F 499 -o "$work/perf.data" -p "$kvd_pids" >"$work/perf-record.log" 2>&1 &
  perf_pid=$!
  monitors+=("$perf_pid")
fi
moved=1
move_shard "$other" 2 1 "$g2_leader" "$g1_leader" || moved=0
if ((profile)); then kill -INT "$perf_pid" 2>/dev/null || true; wait "$perf_pid" 2>/dev/null || true; fi
usage_since
stop_fsync_counts idle
((moved)) || fail "the move without load did not complete (node logs follow)"
idle_move_ms=$move_ms idle_gc_ms=$gc_ms

section "Move shard $shard back to group 1 (which held it before), no client load"
sleep 5
g1_leader=$(leader_api 1)
g2_leader=$(leader_api 2)
moved=1
move_shard "$shard" 1 2 "$g1_leader" "$g2_leader" || moved=0
((moved)) || fail "the move back did not complete (node logs follow)"
back_move_ms=$move_ms back_gc_ms=$gc_ms
uptime_after=$(uptime_line)

section "Stages alone, for what bounds a move (cluster stopped)"
stop_pids "${pids[@]}"
pids=()
# The two ends of a move without Raft or network, then Raft alone with one 2 MiB entry in
# flight (what one page costs to replicate, fsync included, with a state machine that does
# nothing).
run "$bin/kvbench" shard-pages --megabytes "$load_mb" --value-size $((value_kb * 1024)) \
  --data "$work/shard-pages" | tee "$work/shard-pages.out"
run "$bin/kvbench" raft --clients 1 --value-size 2097152 --seconds 5 --data "$work/raft" |
  tee "$work/raft.out"

section "Results"
mb() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1e6}'; }
rate() { awk -v b="$1" -v ms="$2" 'BEGIN {printf "%.1f", (ms > 0 ? b / 1e6 / (ms / 1000) : 0)}'; }
secs() { awk -v ms="$1" 'BEGIN {printf "%.2f", ms / 1000}'; }
read -r s_get50 s_get99 s_gets <<<"$(window_stats "$work/steady.samples" 0 99999999999999999 get)"
read -r s_put50 s_put99 s_puts <<<"$(window_stats "$work/steady.samples" 0 99999999999999999 put)"
read -r d_get50 d_get99 d_gets <<<"$(window_stats "$work/during.samples" "$loaded_from" "$loaded_to" get)"
read -r d_put50 d_put99 d_puts <<<"$(window_stats "$work/during.samples" "$loaded_from" "$loaded_to" put)"
d_errors=$(($(window_errors "$work/during.samples" "$loaded_from" "$loaded_to" get) +
  $(window_errors "$work/during.samples" "$loaded_from" "$loaded_to" put)))
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f×", a / b; else print "-"}'; }

echo "shard S = $shard: $shard_keys keys, $(mb "$shard_bytes") MB; T = $other: $(mb "$other_bytes") MB (keys + values, group 1's shards --json)"
printf '| %s | %s |\n' "figure" "value"
printf '|---|---|\n'
printf '| load into shard %s (kvbench load, %s clients) | %s MiB/s |\n' "$shard" "$load_clients" "$load_rate"
# ms per 2 MiB page of a shard of $2 bytes moved in $1 ms.
per_page() { awk -v ms="$1" -v b="$2" 'BEGIN {printf "%.0f", ms / int((b + 2097151) / 2097152)}'; }
move_row() { # $1 what, $2 bytes, $3 ms to serving, $4 ms to deletion
  printf '| %s: issued → serving | %s s, %s MB/s, %s ms per 2 MiB page |\n' "$1" "$(secs "$3")" \
    "$(rate "$2" "$3")" "$(per_page "$3" "$2")"
  printf '| %s: issued → old copy deleted | %s s |\n' "$1" "$(secs "$4")"
}
move_row "S ($shard) 1→2 under load" "$shard_bytes" "$loaded_move_ms" "$loaded_gc_ms"
move_row "T ($other) 1→2 no load" "$other_bytes" "$idle_move_ms" "$idle_gc_ms"
move_row "S ($shard) 2→1 back, no load" "$shard_bytes" "$back_move_ms" "$back_gc_ms"
printf '| get other shards, steady (%s) p50 / p99 | %s / %s ms |\n' "$s_gets" "$s_get50" "$s_get99"
printf '| get other shards, during move (%s) p50 / p99 | %s / %s ms (p99 %s steady) |\n' \
  "$d_gets" "$d_get50" "$d_get99" "$(ratio "$d_get99" "$s_get99")"
printf '| put other shards, steady (%s) p50 / p99 | %s / %s ms |\n' "$s_puts" "$s_put50" "$s_put99"
printf '| put other shards, during move (%s) p50 / p99 | %s / %s ms (p99 %s steady) |\n' \
  "$d_puts" "$d_put50" "$d_put99" "$(ratio "$d_put99" "$s_put99")"
printf '| failed requests during move | %s |\n' "$d_errors"
printf '| uptime before / after | %s / %s |\n' "$uptime_before" "$uptime_after"

echo
echo "During the loaded move (move issued → S serving at group 2, $(secs "$loaded_move_ms") s):"
printf '| process | CPU s | CPU %% of the move | write() MB | to storage MB | fsync+fdatasync: calls, time in them |\n'
printf '|---|---|---|---|---|---|\n'
total_ticks=0
for name in ctrl g1-n1 g1-n2 g1-n3 g2-n1 g2-n2 g2-n3; do
  total_ticks=$((total_ticks + ${loaded_cpu[$name]}))
  printf '| %s | %s | %s | %s | %s | %s |\n' "$name" \
    "$(awk -v t="${loaded_cpu[$name]}" -v hz="$ticks" 'BEGIN {printf "%.2f", t / hz}')" \
    "$(awk -v t="${loaded_cpu[$name]}" -v hz="$ticks" -v ms="$loaded_move_ms" \
      'BEGIN {printf "%.0f", (ms > 0 ? 100 * t / hz / (ms / 1000) : 0)}')" \
    "$(mb "${loaded_wchar[$name]}")" "$(mb "${loaded_disk[$name]}")" "${loaded_fsyncs[$name]:-n/a}"
done
printf '| all kvd | %s | %s (of 200) | | | |\n' \
  "$(awk -v t="$total_ticks" -v hz="$ticks" 'BEGIN {printf "%.2f", t / hz}')" \
  "$(awk -v t="$total_ticks" -v hz="$ticks" -v ms="$loaded_move_ms" \
    'BEGIN {printf "%.0f", (ms > 0 ? 100 * t / hz / (ms / 1000) : 0)}')"
echo "(leaders: $loaded_leaders during the loaded move; $idle_leaders during the move without load)"

echo
echo "During the move of T without load (issued → T serving at group 2, $(secs "$idle_move_ms") s):"
printf '| process | CPU s | CPU %% of the move | write() MB | to storage MB | fsync+fdatasync: calls, time in them |\n'
printf '|---|---|---|---|---|---|\n'
total_ticks=0
for name in ctrl g1-n1 g1-n2 g1-n3 g2-n1 g2-n2 g2-n3; do
  total_ticks=$((total_ticks + ${cpu_used[$name]}))
  printf '| %s | %s | %s | %s | %s | %s |\n' "$name" \
    "$(awk -v t="${cpu_used[$name]}" -v hz="$ticks" 'BEGIN {printf "%.2f", t / hz}')" \
    "$(awk -v t="${cpu_used[$name]}" -v hz="$ticks" -v ms="$idle_move_ms" \
      'BEGIN {printf "%.0f", (ms > 0 ? 100 * t / hz / (ms / 1000) : 0)}')" \
    "$(mb "${wchar_used[$name]}")" "$(mb "${disk_used[$name]}")" "${fsyncs[$name]:-n/a}"
done
printf '| all kvd | %s | %s (of 200) | | | |\n' \
  "$(awk -v t="$total_ticks" -v hz="$ticks" 'BEGIN {printf "%.2f", t / hz}')" \
  "$(awk -v t="$total_ticks" -v hz="$ticks" -v ms="$idle_move_ms" \
    'BEGIN {printf "%.0f", (ms > 0 ? 100 * t / hz / (ms / 1000) : 0)}')"

if ((profile)); then
  # perf names a process by its PID: say which node each is.
  for name in g1-n1 g1-n2 g1-n3 g2-n1 g2-n2 g2-n3; do printf '%s=%s ' "$name" "${node_pid[$name]}"; done
  echo
  for key in pid dso comm sym; do
    echo
    echo "perf record -e cpu-clock, every kvd during the move of T without load, by $key:"
    perf report -i "$work/perf.data" --no-children --sort "$key" --stdio 2>/dev/null |
      grep -E '^ +[0-9]' | head -n 25 | { swift demangle --simplified 2>/dev/null || cat; } |
      cut -c 1-160 || true
  done
fi
