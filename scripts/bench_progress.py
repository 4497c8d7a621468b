#!/usr/bin/env python3
"""Benchmark: what live progress costs, as the CPU time of the watcher over a 100-loop log (budget: 1% of one core).

Usage: bench_progress.py PROGRESS_BENCH_BINARY HUNDRED_LOG_DIR [--seconds S]

PROGRESS_BENCH_BINARY is `examples/progress_bench.rs` built in release mode: it watches a session folder at
rd-chain's poll interval (1 s) for S seconds, as rd-chain watches a running phase, and prints its work. Its CPU
time (user + system) comes from wait4's rusage of exactly that process. Two measurements, S seconds each:

  idle    the complete 100-loop log (500 snapshots, the last about 3 MB): every loop finished, nothing changes;
  replay  a fresh folder that this script fills with the same 500 snapshot files in order, 100 loops in S
          seconds (one loop every S/100 s, hundreds of times faster than RD-Agent's loops), so the watcher
          decodes every loop's last snapshot while it runs. The copying is this script's work, not counted.

The budget check: idle share + (CPU per decode / 60 s) < 1%, i.e. under 1% of one core even if a loop
finished every minute. The replay's raw share is printed too: it is a stress figure at the accelerated pace.
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import time

BUDGET = 0.01


def start(binary, log_dir, seconds):
    return subprocess.Popen([binary, log_dir, str(seconds)], stdout=subprocess.PIPE)


def finish(proc, started):
    """(cpu seconds, wall seconds, work dict) of the watcher process, from wait4 on exactly it."""
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit("bench_progress: the watcher failed (%d)" % proc.returncode)
    return usage.ru_utime + usage.ru_stime, wall, json.loads(out.decode().strip().splitlines()[-1])


def step_files(log_dir):
    files = []
    for path in glob.glob(os.path.join(log_dir, "__session__", "*", "*")):
        loop = os.path.basename(os.path.dirname(path))
        step = os.path.basename(path).split("_", 1)[0]
        if loop.isdigit() and step.isdigit():
            files.append(((int(loop), int(step)), path))
    return [p for _, p in sorted(files)]


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    binary, log_dir = sys.argv[1], sys.argv[2]
    seconds = float(sys.argv[sys.argv.index("--seconds") + 1]) if "--seconds" in sys.argv else 60.0
    files = step_files(log_dir)
    loops = len({os.path.dirname(p) for p in files})

    t0 = time.monotonic()
    idle_cpu, idle_wall, idle_work = finish(start(binary, log_dir, seconds), t0)

    live = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(log_dir))), "progress-replay")
    shutil.rmtree(live, ignore_errors=True)
    os.makedirs(live)
    t0 = time.monotonic()
    proc = start(binary, live, seconds)
    # Leave the last 5% of the time for the watcher to see the last loop.
    pace = seconds * 0.95 / len(files)
    session = os.path.join(log_dir, "__session__")
    for i, src in enumerate(files):
        target = os.path.join(live, "__session__", os.path.relpath(src, session))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        # Written in place, as RD-Agent's pickle.dump does: the watcher may meet a file cut short.
        shutil.copyfile(src, target)
        delay = t0 + (i + 1) * pace - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    replay_cpu, replay_wall, replay_work = finish(proc, t0)
    shutil.rmtree(live, ignore_errors=True)

    idle_share = idle_cpu / idle_wall
    # A real loop takes minutes, so each finished loop costs one decode; at the replay's pace one decode can
    # cover several loops, so the cost is taken per decode.
    per_decode = max(replay_cpu - idle_share * replay_wall, 0.0) / max(replay_work["decodes"], 1)
    at_one_a_minute = idle_share + per_decode / 60.0
    print("rd-chain live progress: the watcher over a %d-loop log (%d snapshot files), %.0f s each" %
          (loops, len(files), seconds))
    print("%-8s %8s %8s %8s %7s %9s %8s %8s" %
          ("", "wall s", "CPU s", "CPU %", "polls", "stats", "listings", "decodes"))
    for name, cpu, wall, work in (("idle", idle_cpu, idle_wall, idle_work),
                                  ("replay", replay_cpu, replay_wall, replay_work)):
        print("%-8s %8.1f %8.3f %8.3f %7d %9d %8d %8d" % (name, wall, cpu, 100 * cpu / wall, work["polls"],
                                                         work["stats"], work["listings"], work["decodes"]))
    print("replay: %d loops reported with %d decodes; CPU per decode %.1f ms (a finished loop's last snapshot, up "
          "to 3 MB, read and decoded)" % (replay_work["loops_reported"], replay_work["decodes"],
                                                        per_decode * 1000))
    checks = [
        ("replay reported every loop (%d of %d)" % (replay_work["loops_reported"], loops),
         replay_work["loops_reported"] == loops),
        ("idle: %.3f%% of one core < 1%%" % (100 * idle_share), idle_share < BUDGET),
        ("a loop a minute: idle + one decode / 60 s = %.3f%% of one core < 1%%" % (100 * at_one_a_minute),
         at_one_a_minute < BUDGET),
    ]
    ok = True
    for text, passed in checks:
        ok = ok and passed
        print("  %s %s" % ("PASS" if passed else "FAIL", text))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
