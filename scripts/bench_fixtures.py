#!/usr/bin/env python3
"""Write the benchmark's extra session logs (beside `scripts/fixtures bench`'s `hundred` and `blobs`).

Usage: bench_fixtures.py OUT_DIR

- `small`: 10 loops, last snapshot about 0.3 MB;
- `huge`: 20 loops of numpy-like blobs, last snapshot about 100 MB;
- `loops10`, `loops500`, `loops1000`: 10, 500 and 1,000 loops of the `hundred` shape (with `hundred` itself:
  the 10/100/500/1000-loop series).

Every file is a real snapshot written by CPython's pickler, except that in `huge`, `loops500` and `loops1000`
only the last FULL_LOOPS loops hold full snapshots: the earlier loops' step files are short stand-ins with the
same names and modification times (rd-chain only lists them; a full copy of each would take tens of GB to
write). Every scenario derives its bytes from its name, so the same command writes the same files.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixtures import scenarios, session  # noqa: E402
from fixtures.session import Spec  # noqa: E402

FULL_LOOPS = 4
STAND_IN = b"rd-chain benchmark stand-in: the full snapshot of an early loop is not written\n"

EXTRA = [
    (Spec("small", era="1.0", protocol=5, signed=True, loops=10, stdout_bytes=26000,
                       blob_bytes=1024), False),
    (Spec("huge", era="1.0", protocol=5, signed=True, loops=20, blob_bytes=5 << 20,
                       stdout_bytes=2000), True),
    (Spec("loops10", era="1.0", protocol=5, signed=True, loops=10, stdout_bytes=26000,
                       blob_bytes=1024), False),
    (Spec("loops500", era="1.0", protocol=5, signed=True, loops=500, stdout_bytes=26000,
                       blob_bytes=1024), True),
    (Spec("loops1000", era="1.0", protocol=5, signed=True, loops=1000, stdout_bytes=26000,
                       blob_bytes=1024), True),
]

_real_dump = session.Session.dump


def _dump(self, li, si, name, when):
    if getattr(self.spec, "stand_ins", False) and li < self.spec.loops - FULL_LOOPS:
        self.write = False
        try:
            _real_dump(self, li, si, name, when)
        finally:
            self.write = True
        path = self.dumps[-1].path
        session.write_file(path, STAND_IN)
        stamp = when.timestamp()
        os.utime(path, (stamp, stamp))
        return
    _real_dump(self, li, si, name, when)


def main(out_dir):
    session.Session.dump = _dump
    names = sys.argv[2:]
    for spec, stand_ins in EXTRA:
        if names and spec.name not in names:
            continue
        spec.stand_ins = stand_ins
        scenario = scenarios.Scenario(spec, (spec.loops - 1, 4))
        expected = scenarios.generate_scenario(scenario, out_dir)
        print(expected["log_dir"])
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
