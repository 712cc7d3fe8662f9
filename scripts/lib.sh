# What the scripts/measure-*.sh share: sourced (after `cd` to the workspace root), not run.
# Each script stays runnable on its own: `set -euo pipefail; cd "$(dirname "$0")/.."; . scripts/lib.sh`.

# Builds the release tus-server and makes "$work", a scratch directory; on exit every server
# started with start_server is killed and "$work" removed.
measure_setup() {
    cargo build --release -q -p tus-server
    work=$(mktemp -d)
    server_pids=()
    trap 'kill "${server_pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
}

# start_server NAME ARGS...: starts the release tus-server on a free port with ARGS, its output in
# "$work/NAME.out" and "$work/NAME.err"; sets $pid to its process ID.
start_server() {
    local name=$1
    shift
    ./target/release/tus-server --port 0 "$@" > "$work/$name.out" 2> "$work/$name.err" &
    pid=$!
    server_pids+=("$pid")
}

# server_url NAME: waits (up to 10 s) until the server NAME printed its creation URL, and prints it.
server_url() {
    for _ in $(seq 100); do grep -q http "$work/$1.out" 2>/dev/null && break; sleep 0.1; done
    grep -o 'http://[^ ]*' "$work/$1.out"
}

# random_file PATH MIB: PATH filled with MIB MiB of random bytes.
random_file() {
    head -c $(($2 * 1024 * 1024)) /dev/urandom > "$1"
}

# tus_create URL LENGTH: creates an upload of LENGTH bytes; prints its URL.
tus_create() {
    curl -s -D - -o /dev/null -X POST "$1" -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $2" \
        | tr -d '\r' | awk 'tolower($1)=="location:"{print $2}'
}

# tus_patch URL OFFSET FILE: sends FILE as a PATCH at OFFSET; prints the new offset (nothing if
# the server did not give one).
tus_patch() {
    curl -s -D - -o /dev/null -X PATCH "$1" -H 'Tus-Resumable: 1.0.0' \
        -H 'Content-Type: application/offset+octet-stream' -H "Upload-Offset: $2" \
        --data-binary @"$3" | tr -d '\r' | awk 'tolower($1)=="upload-offset:"{print $2}'
}

# tus_upload URL TOTAL FILE: PATCHes FILE again and again until the upload at URL has TOTAL
# bytes; counts the PATCHes in $patches. Exits if a PATCH gets no new offset.
tus_upload() {
    local offset=0
    patches=0
    while [ "$offset" -lt "$2" ]; do
        offset=$(tus_patch "$1" "$offset" "$3")
        [ -n "$offset" ] || { echo "PATCH failed" >&2; exit 1; }
        patches=$((patches + 1))
    done
}

# timed_upload NAME SIZE_MIB CHUNK_MIB: one upload of SIZE_MIB MiB to the server NAME, in PATCHes
# of the same CHUNK_MIB MiB of random bytes; sets $loc (its URL), $total (its bytes), $patches and
# $seconds (from the first PATCH to the last answer).
timed_upload() {
    random_file "$work/chunk" "$3"
    total=$(($2 * 1024 * 1024))
    loc=$(tus_create "$(server_url "$1")" "$total")
    local start end
    start=$(date +%s.%N)
    tus_upload "$loc" "$total" "$work/chunk"
    end=$(date +%s.%N)
    seconds=$(awk -v s="$start" -v e="$end" 'BEGIN { print e - s }')
}

# head_field URL FIELD: the value of the (lower-case) header FIELD in the answer to a tus HEAD.
head_field() {
    curl -s -I "$1" -H 'Tus-Resumable: 1.0.0' | tr -d '\r' | awk -v f="$2:" 'tolower($1)==f{print $2}'
}

# peak_rss_kib PID: the peak resident set size of process PID, in KiB.
peak_rss_kib() {
    awk '/VmHWM/{print $2}' "/proc/$1/status"
}

# s3_credentials: the AWS variables the S3 store reads, test/test unless already set (moto and
# s3s-fs accept them).
s3_credentials() {
    export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
    export AWS_REGION=${AWS_REGION:-us-east-1} AWS_EC2_METADATA_DISABLED=true
}
