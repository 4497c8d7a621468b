#!/usr/bin/env bash
# Every test of rd-chain: the Rust unit and integration tests, then the pytest suite of the RD-Agent hook.
# Creates .venv (pytest, pandas, pyarrow; jinja2 and PyYAML to render Qlib config templates as qrun does) on
# first use, and runs the Rust tests with that venv's python3 first on PATH, so the simulated rdagent's model phase really trains on the SOTA factors through the hook.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import pytest, pandas, pyarrow, jinja2, yaml' 2>/dev/null; then
    echo "test.sh: creating $VENV with pytest, pandas, pyarrow, jinja2, pyyaml"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check pytest pandas pyarrow jinja2 pyyaml
fi
export PATH="$PWD/$VENV/bin:$PATH"
export RD_CHAIN_TEST_REQUIRE_PANDAS=1

cargo test --quiet
python -m pytest -q scripts/tests
