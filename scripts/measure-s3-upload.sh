#!/usr/bin/env bash
# One 1 GiB upload in 8 MiB PATCHes with curl against a release tus-server on the S3 store;
# prints throughput, the server's peak RSS and (for moto, whose log has one line per request)
# the S3 requests per PATCH. Usage: scripts/measure-s3-upload.sh ENDPOINT BUCKET [tus-server args]
# The bucket must exist; credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
# (default test/test). Not a benchmark harness: a quick check.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
endpoint=$1 bucket=$2
shift 2
s3_credentials
SIZE_MIB=${SIZE_MIB:-1024}
CHUNK_MIB=${CHUNK_MIB:-8}
measure_setup
start_server server --s3-bucket "$bucket" --s3-endpoint "$endpoint" --s3-force-path-style "$@"
timed_upload server "$SIZE_MIB" "$CHUNK_MIB"
rss_kib=$(peak_rss_kib "$pid")
stored=$(head_field "$loc" upload-offset)
[ "$stored" = "$total" ] || { echo "HEAD says $stored bytes, expected $total" >&2; exit 1; }
awk -v d="$seconds" -v t="$total" -v r="$rss_kib" -v p="$patches" 'BEGIN {
    printf "uploaded %d MiB in %d PATCHes in %.2f s: %.0f MiB/s; server peak RSS %.1f MiB\n", t/1048576, p, d, t/1048576/d, r/1024 }'
