#!/usr/bin/env bash
# Regenerates Sources/Wire/Generated/*.pb.swift from every Protos/*.proto.
#
# The Swift plugin (protoc-gen-swift) is built from the very swift-protobuf checkout the package
# resolves to, so the generated code always matches the runtime library it is compiled against.
# The plugin gets its own scratch path (.build-protoc) and is reused while the resolved version
# stays the same. protoc itself comes from Debian's protobuf-compiler.
#
# Usage: scripts/gen-proto.sh          (run from anywhere; output is committed)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v protoc >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "gen-proto: installing protobuf-compiler" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq protobuf-compiler >/dev/null
fi

swift package resolve
checkout=".build/checkouts/swift-protobuf"
if [ ! -d "$checkout" ]; then
  echo "gen-proto: $checkout is missing after 'swift package resolve'" >&2
  exit 1
fi

scratch="$PWD/.build-protoc"
plugin="$scratch/release/protoc-gen-swift"
stamp="$scratch/protoc-gen-swift.version"
version=$(git -C "$checkout" rev-parse HEAD 2>/dev/null || echo unknown)
if [ ! -x "$plugin" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$version" ]; then
  echo "gen-proto: building protoc-gen-swift ($version)" >&2
  swift build -c release --package-path "$checkout" --scratch-path "$scratch" --product protoc-gen-swift
  echo "$version" >"$stamp"
fi

out="Sources/Wire/Generated"
mkdir -p "$out"
shopt -s nullglob
protos=(Protos/*.proto)
if [ ${#protos[@]} -eq 0 ]; then
  echo "gen-proto: no Protos/*.proto found" >&2
  exit 1
fi
# Remove stale output first so that a deleted .proto does not leave its Swift behind.
rm -f "$out"/*.pb.swift
protoc \
  --plugin="protoc-gen-swift=$plugin" \
  --proto_path=Protos \
  --swift_out="$out" \
  --swift_opt=Visibility=Public \
  "${protos[@]}"
echo "gen-proto: generated $(ls "$out"/*.pb.swift | wc -l) file(s) in $out" >&2
