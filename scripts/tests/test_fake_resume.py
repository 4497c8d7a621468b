"""The simulated rdagent's `--path` resume behaves like RD-Agent 1.0's LoopBase.load + run: the default --checkout
truncates the folder it is given, --no-checkout writes into the folder recorded in the snapshot, --loop-n is the
total from loop 0, and a snapshot that does not verify (or is unsigned) is refused."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent.parent
FAKE = SCRIPTS / "fake-rdagent"
KEY = "fake resume test key, at least 32 bytes long"


def fake(args, cwd, **env):
    base = {"PATH": os.environ.get("PATH", ""), "HOME": str(cwd / "home"), "ARTIFACT_SIGNING_KEY": KEY,
            "FAKE_RDAGENT_SEED": "fake-resume"}
    base.update(env)
    return subprocess.run([sys.executable, str(FAKE)] + args, cwd=cwd, capture_output=True, text=True, env=base)


def session_files(log):
    root = log / "__session__"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def sota_line(out):
    return json.loads(out.strip().splitlines()[-1])


def crashed_run(tmp_path, name="orig"):
    log = tmp_path / "log" / name
    out = fake(["fin_factor", "--loop-n", "4"], tmp_path, LOG_TRACE_PATH=str(log),
               FAKE_RDAGENT_CRASH_AFTER="fin_factor:2:1")
    assert out.returncode == 1, out.stderr
    assert "FAKE_RDAGENT_CRASH_AFTER" in out.stderr
    return log


def test_checkout_truncates_the_given_folder_and_loop_n_counts_from_loop_0(tmp_path):
    log = crashed_run(tmp_path)
    assert session_files(log)[-1] == "2/1_coding"
    copy = tmp_path / "log" / "copy"
    shutil.copytree(log, copy)
    # Resuming from loop 0's last step: everything after it in the given folder is deleted first.
    out = fake(["fin_factor", "--loop-n", "2", "--path", str(copy / "__session__" / "0" / "4_record")], tmp_path)
    assert out.returncode == 0, out.stderr
    # --loop-n 2 is the total: loop 0 (done) counts, so only loop 1 runs; loop 2 is gone.
    assert sorted(os.listdir(copy / "__session__")) == ["0", "1"]
    assert len(os.listdir(copy / "__session__" / "1")) == 5
    # The original was not touched: it was not the folder given.
    assert session_files(log)[-1] == "2/1_coding"


def test_resumed_run_reaches_the_sota_of_an_uninterrupted_one(tmp_path):
    log = crashed_run(tmp_path)
    copy = tmp_path / "log" / "copy"
    shutil.copytree(log, copy)
    resumed = fake(["fin_factor", "--loop-n", "4", "--path", str(copy / "__session__" / "2" / "1_coding")], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    whole = fake(["fin_factor", "--loop-n", "4"], tmp_path, LOG_TRACE_PATH=str(tmp_path / "log" / "whole"))
    assert whole.returncode == 0, whole.stderr
    a, b = sota_line(resumed.stdout), sota_line(whole.stdout)
    assert (a["sota_index"], a["sota_loop"], a["sota_workspace"]) == (b["sota_index"], b["sota_loop"],
                                                                      b["sota_workspace"])
    # Loop 2 went on at the step after the snapshot's: its first two files are the copied ones.
    assert session_files(copy) == session_files(tmp_path / "log" / "whole")


def test_no_checkout_writes_into_the_recorded_folder(tmp_path):
    log = crashed_run(tmp_path)
    copy = tmp_path / "log" / "copy"
    shutil.copytree(log, copy)
    copy_before = session_files(copy)
    out = fake(["fin_factor", "--loop-n", "4", "--no-checkout", "--path", str(copy)], tmp_path)
    assert out.returncode == 0, out.stderr
    assert session_files(copy) == copy_before
    assert "3/4_record" in session_files(log), "the original run dir recorded in the snapshot was written"


def test_a_snapshot_that_does_not_verify_or_is_unsigned_is_refused(tmp_path):
    log = crashed_run(tmp_path)
    snapshot = log / "__session__" / "2" / "1_coding"
    digest = hashlib.sha256(snapshot.read_bytes()).hexdigest()
    out = fake(["fin_factor", "--loop-n", "4", "--path", str(snapshot)], tmp_path,
               ARTIFACT_SIGNING_KEY="another key, also at least 32 bytes long")
    assert out.returncode == 1 and "does not verify" in out.stderr, out.stderr
    assert hashlib.sha256(snapshot.read_bytes()).hexdigest() == digest
    assert (log / "__session__" / "2").exists(), "nothing truncated before the check"
    data = snapshot.read_bytes()
    header = len(b"RDAGENT_SIGNED_PICKLE_V1\n") + 32
    snapshot.write_bytes(data[header:])
    out = fake(["fin_factor", "--loop-n", "4", "--path", str(snapshot)], tmp_path)
    assert out.returncode == 1 and "ALLOW_UNSAFE_LEGACY_PICKLE" in out.stderr, out.stderr
    out = fake(["fin_factor", "--loop-n", "4", "--path", str(snapshot)], tmp_path, ALLOW_UNSAFE_LEGACY_PICKLE="true")
    assert out.returncode == 0, out.stderr
