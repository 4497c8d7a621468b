#!/usr/bin/env bash
# Every test of rd-chain: the Rust unit and integration tests, then the pytest suite of the RD-Agent hook.
# Uses the venv of scripts/venv.sh (created on first use: pytest, pandas, pyarrow; jinja2 and PyYAML to render
# Qlib config templates as qrun does), first on PATH, so the simulated rdagent's model phase really trains on the
# SOTA factors through the hook.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/venv.sh
export RD_CHAIN_TEST_REQUIRE_PANDAS=1

cargo test --quiet
python -m pytest -q scripts/tests
