#!/usr/bin/env bash
# Runs a libFuzzer target for SECONDS: scripts/fuzz.sh TARGET SECONDS (e.g. RESPFuzz 120).
#
# Builds TARGET with the fuzzer and address sanitizers and -DFUZZING (see
# Sources/Fuzz/RESPFuzz/RESPFuzz.swift) into its own scratch path, .build-fuzz, leaving the
# ordinary .build alone; the first build compiles every dependency again, instrumented, and takes
# minutes. Tests/Fuzz/TARGET.dict, when present, is its libFuzzer dictionary. The seed corpus Tests/Fuzz/Corpus/TARGET (created if missing) is read, never written:
# inputs the fuzzer finds go to .build-fuzz/fuzz-corpus/TARGET, kept between runs, and a crashing
# input to .build-fuzz/fuzz-crashes/TARGET/ (replay it without the sanitizer with
# `swift run TARGET FILE`). Prints the number of executions; exits non-zero when the fuzzer found
# a crash.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -ne 2 ]; then
  echo "usage: $0 TARGET SECONDS" >&2
  exit 2
fi
target=$1
seconds=$2
case "$seconds" in
  '' | *[!0-9]*)
    echo "fuzz: SECONDS must be a whole number, got '$seconds'" >&2
    exit 2
    ;;
esac
seeds=Tests/Fuzz/Corpus/$target
# (Not .build-fuzz/artifacts: SwiftPM owns and clears that one.)
corpus=.build-fuzz/fuzz-corpus/$target
artifacts=.build-fuzz/fuzz-crashes/$target
mkdir -p "$seeds" .build-fuzz

flags=(-c debug --scratch-path .build-fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING)
build_log=.build-fuzz/build-$target.log
echo "fuzz: building $target with -sanitize=fuzzer,address (log: $build_log)"
# The linker's "Cannot export local symbol" notes about ASan's own symbols are noise.
if ! swift build "${flags[@]}" --product "$target" >"$build_log" 2>&1; then
  grep -v "Cannot export local symbol" "$build_log" | tail -40 >&2
  echo "fuzz: build of $target failed" >&2
  exit 1
fi
bin="$(swift build "${flags[@]}" --show-bin-path)/$target"
mkdir -p "$corpus" "$artifacts"

run_log=.build-fuzz/run-$target.log
echo "fuzz: running $target for ${seconds}s over $seeds (log: $run_log)"
options=(-max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$artifacts/")
if [ -f "Tests/Fuzz/$target.dict" ]; then
  options+=(-dict="Tests/Fuzz/$target.dict")
fi
# Tests/Fuzz/TARGET.options: extra libFuzzer flags, one a line (# starts a comment); a line
# ASAN_OPTIONS=... sets the sanitizer's options instead.
if [ -f "Tests/Fuzz/$target.options" ]; then
  while read -r flag; do
    case "$flag" in
      '' | '#'*) ;;
      ASAN_OPTIONS=*) export "$flag" ;;
      *) options+=("$flag") ;;
    esac
  done <"Tests/Fuzz/$target.options"
fi
status=0
"$bin" "${options[@]}" "$corpus" "$seeds" >"$run_log" 2>&1 || status=$?
executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$run_log" | tail -1 || true)
if [ -z "$executions" ]; then
  # No final stats (a crash): the last progress line has the count.
  executions=$(grep -oE '^#[0-9]+' "$run_log" | tail -1 | tr -d '#' || true)
fi
echo "fuzz: $target executions: ${executions:-unknown}; corpus $(find "$corpus" -type f | wc -l) inputs"
if [ "$status" -ne 0 ]; then
  grep -E "ERROR|==[0-9]+==|Fatal error|SUMMARY|Test unit written|artifact_prefix" "$run_log" | head -20 >&2 || true
  tail -40 "$run_log" >&2
  echo "fuzz: $target failed (exit $status); crashing input in $artifacts/" >&2
  exit "$status"
fi
