#!/usr/bin/env bash
# Build rd-chain and run its main job end to end against the bundled simulated rdagent (scripts/fake-rdagent):
# 4 factor loops, the SOTA factor workspace resolved from that run's own log, 3 model loops on those factors
# (through rd-chain's hook), both answers, then `rd-chain export` of the run's answers.
# Sets up the venv the tests use (scripts/venv.sh) on first use. Everything else is written under
# target/demo/ (the last line names the run's report page); no RD-Agent installation is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

. scripts/venv.sh
cargo build --quiet --release
rd=$repo/target/release/rd-chain
demo=$repo/target/demo/$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$demo"
cd "$demo"
echo "demo: project dir $demo"

"$rd" --dry-run --rdagent "$repo/scripts/fake-rdagent" --factor-loops 4 --model-loops 3
"$rd" --rdagent "$repo/scripts/fake-rdagent" --factor-loops 4 --model-loops 3
echo
"$rd" list log
factor_log=$(ls -d log/2* | head -n 1)
model_log=$(ls -d log/2* | tail -n 1)
echo
"$rd" inspect --factors "$factor_log"
echo
"$rd" inspect "$model_log"
echo
"$rd" export "$factor_log" --to "$demo/export/factors"
"$rd" export "$model_log" --to "$demo/export/model"
echo
# The chain wrote its report page at the end; `rd-chain report` (the newest run) prints where.
echo "demo: report $("$rd" report)"
