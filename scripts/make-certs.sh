#!/usr/bin/env bash
# Creates a certificate authority and certificates signed by it, for kvd's and kvctl's mutual
# TLS (tests, local clusters). Not for production: the keys are unencrypted and the CA's key
# sits next to the certificates.
#   scripts/make-certs.sh [--san LIST] [DIR]      (default DIR: configs/certs)
# In DIR:
#   ca.pem, ca-key.pem          the CA (kept when DIR already holds one, so that certificates
#                               made later are trusted alongside the earlier ones)
#   node.pem, node-key.pem      a node's certificate, for both --peer-cert and --api-cert: usable
#                               as server and as client certificate, valid for the addresses in
#                               LIST (default IP:127.0.0.1,DNS:localhost; nodes are dialled by
#                               IP address, which must appear as an IP entry)
#   client.pem, client-key.pem  a client certificate for kvctl --cert/--key
# Run it again with another DIR for a second, unrelated CA.
set -euo pipefail
san="IP:127.0.0.1,DNS:localhost"
if [ "${1:-}" = "--san" ]; then
  [ $# -ge 2 ] || { echo "usage: $0 [--san LIST] [DIR]" >&2; exit 2; }
  san=$2
  shift 2
fi
dir=${1:-"$(dirname "$0")/../configs/certs"}
[ $# -le 1 ] || { echo "usage: $0 [--san LIST] [DIR]" >&2; exit 2; }
command -v openssl >/dev/null || { echo "$0: openssl is needed (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$dir"
cd "$dir"
umask 077
days=825
curve=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)

if [ ! -f ca.pem ] || [ ! -f ca-key.pem ]; then
  openssl req -x509 "${curve[@]}" -keyout ca-key.pem -out ca.pem -days "$days" \
    -subj "/CN=ShardKV test CA $(date +%s)-$$" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi

# sign NAME SUBJECT EXTENSIONS
sign() {
  local extensions
  extensions=$(mktemp)
  printf '%s\n' "$3" >"$extensions"
  openssl req -new "${curve[@]}" -keyout "$1-key.pem" -out "$1.csr" -subj "$2" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days "$days" \
    -out "$1.pem" -extfile "$extensions" 2>/dev/null
  rm -f "$1.csr" "$extensions"
}

sign node "/CN=shardkv-node" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=$san"
sign client "/CN=shardkv-client" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
rm -f ca.srl
chmod 644 ca.pem node.pem client.pem
echo "certificates in $(pwd): ca.pem node.pem node-key.pem client.pem client-key.pem"
