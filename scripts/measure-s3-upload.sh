#!/usr/bin/env bash
# One 1 GiB upload in 8 MiB PATCHes with curl against a release tus-server on the S3 store;
# prints throughput, the server's peak RSS and (for moto, whose log has one line per request)
# the S3 requests per PATCH. Usage: scripts/measure-s3-upload.sh ENDPOINT BUCKET [tus-server args]
# The bucket must exist; credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
# (default test/test). Not a benchmark harness: a quick check.
set -euo pipefail
cd "$(dirname "$0")/.."
endpoint=$1 bucket=$2
shift 2
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
export AWS_REGION=${AWS_REGION:-us-east-1} AWS_EC2_METADATA_DISABLED=true
SIZE_MIB=${SIZE_MIB:-1024}
CHUNK_MIB=${CHUNK_MIB:-8}
cargo build --release -q -p tus-server
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
head -c $((CHUNK_MIB * 1024 * 1024)) /dev/urandom > "$work/chunk"
./target/release/tus-server --port 0 --s3-bucket "$bucket" --s3-endpoint "$endpoint" --s3-force-path-style "$@" \
    > "$work/out" 2> "$work/err" &
pid=$!
for _ in $(seq 50); do grep -q http "$work/out" 2>/dev/null && break; sleep 0.1; done
base=$(grep -o 'http://[^ ]*' "$work/out")
total=$((SIZE_MIB * 1024 * 1024))
chunk=$((CHUNK_MIB * 1024 * 1024))
loc=$(curl -s -D - -o /dev/null -X POST "$base" -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $total" \
    | tr -d '\r' | awk 'tolower($1)=="location:"{print $2}')
start=$(date +%s.%N)
offset=0
patches=0
while [ "$offset" -lt "$total" ]; do
    offset=$(curl -s -D - -o /dev/null -X PATCH "$loc" -H 'Tus-Resumable: 1.0.0' \
        -H 'Content-Type: application/offset+octet-stream' -H "Upload-Offset: $offset" \
        --data-binary @"$work/chunk" | tr -d '\r' | awk 'tolower($1)=="upload-offset:"{print $2}')
    [ -n "$offset" ] || { echo "PATCH failed" >&2; exit 1; }
    patches=$((patches + 1))
done
end=$(date +%s.%N)
rss_kib=$(awk '/VmHWM/{print $2}' "/proc/$pid/status")
stored=$(curl -s -I "$loc" -H 'Tus-Resumable: 1.0.0' | tr -d '\r' | awk 'tolower($1)=="upload-offset:"{print $2}')
[ "$stored" = "$total" ] || { echo "HEAD says $stored bytes, expected $total" >&2; exit 1; }
awk -v s="$start" -v e="$end" -v t="$total" -v r="$rss_kib" -v p="$patches" 'BEGIN {
    printf "uploaded %d MiB in %d PATCHes in %.2f s: %.0f MiB/s; server peak RSS %.1f MiB\n", t/1048576, p, e-s, t/1048576/(e-s), r/1024 }'
