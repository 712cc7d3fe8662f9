#!/usr/bin/env bash
# Runs every check and test of the workspace, as CI does (`.ci/run` calls this script).
# Needs only the Rust toolchain; installs cargo-nextest if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

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
