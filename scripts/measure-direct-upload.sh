#!/usr/bin/env bash
# One upload of SIZE_MIB (default 1024) MiB to the S3 store twice: through tus (8 MiB PATCHes
# with curl) and direct to S3 (Companion's routes, as @uppy/aws-s3 uses them: 8 MiB parts PUT
# to presigned URLs, 4 at a time, then the completion). For each: the time, the server's CPU
# time, the upload bytes it received (its tus_bytes_received_total metric) and the bytes it
# wrote (/proc/PID/io wchar: to S3 and to clients; socket reads are not in rchar).
# Usage: scripts/measure-direct-upload.sh ENDPOINT BUCKET [tus-server args]. The bucket must
# exist; credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (default test/test).
# Not a benchmark harness: a quick side-by-side check.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
endpoint=$1 bucket=$2
shift 2
s3_credentials
SIZE_MIB=${SIZE_MIB:-1024}
measure_setup
start_server server --s3-bucket "$bucket" --s3-endpoint "$endpoint" --s3-force-path-style --direct-s3 "$@"
origin=$(server_url server | sed 's|/files/$||')

# server_usage: "<cpu seconds> <upload bytes received> <bytes written>" of the server so far.
server_usage() {
    local ticks received
    ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    received=$(curl -s "$origin/metrics" | awk '$1=="tus_bytes_received_total"{print $2}')
    awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v r="$received" '/^wchar/{w=$2} END {print t/hz, r, w}' "/proc/$pid/io"
}
report() { # report NAME SECONDS BEFORE AFTER
    awk -v n="$1" -v s="$2" -v m="$SIZE_MIB" -v b="$3" -v a="$4" 'BEGIN {
        split(b, x, " "); split(a, y, " ");
        printf "%-6s %d MiB in %6.2f s (%4.0f MiB/s); server CPU %6.2f s, received %7.1f MiB, wrote %7.1f MiB\n",
            n, m, s, m/s, y[1]-x[1], (y[2]-x[2])/1048576, (y[3]-x[3])/1048576 }'
}

before=$(server_usage)
timed_upload server "$SIZE_MIB" 8
after=$(server_usage)
report tus "$seconds" "$before" "$after"

before=$(server_usage)
seconds=$(python3 - "$origin" "$SIZE_MIB" <<'PY'
import json, os, sys, time, urllib.parse as p, urllib.request as u
from concurrent.futures import ThreadPoolExecutor
origin, size = sys.argv[1], int(sys.argv[2]) << 20
part = 8 << 20
chunk = os.urandom(part)
def call(method, path, body=None):
    req = u.Request(origin + path, method=method, data=None if body is None else json.dumps(body).encode(),
                    headers={"content-type": "application/json"})
    with u.urlopen(req, timeout=60) as r:
        return json.loads(r.read())
start = time.time()
created = call("POST", "/s3/multipart", {"filename": "big.bin", "type": "application/octet-stream", "metadata": {}})
q = "?key=" + p.quote(created["key"], safe="")
uid = p.quote(created["uploadId"], safe="")
def put(n):
    signed = call("GET", f"/s3/multipart/{uid}/{n}{q}")
    data = chunk[: min(part, size - (n - 1) * part)]
    req = u.Request(signed["url"], method="PUT", data=data, headers={"content-type": "application/octet-stream"})
    with u.urlopen(req, timeout=120) as r:
        return {"PartNumber": n, "ETag": r.headers["ETag"]}
with ThreadPoolExecutor(4) as pool:
    parts = list(pool.map(put, range(1, (size + part - 1) // part + 1)))
done = call("POST", f"/s3/multipart/{uid}/complete{q}", {"parts": parts})
assert done["state"] in ("finished", "processing", "clean"), done
print(time.time() - start)
PY
)
after=$(server_usage)
report direct "$seconds" "$before" "$after"
