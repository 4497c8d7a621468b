#!/usr/bin/env bash
# Benchmark rd-chain's snapshot reading against CPython's C unpickler, side by side in one run.
# Writes the benchmark logs once into target/bench-data (about 2 GB), then prints medians and peak RSS.
# Then measures the CPU cost of live progress (the session-folder watcher) over the 100-loop log.
# Usage: scripts/bench.sh [--runs N]        scripts/bench.sh --progress-only [--seconds S]
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
python3 scripts/bench.py target/release/rd-chain "$data" "$@"
python3 scripts/bench_progress.py target/release/examples/progress_bench "$data"/hundred/log/*
