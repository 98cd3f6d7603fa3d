#!/usr/bin/env bash
# The nemesis: real kvd processes in network namespaces under kill -9, pauses, partitions and
# (sharded) membership changes, every client history checked for linearizability.
#   scripts/nemesis.sh [kvbench nemesis flags]     e.g. --shape both --runs 50 --seconds 120
# Needs root (network namespaces). Builds first unless NEMESIS_SKIP_BUILD=1. Whatever happens,
# no namespace or kvd of this run survives it (kvbench cleans up on exit and on Ctrl-C; this
# script sweeps after it in case kvbench itself was killed).
set -uo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) != 0 ]]; then
  echo "nemesis: needs root for network namespaces" >&2
  exit 2
fi
if [[ ${NEMESIS_SKIP_BUILD:-0} != 1 ]]; then
  # The same flags as `make test` (scripts/check-build.sh), so neither build undoes the other.
  swift build --build-tests >&2 || exit 2
fi
BIN=$(swift build --show-bin-path)

sweep() {
  local pid=$1 ns
  for ns in $(ip netns list | awk '{print $1}' | grep "^nem${pid}-"); do
    for victim in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$victim" 2>/dev/null; done
    ip netns delete "$ns" 2>/dev/null
  done
  ip link delete "nem${pid}" 2>/dev/null || true
}

"$BIN/kvbench" nemesis --kvd "$BIN/kvd" "$@" &
child=$!
trap 'kill -INT $child 2>/dev/null; wait $child; sweep $child; exit 130' INT TERM
wait $child
status=$?
sweep $child
exit $status
