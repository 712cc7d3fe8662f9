#!/usr/bin/env bash
# One 1 GiB upload in 8 MiB PATCHes with curl against a release tus-server on the filesystem
# store; prints throughput and the server's peak RSS. Extra arguments go to tus-server
# (e.g. --no-sync). Not a benchmark harness (see the performance issue): a quick check.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
SIZE_MIB=${SIZE_MIB:-1024}
CHUNK_MIB=${CHUNK_MIB:-8}
measure_setup
start_server server --upload-dir "$work/data" "$@"
timed_upload server "$SIZE_MIB" "$CHUNK_MIB"
rss_kib=$(peak_rss_kib "$pid")
stored=$(stat -c %s "$work/data/${loc##*/}")
[ "$stored" -eq "$total" ] || { echo "stored $stored bytes, expected $total" >&2; exit 1; }
awk -v d="$seconds" -v t="$total" -v r="$rss_kib" 'BEGIN {
    printf "uploaded %d MiB in %.2f s: %.0f MiB/s; server peak RSS %.1f MiB\n", t/1048576, d, t/1048576/d, r/1024 }'
