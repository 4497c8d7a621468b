# Sourced by scripts/test.sh and scripts/demo.sh from the repository root: the Python environments they use.
#
# .venv: pytest, pandas, pyarrow, jinja2 and PyYAML, created on first use (or when one of them is missing) and
# put first on PATH, so the simulated rdagent's model phase really trains on the SOTA factors through rd-chain's
# hook. It never holds the real RD-Agent: the simulated world (the Rust tests, the demo, the hook's pytest suite
# with its test double) must not find the real package's templates or modules. An rdagent package found in it
# (an older scripts/test.sh installed it there) is uninstalled.
#
# venv_rdagent (a function, called by scripts/test.sh only): .venv-rdagent, a venv of its own with the same
# packages plus RD-Agent 1.0.0 without its heavy extras (`pip install --no-deps -r
# scripts/requirements-rdagent.txt`), installed again only when that file changed (a copy of it in the venv is
# the stamp). Sets RDAGENT_PYTHON to its python; scripts/tests/test_real_*.py run with it.
#
# PYTHON picks the interpreter the venvs are made from (default python3; Python 3.9 or newer).
PYTHON=${PYTHON:-python3}
VENV=.venv
VENV_PACKAGES=(pytest pandas pyarrow jinja2 pyyaml)

# venv_base DIR: DIR is a venv with VENV_PACKAGES (created or completed when one is missing).
venv_base() {
    if [ ! -x "$1/bin/python" ] || ! "$1/bin/python" -c 'import pytest, pandas, pyarrow, jinja2, yaml' 2>/dev/null; then
        echo "$(basename "$0"): creating $1 with ${VENV_PACKAGES[*]} (first use only)"
        "$PYTHON" -m venv "$1"
        "$1/bin/python" -m pip install --quiet --disable-pip-version-check "${VENV_PACKAGES[@]}"
    fi
}

venv_rdagent() {
    local dir=.venv-rdagent requirements=scripts/requirements-rdagent.txt
    venv_base "$dir"
    if ! cmp -s "$requirements" "$dir/.requirements-rdagent.txt"; then
        echo "$(basename "$0"): installing rdagent 1.0.0 (no extras) into $dir"
        "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$requirements"
        cp "$requirements" "$dir/.requirements-rdagent.txt"
    fi
    RDAGENT_PYTHON=$PWD/$dir/bin/python
}

venv_base "$VENV"
if "$VENV/bin/python" -c 'import importlib.metadata as m; m.distribution("rdagent")' 2>/dev/null; then
    echo "$(basename "$0"): uninstalling rdagent from $VENV (the real RD-Agent lives in .venv-rdagent only)"
    "$VENV/bin/python" -m pip uninstall --quiet --yes rdagent
    # pip leaves the package's emptied directories, which would still import as a namespace package.
    site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    if [ -d "$site/rdagent" ]; then find "$site/rdagent" -depth -type d -empty -delete; fi
    rm -f "$VENV/.requirements-rdagent.txt"
fi
export PATH="$PWD/$VENV/bin:$PATH"
