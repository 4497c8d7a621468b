#!/usr/bin/env bash
# Benchmark rd-chain's snapshot reading against cat, openssl sha256 and CPython's C unpickler, side by side in
# one run. Writes the benchmark logs once into target/bench-data (about 5 GB), then prints medians, peak RSS,
# private memory and whether the targets hold (see scripts/bench.py).
# Then measures the CPU cost of live progress (the session-folder watcher) over the 100-loop log.
# Usage: scripts/bench.sh [--runs N] [--baseline OLD_RD_CHAIN] [--only LOG,LOG]
#        scripts/bench.sh --progress-only [--seconds S]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release --bin rd-chain --example progress_bench
data=target/bench-data
if [ "${1:-}" = "--progress-only" ]; then
    shift
    if [ ! -d "$data/hundred" ]; then
        mkdir -p "$data"
        python3 -c 'import sys; sys.path.insert(0, "scripts"); from fixtures.scenarios import BENCH, generate_scenario
generate_scenario(BENCH[0], sys.argv[1])' "$data" >/dev/null
    fi
    exec python3 scripts/bench_progress.py target/release/examples/progress_bench "$data"/hundred/log/* "$@"
fi
if [ ! -d "$data/hundred" ] || [ ! -d "$data/blobs" ]; then
    rm -rf "$data"
    mkdir -p "$data"
    python3 scripts/fixtures bench "$data" >/dev/null
fi
if [ ! -d "$data/loops1000" ] || [ ! -d "$data/huge" ] || [ ! -d "$data/small" ]; then
    python3 scripts/bench_fixtures.py "$data" >/dev/null
fi
# The targets' PASS/FAIL decide the exit status; the progress figures are printed either way.
status=0
python3 scripts/bench.py target/release/rd-chain "$data" "$@" || status=$?
python3 scripts/bench_progress.py target/release/examples/progress_bench "$data"/hundred/log/*
exit "$status"
