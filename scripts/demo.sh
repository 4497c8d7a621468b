#!/usr/bin/env bash
# Build rd-chain and run its main job end to end against the bundled simulated rdagent (scripts/fake-rdagent):
# 4 factor loops, the SOTA factor workspace resolved from that run's own log, 2 model loops on those factors.
# Everything is written under target/demo/; no RD-Agent installation is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

cargo build --quiet --release
demo=$repo/target/demo/$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$demo"
cd "$demo"
echo "demo: project dir $demo"

# Prefer the test venv's python (it has pandas, so the model phase really trains on the factors).
if [ -x "$repo/.venv/bin/python3" ]; then
    export PATH="$repo/.venv/bin:$PATH"
fi

"$repo/target/release/rd-chain" --dry-run --rdagent "$repo/scripts/fake-rdagent" --factor-loops 4 --model-loops 2
"$repo/target/release/rd-chain" --rdagent "$repo/scripts/fake-rdagent" --factor-loops 4 --model-loops 2
echo
"$repo/target/release/rd-chain" list log
factor_log=$(ls -d log/2* | head -n 1)
"$repo/target/release/rd-chain" inspect "$factor_log"
