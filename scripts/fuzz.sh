#!/usr/bin/env bash
# Runs each fuzz target of tus-core/fuzz (every header parser, the structured-field helpers, upload
# IDs, and the whole handler over a MemoryStore) and of tus-server/fuzz (the media step's
# metadata stripper and decoding under limits) for a bounded time (default 60 s each) with
# libFuzzer coverage instrumentation, on the stable toolchain (the same flags cargo-fuzz
# passes with `--sanitizer none`). Crashes land in <crate>/fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
SECONDS_EACH=${1:-60}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target/fuzz-cov}
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# An explicit --target keeps RUSTFLAGS off build scripts and proc macros.
host=$(rustc -vV | sed -n 's/^host: //p')
failed=()
for crate in tus-core/fuzz tus-server/fuzz; do
    cd "$root/$crate"
    cargo build --release --bins --target "$host"
    for target in $(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v -- '-fuzz$'); do
        mkdir -p "corpus/$target" "artifacts/$target"
        echo "==> fuzzing $target ($crate) for ${SECONDS_EACH}s"
        log="$CARGO_TARGET_DIR/fuzz-$target.log"
        if "$CARGO_TARGET_DIR/$host/release/$target" "corpus/$target" -artifact_prefix="artifacts/$target/" \
            -max_total_time="$SECONDS_EACH" -max_len=4096 -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 \
            >"$log" 2>&1; then
            grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$log"
        else
            failed+=("$target")
            grep -E -A30 'panicked|ERROR: libFuzzer|SUMMARY' "$log" | head -60
            echo "!! $target found a crash: input saved in $crate/artifacts/$target/ (full log $log)"
        fi
    done
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "crashes in: ${failed[*]}" >&2
    exit 1
fi
echo "no crashes"
