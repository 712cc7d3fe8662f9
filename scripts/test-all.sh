#!/usr/bin/env bash
# Runs every check and test of the workspace, as CI does (`.ci/run` calls this script).
# Needs only the Rust toolchain; installs cargo-nextest if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# Installs Debian packages the tests need, if missing (CI machines start without them).
apt_install() {
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@"
}

step "services the tests start themselves: ClamAV's clamd (Debian clamav-daemon)"
if [ ! -x /usr/sbin/clamd ] && ! command -v clamd >/dev/null 2>&1; then
    apt_install clamav-daemon
fi

step "formatting"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "build (the conformance tests spawn target/debug/tus-server)"
cargo build --workspace --all-targets

step "tests"
if ! cargo nextest --version >/dev/null 2>&1; then
    cargo install cargo-nextest --locked
fi
cargo nextest run --workspace --no-fail-fast
cargo test --workspace --doc
