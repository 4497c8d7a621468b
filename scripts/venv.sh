# Sourced by scripts/test.sh and scripts/demo.sh from the repository root: the one Python environment both use.
# Creates .venv with pytest, pandas, pyarrow, jinja2 and PyYAML on first use (or when one of them is missing),
# then puts it first on PATH, so the simulated rdagent's model phase really trains on the SOTA factors through
# rd-chain's hook. PYTHON picks the interpreter the venv is made from (default python3; Python 3.9 or newer).
PYTHON=${PYTHON:-python3}
VENV=.venv
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import pytest, pandas, pyarrow, jinja2, yaml' 2>/dev/null; then
    echo "$(basename "$0"): creating $VENV with pytest, pandas, pyarrow, jinja2, pyyaml (first use only)"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check pytest pandas pyarrow jinja2 pyyaml
fi
export PATH="$PWD/$VENV/bin:$PATH"
