"""rd-chain's resume against RD-Agent's own LoopBase, installed in the interpreter running the tests.

A tiny loop subclassing RD-Agent 1.0's `rdagent.utils.workflow.loop.LoopBase` writes its snapshots with RD-Agent's
own signed `dump` into LOG_TRACE_PATH. Its "rdagent" program (a script rd-chain starts as `--rdagent`) is
`fin_factor --loop-n N [--path P]`: without --path it runs the loop and fails after a few steps (as an LLM
failure would); with --path it does what `rdagent fin_factor --path` does: `LoopBase.load(P, checkout=True)`
(which truncates the session folder it is given) and `run(loop_n=N)`. rd-chain resumes the failed chain; the
test checks the original log is byte for byte untouched and that RD-Agent's load continued on rd-chain's copy.

scripts/test.sh runs this file with the python of .venv-rdagent, where it installs RD-Agent 1.0.0 (the default
test venv has only the double). A missing rdagent is a failure; RD_CHAIN_TEST_SKIP_REAL_RDAGENT=1 skips these tests
instead (documented in scripts/test.sh and README.md).
"""

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

if os.environ.get("RD_CHAIN_TEST_SKIP_REAL_RDAGENT") == "1":
    pytest.skip("RD_CHAIN_TEST_SKIP_REAL_RDAGENT=1", allow_module_level=True)
pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

REPO = Path(__file__).resolve().parent.parent.parent
DOUBLE_DIR = REPO / "scripts" / "rdagent_double"
KEY = "rd-chain resume test key, at least 32 bytes long"


def real_rdagent_loop_importable():
    probe = "from rdagent.utils.workflow.loop import LoopBase; import rdagent; print(rdagent.__file__)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         env={"PATH": os.environ.get("PATH", ""), "HOME": "/nonexistent"})
    return out.returncode == 0 and str(DOUBLE_DIR) not in out.stdout


@pytest.fixture(autouse=True)
def _real_rdagent_is_required():
    if not real_rdagent_loop_importable():
        pytest.fail("the real rdagent package (with its workflow loop) is not installed in {}: scripts/test.sh "
                    "installs it into .venv-rdagent and runs this file with that venv's python".format(sys.executable))

TINY_LOOP = textwrap.dedent(
    '''
    """A five-step factor-like loop on RD-Agent's own LoopBase: one accepted factor experiment per loop."""
    import os
    from pathlib import Path

    import pandas as pd
    from rdagent.utils.workflow.loop import LoopBase, LoopMeta


    class TinyWorkspace:
        def __init__(self, path):
            self.workspace_path = Path(path)


    class TinyFactorExperiment:
        def __init__(self, path):
            self.experiment_workspace = TinyWorkspace(path)


    class TinyFeedback:
        def __init__(self, decision):
            self.decision = decision


    class TinyTrace:
        def __init__(self):
            self.hist = []


    class TinyFactorLoop(LoopBase, metaclass=LoopMeta):
        def __init__(self):
            super().__init__()
            self.trace = TinyTrace()

        def direct_exp_gen(self, prev_out):
            return prev_out[self.LOOP_IDX_KEY]

        def coding(self, prev_out):
            return None

        def running(self, prev_out):
            li = prev_out[self.LOOP_IDX_KEY]
            if os.environ.get("TINY_CRASH_IN_LOOP") == str(li):
                # The process dies as it would on an unrecoverable failure (snapshots up to here are kept).
                os._exit(1)
            ws = Path(os.environ["TINY_WORKSPACES"]) / "ws{}".format(li)
            ws.mkdir(parents=True, exist_ok=True)
            index = pd.MultiIndex.from_product([pd.to_datetime(["2024-01-02", "2024-01-03"]), ["SH600000"]],
                                               names=["datetime", "instrument"])
            frame = pd.DataFrame({"factor_{}".format(li): [0.1, 0.2]}, index=index)
            frame.columns = pd.MultiIndex.from_tuples([("feature", c) for c in frame.columns])
            frame.to_parquet(ws / "combined_factors_df.parquet")
            return str(ws)

        def feedback(self, prev_out):
            return True

        def record(self, prev_out):
            self.trace.hist.append((TinyFactorExperiment(prev_out["running"]), TinyFeedback(True)))
    '''
)

PROGRAM = textwrap.dedent(
    '''
    import asyncio, os, sys
    sys.path.insert(0, os.environ["TINY_LOOP_DIR"])
    from tiny_loop import TinyFactorLoop

    args = sys.argv[1:]
    assert args[0] == "fin_factor", args
    loop_n = int(args[args.index("--loop-n") + 1])
    with open(os.environ["TINY_CALLS"], "a") as f:
        f.write(" ".join(args) + "\\n")
    if "--path" in args:
        loop = TinyFactorLoop.load(args[args.index("--path") + 1], checkout=True)
        asyncio.run(loop.run(loop_n=loop_n))
    else:
        asyncio.run(TinyFactorLoop().run(loop_n=loop_n))
    '''
)


def hashes(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def rd_chain():
    built = REPO / "target" / "debug" / "rd-chain"
    if not built.exists():
        subprocess.run(["cargo", "build", "--quiet"], cwd=REPO, check=True)
    return str(built)


def test_rdagent_loads_rd_chains_copy_and_leaves_the_original_untouched(tmp_path):
    (tmp_path / "loop").mkdir()
    (tmp_path / "loop" / "tiny_loop.py").write_text(TINY_LOOP)
    program = tmp_path / "rdagent"
    program.write_text("#!{}\n{}".format(sys.executable, PROGRAM))
    program.chmod(0o755)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path / "home"),
        "ARTIFACT_SIGNING_KEY": KEY,
        "TINY_LOOP_DIR": str(tmp_path / "loop"),
        "TINY_WORKSPACES": str(tmp_path / "workspaces"),
        "TINY_CALLS": str(tmp_path / "calls.txt"),
    }
    chain = [rd_chain(), "--rdagent", str(program), "--run-id", "tiny", "--factor-loops", "3",
             "--model-loops", "0", "--json"]
    # Loop 0, then loop 1 dies in its running step (RD-Agent may have kicked loop 2 off ahead).
    first = subprocess.run(chain, cwd=tmp_path, capture_output=True, text=True,
                           env=dict(env, TINY_CRASH_IN_LOOP="1"))
    assert first.returncode == 1, first.stderr
    record = json.loads((tmp_path / "log" / "rd-chain" / "tiny.json").read_text())
    original = Path(record["phases"][0]["log_dir"])
    before = hashes(original)
    snapshots = [name.split("/")[1:] for name in before if name.startswith("__session__/")]
    assert len(snapshots) >= 7 and ["1", "1_coding"] in snapshots, before
    assert ["1", "2_running"] not in snapshots, before
    assert all((original / "__session__" / l / s).read_bytes().startswith(b"RDAGENT_SIGNED_PICKLE_V1\n")
               for l, s in snapshots)
    # RD-Agent's own log storages (pickles under Loop_<n>/) are there too: its checkout truncates them.
    assert any(name.startswith("Loop_") and name.endswith(".pkl") for name in before), before
    highest = max(snapshots, key=lambda ls: (int(ls[0]), int(ls[1].split("_", 1)[0])))

    resumed = subprocess.run([rd_chain(), "resume", "tiny"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert hashes(original) == before, "the original log changed"

    copy = original.with_name(original.name + ".resume-1")
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert calls[1] == "fin_factor --loop-n 3 --path {}".format(copy / "__session__" / highest[0] / highest[1])
    # RD-Agent's own load + run went on in the copy: loops 1 and 2 finished there, nothing after them.
    assert sorted(p.name for p in (copy / "__session__").iterdir()) == ["0", "1", "2"]
    assert sorted(p.name for p in (copy / "__session__" / "2").iterdir()) == [
        "0_direct_exp_gen", "1_coding", "2_running", "3_feedback", "4_record"]
    record = json.loads((tmp_path / "log" / "rd-chain" / "tiny.json").read_text())
    assert record["state"] == "done"
    assert [a["reason"] for a in record["phases"][0]["attempts"]] == ["start", "resume"]
    # The SOTA is the last accepted experiment of the whole history (loop 2), read from the copy.
    assert record["sota"]["workspace"] == str(tmp_path / "workspaces" / "ws2")
    assert record["sota"]["index"] == 2
