#!/usr/bin/env bash
# One upload through two tus-server instances sharing an S3 bucket and Redis, alternating
# instances on every 8 MiB PATCH (as a round-robin load balancer would). Needs an S3 endpoint
# (S3_ENDPOINT, e.g. moto) with bucket $BUCKET and Redis at $REDIS_URL; AWS_* credentials set.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${S3_ENDPOINT:?set S3_ENDPOINT}" "${BUCKET:?set BUCKET}" "${REDIS_URL:?set REDIS_URL}"
SIZE_MIB=${SIZE_MIB:-256}
cargo build --release -q -p tus-server
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
head -c $((8 * 1024 * 1024)) /dev/urandom > "$work/chunk"
for n in a b; do
    ./target/release/tus-server --port 0 --s3-bucket "$BUCKET" --s3-endpoint "$S3_ENDPOINT" --s3-force-path-style \
        --redis-url "$REDIS_URL" > "$work/$n.out" 2> "$work/$n.err" &
    pids+=($!)
done
for n in a b; do for _ in $(seq 100); do grep -q http "$work/$n.out" 2>/dev/null && break; sleep 0.1; done; done
a=$(grep -o 'http://[^ ]*' "$work/a.out"); b=$(grep -o 'http://[^ ]*' "$work/b.out")
total=$((SIZE_MIB * 1024 * 1024))
loc=$(curl -s -D - -o /dev/null -X POST "$a" -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $total" \
    | tr -d '\r' | awk 'tolower($1)=="location:"{print $2}')
id=${loc##*/}
start=$(date +%s.%N)
offset=0; i=0
while [ "$offset" -lt "$total" ]; do
    if [ $((i % 2)) -eq 0 ]; then base=$a; else base=$b; fi
    offset=$(curl -s -D - -o /dev/null -X PATCH "$base$id" -H 'Tus-Resumable: 1.0.0' \
        -H 'Content-Type: application/offset+octet-stream' -H "Upload-Offset: $offset" \
        --data-binary @"$work/chunk" | tr -d '\r' | awk 'tolower($1)=="upload-offset:"{print $2}')
    [ -n "$offset" ] || { echo "PATCH failed" >&2; exit 1; }
    i=$((i + 1))
done
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" -v t="$total" -v n="$i" 'BEGIN {
    printf "uploaded %d MiB in %d PATCHes alternating two instances in %.2f s: %.1f MiB/s\n", t/1048576, n, e-s, t/1048576/(e-s) }'
