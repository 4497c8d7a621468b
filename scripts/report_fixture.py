#!/usr/bin/env python3
"""A run dir for the report tests: an RD-Agent-shaped session (written by scripts/fixtures/) whose loops
can fail and whose hypotheses can hold markup.

  report_fixture.py --log-dir DIR --workspace-root DIR --loops N [--kind factor|model]
                    [--fail-coding L,L] [--fail-running L,L] [--hostile L,L] [--parquet auto|real|stub] [--seed S]

--fail-coding: those loops stop after coding (no history entry, as RD-Agent records nothing for them);
--fail-running: their backtest raises (a history entry with decision False and no metrics);
--hostile: their hypothesis is `<script>alert("loop L")</script> & a factor 'x<y'`.
Prints the generator's JSON summary plus `failed` (the failed loops) and `hostile`. Python 3.9+.
"""

import argparse
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixtures.session import RealClock, Session, Spec, summary  # noqa: E402 - the fixture package, scripts/fixtures/

HOSTILE = '<script>alert("loop {}")</script> & a factor \'x<y\''


def loop_list(text):
    return [int(x) for x in text.split(",") if x.strip()] if text else []


class ReportSession(Session):
    hostile = ()

    def new_hypothesis(self, li):
        h = super().new_hypothesis(li)
        if li in self.hostile:
            h.hypothesis = HOSTILE.format(li)
        return h


def main(argv=None):
    p = argparse.ArgumentParser(prog="report_fixture.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--log-dir", required=True)
    p.add_argument("--workspace-root", required=True)
    p.add_argument("--loops", type=int, required=True)
    p.add_argument("--kind", choices=["factor", "model"], default="factor")
    p.add_argument("--fail-coding", default="")
    p.add_argument("--fail-running", default="")
    p.add_argument("--hostile", default="")
    p.add_argument("--parquet", choices=["auto", "real", "stub"], default="auto")
    p.add_argument("--seed")
    args = p.parse_args(argv)

    failures = {li: "coding" for li in loop_list(args.fail_coding)}
    failures.update({li: "running" for li in loop_list(args.fail_running)})
    spec = Spec("report", kind=args.kind, era="0.8", loops=args.loops, protocol=4, failures=failures)
    seed = args.seed or "report:{}:{}".format(args.kind, os.path.basename(os.path.normpath(args.log_dir)))
    workspace_dir = os.path.abspath(args.workspace_root)
    os.makedirs(os.path.join(args.log_dir, "__session__"), exist_ok=True)
    os.makedirs(workspace_dir, exist_ok=True)
    session = ReportSession(spec, os.path.abspath(args.log_dir), workspace_dir, args.workspace_root,
                            random.Random(seed), RealClock(), args.parquet)
    session.hostile = set(loop_list(args.hostile))
    session.run()
    result = summary(session)
    result["failed"] = sorted(failures)
    result["hostile"] = sorted(session.hostile)
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
