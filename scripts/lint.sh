#!/usr/bin/env bash
# swift format lint --strict over every hand-written Swift file (generated protobuf code under
# Sources/Wire/Generated is protoc's output and is left as generated).
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files --cached --others --exclude-standard -- '*.swift' | grep -v '^Sources/Wire/Generated/' | while read -r f; do if [ -f "$f" ]; then echo "$f"; fi; done)
# shellcheck disable=SC2086
swift format lint --strict $files
