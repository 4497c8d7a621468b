#!/usr/bin/env python3
"""Write pickles with CPython's own pickler for the tests of rd-chain's pickle decoder (src/pickle/).

Usage:
  gen_plain_pickles.py --stream            all cases to stdout, framed as b"<name>\\n<length>\\n<bytes>"
  gen_plain_pickles.py OUT_DIR             all cases as files OUT_DIR/<name>
  gen_plain_pickles.py graph OUT_FILE --loops N [--protocol P]
                                           one snapshot-shaped object graph (for timing the decoder)

Case names are "plain/<case>.p<protocol>" (plain data, protocols 0-5), "graph/<case>.p<protocol>" (instances
of classes registered under the fake module "fakemod.things", plus pathlib, datetime, collections objects) and
"skip/<case>.p<protocol>" (dicts with a "based_experiments" key whose value defines objects referred to elsewhere,
for the decoder's skipped values).
Standard library only, Python 3.9+. Deterministic: the same interpreter writes the same bytes.
"""

from __future__ import annotations

import collections
import datetime
import os
import pathlib
import pickle
import sys
import types

FAKE_MODULE = "fakemod.things"
_fake = types.ModuleType(FAKE_MODULE)
_fake_parent = types.ModuleType("fakemod")
_fake_parent.__path__ = []
_fake_parent.things = _fake
sys.modules["fakemod"] = _fake_parent
sys.modules[FAKE_MODULE] = _fake


def _register(cls):
    """Make `cls` picklable as fakemod.things.<name> (the unpickler side never imports it)."""
    cls.__module__ = FAKE_MODULE
    cls.__qualname__ = cls.__name__
    setattr(_fake, cls.__name__, cls)
    return cls


@_register
class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y


@_register
class Holder:
    pass


@_register
class Slotted:
    __slots__ = ("a", "b")


@_register
class Mixed:
    __slots__ = ("s", "__dict__")


@_register
class MyList(list):
    pass


@_register
class MyDict(dict):
    pass


@_register
class KwNew:
    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        obj.new_args = (args, kwargs)
        return obj

    def __getnewargs_ex__(self):
        return (1, "one"), {"flag": True}


@_register
class Loop:
    pass


@_register
class Trace:
    pass


@_register
class Experiment:
    pass


@_register
class Feedback:
    pass


@_register
class Workspace:
    pass


@_register
class Tracker:
    pass


def plain_cases():
    shared_list = [1, 2]
    shared_str = "shared text"
    shared_long_str = "shared text, longer than a str held in place"
    return {
        "none": None,
        "true": True,
        "false": False,
        "ints": [0, 1, -1, 255, 256, 65535, 65536, 2**31 - 1, -(2**31), 2**31, -(2**31) - 1, 2**63 - 1, -(2**63)],
        "bigints": [2**63, -(2**63) - 1, 2**64, -(2**64), 10**30, -(10**30), 2**1000, -(2**1000) + 7, 255 << 64],
        "floats": [0.0, -0.0, 1.5, -2.25, 0.1, 1e300, -1e-300, 5e-324, float("inf"), float("-inf")],
        "nan": float("nan"),
        "strs": ["", "a", "h\u00e9llo", "\u65e5\u672c", "\U0001f600", "back\\slash\nnew\rline\x1a\x00end", "x" * 300],
        "bytes": [b"abc", bytes(range(256)), b"\x00" * 300],
        "bytes_empty": b"",
        "bytearray": bytearray(b"xy\x00\xff"),
        "long_list": list(range(2500)),
        "tuples": [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), ((1, (2, (3, ()))),)],
        "dicts": [{}, {"a": 1}, {1: "one", (2, 3): [4], None: 0.5}],
        "long_dict": {f"k{i}": i for i in range(2500)},
        "sets": [set(), {1, 2, 3}, {"a", (1, 2)}],
        "frozensets": [frozenset(), frozenset({1, 2}), frozenset({frozenset({3})})],
        "long_set": set(range(1500)),
        "nested": {"a": [1, {"b": (2, [3, {"c": None}])}], "d": {"e": {"f": [[[]]]}}},
        "shared": [shared_list, shared_list, (shared_list,), {"k": shared_list}, shared_str, shared_str,
                   shared_long_str, shared_long_str],
    }


def graph_cases(protocol):
    cases = {}

    cases["instance"] = Point(1, "two")

    dd = collections.defaultdict(list)
    dd["a"].append(1)
    dd["b"] = [2, 3]
    counts = collections.defaultdict(int)
    counts[5] = 7
    cases["defaultdict"] = {"lists": dd, "counts": counts}

    cases["ordereddict"] = collections.OrderedDict([("z", 1), ("a", 2), ("m", 3)])

    node = Holder()
    node.me = node
    node.items = [node, 1]
    cases["selfref"] = node

    leaf = Point(0, 0)
    holder = Holder()
    holder.first = leaf
    holder.second = leaf
    holder.both = [leaf, leaf]
    cases["shared"] = holder

    if protocol >= 2:
        slotted = Slotted()
        slotted.a = 1
        slotted.b = "bee"
        mixed = Mixed()
        mixed.s = "slot"
        mixed.d = "dict"
        cases["slots"] = [slotted, mixed]
        cases["newobj_ex"] = KwNew()

    cases["path"] = pathlib.PosixPath("/home/u/git_ignore_folder/RD-Agent_workspace/003d196d")
    cases["datetime"] = datetime.datetime(2026, 1, 14, 16, 14, 52, 886218)
    cases["blobs"] = {
        "small": b"x" * 10,
        "big": b"\xab" * 100_000,
        "bigarray": bytearray(b"\x01" * 100_000),
    }

    my_list = MyList([1, 2, 3])
    my_list.tag = "L"
    my_dict = MyDict(k=1)
    my_dict.tag = "D"
    cases["subclasses"] = [my_list, my_dict]

    cases["exception"] = ValueError("boom", 3)

    cases["snapshot"] = snapshot(6)
    return cases


def snapshot(loops, blob_bytes=16, text_repeat=1):
    """A loop object shaped like an RD-Agent session snapshot: history with shared based_experiments,
    defaultdicts, a self-reference, datetimes, paths and byte blobs."""
    loop = Loop()
    trace = Trace()
    trace.hist = []
    trace.idx2loop_id = {}
    trace.dag_parent = []
    accepted = []
    for i in range(loops):
        exp = Experiment()
        exp.sub_tasks = [f"factor_{i}_{j}" for j in range(3)]
        exp.based_experiments = list(accepted)
        ws = Workspace()
        ws.workspace_path = pathlib.PosixPath(f"/home/u/git_ignore_folder/RD-Agent_workspace/{i:032x}")
        ws.file_dict = {"factor.py": "import pandas as pd\n" * text_repeat}
        exp.experiment_workspace = ws
        exp.result = {"IC": 0.01 * i, "ICIR": 0.1 * i} if i % 3 else None
        exp.stdout = "training output line\n" * text_repeat
        exp.blob = bytes((i + k) % 256 for k in range(blob_bytes))
        exp.started = datetime.datetime(2026, 1, 14, 16, 0, 0) + datetime.timedelta(minutes=i)
        fb = Feedback()
        fb.decision = i % 2 == 0
        fb.reason = f"loop {i} " + "reasoning " * text_repeat
        if fb.decision:
            accepted.append(exp)
        trace.hist.append((exp, fb))
        trace.idx2loop_id[i] = i
        trace.dag_parent.append((i - 1,) if i else ())
    loop.trace = trace
    loop.loop_idx = loops
    loop.step_idx = collections.defaultdict(int, {i: 4 for i in range(loops)})
    loop.loop_prev_out = collections.defaultdict(dict, {i: {"feedback": trace.hist[i][1]} for i in range(loops)})
    loop.loop_trace = collections.defaultdict(list)
    tracker = Tracker()
    tracker.loop_base = loop
    loop.tracker = tracker
    return loop


SKIPPED = "based_experiments"


def skip_cases():
    """Values under the key SKIPPED: objects first defined inside them and referred to later (so a decoder that
    skips them must decode them after all), nesting, single-item dicts and lists (SETITEM, APPEND: a list of one
    item goes on after its first opcodes), sharing, cycles, and the key where it is no dict key."""
    cases = {}
    inner = Point(1, [2, 3])
    cases["later_reference"] = [{SKIPPED: [inner, Point(4, 5)], "after": inner}, inner]

    only = Point("only", None)
    cases["single_item"] = [{SKIPPED: [only]}, only, {SKIPPED: only}]

    deep = Point("deep", ())
    middle = {SKIPPED: [deep], "k": deep}
    cases["nested"] = [{SKIPPED: middle, "then": [deep]}, middle, deep]

    cycle = {}
    cycle[SKIPPED] = cycle
    looped = []
    looped.append(looped)
    cases["cycles"] = [cycle, {SKIPPED: looped, "again": looped}, looped]

    # Values that go on after their first opcodes: SETITEM into a dict, BUILD of an object, APPEND to a list,
    # TUPLE2 of a pair; a set's items come in a batch (protocol 4 on) or as REDUCE arguments; a str is done.
    cases["goes_on"] = [{SKIPPED: {"a": 1}}, {SKIPPED: Point(1, 2)}, {SKIPPED: [7]}, {SKIPPED: {5}},
                        {SKIPPED: (1, [2])}, {SKIPPED: "text"}]

    cases["not_a_key"] = [[SKIPPED, [1, 2]], {"x": SKIPPED, "y": [3]}, (SKIPPED, {4: 5})]

    # A tuple of 1,500 items: 1,500 entries on the skimming stack at once, deeper than skimming's first buffers.
    cases["deep_tuple"] = [{SKIPPED: tuple(range(1500)), "after": 1}]

    # RD-Agent's shape: each experiment lists the accepted ones before it after a fresh baseline; the current
    # loop's experiment (with every accepted one in its list) is written before the history.
    accepted, hist = [], []
    for i in range(8):
        exp = Holder()
        exp.based_experiments = [Holder()] + list(accepted)
        exp.workspace = Workspace()
        exp.workspace.workspace_path = pathlib.PosixPath(f"/ws/{i}")
        fb = Feedback()
        fb.decision = i % 3 != 1
        if fb.decision:
            accepted.append(exp)
        hist.append((exp, fb))
    current = Holder()
    current.based_experiments = [Holder()] + list(accepted)
    loop = Loop()
    loop.loop_prev_out = {8: {"exp_gen": current}}
    loop.hist = hist
    cases["rdagent_shape"] = loop

    # Each value defines a point referring to the one defined in the value before: the last reference needs
    # every value decoded, one inside the other's decoding.
    def chain(n):
        prev = Point(0, None)
        items = [{SKIPPED: [prev, 0]}]
        for i in range(1, n):
            prev = Point(i, prev)
            items.append({SKIPPED: [prev, i]})
        items.append(prev)
        return items

    cases["chain_of_8"] = chain(8)
    cases["chain_of_40"] = chain(40)
    return cases


def all_cases():
    out = []
    for protocol in range(6):
        for name, value in plain_cases().items():
            out.append((f"plain/{name}.p{protocol}", pickle.dumps(value, protocol=protocol)))
        for name, value in graph_cases(protocol).items():
            out.append((f"graph/{name}.p{protocol}", pickle.dumps(value, protocol=protocol)))
        for name, value in skip_cases().items():
            out.append((f"skip/{name}.p{protocol}", pickle.dumps(value, protocol=protocol)))
    return out


def main(argv):
    if argv[:1] == ["--stream"]:
        sink = sys.stdout.buffer
        for name, data in all_cases():
            sink.write(f"{name}\n{len(data)}\n".encode() + data)
        sink.flush()
        return 0
    if argv[:1] == ["graph"] and len(argv) >= 2:
        loops, protocol = 100, 4
        rest = argv[2:]
        while rest:
            flag, value, rest = rest[0], int(rest[1]), rest[2:]
            if flag == "--loops":
                loops = value
            elif flag == "--protocol":
                protocol = value
            else:
                raise SystemExit(f"unknown option {flag}")
        with open(argv[1], "wb") as f:
            f.write(pickle.dumps(snapshot(loops, blob_bytes=4096, text_repeat=30), protocol=protocol))
        return 0
    if len(argv) == 1 and not argv[0].startswith("-"):
        for name, data in all_cases():
            path = os.path.join(argv[0], name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
