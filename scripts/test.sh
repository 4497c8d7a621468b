#!/usr/bin/env bash
# Every test of rd-chain: the Rust unit and integration tests, then the pytest suite of the RD-Agent hook.
# Uses the venvs of scripts/venv.sh (created on first use). The Rust tests and the pytest suite run with .venv
# (pytest, pandas, pyarrow; jinja2 and PyYAML to render Qlib config templates as qrun does) first on PATH, so the
# simulated rdagent's model phase really trains on the SOTA factors through the hook; .venv never holds the real
# RD-Agent, so the simulated world cannot find it. scripts/tests/test_real_*.py run against the real RD-Agent
# 1.0.0, installed without its heavy extras into .venv-rdagent (`pip install --no-deps -r
# scripts/requirements-rdagent.txt`, again only when that file changed), with that venv's python: there a missing
# rdagent is a failure (LITELLM_LOCAL_MODEL_COST_MAP keeps its import offline).
# RD_CHAIN_TEST_SKIP_REAL_RDAGENT=1 skips that install and those tests instead (a machine without access to PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/venv.sh
REAL_TESTS=(scripts/tests/test_real_*.py)
RDAGENT_PYTHON=
if [ "${RD_CHAIN_TEST_SKIP_REAL_RDAGENT:-}" != 1 ]; then
    venv_rdagent
fi
export RD_CHAIN_TEST_REQUIRE_PANDAS=1
export LITELLM_LOCAL_MODEL_COST_MAP=True

# The pytest suites (the real RD-Agent's children spend seconds importing rdagent) run beside the Rust tests,
# once the binary they call is built; their output follows theirs.
cargo test --quiet --no-run
PYTEST_LOG=$(mktemp)
trap 'rm -f "$PYTEST_LOG"' EXIT
(
    py=0
    python -m pytest -q scripts/tests "${REAL_TESTS[@]/#/--ignore=}" || py=$?
    if [ "${RD_CHAIN_TEST_SKIP_REAL_RDAGENT:-}" = 1 ]; then
        echo "test.sh: NOT running ${REAL_TESTS[*]} (RD_CHAIN_TEST_SKIP_REAL_RDAGENT=1)"
    else
        "$RDAGENT_PYTHON" -m pytest -q "${REAL_TESTS[@]}" || py=$?
    fi
    exit "$py"
) >"$PYTEST_LOG" 2>&1 &
PYTEST_PID=$!
rust=0
cargo test --quiet || rust=$?
py=0
wait "$PYTEST_PID" || py=$?
echo "test.sh: pytest scripts/tests (the real RD-Agent's tests with ${RDAGENT_PYTHON:-nothing: skipped})"
cat "$PYTEST_LOG"
[ "$rust" -eq 0 ] && [ "$py" -eq 0 ]
