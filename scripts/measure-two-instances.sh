#!/usr/bin/env bash
# One upload through two tus-server instances sharing an S3 bucket and Redis, alternating
# instances on every 8 MiB PATCH (as a round-robin load balancer would). Needs an S3 endpoint
# (S3_ENDPOINT, e.g. moto) with bucket $BUCKET and Redis at $REDIS_URL; AWS_* credentials set.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
: "${S3_ENDPOINT:?set S3_ENDPOINT}" "${BUCKET:?set BUCKET}" "${REDIS_URL:?set REDIS_URL}"
SIZE_MIB=${SIZE_MIB:-256}
measure_setup
random_file "$work/chunk" 8
for n in a b; do
    start_server "$n" --s3-bucket "$BUCKET" --s3-endpoint "$S3_ENDPOINT" --s3-force-path-style \
        --redis-url "$REDIS_URL"
done
a=$(server_url a); b=$(server_url b)
total=$((SIZE_MIB * 1024 * 1024))
loc=$(tus_create "$a" "$total")
id=${loc##*/}
start=$(date +%s.%N)
offset=0; i=0
while [ "$offset" -lt "$total" ]; do
    if [ $((i % 2)) -eq 0 ]; then base=$a; else base=$b; fi
    offset=$(tus_patch "$base$id" "$offset" "$work/chunk")
    [ -n "$offset" ] || { echo "PATCH failed" >&2; exit 1; }
    i=$((i + 1))
done
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" -v t="$total" -v n="$i" 'BEGIN {
    printf "uploaded %d MiB in %d PATCHes alternating two instances in %.2f s: %.1f MiB/s\n", t/1048576, n, e-s, t/1048576/(e-s) }'
