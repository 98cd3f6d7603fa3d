#!/usr/bin/env bash
# The README's run command: builds kvd and kvctl and runs a three-node replicated group on
# loopback (API ports 20000-20002, peer ports 21000-21002, data in ./kvd-data), then waits.
# Ctrl-C stops the nodes; their data stays, and the next run resumes it.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product kvd
swift build -c release --product kvctl
bin=.build/release
peers=127.0.0.1:21000,127.0.0.1:21001,127.0.0.1:21002
mkdir -p kvd-data
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
for i in 0 1 2; do
  "$bin/kvd" -a 127.0.0.1:2000$i -p 127.0.0.1:2100$i --peers "$peers" \
    --data kvd-data/group-node$i 2>>kvd-data/group-node$i.log &
  pids+=($!)
done
for _ in $(seq 1 100); do
  if leader=$("$bin/kvctl" -a 127.0.0.1:20000 --timeout 1 leader 2>/dev/null); then break; fi
  sleep 0.1
done
cat <<MSG
ShardKV group up: 3 kvd nodes, leader ${leader:-unknown}. Logs in kvd-data/group-node*.log.
Try:
  $bin/kvctl -a 127.0.0.1:20000 put greeting hello
  $bin/kvctl -a 127.0.0.1:20001 get greeting
  $bin/kvctl -a 127.0.0.1:20002 status
Ctrl-C stops the group.
MSG
wait
