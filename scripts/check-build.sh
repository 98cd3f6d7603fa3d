#!/usr/bin/env bash
# Builds everything (products and tests) and fails if the compiler warns about any file of
# ours: the project keeps zero warnings in Swift 6 language mode.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
swift build --build-tests "$@" 2>&1 | tee "$log"
if grep -E "^$PWD/(Sources|Tests)/.*warning:" "$log" >/dev/null; then
  echo "check-build: the build printed warnings in our sources:" >&2
  grep -E "^$PWD/(Sources|Tests)/.*warning:" "$log" | sort -u >&2
  exit 1
fi
