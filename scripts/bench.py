#!/usr/bin/env python3
"""Benchmark: `rd-chain resolve` against `cat`, `openssl sha256` and CPython's C unpickler, side by side.

Usage: bench.py RD_CHAIN_BINARY DATA_DIR [--runs N] [--baseline OLD_BINARY] [--only LOG,LOG]

DATA_DIR holds the project roots `scripts/fixtures bench` writes (`hundred`: 100 loops, last snapshot about 3 MB;
`blobs`: 20 loops of numpy-like blobs, about 21 MB) and those `bench_fixtures.py` writes (`small` 0.3 MB, `huge`
100 MB, `loops10`, `loops500`, `loops1000`). For each log, every command runs N times (default 11), interleaved,
in a new order each round (seeded, so the same in every run):

- `resolve LOG`: rd-chain's whole resolution, no signing key at hand (no ARTIFACT_SIGNING_KEY, a HOME without
  ~/.rdagent/artifact_signing.key);
- `resolve LOG, key`: the same with the key the logs were signed with at hand (resolve checks no signature
  unless asked: the key target is about this, the command users run);
- `resolve --verify LOG, key`: the same, checking the snapshot's HMAC (on a second thread, beside the decoding);
  its cost over the floor is printed as INFO beside the targets;
- `resolve LOG (baseline)`: with --baseline, an older rd-chain binary, for the before/after table;
- `cat SNAPSHOT`, `openssl sha256 SNAPSHOT`: reading and hashing the snapshot the history is in (the floors);
- `python3 C unpickler`: scripts/bench_reference.py (CPython's C unpickler with stub classes).

Before a log's runs, its snapshot is dropped from the page cache and read once in 128 KiB reads, as `cat` reads
(`settle_page_cache`): every command then finds it cached, in the state a file read from disk is in. How the
page cache holds a file depends on how it got there (written in one go, written in pieces, read by readahead),
and mapping it costs more or less with that (at 1,000 loops, 1,180 to 1,640 page faults for `resolve`); without
this step a figure would depend on what last touched the file.

Then `rd-chain list` of a log root holding 100 runs (links to the `small` and `loops10` runs). All readers must
print the same workspace or the run stops. Time is the median wall time of each whole process; memory is the
peak RSS of the process (GNU time's %M: wait4's ru_maxrss) and its peak private (anonymous) memory, RssAnon
sampled from /proc every 0.2 ms (a process that ends within the first samples may show less than it used).
The targets are checked and printed as PASS/FAIL; the exit status is 1 if any fails. A time compared with
another command's passes when it is over it by less than the interquartile range of `resolve LOG`'s own runs
(the check says so): two runs of one command differ by that much.
"""
import glob
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MIB = 2**20

# The key scripts/fixtures signs with unless ARTIFACT_SIGNING_KEY is set.
FIXTURE_KEY = "rd-chain-fixtures"

SIZES = ("small", "hundred", "blobs", "huge")
LOOPS = (("loops10", 10), ("hundred", 100), ("loops500", 500), ("loops1000", 1000))


def settle_page_cache(path):
    """Drop `path` from the page cache (its pages are clean: written long before) and read it once in 128 KiB
    reads. Returns False where dropping is not supported (the file is then only read)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        dropped = hasattr(os, "posix_fadvise")
        if dropped:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        while os.read(fd, 128 * 1024):
            pass
        return dropped
    finally:
        os.close(fd)


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


def iqr_of(values):
    """The interquartile range of `values` (0 for fewer than 2)."""
    if len(values) < 2:
        return 0.0
    q = statistics.quantiles(values, n=4)
    return q[2] - q[0]


def measure(argv, env, capture=True):
    """(seconds, stdout) of one run."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env)
    out, err = proc.communicate()
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit("bench: %s failed (%d): %s" % (" ".join(argv), proc.returncode, err.decode(errors="replace")))
    return elapsed, out or b""


def peak_rss(argv, env):
    """Peak RSS (bytes) of one run of argv, from GNU time's wait4 (a fork of this Python process would count
    Python's own pages: Linux keeps the pre-exec high-water mark in ru_maxrss)."""
    proc = subprocess.run(["/usr/bin/time", "-f", "%M"] + argv, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, env=env)
    if proc.returncode != 0:
        sys.exit("bench: %s failed" % " ".join(argv))
    return int(proc.stderr.decode().strip().splitlines()[-1]) * 1024  # KiB


def peak_anon(argv, env):
    """Peak private (anonymous) memory (bytes) of one run of argv: RssAnon from /proc, sampled every 0.2 ms
    once the child has exec'd argv[0]."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    anon = 0
    want = os.path.basename(argv[0]).encode()
    while proc.poll() is None:
        try:
            with open("/proc/%d/cmdline" % proc.pid, "rb") as f:
                exec_done = os.path.basename(f.read().split(b"\0", 1)[0]) == want
            if exec_done:
                with open("/proc/%d/status" % proc.pid) as f:
                    for line in f:
                        if line.startswith("RssAnon:"):
                            anon = max(anon, int(line.split()[1]) * 1024)
        except (OSError, IndexError):
            pass
        time.sleep(0.0002)
    if proc.returncode != 0:
        sys.exit("bench: %s failed" % " ".join(argv))
    return anon


def measure_memory(argv, env):
    """(peak RSS, peak private memory) in bytes: the largest of three runs each."""
    return (max(peak_rss(argv, env) for _ in range(3)), max(peak_anon(argv, env) for _ in range(3)))


def machine():
    model, flags = "?", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model == "?":
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    sha = "SHA-NI" if "sha_ni" in flags else ("no SHA-NI" if flags else "unknown")
    return "%s, %d cores, %s, Linux %s, load average %s" % (
        model, os.cpu_count() or 0, sha, platform.release(), " ".join("%.2f" % x for x in os.getloadavg()))


def list_root(data, runs=100):
    """A log root of `runs` run directories: symlinks to the small and loops10 runs, alternately."""
    root = os.path.join(data, "list100")
    if os.path.isdir(root) and len(os.listdir(root)) == runs:
        return root
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    targets = [glob.glob(os.path.join(data, name, "log", "*"))[0] for name in ("small", "loops10")]
    for i in range(runs):
        name = "2026-01-%02d_%02d-00-00-%06d" % (1 + i % 28, i % 24, i)
        os.symlink(os.path.abspath(targets[i % 2]), os.path.join(root, name))
    return root


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    binary, data = sys.argv[1], sys.argv[2]
    opt = lambda name, default: sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default  # noqa: E731
    runs = int(opt("--runs", 11))
    baseline = opt("--baseline", None)
    only = opt("--only", None)
    python = sys.executable
    names = [n for n in ("small", "hundred", "blobs", "huge", "loops10", "loops500", "loops1000")
             if only is None or n in only.split(",")]
    logs = {}
    for name in names:
        found = sorted(glob.glob(os.path.join(data, name, "log", "*")))
        if not found:
            sys.exit("bench: no log under %s/%s/log: run scripts/bench.sh (it writes them)" % (data, name))
        logs[name] = found[0]

    home = tempfile.mkdtemp(prefix="rd-chain-bench-home-")
    no_key = {k: v for k, v in os.environ.items() if k != "ARTIFACT_SIGNING_KEY"}
    no_key["HOME"] = home
    with_key = dict(no_key, ARTIFACT_SIGNING_KEY=os.environ.get("ARTIFACT_SIGNING_KEY", FIXTURE_KEY))
    print("rd-chain benchmark: %s" % machine())
    print("%d runs of each command, interleaved; median wall ms; peak RSS and peak private (anon) MiB" % runs)
    print("page cache: each snapshot dropped and read once (128 KiB reads) before its runs")
    print("%-9s %8s  %-28s %9s %9s %9s" % ("log", "MB", "command", "median ms", "RSS MiB", "anon MiB"))
    infos = []
    results = {}
    for name, log_dir in logs.items():
        snap = newest_snapshot(log_dir)
        size = os.path.getsize(snap)
        if not settle_page_cache(snap):
            print("(%s: the page cache cannot be dropped here; the snapshot is read as it is cached)" % name)
        commands = {
            "resolve LOG": ([binary, "resolve", log_dir], no_key, True),
            "resolve LOG, key": ([binary, "resolve", log_dir], with_key, True),
            "resolve --verify LOG, key": ([binary, "resolve", "--verify", log_dir], with_key, True),
        }
        if baseline:
            commands["resolve LOG (baseline)"] = ([baseline, "resolve", log_dir], no_key, True)
            commands["resolve LOG, key (baseline)"] = ([baseline, "resolve", log_dir], with_key, True)
        commands["cat SNAPSHOT"] = (["cat", snap], no_key, False)
        commands["openssl sha256 SNAPSHOT"] = (["openssl", "sha256", snap], no_key, False)
        commands["python3 C unpickler"] = ([python, os.path.join(HERE, "bench_reference.py"), snap], no_key, True)
        times = {label: [] for label in commands}
        outputs = {}
        order = list(commands.items())
        shuffler = random.Random(name)
        for _ in range(runs):
            # A new order each round (the same in every run of the benchmark), so no command always runs right
            # after the same one: in a fixed order, the command after the CPython reference, which frees over
            # 100 MiB as it exits, ran slower than the same work elsewhere in the round.
            shuffler.shuffle(order)
            for label, (argv, env, capture) in order:
                t, out = measure(argv, env, capture)
                times[label].append(t)
                if capture:
                    outputs[label] = out.decode().strip()
        if len(set(outputs.values())) != 1:
            sys.exit("bench: the readers disagree on %s: %r" % (name, outputs))
        med = {label: statistics.median(v) for label, v in times.items()}
        iqr = {label: iqr_of(v) for label, v in times.items()}
        mem = {}
        for label, (argv, env, _capture) in commands.items():
            mem[label] = measure_memory(argv, env)
        results[name] = (snap, size, med, mem, iqr)
        for label in commands:
            print("%-9s %8.2f  %-28s %9.1f %9.1f %9.1f" % (
                name, size / 1e6, label, med[label] * 1000, mem[label][0] / MIB, mem[label][1] / MIB))
        sys.stdout.flush()

    listing = None
    if "small" in logs and "loops10" in logs:
        root = list_root(data)
        times = [measure([binary, "list", root], no_key)[0] for _ in range(runs)]
        listing = statistics.median(times)
        print("%-9s %8s  %-28s %9.1f" % ("list100", "", "list (100 runs)", listing * 1000))
    print()

    checks = []
    for name in SIZES:
        if name not in results:
            continue
        snap, size, med, mem, iqr = results[name]
        r = med["resolve LOG"]
        ratio = r / med["python3 C unpickler"]
        checks.append(("%s: resolve / CPython %.3fx <= 0.08x" % (name, ratio), ratio <= 0.08))
        if name in ("blobs", "huge"):
            cat = r / med["cat SNAPSHOT"]
            checks.append(("%s: resolve / cat %.2fx <= 2x" % (name, cat), cat <= 2.0))
            anon = mem["resolve LOG"][1]
            checks.append(("%s: private memory %.1f MiB <= 0.3 x snapshot = %.1f MiB (payloads skipped)"
                           % (name, anon / MIB, 0.3 * size / MIB), anon <= 0.3 * size))
    for name in results:
        snap, size, med, mem, iqr = results[name]
        floor = max(med["openssl sha256 SNAPSHOT"], med["resolve LOG"])
        k = med["resolve LOG, key"]
        # Over the floor by less than resolve LOG's own run-to-run spread is not slower: two runs of the same
        # command differ by that much.
        spread = iqr["resolve LOG"]
        within = floor < k <= floor + spread
        checks.append(("%s: resolve with key %.1f ms <= max(openssl %.1f, resolve %.1f) = %.1f ms%s"
                       % (name, k * 1000, med["openssl sha256 SNAPSHOT"] * 1000, med["resolve LOG"] * 1000,
                          floor * 1000,
                          " (+%.1f ms: within resolve LOG's own spread, IQR %.1f ms)" % ((k - floor) * 1000,
                                                                                      spread * 1000)
                          if within else ""),
                       k <= floor + spread))
        v = med["resolve --verify LOG, key"]
        infos.append("%s: resolve --verify with key %.1f ms, max(openssl, resolve) %.1f ms: %+.0f%%"
                     % (name, v * 1000, floor * 1000, (v / floor - 1) * 100))
        for label in ("resolve LOG", "resolve LOG, key", "resolve --verify LOG, key"):
            rss = mem[label][0]
            limit = 1.3 * size + 8 * MIB
            checks.append(("%s: %s peak RSS %.1f MiB <= 1.3 x snapshot + 8 MiB = %.1f MiB"
                           % (name, label, rss / MIB, limit / MIB), rss <= limit))
    series = [(loops, results[name]) for name, loops in LOOPS if name in results]
    if series:
        print("cost per loop count (resolve LOG, no key):")
        for loops, (snap, size, med, mem, _iqr) in series:
            print("  %5d loops  %7.2f MB  %8.1f ms  %6.2f ms/MB  CPython %8.1f ms (%.3fx)" % (
                loops, size / 1e6, med["resolve LOG"] * 1000, med["resolve LOG"] * 1000 / (size / 1e6),
                med["python3 C unpickler"] * 1000, med["resolve LOG"] / med["python3 C unpickler"]))
    if "loops1000" in results:
        _snap, _size, med, _mem, _iqr = results["loops1000"]
        ratio = med["resolve LOG"] / med["python3 C unpickler"]
        checks.append(("loops1000: resolve / CPython %.3fx < 0.05x" % ratio, ratio < 0.05))
    if listing is not None:
        checks.append(("list of 100 runs: %.2f ms per run <= 2 ms" % (listing * 10), listing * 10 <= 2.0))
    ok = True
    for text, passed in checks:
        ok = ok and passed
        print("  %s %s" % ("PASS" if passed else "FAIL", text))
    for text in infos:
        print("  INFO %s" % text)
    print("load average after: %s" % " ".join("%.2f" % x for x in os.getloadavg()))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
