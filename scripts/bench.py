#!/usr/bin/env python3
"""Benchmark: `rd-chain resolve` against CPython's C unpickler (scripts/bench_reference.py), side by side.

Usage: bench.py RD_CHAIN_BINARY DATA_DIR [--runs N]

DATA_DIR holds the two project roots `scripts/fixtures bench` writes: `hundred` (100 loops, 500 snapshot files,
last snapshot about 3 MB) and `blobs` (20 loops, snapshots about 20 MB of numpy-like blobs). Every command runs
N times, interleaved; rd-chain runs once without a signing key and once with the key the logs were signed with
(it then checks each snapshot's HMAC, which Python's reference does not). The table gives the median wall time
and the peak RSS of each command's own process (from wait4's rusage), the ratio rd-chain / Python, and whether
the targets hold (for both rd-chain runs):
rd-chain <= 0.3x Python on both logs; peak RSS <= 15 MiB on the 3 MB snapshot and <= 1.5x the snapshot size on
the 20 MB one; the 500-file log costs about the same as its one snapshot.
"""
import glob
import os
import tempfile
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def newest_snapshot(log_dir):
    """The highest (loop, step) snapshot: the one a sequential run's full history is in."""
    best = None
    for path in glob.glob(os.path.join(log_dir, "__session__", "*", "*")):
        loop = os.path.basename(os.path.dirname(path))
        step = os.path.basename(path).split("_", 1)[0]
        if loop.isdigit() and step.isdigit():
            key = (int(loop), int(step))
            if best is None or key > best[0]:
                best = (key, path)
    if best is None:
        sys.exit("bench: no snapshot under " + log_dir)
    return best[1]


# The key scripts/fixtures signs with unless ARTIFACT_SIGNING_KEY is set.
FIXTURE_KEY = "rd-chain-fixtures"


def measure(argv, env):
    """(seconds, stdout) of one run."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out, err = proc.communicate()
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit("bench: %s failed (%d): %s" % (" ".join(argv), proc.returncode, err.decode(errors="replace")))
    return elapsed, out


def measure_rss(argv, env):
    """Peak RSS (bytes) of one run of argv, from wait4 on exactly that child."""
    pid = os.fork()
    if pid == 0:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("bench: %s failed" % " ".join(argv))
    return usage.ru_maxrss * 1024  # Linux reports KiB


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    binary, data = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 11
    python = sys.executable
    logs = {}
    for name in ("hundred", "blobs"):
        found = sorted(glob.glob(os.path.join(data, name, "log", "*")))
        if not found:
            sys.exit("bench: no log under %s/%s/log: run scripts/fixtures bench first" % (data, name))
        logs[name] = found[0]

    # Without a key: no ARTIFACT_SIGNING_KEY and a HOME without ~/.rdagent/artifact_signing.key.
    home = tempfile.mkdtemp(prefix="rd-chain-bench-home-")
    no_key = {k: v for k, v in os.environ.items() if k != "ARTIFACT_SIGNING_KEY"}
    no_key["HOME"] = home
    with_key = dict(no_key, ARTIFACT_SIGNING_KEY=os.environ.get("ARTIFACT_SIGNING_KEY", FIXTURE_KEY))
    rows = []
    results = {}
    for name, log_dir in logs.items():
        snap = newest_snapshot(log_dir)
        files = len(glob.glob(os.path.join(log_dir, "__session__", "*", "*")))
        commands = {
            "rd-chain resolve LOG": ([binary, "resolve", log_dir], no_key),
            "rd-chain resolve SNAPSHOT": ([binary, "resolve", snap], no_key),
            "rd-chain resolve LOG, HMAC": ([binary, "resolve", log_dir], with_key),
            "python3 C unpickler": ([python, os.path.join(HERE, "bench_reference.py"), snap], no_key),
        }
        outputs = {}
        times = {label: [] for label in commands}
        for _ in range(runs):
            for label, (argv, env) in commands.items():
                t, out = measure(argv, env)
                times[label].append(t)
                outputs[label] = out.decode().strip()
        # All three must agree on the SOTA workspace, or the comparison is meaningless.
        if len(set(outputs.values())) != 1:
            sys.exit("bench: the readers disagree on %s: %r" % (name, outputs))
        rss = {label: max(measure_rss(argv, env) for _ in range(3)) for label, (argv, env) in commands.items()}
        med = {label: statistics.median(v) for label, v in times.items()}
        results[name] = (snap, files, med, rss)
        for label in commands:
            rows.append((name, label, med[label], rss[label]))

    print("rd-chain benchmark (%d runs each, interleaved; median wall time; peak RSS of the process)" % runs)
    print("%-8s %-26s %12s %12s" % ("log", "command", "median ms", "peak MiB"))
    for name, label, t, r in rows:
        print("%-8s %-26s %12.1f %12.1f" % (name, label, t * 1000, r / 2**20))
    print()
    ok = True
    for name, (snap, files, med, rss) in results.items():
        size = os.path.getsize(snap)
        whole_vs_one = med["rd-chain resolve LOG"] / med["rd-chain resolve SNAPSHOT"]
        print("%s: snapshot %.2f MB, %d snapshot files" % (name, size / 1e6, files))
        checks = []
        for label in ("rd-chain resolve LOG", "rd-chain resolve LOG, HMAC"):
            ratio = med[label] / med["python3 C unpickler"]
            checks.append(("%s / python time %.2fx <= 0.30x" % (label, ratio), ratio <= 0.30))
            if name == "hundred":
                checks.append(("%s peak RSS %.1f MiB <= 15 MiB" % (label, rss[label] / 2**20),
                               rss[label] <= 15 * 2**20))
            else:
                limit = 1.5 * size
                checks.append(("%s peak RSS %.1f MiB <= 1.5 x snapshot = %.1f MiB"
                               % (label, rss[label] / 2**20, limit / 2**20), rss[label] <= limit))
        if name == "hundred":
            checks.append(("whole log / one snapshot %.2fx (about the same: <= 1.5x)" % whole_vs_one,
                           whole_vs_one <= 1.5))
        for text, passed in checks:
            ok = ok and passed
            print("  %s %s" % ("PASS" if passed else "FAIL", text))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
