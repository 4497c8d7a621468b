#!/usr/bin/env bash
# Benchmark rd-chain's snapshot reading against CPython's C unpickler, side by side in one run.
# Writes the benchmark logs once into target/bench-data (about 2 GB), then prints medians and peak RSS.
# Usage: scripts/bench.sh [--runs N]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release
data=target/bench-data
if [ ! -d "$data/hundred" ] || [ ! -d "$data/blobs" ]; then
    rm -rf "$data"
    mkdir -p "$data"
    python3 scripts/gen_fixtures.py bench "$data" >/dev/null
fi
python3 scripts/bench.py target/release/rd-chain "$data" "$@"
