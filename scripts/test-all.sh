#!/usr/bin/env bash
# Every check and test of the workspace, as CI runs it (`.ci/run` calls this script) on a fresh
# machine: installs what the tests need (Debian packages, a moto venv, npm and PyPI packages),
# starts the shared S3 test server on 127.0.0.1, and stops it again on exit. Tests that need a
# service of their own (clamd, redis-server) start it themselves.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# Installs Debian packages, if any are missing (CI machines start without them).
apt_install() {
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@"
}

step "system packages: clamd, redis-server, curl, openssl, chromium, node, python venv"
debs=()
[ -x /usr/sbin/clamd ] || command -v clamd >/dev/null 2>&1 || debs+=(clamav-daemon)
command -v redis-server >/dev/null 2>&1 || debs+=(redis-server)
command -v curl >/dev/null 2>&1 || debs+=(curl)
command -v openssl >/dev/null 2>&1 || debs+=(openssl)
[ -x /usr/bin/chromium ] || debs+=(chromium)
command -v node >/dev/null 2>&1 || debs+=(nodejs)
command -v npm >/dev/null 2>&1 || debs+=(npm)
python3 -c 'import ensurepip' >/dev/null 2>&1 || debs+=(python3-venv)
if [ ${#debs[@]} -gt 0 ]; then apt_install "${debs[@]}"; fi

# ---- the shared S3 test server: moto ------------------------------------------------------------
# moto (PyPI `moto[server]`, enforces S3's 5 MiB minimum part size) runs from a venv kept in
# target/moto-venv (reused on re-runs). The tus-store-s3 tests and the multi-instance tests find
# it via TUS_TEST_MOTO_ENDPOINT. s3s-fs 0.14.1 (verifies SigV4 and Content-MD5) runs in-process in
# the tus-store-s3 tests, and as the `s3s_fs_server` example for the conformance suite below.
step "S3 test server: moto (venv in target/moto-venv)"
pids=()
work=$(mktemp -d)
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for_port() {
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
    echo "nothing listens on 127.0.0.1:$1" >&2
    return 1
}
MOTO_VENV=target/moto-venv
if [ ! -x "$MOTO_VENV/bin/moto_server" ]; then
    python3 -m venv "$MOTO_VENV"
    "$MOTO_VENV/bin/pip" install -q 'moto[server]'
fi
moto_port=$(free_port)
"$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
pids+=($!)
wait_for_port "$moto_port"
export TUS_TEST_MOTO_ENDPOINT="http://127.0.0.1:$moto_port"
# Any credentials do for moto and s3s-fs (the tests' s3s-fs accepts test/test).
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
echo "moto at $TUS_TEST_MOTO_ENDPOINT"

step "formatting"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets -- -D warnings

# The library crates package and build from their tarballs as crates.io would (~2 min cold); --allow-dirty: the tree as it is.
step "cargo package: tus-core, tus-store-fs, tus-store-s3"
# The crates are verified against each other through a temporary local registry, whose sources
# cargo extracts under $CARGO_HOME/registry/src/-<hash of its path>/ and never refreshes: a
# second run from the same checkout would build tus-store-fs against the first run's tus-core.
rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-* "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/-*
cargo package --allow-dirty -p tus-core -p tus-store-fs -p tus-store-s3

step "build (the conformance tests spawn target/debug/tus-server)"
cargo build --workspace --all-targets

# Embedders' build: tus-server without its default features (s3, redis) has no AWS SDK or redis; the last build puts the full binary back.
step "tus-server --no-default-features: no aws-sdk, no redis in cargo tree"
cargo build -p tus-server --no-default-features
if cargo tree -p tus-server --no-default-features -e normal | grep -E 'aws-sdk|redis'; then
    echo "tus-server --no-default-features still depends on the crates above" >&2
    exit 1
fi
cargo build --workspace --all-targets

step "tests: unit, store suites (fs, moto, s3s-fs), handler, conformance on the fs store, multi-instance"
if ! cargo nextest --version >/dev/null 2>&1; then
    cargo install cargo-nextest --locked
fi
cargo nextest run --workspace --no-fail-fast
cargo test --workspace --doc

# ---- the conformance suite against the S3 store, on moto and on s3s-fs --------------------------
step "conformance suite against the S3 store on moto and on s3s-fs"
"$MOTO_VENV/bin/python" -c "import urllib.request as u; u.urlopen(u.Request('$TUS_TEST_MOTO_ENDPOINT/tus-conformance', method='PUT'))"
target/debug/examples/s3s_fs_server "$work/s3s-fs" tus-conformance >"$work/s3s-fs.out" 2>"$work/s3s-fs.log" &
pids+=($!)
for _ in $(seq 100); do grep -q http "$work/s3s-fs.out" 2>/dev/null && break; sleep 0.1; done
s3s_endpoint=$(grep -o 'http://[^ ]*' "$work/s3s-fs.out")
for endpoint in "$TUS_TEST_MOTO_ENDPOINT" "$s3s_endpoint"; do
    echo "--- S3 endpoint $endpoint"
    TUS_SERVER_ARGS="--s3-bucket tus-conformance --s3-endpoint $endpoint --s3-force-path-style" \
        cargo nextest run -p conformance-tests --no-fail-fast -E 'not binary(cluster) and not binary(direct_s3)'
done

# ---- reliability: fault injection and a short soak (quick variants; issue 8) --------------------
# target/debug/reliability (built above with the workspace) drives target/debug/tus-server: SIGKILL
# + restart mid-upload on the fs store and on moto, 120 PATCHes cut mid-body (close, reset, stall),
# racing PATCH/HEAD/GET/DELETE, a full disk (8 MiB tmpfs in a private mount namespace, needs
# `unshare -rm`), and 50 clients for 20 s with the server's RSS sampled. About 2 minutes.
# The full run (README, "Reliability and security") is not part of CI.
step "reliability harness (quick): crash fs + S3, network cuts, races, disk full, soak"
timeout --kill-after=10 600 target/debug/reliability --quick all

# ---- real clients: tus-js-client, Uppy in headless Chromium, tuspy (conformance-tests/clients) ----
# `npm ci` when package-lock.json changed since the last one; tuspy + pytest in the venv
# conformance-tests/clients/.venv. The tests spawn target/debug/tus-server and
# target/debug/example-uppy on 127.0.0.1 (TUS_SERVER_ARGS selects tus-server's store), bundle
# Uppy with esbuild into examples/uppy/dist (driving Debian chromium with npm playwright-core; no
# browser is ever downloaded), and save screenshots and logs in conformance-tests/artifacts.
step "real clients: tus-js-client and Uppy in Chromium (node --test), tuspy (pytest), on fs and S3"
clients=conformance-tests/clients
echo "node $(node --version), npm $(npm --version), $(/usr/bin/chromium --version 2>/dev/null)"
lock_sum=$(sha256sum "$clients/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$clients/node_modules/.lock-sha256" 2>/dev/null)" != "$lock_sum" ]; then
    (cd "$clients" && npm ci --no-audit --no-fund)
    echo "$lock_sum" >"$clients/node_modules/.lock-sha256"
fi
req_sum=$(sha256sum "$clients/python/requirements.txt" | cut -d' ' -f1)
if [ "$(cat "$clients/.venv/.requirements-sha256" 2>/dev/null)" != "$req_sum" ]; then
    rm -rf "$clients/.venv"
    python3 -m venv "$clients/.venv"
    "$clients/.venv/bin/pip" install -q -r "$clients/python/requirements.txt"
    echo "$req_sum" >"$clients/.venv/.requirements-sha256"
fi
clients_failed=0
# The node test files of a pass. test/direct-s3.test.mjs (direct-to-S3 uploads with @uppy/aws-s3
# in Chromium) starts its own tus-server on moto and on s3s-fs and ignores TUS_SERVER_ARGS, so only
# the filesystem pass (TUS_SERVER_ARGS unset) runs it.
client_tests() {
    local t
    for t in test/*.test.mjs; do
        if [ -n "${TUS_SERVER_ARGS:-}" ] && [ "$t" = test/direct-s3.test.mjs ]; then continue; fi
        echo "$t"
    done
}
run_clients() {
    # shellcheck disable=SC2046 # the file names have no spaces
    (cd "$clients" && timeout --kill-after=10 900 node --test --test-concurrency=1 $(client_tests)) || clients_failed=1
    (cd "$clients" && timeout --kill-after=10 300 .venv/bin/python -m pytest -q python/) || clients_failed=1
}
echo "--- filesystem store"
run_clients
echo "--- S3 store on moto"
TUS_SERVER_ARGS="--s3-bucket tus-conformance --s3-endpoint $TUS_TEST_MOTO_ENDPOINT --s3-force-path-style" run_clients
if [ "$clients_failed" -ne 0 ]; then
    echo "real-client tests failed (logs and screenshots: conformance-tests/artifacts)" >&2
    exit 1
fi
echo
echo "all tests passed"
