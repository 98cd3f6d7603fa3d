#!/usr/bin/env bash
# The README's run command: builds kvd and kvctl (release) and starts the whole sharded cluster
# of a cluster file on this machine (default configs/local.toml: 3 controller replicas, 3 groups
# of 3, a router with the Redis protocol), then waits. Ctrl-C stops every node; the data stays
# under the file's data directory, and the next run resumes it.
#   scripts/run-local.sh [FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
file=${1:-configs/local.toml}
swift build -c release --product kvd
swift build -c release --product kvctl
kvctl=.build/release/kvctl
sleeper=""
stop() {
  trap - EXIT INT TERM
  [ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null
  echo
  "$kvctl" cluster down "$file" || true
  exit 0
}
trap stop EXIT INT TERM
"$kvctl" cluster up "$file"
echo
echo "Ctrl-C stops the cluster (its data stays; the next run resumes it)."
# `wait` returns on a signal (a foreground `sleep` would hold the trap until it ends).
while true; do
  sleep 3600 &
  sleeper=$!
  wait "$sleeper" || true
done
