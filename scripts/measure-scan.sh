#!/usr/bin/env bash
# Scan throughput: uploads a 100 MiB clean file to a release tus-server with clamd scanning on,
# and times from the completing PATCH to `Upload-State: clean`. Needs a clamd listening at
# $CLAMD (default tcp://127.0.0.1:3310, StreamMaxLength ≥ 100M). Extra arguments go to
# tus-server (e.g. S3 flags).
set -euo pipefail
cd "$(dirname "$0")/.."
CLAMD=${CLAMD:-tcp://127.0.0.1:3310}
SIZE_MIB=${SIZE_MIB:-100}
cargo build --release -q -p tus-server
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom > "$work/file"
./target/release/tus-server --port 0 --upload-dir "$work/data" --clamd-address "$CLAMD" \
    --clamd-max-stream $((SIZE_MIB * 1024 * 1024)) "$@" > "$work/out" 2> "$work/err" &
pid=$!
for _ in $(seq 50); do grep -q http "$work/out" 2>/dev/null && break; sleep 0.1; done
base=$(grep -o 'http://[^ ]*' "$work/out")
loc=$(curl -s -D - -o /dev/null -X POST "$base" -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $((SIZE_MIB * 1024 * 1024))" \
    | tr -d '\r' | awk 'tolower($1)=="location:"{print $2}')
curl -s -o /dev/null -X PATCH "$loc" -H 'Tus-Resumable: 1.0.0' -H 'Content-Type: application/offset+octet-stream' \
    -H 'Upload-Offset: 0' --data-binary @"$work/file"
start=$(date +%s.%N)
while :; do
    state=$(curl -s -I "$loc" -H 'Tus-Resumable: 1.0.0' | tr -d '\r' | awk 'tolower($1)=="upload-state:"{print $2}')
    [ "$state" = processing ] || break
    sleep 0.05
done
end=$(date +%s.%N)
[ "$state" = clean ] || { echo "state $state, expected clean" >&2; exit 1; }
awk -v s="$start" -v e="$end" -v m="$SIZE_MIB" 'BEGIN { printf "scanned %d MiB in %.2f s: %.1f MiB/s (state clean)\n", m, e-s, m/(e-s) }'
