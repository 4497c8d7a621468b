#!/usr/bin/env python3
"""The reference the benchmark compares rd-chain with: CPython's C unpickler reading one session snapshot.

Loads the snapshot with scripts/fixtures' stub classes standing in for RD-Agent's (so no rdagent is needed, which
makes the reference faster than the seed's real `pickle.load`, which imports all of rdagent), takes the last
accepted factor experiment of trace.hist and prints its workspace path. Never run this on a snapshot you did not
generate: unpickling executes code.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixtures.signing import unsign  # noqa: E402
from fixtures.stubs import loads  # noqa: E402


def main(path):
    with open(path, "rb") as f:
        data = f.read()
    payload, _signed, _ok = unsign(data)
    loop = loads(payload)
    sota = None
    for exp, feedback in loop.trace.hist:
        if "FactorExperiment" in type(exp).__name__ and getattr(feedback, "decision", False):
            sota = exp
    if sota is None:
        print("no accepted factor experiment", file=sys.stderr)
        return 3
    print(str(sota.experiment_workspace.workspace_path))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
