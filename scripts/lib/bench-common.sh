# Shell functions shared by the benchmark scripts (scripts/bench-*.sh); sourced, not run.
#
# The sourcing script sets, before calling anything here:
#   bench_name  the script's name, which prefixes its error messages (e.g. bench-kv);
#   work        its temporary directory, deleted on exit;
#   bin         where the release binaries are (.build/release);
# and may set bench_keep_logs=1 to have the logs of $work copied to a fresh directory (and
# their last lines printed) on failure or when keep_logs=1, instead of printing their last
# lines only.
#
# Processes: every long-lived process the script starts goes into `pids` (stopped on exit);
# helpers such as watchdogs and samplers go into `monitors` (stopped first).

pids=()
monitors=()
keep_logs=0
bench_keep_logs=${bench_keep_logs:-0}

# Stops processes: SIGTERM to all, then up to 5 s each before SIGKILL.
stop_pids() {
  local pid
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}

# The EXIT trap: stops monitors, then processes; on failure shows (or keeps) the logs; deletes
# $work; exits with the script's status.
bench_cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if ((${#monitors[@]})); then stop_pids "${monitors[@]}"; fi
  if ((${#pids[@]})); then stop_pids "${pids[@]}"; fi
  if ((status != 0 || keep_logs)); then
    if ((bench_keep_logs)); then
      local kept
      kept=$(mktemp -d -t "shardkv-$bench_name-logs.XXXXXX")
      cp "$work"/*.log "$work"/*.out "$kept"/ 2>/dev/null || true
      for log in "$kept"/*.log; do
        [[ -s $log ]] || continue
        echo "--- last lines of $log" >&2
        tail -n 15 "$log" | cut -c 1-300 >&2
      done
      echo "$bench_name: logs kept in $kept" >&2
    elif ((status != 0)); then
      for log in "$work"/*.log; do
        [[ -s $log ]] || continue
        echo "--- last lines of $log" >&2
        tail -n 20 "$log" | cut -c 1-300 >&2
      done
    fi
  fi
  rm -rf "$work"
  exit "$status"
}

# Installs the traps: cleanup on exit, also after Ctrl-C or SIGTERM.
bench_traps() {
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# Bounds the whole run: past $1 seconds the script stops itself (and cleans up). Sets
# `watchdog` to the watchdog's pid; stopping the watchdog also stops its `sleep`, which would
# otherwise outlive the script.
bench_watchdog() {
  local limit=$1 script_pid=$$
  (
    trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
    sleep "$limit" &
    sleeper=$!
    wait "$sleeper" && echo "$bench_name: deadline of $limit s reached" >&2 && kill -TERM "$script_pid"
  ) &
  watchdog=$!
  monitors+=("$watchdog")
}

fail() {
  echo "$bench_name: $*" >&2
  exit 1
}

port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

# Fails unless every port base+offset is free: bench_check_ports BASE OFFSET...
bench_check_ports() {
  local base=$1 offset
  shift
  for offset in "$@"; do
    if port_busy $((base + offset)); then
      fail "port $((base + offset)) is in use; set BASE_PORT to a free range"
    fi
  done
}

section() { printf '\n== %s\n' "$*"; }
# Prints a command, then runs it.
run() { printf '+ %s\n' "$*"; "$@"; }
now_ms() { date +%s%3N; }
uptime_line() { uptime | sed 's/^ *//'; }

# The machine's facts: cores, CPU, memory, (with `disk` as $1, the disk under $work), an fsync
# probe in $work, the Swift version.
bench_machine() {
  echo "nproc: $(nproc)"
  echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -n 1)"
  echo "memory: $(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
  if [[ ${1:-} == disk ]]; then
    local disk
    disk=$(df --output=source "$work" | tail -n 1)
    echo "disk under $work: $disk (rotational flag: $(cat "/sys/block/$(basename "$disk")/queue/rotational" 2>/dev/null || echo unknown))"
  fi
  echo "fsync probe: $(dd if=/dev/zero of="$work/fsync-probe" bs=4k count=500 oflag=dsync 2>&1 | tail -n 1 | sed 's/.*copied, //') for 500 synchronous 4 KiB writes"
  rm -f "$work/fsync-probe"
  echo "swift: $(swift --version 2>&1 | head -n 1)"
}

bench_build_release() {
  local product
  for product in kvd kvctl kvbench; do swift build -c release --product "$product"; done
}

as_root() { if ((EUID == 0)); then "$@"; else sudo "$@"; fi; }

# Installs Debian packages, refreshing the package lists first if the install fails.
bench_apt_install() {
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"; then
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
  fi
}

# --- A standalone three-node kvd group: API ports base+0..2, peer ports base+100..102.

kvd_api() { echo "127.0.0.1:$((base + $1))"; }
kvd_peer() { echo "127.0.0.1:$((base + 100 + $1))"; }
group=()

# Starts a three-node kvd group in $work/$1 (logs $work/$1-nodeI.log) and waits up to 10 s for
# a leader. Sets `group` to its pids.
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
      kill -0 "$i" 2>/dev/null || fail "a kvd node exited at start"
    done
    if "$bin/kvctl" -a "$(kvd_api 0)" --timeout 1 leader >/dev/null 2>&1; then
      echo "kvd group up (data in $work/$name, fsync on every Raft write)"
      return
    fi
    sleep 0.1
  done
  fail "the kvd group elected no leader within 10 s"
}

# Stops the processes in `group` and drops them from `pids`.
stop_group() {
  stop_pids "${group[@]}"
  local remaining=() pid member g
  for pid in "${pids[@]}"; do
    member=0
    for g in "${group[@]}"; do [[ $pid == "$g" ]] && member=1; done
    ((member)) || remaining+=("$pid")
  done
  pids=("${remaining[@]+"${remaining[@]}"}")
  group=()
}

# --- Three etcd members: client ports base+200..202, peer ports base+300..302.

etcd_client() { echo "http://127.0.0.1:$((base + 200 + $1))"; }
etcd_peer() { echo "http://127.0.0.1:$((base + 300 + $1))"; }
etcd_endpoints() { echo "$(etcd_client 0),$(etcd_client 1),$(etcd_client 2)"; }

# Installs Debian's etcd-server and etcd-client if etcd or etcdctl is missing.
bench_install_etcd() {
  if command -v etcd >/dev/null && command -v etcdctl >/dev/null; then
    echo "present: $(etcd --version | head -n 1)"
  else
    bench_apt_install etcd-server etcd-client
    echo "installed: $(etcd --version | head -n 1)"
  fi
  echo "$(etcdctl version | head -n 1)"
}

# Starts three etcd members in $work/etcd (logs $work/etcd-mI.log; etcd fsyncs by default)
# and waits up to 10 s until they are healthy. Sets `group` to their pids (stop_group stops
# them).
start_etcd() {
  local cluster i
  cluster="m0=$(etcd_peer 0),m1=$(etcd_peer 1),m2=$(etcd_peer 2)"
  group=()
  for i in 0 1 2; do
    etcd --name "m$i" --data-dir "$work/etcd/m$i" \
      --listen-client-urls "$(etcd_client $i)" --advertise-client-urls "$(etcd_client $i)" \
      --listen-peer-urls "$(etcd_peer $i)" --initial-advertise-peer-urls "$(etcd_peer $i)" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "$bench_name" \
      --logger zap --log-level error 2>>"$work/etcd-m$i.log" &
    pids+=($!)
    group+=($!)
  done
  for _ in $(seq 1 100); do
    for i in "${group[@]}"; do
      kill -0 "$i" 2>/dev/null || fail "an etcd member exited at start"
    done
    if ETCDCTL_API=3 etcdctl --endpoints "$(etcd_endpoints)" endpoint health >/dev/null 2>&1; then
      echo "etcd cluster up (data in $work/etcd)"
      return
    fi
    sleep 0.1
  done
  fail "the etcd cluster did not become healthy within 10 s"
}
