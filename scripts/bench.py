#!/usr/bin/env python3
"""Benchmark: `rd-chain resolve` against CPython's C unpickler (scripts/bench_reference.py), side by side.

Usage: bench.py RD_CHAIN_BINARY DATA_DIR [--runs N]

DATA_DIR holds the two project roots `gen_fixtures.py bench` writes: `hundred` (100 loops, 500 snapshot files,
last snapshot about 3 MB) and `blobs` (20 loops, snapshots about 20 MB of numpy-like blobs). Every command runs
N times, interleaved; the table gives the median wall time and the peak RSS of each command's own process
(from wait4's rusage), the ratio rd-chain / Python, and whether the targets hold:
rd-chain <= 0.3x Python on both logs; peak RSS <= 15 MiB on the 3 MB snapshot and <= 1.5x the snapshot size on
the 20 MB one; the 500-file log costs about the same as its one snapshot.
"""
import glob
import os
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


def measure(argv):
    """(seconds, stdout) of one run."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit("bench: %s failed (%d): %s" % (" ".join(argv), proc.returncode, err.decode(errors="replace")))
    return elapsed, out


def measure_rss(argv):
    """Peak RSS (bytes) of one run of argv, from wait4 on exactly that child."""
    pid = os.fork()
    if pid == 0:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            os.execvp(argv[0], argv)
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
            sys.exit("bench: no log under %s/%s/log: run gen_fixtures.py bench first" % (data, name))
        logs[name] = found[0]

    rows = []
    results = {}
    for name, log_dir in logs.items():
        snap = newest_snapshot(log_dir)
        files = len(glob.glob(os.path.join(log_dir, "__session__", "*", "*")))
        commands = {
            "rd-chain resolve LOG": [binary, "resolve", log_dir],
            "rd-chain resolve SNAPSHOT": [binary, "resolve", snap],
            "python3 C unpickler": [python, os.path.join(HERE, "bench_reference.py"), snap],
        }
        outputs = {}
        times = {label: [] for label in commands}
        for _ in range(runs):
            for label, argv in commands.items():
                t, out = measure(argv)
                times[label].append(t)
                outputs[label] = out.decode().strip()
        # All three must agree on the SOTA workspace, or the comparison is meaningless.
        if len(set(outputs.values())) != 1:
            sys.exit("bench: the readers disagree on %s: %r" % (name, outputs))
        rss = {label: max(measure_rss(argv) for _ in range(3)) for label, argv in commands.items()}
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
        ratio = med["rd-chain resolve LOG"] / med["python3 C unpickler"]
        whole_vs_one = med["rd-chain resolve LOG"] / med["rd-chain resolve SNAPSHOT"]
        print("%s: snapshot %.2f MB, %d snapshot files" % (name, size / 1e6, files))
        checks = [("rd-chain / python time %.2fx <= 0.30x" % ratio, ratio <= 0.30)]
        if name == "hundred":
            checks.append(("peak RSS %.1f MiB <= 15 MiB" % (rss["rd-chain resolve LOG"] / 2**20),
                           rss["rd-chain resolve LOG"] <= 15 * 2**20))
            checks.append(("whole log / one snapshot %.2fx (about the same: <= 1.5x)" % whole_vs_one,
                           whole_vs_one <= 1.5))
        else:
            limit = 1.5 * size
            checks.append(("peak RSS %.1f MiB <= 1.5 x snapshot = %.1f MiB"
                           % (rss["rd-chain resolve LOG"] / 2**20, limit / 2**20),
                           rss["rd-chain resolve LOG"] <= limit))
        for text, passed in checks:
            ok = ok and passed
            print("  %s %s" % ("PASS" if passed else "FAIL", text))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
