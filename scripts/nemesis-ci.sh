#!/usr/bin/env bash
# The nemesis slice `make test` runs (a few minutes on 2 cores): fixed seeds of both shapes
# must pass, and a run with the fault-injection switch SHARDKV_UNSAFE_STALE_READS=1 (Get
# without ReadIndex) must be caught, which proves the harness can fail.
set -uo pipefail
cd "$(dirname "$0")/.."
export NEMESIS_SKIP_BUILD=${NEMESIS_SKIP_BUILD:-0}
DIR=${NEMESIS_DIR:-.build/nemesis-ci}
rm -rf "$DIR"
failed=0

scripts/nemesis.sh --dir "$DIR/group" --shape group --seed 101 --runs 2 --seconds 30 || failed=1
export NEMESIS_SKIP_BUILD=1
scripts/nemesis.sh --dir "$DIR/sharded" --shape sharded --seed 201 --runs 2 --seconds 30 || failed=1

# The broken read path must be caught: exit status 1 and at least one violation.
mkdir -p "$DIR"
scripts/nemesis.sh --dir "$DIR/unsafe" --shape group --seed 301 --runs 1 --seconds 30 \
  --kvd-env SHARDKV_UNSAFE_STALE_READS=1 >"$DIR/unsafe.out"
status=$?
cat "$DIR/unsafe.out"
last=$(tail -1 "$DIR/unsafe.out")
if [[ $status == 1 && $last =~ ,\ ([1-9][0-9]*)\ violations ]]; then
  echo "nemesis-ci: the stale-read switch was caught (${BASH_REMATCH[1]} violations), as it must be"
else
  echo "nemesis-ci: FAIL: the nemesis did not catch SHARDKV_UNSAFE_STALE_READS=1 (exit $status: $last)" >&2
  failed=1
fi
if [[ $failed == 0 ]]; then echo "nemesis-ci: PASS"; else echo "nemesis-ci: FAIL" >&2; fi
exit $failed
