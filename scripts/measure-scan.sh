#!/usr/bin/env bash
# Scan throughput: uploads a 100 MiB clean file to a release tus-server with clamd scanning on,
# and times from the completing PATCH to `Upload-State: clean`. Needs a clamd listening at
# $CLAMD (default tcp://127.0.0.1:3310, StreamMaxLength ≥ 100M). Extra arguments go to
# tus-server (e.g. S3 flags).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
CLAMD=${CLAMD:-tcp://127.0.0.1:3310}
SIZE_MIB=${SIZE_MIB:-100}
measure_setup
random_file "$work/file" "$SIZE_MIB"
start_server server --upload-dir "$work/data" --clamd-address "$CLAMD" \
    --clamd-max-stream $((SIZE_MIB * 1024 * 1024)) "$@"
base=$(server_url server)
loc=$(tus_create "$base" $((SIZE_MIB * 1024 * 1024)))
tus_patch "$loc" 0 "$work/file" > /dev/null
start=$(date +%s.%N)
while :; do
    state=$(head_field "$loc" upload-state)
    [ "$state" = processing ] || break
    sleep 0.05
done
end=$(date +%s.%N)
[ "$state" = clean ] || { echo "state $state, expected clean" >&2; exit 1; }
awk -v s="$start" -v e="$end" -v m="$SIZE_MIB" 'BEGIN { printf "scanned %d MiB in %.2f s: %.1f MiB/s (state clean)\n", m, e-s, m/(e-s) }'
