#!/usr/bin/env python3
"""Write RD-Agent-shaped session logs and workspaces for rd-chain's tests, demo and benchmark.

Usage:
  gen_fixtures.py tree OUT_DIR [--scenario NAME]... [--parquet stub|real|auto]
  gen_fixtures.py tree --list
  gen_fixtures.py snapshot OUT_FILE [--protocol P] [--loops N] [--signed] [--blob-bytes B] [--kind K]
  gen_fixtures.py run --log-dir DIR --workspace-root DIR --loops N [--kind factor|model|quant] [--signed]
                      [--protocol P] [--accept PATTERN] [--parquet auto|real|stub] [--start-loop K]
                      [--era 0.3|0.8|1.0] [--max-steps S] [--seed TEXT]
  gen_fixtures.py bench OUT_DIR
  gen_fixtures.py check OUT_DIR                 re-read a tree with the stubs and compare it to expected.json
  gen_fixtures.py query FILE KEY...             print one value of a JSON file (strings raw, others as JSON)

The snapshots are written by CPython's own pickler (`pickle.dumps`) from stub classes that this module
registers under RD-Agent's real module and class names (and under the names pandas, numpy and pathlib write), so
the GLOBAL/STACK_GLOBAL names, NEWOBJ/BUILD structure, memo sharing and self-references are those of a real
snapshot. The stub modules are put into sys.modules only while a pickle is written or read, then the previous
entries are restored, so a real pandas or pathlib in the same process is never disturbed. This module never
imports RD-Agent or scripts/rdagent_double, never executes a pickle it did not write itself, and needs only the
standard library (pandas and pyarrow only for `--parquet real|auto`). Python 3.9+. Deterministic: `tree` and
`bench` derive every uuid, timestamp and value from the scenario name, so the same command writes the same bytes.

What a real pandas writes for `pd.Series([0.01, 0.1], index=['IC', 'ICIR'])` (pandas 2.2/numpy 1.26 and pandas
2.3/numpy 2.x, protocols 2-5; pickletools.dis), which the Series stub reproduces opcode for opcode:
  pandas.core.series.Series            EMPTY_TUPLE NEWOBJ, then BUILD with the dict
    {'_mgr': M, '_typ': 'series', '_metadata': ['_name'], 'attrs': {}, '_flags': {'allows_duplicate_labels': True},
     '_name': None}                     ('_name' is one memoized string: the list entry and the key)
  M = pandas.core.internals.managers.SingleBlockManager  EMPTY_TUPLE NEWOBJ, BUILD with the 4-tuple
    (axes=[I], [V], [I2], {'0.14.1': {'axes': <memo ref to axes>, 'blocks': [{'values': <memo ref to V>,
     'mgr_locs': builtins.slice(0, n, 1)}]}})
  I, I2 = pandas.core.indexes.base._new_Index REDUCE (pandas.core.indexes.base.Index, {'data': A, 'name': None});
    I2 is a second Index with its own array; the label strings and the dtype are memo references.
  A (object labels) = numpy.core.multiarray._reconstruct REDUCE (numpy.ndarray, (0,), b'b') then BUILD
    (1, (n,), D_O, False, ['IC', 'ICIR'])      -- a list for dtype object, at every protocol
  V (float64 values), protocols 2-4: _reconstruct as above, BUILD (1, (n,), D_f8, False, <raw little-endian
    bytes>) (protocol 2: bytes are `_codecs.encode(<latin-1 str>, 'latin1')`, 3-4: BINBYTES);
    protocol 5: numpy.core.numeric._frombuffer REDUCE (BYTEARRAY8 <raw>, D_f8, (n,), 'C')  (in-band buffer)
  D_x = numpy.dtype REDUCE ('f8'|'O8', False, True) then BUILD (3, '<'|'|', None, None, None, -1, -1, 0|63)
Module paths by version: numpy >= 2 writes `numpy._core.multiarray` / `numpy._core.numeric`, numpy 1.x
`numpy.core.multiarray` / `numpy.core.numeric` (flavours 'pd2-np2' and 'pd2-np1' here). pandas 3 writes
`pandas Series` and `pandas Index`, and with pyarrow installed the index data is a `pandas.arrays.ArrowStringArray`
(state {'_pa_array': pyarrow.lib._restore_array((pyarrow.lib.type_for_alias('large_string'), n, 0, 0,
[None, pyarrow.lib.py_buffer(<int64 offsets>), pyarrow.lib.py_buffer(<utf-8 data>)], [], None)),
'_dtype': pandas.StringDtype('pyarrow', nan), '_cache': {}}): flavour 'pd3-np2'.
Protocol 2 writes builtins as `__builtin__` (int as `__builtin__ long`), bytes as `_codecs encode`.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import ntpath
import os
import pickle
import posixpath
import random
import shutil
import struct
import sys
import time
import types
import uuid

# ---------------------------------------------------------------------------------------------------------------
# RD-Agent's file format and names, as rd-chain reads them (docs/usage.md, "How `resolve` reads a log")

SIGNED_MAGIC = b"RDAGENT_SIGNED_PICKLE_V1\n"
SIGNED_HEADER_LEN = len(SIGNED_MAGIC) + 32
DEFAULT_SIGNING_KEY = "rd-chain-fixtures"
FACTORS_FILE = "combined_factors_df.parquet"
PROJECT_WORKSPACE = os.path.join("git_ignore_folder", "RD-Agent_workspace")
LOG_DIR_FORMAT = "%Y-%m-%d_%H-%M-%S-%f"

# Step names by release, and the step after which the experiment is in trace.hist.
ERA_STEPS = {
    "0.3": ["propose", "exp_gen", "coding", "running", "feedback"],
    "0.8": ["direct_exp_gen", "coding", "running", "feedback"],
    "1.0": ["direct_exp_gen", "coding", "running", "feedback", "record"],
}

METRIC_LABELS = [
    "IC",
    "ICIR",
    "Rank IC",
    "Rank ICIR",
    "1day.excess_return_with_cost.annualized_return",
    "1day.excess_return_with_cost.max_drawdown",
]

FACTOR_CLASS = "rdagent.scenarios.qlib.experiment.factor_experiment.QlibFactorExperiment"
MODEL_CLASS = "rdagent.scenarios.qlib.experiment.model_experiment.QlibModelExperiment"
LOOP_CLASSES = {
    "factor": "rdagent.app.qlib_rd_loop.factor.FactorRDLoop",
    "model": "rdagent.app.qlib_rd_loop.model.ModelRDLoop",
    "quant": "rdagent.app.qlib_rd_loop.quant.QuantRDLoop",
}

# ---------------------------------------------------------------------------------------------------------------
# Stub modules and classes

_MISSING = object()
STUB_MODULES = {}


def _stub_module(name):
    """The stub module `name`, with its parent packages (the pickler imports the top-level package first)."""
    module = STUB_MODULES.get(name)
    if module is None:
        module = types.ModuleType(name, "stub module written by gen_fixtures.py")
        STUB_MODULES[name] = module
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(_stub_module(parent), child, module)
    return module


def _place(obj, dotted):
    """Register `obj` (class or function) so the pickler writes it as `dotted` = 'module.name'."""
    module, _, name = dotted.rpartition(".")
    # One string object per module name, as a real module's __name__ is: protocol 4+ memoizes it.
    obj.__module__ = sys.intern(module)
    obj.__qualname__ = name
    obj.__name__ = name
    setattr(_stub_module(module), name, obj)
    return obj


@contextlib.contextmanager
def stub_modules():
    """The stub modules in sys.modules for the duration of one dumps/loads; the previous entries come back."""
    saved = {name: sys.modules.get(name, _MISSING) for name in STUB_MODULES}
    sys.modules.update(STUB_MODULES)
    try:
        yield
    finally:
        for name, previous in saved.items():
            if previous is _MISSING:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


def dumps(obj, protocol):
    with stub_modules():
        return pickle.dumps(obj, protocol=protocol)


def loads(data):
    """Load a pickle written by this module (never call this on anything else: it executes the pickle)."""
    with stub_modules():
        return pickle.loads(data)


class StubObject:
    """A plain Python object: pickles as class, EMPTY_TUPLE, NEWOBJ, then BUILD with its __dict__."""

    def __init__(self, **state):
        self.__dict__.update(state)

    def __repr__(self):
        return "<{}.{}>".format(type(self).__module__, type(self).__qualname__)


def stub_class(dotted, base=StubObject):
    return _place(type(dotted.rpartition(".")[2], (base,), {}), dotted)


def stub_exception(dotted, base=Exception):
    return _place(type(dotted.rpartition(".")[2], (base,), {}), dotted)


def set_result(exp, result, running_time, era):
    """Store an experiment's result where that RD-Agent era keeps it: up to 0.6 an instance attribute
    `result`; from 0.7 on `result` is a property over `running_info.result` (a RunningInfo that also holds the
    running time), so the pickled state has `running_info` and no `result` key."""
    if era == "0.3":
        exp.result = result
    else:
        exp.__dict__.pop("result", None)
        exp.running_info = RunningInfo(result=result, running_time=running_time)


def result_of(exp):
    """The result `set_result` stored, for either layout."""
    if "running_info" in exp.__dict__:
        return exp.running_info.result
    return exp.__dict__.get("result")


# RD-Agent classes (the names rd-chain depends on are RD-Agent's own; the other classes' names are plausible
# stand-ins: rd-chain must not depend on them).
FactorRDLoop = stub_class(LOOP_CLASSES["factor"])
ModelRDLoop = stub_class(LOOP_CLASSES["model"])
QuantRDLoop = stub_class(LOOP_CLASSES["quant"])
LOOP_TYPES = {"factor": FactorRDLoop, "model": ModelRDLoop, "quant": QuantRDLoop}
Trace = stub_class("rdagent.core.proposal.Trace")
Hypothesis = stub_class("rdagent.core.proposal.Hypothesis")
HypothesisFeedback = stub_class("rdagent.core.proposal.HypothesisFeedback")
QlibFactorExperiment = stub_class(FACTOR_CLASS)
QlibModelExperiment = stub_class(MODEL_CLASS)
QlibFactorScenario = stub_class("rdagent.scenarios.qlib.experiment.factor_experiment.QlibFactorScenario")
QlibModelScenario = stub_class("rdagent.scenarios.qlib.experiment.model_experiment.QlibModelScenario")
QlibQuantScenario = stub_class("rdagent.scenarios.qlib.experiment.quant_experiment.QlibQuantScenario")
QlibFBWorkspace = stub_class("rdagent.scenarios.qlib.experiment.workspace.QlibFBWorkspace")
FactorTask = stub_class("rdagent.components.coder.factor_coder.factor.FactorTask")
FactorFBWorkspace = stub_class("rdagent.components.coder.factor_coder.factor.FactorFBWorkspace")
ModelTask = stub_class("rdagent.components.coder.model_coder.model.ModelTask")
ModelFBWorkspace = stub_class("rdagent.components.coder.model_coder.model.ModelFBWorkspace")
RunningInfo = stub_class("rdagent.core.experiment.RunningInfo")
LoopTrace = stub_class("rdagent.utils.workflow.loop.LoopTrace")
WorkflowTracker = stub_class("rdagent.utils.workflow.tracking.WorkflowTracker")
RDAgentTimer = stub_class("rdagent.log.timer.RDAgentTimer")
CoderError = stub_exception("rdagent.core.exception.CoderError")
FactorEmptyError = stub_exception("rdagent.core.exception.FactorEmptyError", CoderError)
ModelEmptyError = stub_exception("rdagent.core.exception.ModelEmptyError", CoderError)
RunnerError = stub_exception("rdagent.core.exception.RunnerError")
COMPONENTS = {
    "factor": [
        ("hypothesis_gen", "rdagent.scenarios.qlib.proposal.factor_proposal.QlibFactorHypothesisGen"),
        ("hypothesis2experiment", "rdagent.scenarios.qlib.proposal.factor_proposal.QlibFactorHypothesis2Experiment"),
        ("coder", "rdagent.scenarios.qlib.developer.factor_coder.QlibFactorCoSTEER"),
        ("runner", "rdagent.scenarios.qlib.developer.factor_runner.QlibFactorRunner"),
        ("summarizer", "rdagent.scenarios.qlib.developer.feedback.QlibFactorExperiment2Feedback"),
    ],
    "model": [
        ("hypothesis_gen", "rdagent.scenarios.qlib.proposal.model_proposal.QlibModelHypothesisGen"),
        ("hypothesis2experiment", "rdagent.scenarios.qlib.proposal.model_proposal.QlibModelHypothesis2Experiment"),
        ("coder", "rdagent.scenarios.qlib.developer.model_coder.QlibModelCoSTEER"),
        ("runner", "rdagent.scenarios.qlib.developer.model_runner.QlibModelRunner"),
        ("summarizer", "rdagent.scenarios.qlib.developer.feedback.QlibModelExperiment2Feedback"),
    ],
    "quant": [
        ("hypothesis_gen", "rdagent.scenarios.qlib.proposal.quant_proposal.QlibQuantHypothesisGen"),
        ("factor_coder", "rdagent.scenarios.qlib.developer.factor_coder.QlibFactorCoSTEER"),
        ("factor_runner", "rdagent.scenarios.qlib.developer.factor_runner.QlibFactorRunner"),
        ("model_coder", "rdagent.scenarios.qlib.developer.model_coder.QlibModelCoSTEER"),
        ("model_runner", "rdagent.scenarios.qlib.developer.model_runner.QlibModelRunner"),
        ("factor_summarizer", "rdagent.scenarios.qlib.developer.feedback.QlibFactorExperiment2Feedback"),
        ("model_summarizer", "rdagent.scenarios.qlib.developer.feedback.QlibModelExperiment2Feedback"),
    ],
}
COMPONENT_TYPES = {}
for _kind_components in COMPONENTS.values():
    for _attr, _dotted in _kind_components:
        if _dotted not in COMPONENT_TYPES:
            COMPONENT_TYPES[_dotted] = stub_class(_dotted)


def class_name(obj):
    cls = type(obj)
    return "{}.{}".format(cls.__module__, cls.__qualname__)


# --- pathlib ---------------------------------------------------------------------------------------------------


class StubPath:
    """pathlib's pickling: REDUCE(<path class>, <tuple of str segments>), no state. The segments are whatever the
    writing CPython gave: the parts up to 3.11, the raw arguments from 3.12 on."""

    flavour = posixpath

    def __init__(self, *segments):
        self.segments = tuple(segments)

    def __reduce__(self):
        return (type(self), self.segments)

    def __str__(self):
        return self.flavour.join(*self.segments) if self.segments else "."

    __fspath__ = __str__

    def __repr__(self):
        return "{}({!r})".format(type(self).__qualname__, str(self))


PATH_CLASSES = {}
for _module in ("pathlib", "pathlib._local"):
    for _name, _flavour in (
        ("PosixPath", posixpath),
        ("WindowsPath", ntpath),
        ("PurePosixPath", posixpath),
        ("PureWindowsPath", ntpath),
        ("Path", posixpath),
    ):
        _cls = type(_name, (StubPath,), {"flavour": _flavour})
        PATH_CLASSES[_module + "." + _name] = _place(_cls, _module + "." + _name)


def posix_parts(text):
    """What CPython 3.11's PurePosixPath(text).parts is."""
    parts = [p for p in text.split("/") if p and p != "."]
    if text.startswith("/"):
        return ("/",) + tuple(parts)
    return tuple(parts)


def windows_parts(text):
    """What CPython 3.11's PureWindowsPath(text).parts is (drive letters and plain segments only)."""
    text = text.replace("/", "\\")
    drive, rest = ntpath.splitdrive(text)
    parts = [p for p in rest.split("\\") if p and p != "."]
    if rest.startswith("\\"):
        return (drive + "\\",) + tuple(parts)
    return ((drive,) if drive else ()) + tuple(parts)


def recorded_path(style, root, name):
    """The `workspace_path` value RD-Agent would have pickled for `<root>/<name>`, written in `style`."""
    if style == "str":
        return posixpath.join(root, name)
    if style == "parts":
        return PATH_CLASSES["pathlib.PosixPath"](*posix_parts(posixpath.join(root, name)))
    if style == "pure":
        return PATH_CLASSES["pathlib.PurePosixPath"](*posix_parts(posixpath.join(root, name)))
    if style == "path":
        return PATH_CLASSES["pathlib.Path"](*posix_parts(posixpath.join(root, name)))
    if style == "raw":
        return PATH_CLASSES["pathlib._local.PosixPath"](root, name)
    if style == "joined":
        return PATH_CLASSES["pathlib._local.PosixPath"](posixpath.join(root, name))
    if style == "win-parts":
        return PATH_CLASSES["pathlib.WindowsPath"](*windows_parts(ntpath.join(root, name)))
    if style == "win-raw":
        return PATH_CLASSES["pathlib.WindowsPath"](root, name)
    raise ValueError("unknown path style " + style)


# --- numpy -----------------------------------------------------------------------------------------------------


class StubDType:
    """numpy.dtype: REDUCE(numpy.dtype, (code, False, True)) then BUILD(8-tuple state)."""

    def __init__(self, code, align=False, copy=True):
        self.code = code
        self.state = None

    def __reduce__(self):
        return (type(self), (self.code, False, True), self.state)

    def __setstate__(self, state):
        self.state = state


_place(StubDType, "numpy.dtype")
# One object per dtype, as numpy's builtin dtypes are (so a second use is a memo reference).
DTYPES = {"f8": StubDType("f8"), "O8": StubDType("O8")}
DTYPES["f8"].state = (3, "<", None, None, None, -1, -1, 0)
DTYPES["O8"].state = (3, "|", None, None, None, -1, -1, 63)


class StubArray:
    """numpy.ndarray, 1-D, C order. `data` is a bytearray of raw items, or a list for dtype object."""

    def __init__(self, dtype, shape, data, numpy_module):
        self.dtype = dtype
        self.shape = shape
        self.data = data
        self.numpy_module = numpy_module

    def __reduce_ex__(self, protocol):
        if protocol >= 5 and self.dtype.code != "O8":
            frombuffer = FROMBUFFER[self.numpy_module]
            return (frombuffer, (pickle.PickleBuffer(self.data), self.dtype, self.shape, "C"))
        payload = self.data if self.dtype.code == "O8" else bytes(self.data)
        reconstruct = RECONSTRUCT[self.numpy_module]
        # numpy builds a new (0,) each time (not a memo reference); b"b" is one cached object.
        return (reconstruct, (StubArray, tuple([0]), b"b"), (1, self.shape, self.dtype, False, payload))

    def __setstate__(self, state):
        _version, self.shape, self.dtype, _fortran, data = state
        self.data = data if isinstance(data, list) else bytearray(data)

    def floats(self):
        return list(struct.unpack("<{}d".format(len(self.data) // 8), bytes(self.data)))


_place(StubArray, "numpy.ndarray")


def _reconstruct(cls, shape, typecode):
    array = cls.__new__(cls)
    array.numpy_module = None
    return array


def _frombuffer(buffer, dtype, shape, order):
    return StubArray(dtype, shape, bytearray(buffer), None)


# numpy 1.x writes numpy.core.*, numpy 2.x numpy._core.*: one function object per name.
RECONSTRUCT = {}
FROMBUFFER = {}
for _np, _prefix in (("np1", "numpy.core"), ("np2", "numpy._core")):
    _function = types.FunctionType(_reconstruct.__code__, globals())
    RECONSTRUCT[_np] = _place(_function, _prefix + ".multiarray._reconstruct")
    _function = types.FunctionType(_frombuffer.__code__, globals())
    FROMBUFFER[_np] = _place(_function, _prefix + ".numeric._frombuffer")


def float_array(values, numpy_module):
    raw = bytearray(struct.pack("<{}d".format(len(values)), *values))
    return StubArray(DTYPES["f8"], (len(values),), raw, numpy_module)


def blob_array(size, rng, numpy_module):
    """A float64 array of about `size` bytes (a factor's values, say): numpy-like byte blob."""
    count = max(1, size // 8)
    seed = rng.getrandbits(64)
    # Cheap deterministic bytes: a repeated 4 KiB block keyed by the seed.
    block = hashlib.sha256(seed.to_bytes(8, "little")).digest() * 128
    data = bytearray((block * (count * 8 // len(block) + 1))[: count * 8])
    return StubArray(DTYPES["f8"], (count,), data, numpy_module)


# --- pandas ----------------------------------------------------------------------------------------------------


def _new_Index(cls, d):
    index = cls.__new__(cls)
    index.data = d["data"]
    index.name = d.get("name")
    return index


class StubIndex:
    def __init__(self, data):
        self.data = data
        self.name = None

    def __reduce__(self):
        return (NEW_INDEX, (type(self), {"data": self.data, "name": self.name}))


NEW_INDEX = _place(_new_Index, "pandas.core.indexes.base._new_Index")
INDEX_CLASSES = {
    "pd2": _place(type("Index", (StubIndex,), {}), "pandas.core.indexes.base.Index"),
    "pd3": _place(type("Index", (StubIndex,), {}), "pandas.Index"),
}


class StubBlockManager:
    """SingleBlockManager: NEWOBJ then BUILD with the 4-tuple (axes, [values], [items], {'0.14.1': {...}})."""

    def __getstate__(self):
        return self.state

    def __setstate__(self, state):
        self.state = state


_place(StubBlockManager, "pandas.core.internals.managers.SingleBlockManager")
SERIES_CLASSES = {
    "pd2": stub_class("pandas.core.series.Series"),
    "pd3": stub_class("pandas.Series"),
}
ArrowStringArray = stub_class("pandas.arrays.ArrowStringArray")
_NAME_KEY = "_name"


class StubStringDtype:
    def __init__(self, storage, na_value):
        self.storage = storage
        self.na_value = na_value

    def __reduce__(self):
        return (type(self), (self.storage, self.na_value))


_place(StubStringDtype, "pandas.StringDtype")
STRING_DTYPE = StubStringDtype("pyarrow", float("nan"))


class StubArrowType:
    def __init__(self, alias):
        self.alias = alias

    def __reduce__(self):
        # pyarrow passes a freshly built alias string each time: not a memo reference.
        return (TYPE_FOR_ALIAS, ("".join(list(self.alias)),))


class StubArrowBuffer:
    def __init__(self, data):
        self.data = data

    def __reduce__(self):
        return (PY_BUFFER, (bytearray(self.data),))


class StubArrowArray:
    def __init__(self, labels):
        encoded = [label.encode("utf-8") for label in labels]
        offsets = [0]
        for item in encoded:
            offsets.append(offsets[-1] + len(item))
        self.count = len(labels)
        self.buffers = [None, StubArrowBuffer(struct.pack("<{}q".format(len(offsets)), *offsets)),
                        StubArrowBuffer(b"".join(encoded))]

    def __reduce__(self):
        return (RESTORE_ARRAY, ((StubArrowType("large_string"), self.count, 0, 0, self.buffers, [], None),))

    def labels(self):
        offsets = struct.unpack("<{}q".format(self.count + 1), bytes(self.buffers[1].data))
        data = bytes(self.buffers[2].data)
        return [data[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(self.count)]


def _restore_array(args):
    array = StubArrowArray.__new__(StubArrowArray)
    array.count = args[1]
    array.buffers = args[4]
    return array


RESTORE_ARRAY = _place(_restore_array, "pyarrow.lib._restore_array")
TYPE_FOR_ALIAS = _place(StubArrowType, "pyarrow.lib.type_for_alias")
PY_BUFFER = _place(StubArrowBuffer, "pyarrow.lib.py_buffer")


def labels_of(index):
    """Labels of an Index stub as loaded back (object ndarray or ArrowStringArray)."""
    data = index.data
    if isinstance(data, StubArray):
        return list(data.data)
    if isinstance(data, ArrowStringArray):
        return data._pa_array.labels()
    raise TypeError("unknown index data " + repr(data))


def make_series(labels, values, flavour):
    """A float64 Series as the pandas/numpy `flavour` pickles it ('pd2-np1', 'pd2-np2' or 'pd3-np2')."""
    pandas_major, numpy_module = flavour.split("-")
    n = len(labels)
    labels = list(labels)

    def index_data(readonly_key):
        if pandas_major == "pd3":
            state = {"_pa_array": StubArrowArray(labels), "_dtype": STRING_DTYPE, "_cache": {}}
            if readonly_key:
                state["_readonly"] = False
            return ArrowStringArray(**state)
        return StubArray(DTYPES["O8"], (n,), list(labels), numpy_module)

    index_cls = INDEX_CLASSES[pandas_major]
    axes = [index_cls(index_data(False))]
    values_array = float_array(values, numpy_module)
    items = index_cls(index_data(True))
    manager = StubBlockManager()
    manager.state = (
        axes,
        [values_array],
        [items],
        {"0.14.1": {"axes": axes, "blocks": [{"values": values_array, "mgr_locs": slice(0, n, 1)}]}},
    )
    series = SERIES_CLASSES[pandas_major]()
    series.__dict__.update(
        [
            ("_mgr", manager),
            ("_typ", "series"),
            ("_metadata", [_NAME_KEY]),
            ("attrs", {}),
            ("_flags", {"allows_duplicate_labels": True}),
            (_NAME_KEY, None),
        ]
    )
    return series


def series_to_dict(series):
    """{label: value} of a Series stub as loaded back."""
    axes, values, _items, _extra = series._mgr.state
    return dict(zip(labels_of(axes[0]), values[0].floats()))


# ---------------------------------------------------------------------------------------------------------------
# Files


# Set by the simulated rdagent: sign with the key RD-Agent itself would use on this machine.
KEY_LIKE_RDAGENT = False


def rdagent_key_file():
    """RD-Agent's key file: ARTIFACT_SIGNING_KEY_PATH, else ~/.rdagent/artifact_signing.key."""
    return os.path.expanduser(os.environ.get("ARTIFACT_SIGNING_KEY_PATH") or "~/.rdagent/artifact_signing.key")


def signing_key():
    """sha256 of ARTIFACT_SIGNING_KEY; else, for the simulated rdagent, the bytes of RD-Agent's key file if it
    exists (never created here); else sha256 of the fixtures' own key."""
    material = os.environ.get("ARTIFACT_SIGNING_KEY")
    if not material and KEY_LIKE_RDAGENT and os.path.isfile(rdagent_key_file()):
        with open(rdagent_key_file(), "rb") as f:
            return f.read()
    return hashlib.sha256((material or DEFAULT_SIGNING_KEY).encode("utf-8")).digest()


def sign(payload, key=None):
    key = signing_key() if key is None else key
    return SIGNED_MAGIC + hmac.new(key, payload, hashlib.sha256).digest() + payload


def unsign(data, key=None):
    """(payload, signed, hmac_ok)."""
    if not data.startswith(SIGNED_MAGIC):
        return data, False, None
    mac = data[len(SIGNED_MAGIC):SIGNED_HEADER_LEN]
    payload = data[SIGNED_HEADER_LEN:]
    key = signing_key() if key is None else key
    return payload, True, hmac.compare_digest(mac, hmac.new(key, payload, hashlib.sha256).digest())


def write_file(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def parquet_backend(mode):
    """'real' or 'stub' for --parquet auto|real|stub."""
    if mode == "stub":
        return "stub"
    try:
        __import__("pandas")
        __import__("pyarrow")
    except ImportError:
        if mode == "real":
            raise SystemExit("gen_fixtures.py: --parquet real needs pandas and pyarrow")
        return "stub"
    return "real"


def stub_parquet(factors):
    """A small file that starts and ends with PAR1 (not a readable table)."""
    body = "rd-chain fixture stub parquet; factors: {}\n".format(json.dumps(factors)).encode("utf-8")
    return b"PAR1" + body + struct.pack("<I", len(body)) + b"PAR1"


def real_parquet(path, factors):
    import pandas as pd

    dates = pd.date_range("2024-01-02", periods=5, freq="B")
    instruments = ["SH600000", "SH600004", "SH600009", "SZ000001"]
    index = pd.MultiIndex.from_product([dates, instruments], names=["datetime", "instrument"])
    columns = pd.MultiIndex.from_tuples([("feature", name) for name in factors])
    rows = []
    for r in range(len(index)):
        rows.append([((hash_int(name) % 1000) / 1000.0) + r * 0.001 for name in factors])
    frame = pd.DataFrame(rows, index=index, columns=columns, dtype="float64")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    frame.to_parquet(path, engine="pyarrow")


def hash_int(text):
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def parquet_is_valid(path):
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            f.seek(0, os.SEEK_END)
            if f.tell() < 12:
                return False
            f.seek(-4, os.SEEK_END)
            return head == b"PAR1" and f.read(4) == b"PAR1"
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------------------------
# A session: the loop object driven through its steps, dumped after every step

FACTOR_NAMES = [
    "Momentum_10D", "Volatility_20D", "Turnover_Ratio_5D", "Price_Volume_Corr_10D", "Reversal_5D",
    "Amihud_Illiquidity_20D", "High_Low_Range_10D", "Skewness_20D", "Close_To_VWAP", "Volume_Surge_3D",
]
MODEL_NAMES = ["GRU_Attention", "TCN_Residual", "Transformer_Lite", "LSTM_Stacked", "MLP_Wide", "TabNet_Small"]
SCENARIO_BACKGROUND = (
    "The factor-mining scenario on the CSI300 universe with qlib's Alpha158 baseline. "
    "Daily frequency, train 2008-2014, valid 2015-2016, test 2017-2020. " * 12
)


class Spec:
    """How one session is generated (each attribute is commented where it is set)."""

    def __init__(self, name, **kw):
        self.name = name
        self.kind = kw.pop("kind", "factor")  # the loop: factor | model | quant
        self.era = kw.pop("era", "0.8")  # a key of ERA_STEPS: step names and where hist grows
        self.steps = kw.pop("steps", None) or ERA_STEPS[self.era]
        self.loops = kw.pop("loops", 6)
        self.protocol = kw.pop("protocol", 4)
        self.signed = kw.pop("signed", False)
        # loop -> (protocol, signed) for the loops written differently (legacy-in-1.0)
        self.loop_format = kw.pop("loop_format", {})
        self.decisions = kw.pop("decisions", None)  # loop -> bool; default: accept_default
        self.failures = kw.pop("failures", {})  # loop -> "coding" | "running"
        self.quant_kinds = kw.pop("quant_kinds", {})  # loop -> "factor" | "model"
        self.flavour = kw.pop("flavour", "pd2-np2")  # how `result` Series are pickled: see make_series
        self.path_styles = kw.pop("path_styles", ["parts"])  # cycled over experiments
        self.workspace_layout = kw.pop("workspace_layout", "project")  # project | relative | env | windows
        self.schedule = kw.pop("schedule", None)  # list of (loop, step index) in dump order
        self.last_loop_steps = kw.pop("last_loop_steps", None)  # the run stopped after this many steps of it
        self.blob_bytes = kw.pop("blob_bytes", 128)  # size of each experiment's numpy-like blob
        self.stdout_bytes = kw.pop("stdout_bytes", 400)  # length of each experiment's stdout text
        self.post = kw.pop("post", [])  # truncate-newest | remove-sota-parquet | csv-sota-parquet
        self.expect_loops = kw.pop("expect_loops", [2])  # the "loop:N" entries of expected.json
        self.dir_name = kw.pop("dir_name", name)
        self.empty_session = kw.pop("empty_session", False)  # no snapshot at all
        if kw:
            raise TypeError("unknown Spec options: {}".format(sorted(kw)))

    def decision(self, loop):
        if loop in self.failures:
            return False
        if self.decisions is None:
            return accept_default(loop, self.loops)
        return bool(self.decisions.get(loop, False))

    def exp_kind(self, loop):
        if self.kind == "quant":
            return self.quant_kinds.get(loop, "factor" if loop % 2 == 0 else "model")
        return self.kind

    def hist_step(self):
        return "record" if "record" in self.steps else "feedback"


def accept_default(loop, loops):
    """The default decisions: accept loops 0, 1, 3, 4, 6, ... but never the last one, so that the SOTA is neither
    the first nor the last loop when there are at least 4."""
    return loop % 3 != 2 and loop != loops - 1


class ExpInfo:
    """What the generator knows about one experiment (never pickled)."""

    def __init__(self, loop, kind, directory, recorded):
        self.loop = loop
        self.kind = kind  # factor | model
        self.directory = directory  # the real directory
        self.recorded = recorded  # str() of the recorded workspace_path
        self.factors = None  # factor names in its parquet, if one was written
        self.metrics = None  # {label: value} of its result Series, if it ran


class Dump:
    """One snapshot file as written: its place, format and the trace.hist it holds."""

    def __init__(self, loop, step, name, path, hist, protocol, signed):
        self.loop = loop
        self.step = step
        self.name = name
        self.path = path
        self.hist = hist
        self.protocol = protocol
        self.signed = signed
        self.truncated = False


class RealClock:
    """Step times for `run`: now, strictly increasing."""

    def __init__(self):
        self.last = 0.0

    def now(self, advance=1.0):
        t = max(time.time(), self.last + 0.001)
        self.last = t
        return dt.datetime.fromtimestamp(t, dt.timezone.utc)


class FixedClock:
    """Step times for `tree`: from a fixed start, about `advance` seconds apart, derived from the seed."""

    def __init__(self, start, rng):
        self.current = start
        self.rng = rng

    def now(self, advance=1.0):
        self.current += dt.timedelta(seconds=advance * (1 + self.rng.random()), microseconds=self.rng.randrange(10**6))
        return self.current


class Session:
    """Drives one loop object through `spec`'s steps and dumps it after each one.

    log_dir: where __session__ goes. workspace_dir: where workspace directories are created. recorded_root: the
    workspace root as RD-Agent recorded it (may be relative, Windows, or no longer existing)."""

    def __init__(self, spec, log_dir, workspace_dir, recorded_root, rng, clock, parquet="stub",
                 recorded_session_folder=None, on_step=None):
        self.spec = spec
        self.log_dir = log_dir
        self.workspace_dir = workspace_dir
        self.recorded_root = recorded_root
        self.rng = rng
        self.clock = clock
        self.parquet = parquet_backend(parquet)
        self.on_step = on_step
        self.infos = {}  # id(experiment) -> ExpInfo
        self.dumps = []
        self.exp_count = 0
        self.ctx = {}  # loop -> dict of that loop's objects
        self.write = True
        kind = spec.kind
        scen_cls = {"factor": QlibFactorScenario, "model": QlibModelScenario, "quant": QlibQuantScenario}[kind]
        self.scen = scen_cls(
            _background=SCENARIO_BACKGROUND,
            _source_data="$close, $open, $high, $low, $volume, $vwap (daily, CSI300)",
            _output_format="A pandas DataFrame indexed by (datetime, instrument) with one column per factor.",
            _interface="def calculate_factor(df: pd.DataFrame) -> pd.DataFrame",
            _simulator="qlib backtest, topk 50, n_drop 5, open cost 0.0005, close cost 0.0015",
        )
        trace_state = [("scen", self.scen), ("hist", [])]
        if spec.era != "0.3":
            trace_state += [("dag_parent", []), ("idx2loop_id", {})]
        trace_state += [("knowledge_base", None)]
        if spec.era == "1.0":
            trace_state += [("current_selection", (-1,))]
        self.trace = Trace(**dict(trace_state))
        loop = LOOP_TYPES[kind]()
        state = []
        for attr, dotted in COMPONENTS[kind]:
            state.append((attr, COMPONENT_TYPES[dotted](scen=self.scen)))
        started = clock.now(0)
        if recorded_session_folder is None:
            recorded_session_folder = recorded_path("parts", os.path.join(log_dir, "__session__"), "")
        state += [
            ("trace", self.trace),
            ("loop_idx", 0),
            ("step_idx", collections.defaultdict(int)),
            ("loop_prev_out", collections.defaultdict(dict)),
            ("loop_trace", collections.defaultdict(list)),
            ("session_folder", recorded_session_folder),
            ("timer", RDAgentTimer(started=False, all_duration=None, remain_time_duration=None, target_time=None)),
            ("loop_n", spec.loops),
            ("step_n", None),
            ("created_at", started),
        ]
        loop.__dict__.update(state)
        loop.tracker = WorkflowTracker(loop_base=loop, run_id=None, start_time=started)
        self.loop = loop

    # --- objects ---

    def new_uuid(self):
        return uuid.UUID(int=self.rng.getrandbits(128), version=4).hex

    def new_path(self):
        """(uuid, recorded path object, real directory)."""
        name = self.new_uuid()
        styles = self.spec.path_styles
        style = styles[self.exp_count % len(styles)]
        return name, recorded_path(style, self.recorded_root, name), os.path.join(self.workspace_dir, name)

    def accepted(self, kind):
        return [exp for exp, fb in self.trace.hist if fb.decision and self.infos[id(exp)].kind == kind]

    def new_experiment(self, li, hypothesis):
        """A factor experiment builds on a fresh baseline (no sub tasks, never run, its workspace never created)
        and every accepted factor experiment so far (the same objects); a model one on the accepted model
        experiments (in a quant loop, the accepted factor experiments first)."""
        kind = self.spec.exp_kind(li)
        self.exp_count += 1
        tasks = []
        names = FACTOR_NAMES if kind == "factor" else MODEL_NAMES
        count = 2 if kind == "factor" else 1
        for i in range(count):
            base = names[(li * count + i) % len(names)]
            name = "{}_L{}".format(base, li)
            if kind == "factor":
                tasks.append(FactorTask(
                    factor_name=name,
                    factor_description="[Momentum Factor] {} computed over a rolling window.".format(name),
                    factor_formulation="\\frac{{close_t - close_{{t-n}}}}{{close_{{t-n}}}} \\quad ({})".format(name),
                    variables={"close_t": "close price at t", "n": "window length"},
                    factor_resources=None,
                    factor_implementation=False,
                ))
            else:
                tasks.append(ModelTask(
                    name=name,
                    description="{} over 20 days of Alpha158 features.".format(name),
                    architecture="2 layers, hidden 64, dropout 0.1",
                    hyperparameters={"lr": 0.001, "epochs": 20, "batch_size": 800},
                    model_type="TimeSeries",
                ))
        if kind == "factor":
            _, baseline_path, _ = self.new_path()
            baseline = QlibFactorExperiment(
                hypothesis=None,
                sub_tasks=[],
                sub_workspace_list=[],
                based_experiments=[],
                experiment_workspace=QlibFBWorkspace(
                    file_dict={}, workspace_path=baseline_path, target_task=None, ws_ckp=None),
                stdout="",
                sub_results={},
            )
            set_result(baseline, None, None, self.spec.era)
            based = [baseline] + self.accepted("factor")
            cls = QlibFactorExperiment
        else:
            based = (self.accepted("factor") if self.spec.kind == "quant" else []) + self.accepted("model")
            cls = QlibModelExperiment
        name, path, directory = self.new_path()
        exp = cls(
            hypothesis=hypothesis,
            sub_tasks=tasks,
            sub_workspace_list=[None] * len(tasks),
            based_experiments=based,
            experiment_workspace=QlibFBWorkspace(
                file_dict={"conf_baseline.yaml": "qlib_init:\n  provider_uri: ~/.qlib/qlib_data/cn_data\n"},
                workspace_path=path,
                target_task=None,
                ws_ckp=None,
            ),
            stdout="",
            sub_results={},
            prop_dev_feedback=None,
        )
        set_result(exp, None, None, self.spec.era)
        info = ExpInfo(li, kind, directory, str(path))
        self.infos[id(exp)] = info
        return exp

    def new_hypothesis(self, li):
        kind = self.spec.exp_kind(li)
        return Hypothesis(
            hypothesis="Loop {}: a {} capturing short-term reversal after volume spikes.".format(li, kind),
            reason="The previous loop's IC suggests the signal decays within 5 days.",
            concise_reason="Short-term reversal is under-exploited.",
            concise_observation="IC of momentum factors is unstable.",
            concise_justification="Volume spikes precede reversals in CSI300 names.",
            concise_knowledge="If volume spikes, then returns revert within a week.",
            action="factor" if kind == "factor" else "model",
        )

    def metrics(self):
        r = self.rng
        values = [
            round(r.uniform(0.005, 0.06), 6),
            round(r.uniform(0.05, 0.5), 6),
            round(r.uniform(0.005, 0.07), 6),
            round(r.uniform(0.05, 0.6), 6),
            round(r.uniform(-0.05, 0.2), 6),
            round(r.uniform(-0.25, -0.03), 6),
        ]
        return dict(zip(METRIC_LABELS, values))

    def stdout_text(self, li):
        line = "[{}:MainThread](2026-01-14 16:{:02d}:00) INFO - qlib.workflow - [record_temp.py:196] - Signal " \
               "record 'pred.pkl' has been saved as the artifact of the Experiment {}\n".format(li, li % 60, li)
        return (line * (self.spec.stdout_bytes // len(line) + 1))[: self.spec.stdout_bytes]

    # --- steps ---

    def run_step(self, li, si):
        spec = self.spec
        name = spec.steps[si]
        ctx = self.ctx.setdefault(li, {})
        prev = self.loop.loop_prev_out[li]
        start = self.clock.now(0.2)
        out = None
        kind = spec.exp_kind(li)
        failure = spec.failures.get(li)
        if name == "propose":
            ctx["hypothesis"] = out = self.new_hypothesis(li)
        elif name in ("exp_gen", "direct_exp_gen"):
            hypothesis = ctx.get("hypothesis") or self.new_hypothesis(li)
            ctx["exp"] = out = self.new_experiment(li, hypothesis)
        elif name == "coding":
            exp = ctx["exp"]
            if failure == "coding":
                error = FactorEmptyError if kind == "factor" else ModelEmptyError
                out = error("Loop {}: no {} implemented successfully after 10 evolving rounds.".format(li, kind))
            else:
                workspaces = []
                for task in exp.sub_tasks:
                    _, path, directory = self.new_path()
                    filename = "factor.py" if kind == "factor" else "model.py"
                    code = "import pandas as pd\n\n\ndef calculate():\n    # {}\n    return None\n".format(
                        getattr(task, "factor_name", getattr(task, "name", "")))
                    workspaces.append((FactorFBWorkspace if kind == "factor" else ModelFBWorkspace)(
                        file_dict={filename: code}, workspace_path=path, target_task=task, ws_ckp=None))
                    if self.write:
                        write_file(os.path.join(directory, filename), code.encode("utf-8"))
                exp.sub_workspace_list = workspaces
                # One blob of blob_bytes per experiment (the first task's values), small arrays for the others.
                exp.sub_results = {
                    (getattr(t, "factor_name", None) or t.name): blob_array(
                        spec.blob_bytes if i == 0 else 128, self.rng, self.numpy_module)
                    for i, t in enumerate(exp.sub_tasks)
                }
                out = exp
        elif name == "running":
            exp = ctx["exp"]
            info = self.infos[id(exp)]
            if self.write:
                write_file(os.path.join(info.directory, "conf_baseline.yaml"),
                           exp.experiment_workspace.file_dict["conf_baseline.yaml"].encode("utf-8"))
            if failure == "running":
                out = RunnerError("Loop {}: qlib backtest failed: the factor values contain only NaN.".format(li))
                exp.stdout = "Traceback (most recent call last):\n  ...\nValueError: all NaN\n"
            else:
                info.metrics = self.metrics()
                set_result(exp, make_series(list(info.metrics), list(info.metrics.values()), spec.flavour),
                           round(self.rng.uniform(30, 900), 3), spec.era)
                exp.stdout = self.stdout_text(li)
                factors = None
                if kind == "factor":
                    factors = [f for e in exp.based_experiments[1:] for f in self.infos[id(e)].factors or []]
                    factors += [t.factor_name for t in exp.sub_tasks]
                elif spec.kind == "quant":
                    factors = [f for e in exp.based_experiments if self.infos[id(e)].kind == "factor"
                               for f in self.infos[id(e)].factors or []]
                    factors = factors or None
                if factors:
                    info.factors = list(dict.fromkeys(factors))
                    if self.write:
                        self.write_parquet(os.path.join(info.directory, FACTORS_FILE), info.factors)
            out = exp
        elif name == "feedback":
            exp = ctx["exp"]
            decision = spec.decision(li)
            error = prev.get("running") if failure == "running" else None
            ctx["feedback"] = out = HypothesisFeedback(
                observations="Loop {}: IC {} the SOTA.".format(li, "beats" if decision else "does not beat"),
                hypothesis_evaluation="The hypothesis is {}.".format("supported" if decision else "not supported"),
                new_hypothesis="Combine the reversal signal with a liquidity filter.",
                reason="The new factors {} the annualized return with cost.".format(
                    "improve" if decision else "do not improve"),
                exception=error,
                decision=decision,
                eda_improvement=None,
                acceptable=decision,
            )
            if spec.hist_step() == "feedback":
                self.record(li, exp, out)
        elif name == "record":
            self.record(li, ctx["exp"], ctx["feedback"])
        prev[name] = out
        self.loop.step_idx[li] = si + 1
        self.loop.loop_idx = max(self.loop.loop_idx, li)
        end = self.clock.now(2.0)
        self.loop.loop_trace[li].append(LoopTrace(start=start, end=end, step_idx=si))
        self.dump(li, si, name, end)
        if self.on_step is not None and self.write:
            self.on_step(li, si, name)

    def record(self, li, exp, feedback):
        trace = self.trace
        trace.hist.append((exp, feedback))
        if hasattr(trace, "idx2loop_id"):
            index = len(trace.hist) - 1
            trace.idx2loop_id[index] = li
            trace.dag_parent.append((index - 1,) if index > 0 else ())

    def write_parquet(self, path, factors):
        if self.parquet == "real":
            real_parquet(path, factors)
        else:
            write_file(path, stub_parquet(factors))

    @property
    def numpy_module(self):
        return self.spec.flavour.split("-")[1]

    def dump(self, li, si, name, when):
        protocol, signed = self.spec.loop_format.get(li, (self.spec.protocol, self.spec.signed))
        path = os.path.join(self.log_dir, "__session__", str(li), "{}_{}".format(si, name))
        record = Dump(li, si, name, path, list(self.trace.hist), protocol, signed)
        self.dumps.append(record)
        if not self.write:
            return
        payload = dumps(self.loop, protocol)
        write_file(path, sign(payload) if signed else payload)
        stamp = when.timestamp()
        os.utime(path, (stamp, stamp))

    # --- driving ---

    def schedule(self, start_loop=0):
        spec = self.spec
        if spec.schedule is not None:
            return list(spec.schedule)
        events = []
        for li in range(start_loop, spec.loops):
            count = len(spec.steps)
            if spec.failures.get(li) == "coding":
                count = spec.steps.index("coding") + 1
            if li == spec.loops - 1 and spec.last_loop_steps is not None:
                count = spec.last_loop_steps
            events.extend((li, si) for si in range(count))
        return events

    def run(self, start_loop=0, max_steps=None, should_stop=None):
        """Run every scheduled step; loops before `start_loop` are replayed without writing anything."""
        if start_loop:
            self.write = False
            for li, si in self.schedule(0):
                if li >= start_loop:
                    break
                self.run_step(li, si)
            self.write = True
        done = 0
        for li, si in self.schedule(start_loop):
            if max_steps is not None and done >= max_steps:
                break
            if should_stop is not None and should_stop():
                break
            self.run_step(li, si)
            done += 1
        return done

    def sota(self):
        """(index, loop, ExpInfo) of the last accepted factor experiment in the final history, or None."""
        found = None
        for index, (exp, fb) in enumerate(self.trace.hist):
            info = self.infos[id(exp)]
            if fb.decision and info.kind == "factor":
                found = (index, info.loop, info)
        return found


# ---------------------------------------------------------------------------------------------------------------
# Scenarios

BASIC_DECISIONS = {0: True, 1: False, 2: True, 3: True, 4: False, 5: False}


def _parallel_schedule():
    seq = lambda li: [(li, s) for s in range(4)]  # noqa: E731
    return (
        seq(0)
        + [(1, 0), (1, 1), (2, 0), (1, 2), (2, 1), (2, 2), (2, 3), (1, 3)]
        + seq(3)
        + [(4, 0), (4, 1), (5, 0), (5, 1), (4, 2), (4, 3)]
    )


NUMERIC_STEPS = ["direct_exp_gen", "coding", "running", "feedback", "record", "summarize", "export",
                 "checkpoint", "notify", "cleanup", "archive"]

SCENARIOS = [
    Spec("basic-p2", protocol=2, flavour="pd2-np1", decisions=BASIC_DECISIONS),
    Spec("basic-p3", protocol=3, flavour="pd2-np1", decisions=BASIC_DECISIONS),
    Spec("basic-p4", protocol=4, decisions=BASIC_DECISIONS),
    Spec("basic-p5", protocol=5, decisions=BASIC_DECISIONS),
    Spec("signed", era="1.0", protocol=5, signed=True, decisions=BASIC_DECISIONS),
    Spec("legacy-in-1.0", era="1.0", protocol=5, signed=True, decisions=BASIC_DECISIONS, loop_format={5: (4, False)}),
    Spec("era03", era="0.3", protocol=3, flavour="pd2-np1", decisions=BASIC_DECISIONS),
    Spec("parallel", decisions={0: True, 1: True, 2: True, 3: False, 4: False, 5: False},
         schedule=_parallel_schedule(), expect_loops=[1, 2, 5]),
    Spec("stopped-mid-loop", decisions=BASIC_DECISIONS, last_loop_steps=2, expect_loops=[2, 5]),
    Spec("truncated-newest", era="1.0", protocol=5, signed=True, decisions=BASIC_DECISIONS, post=["truncate-newest"]),
    Spec("no-accepted", loops=4, decisions={}),
    Spec("missing-parquet", loops=5, decisions={0: True, 1: False, 2: True, 3: False, 4: True},
         post=["remove-sota-parquet"], expect_loops=[4, 2]),
    Spec("bad-parquet", loops=5, decisions={0: True, 1: True, 2: False, 3: True, 4: False},
         post=["csv-sota-parquet"], expect_loops=[3, 4]),
    Spec("failed-loops", decisions={0: True, 2: True, 4: True, 5: False}, failures={1: "coding", 3: "running"},
         expect_loops=[1, 3, 4]),
    Spec("windows-paths", decisions=BASIC_DECISIONS, path_styles=["win-parts", "win-raw"],
         workspace_layout="windows"),
    Spec("pathlib-local", decisions=BASIC_DECISIONS, path_styles=["raw", "raw", "joined"]),
    Spec("path-classes", decisions=BASIC_DECISIONS, path_styles=["pure", "path", "str", "parts", "joined"]),
    Spec("relative-workspace", decisions=BASIC_DECISIONS, workspace_layout="relative"),
    Spec("env-workspace", decisions=BASIC_DECISIONS, workspace_layout="env"),
    Spec("str-path", decisions=BASIC_DECISIONS, path_styles=["str"]),
    Spec("model-only", kind="model", loops=5, decisions={0: True, 1: False, 2: True, 3: True, 4: False}),
    Spec("quant", kind="quant", decisions={0: True, 1: True, 2: True, 3: False, 4: True, 5: False},
         quant_kinds={0: "factor", 1: "model", 2: "factor", 3: "factor", 4: "model", 5: "model"},
         expect_loops=[2, 4]),
    Spec("long-dag", loops=64, decisions={i: i % 4 != 3 for i in range(63)}, stdout_bytes=200,
         blob_bytes=64, expect_loops=[0, 62, 63]),
    Spec("blobs", loops=3, blob_bytes=1 << 20, decisions={0: True, 1: True, 2: False}, expect_loops=[1]),
    Spec("spaces and ünïcode", loops=4, decisions={0: True, 1: True, 2: True, 3: False}, expect_loops=[1]),
    Spec("numeric-order", loops=12, steps=NUMERIC_STEPS, decisions={0: True, 3: True, 9: True, 10: True},
         stdout_bytes=120, expect_loops=[9, 10, 11]),
    Spec("pandas3", era="1.0", protocol=5, signed=True, flavour="pd3-np2", decisions=BASIC_DECISIONS),
    Spec("empty-session", loops=0, empty_session=True, expect_loops=[0]),
]
SCENARIO_NAMES = [s.name for s in SCENARIOS]

OLD_HOST_ROOT = "/nonexistent-rd-chain-fixture/old-host/git_ignore_folder/RD-Agent_workspace"
WINDOWS_PROJECT = "F:\\Dev\\RD-Agent-main"


def scenario_start(rng):
    base = dt.datetime(2026, 1, 14, 16, 14, 52, 886218, tzinfo=dt.timezone.utc)
    return base + dt.timedelta(seconds=rng.randrange(0, 30 * 86400), microseconds=rng.randrange(10**6))


def generate_scenario(spec, out_dir, parquet="stub"):
    """Write one scenario's project root and expected.json; return the expected dict."""
    root = os.path.join(os.path.abspath(out_dir), spec.dir_name)
    if os.path.lexists(root):
        shutil.rmtree(root)
    os.makedirs(root)
    rng = random.Random("gen_fixtures:" + spec.name)
    start = scenario_start(rng)
    stamp = start.strftime(LOG_DIR_FORMAT)
    log_dir = os.path.join(root, "log", stamp)
    env = {}
    recorded_session = None
    if spec.workspace_layout == "project":
        workspace_dir = os.path.join(root, PROJECT_WORKSPACE)
        recorded_root = workspace_dir
    elif spec.workspace_layout == "relative":
        workspace_dir = os.path.join(root, "rd_ws")
        recorded_root = "rd_ws"
    elif spec.workspace_layout == "env":
        workspace_dir = os.path.join(root, "moved-workspaces")
        recorded_root = OLD_HOST_ROOT
        env["WORKSPACE_PATH"] = workspace_dir
    elif spec.workspace_layout == "windows":
        workspace_dir = os.path.join(root, PROJECT_WORKSPACE)
        recorded_root = ntpath.join(WINDOWS_PROJECT, "git_ignore_folder", "RD-Agent_workspace")
        recorded_session = recorded_path("win-parts", ntpath.join(WINDOWS_PROJECT, "log", stamp), "__session__")
    else:
        raise ValueError(spec.workspace_layout)
    if spec.signed or any(signed for _p, signed in spec.loop_format.values()):
        env["ARTIFACT_SIGNING_KEY"] = os.environ.get("ARTIFACT_SIGNING_KEY", DEFAULT_SIGNING_KEY)
    os.makedirs(os.path.join(log_dir, "__session__"))
    os.makedirs(workspace_dir, exist_ok=True)
    session = Session(spec, log_dir, workspace_dir, recorded_root, rng, FixedClock(start, rng), parquet,
                      recorded_session_folder=recorded_session)
    session.run()
    apply_post(spec, session)
    expected = expectations(spec, session, root, log_dir, env)
    with open(os.path.join(root, "expected.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(expected, indent=2, ensure_ascii=False) + "\n")
    return expected


def apply_post(spec, session):
    for action in spec.post:
        if action == "truncate-newest":
            newest = session.dumps[-1]
            with open(newest.path, "rb") as f:
                data = f.read()
            stat = os.stat(newest.path)
            with open(newest.path, "wb") as f:
                f.write(data[: len(data) // 2])
            os.utime(newest.path, (stat.st_mtime, stat.st_mtime))
            newest.truncated = True
        elif action in ("remove-sota-parquet", "csv-sota-parquet"):
            found = session.sota()
            path = os.path.join(found[2].directory, FACTORS_FILE)
            if action == "remove-sota-parquet":
                os.remove(path)
            else:
                with open(path, "w", encoding="utf-8") as f:
                    f.write("datetime,instrument,{}\n".format(",".join(found[2].factors)))
                    f.write("2024-01-02,SH600000,{}\n".format(",".join("0.1" for _ in found[2].factors)))
        else:
            raise ValueError(action)


def map_workspace(recorded, root, env):
    """(existing directory, mapping) for a recorded workspace path, or (None, None)."""
    if recorded is None:
        return None, None
    if posixpath.isabs(recorded) and os.path.isdir(recorded):
        return recorded, "recorded"
    windows = ntpath.splitdrive(recorded)[0] != "" or "\\" in recorded
    if not windows and not posixpath.isabs(recorded):
        joined = os.path.join(root, recorded)
        if os.path.isdir(joined):
            return joined, "relative"
    name = ntpath.basename(recorded) if windows else posixpath.basename(recorded.rstrip("/"))
    if env.get("WORKSPACE_PATH"):
        candidate = os.path.join(env["WORKSPACE_PATH"], name)
        if os.path.isdir(candidate):
            return candidate, "env-workspace"
    candidate = os.path.join(root, PROJECT_WORKSPACE, name)
    if os.path.isdir(candidate):
        return candidate, "project-workspace"
    return None, None


def expectations(spec, session, root, log_dir, env):
    """expected.json of a scenario:
      scenario, project_root, log_dir, era ("0.3"|"0.8"|"1.0"), loop_class;
      env: variables a consumer must set ({} or WORKSPACE_PATH, ARTIFACT_SIGNING_KEY);
      snapshot: the snapshot with the longest hist (ties: highest (loop, step)) among those that decode:
        {loop, step, name, file, signed, protocol, hist_len}, or null when there is none;
      snapshot_count, newest_by_mtime, highest_loop_step (file paths), skipped (truncated files);
      history: per hist entry of that snapshot {index, loop, class, kind ("factor"|"model"), decision,
        workspace_recorded (str of the pickled path), workspace (existing dir or null), mapping (or null),
        parquet_exists, parquet_valid (PAR1 at both ends), factors (names in its parquet or null), metrics};
      expect: per policy ("sota", "latest", "loop:N") either {index, loop, workspace, mapping, parquet, factors}
        or {exit: 3, why, mentions (paths the error message must name), index?, loop?}."""
    candidates = [d for d in session.dumps if not d.truncated]
    chosen = max(candidates, key=lambda d: (len(d.hist), d.loop, d.step)) if candidates else None
    history = []
    # Up to 0.3 the trace keeps no idx2loop_id: a reader cannot know an entry's loop (a failed loop adds no
    # entry, so the index is not the loop), and must say null.
    loop_ids_known = spec.era != "0.3"
    for index, (exp, fb) in enumerate(chosen.hist if chosen else []):
        info = session.infos[id(exp)]
        directory, mapping = map_workspace(info.recorded, root, env)
        parquet = os.path.join(directory, FACTORS_FILE) if directory else None
        history.append({
            "index": index,
            "loop": info.loop if loop_ids_known else None,
            "class": class_name(exp),
            "kind": info.kind,
            "decision": fb.decision,
            "workspace_recorded": info.recorded,
            "workspace": directory,
            "mapping": mapping,
            "parquet_exists": bool(parquet and os.path.isfile(parquet)),
            "parquet_valid": bool(parquet and parquet_is_valid(parquet)),
            "factors": info.factors if parquet and os.path.isfile(parquet) else None,
            "metrics": info.metrics if result_of(exp) is not None else None,
        })
    expect = {"sota": pick_sota(history), "latest": pick_latest(history)}
    for loop in spec.expect_loops:
        expect["loop:{}".format(loop)] = (
            pick_loop(history, loop) if loop_ids_known else
            {"exit": 3, "why": "idx2loop_id", "mentions": []}
        )
    snapshot = None
    if chosen:
        snapshot = {"loop": chosen.loop, "step": chosen.step, "name": "{}_{}".format(chosen.step, chosen.name),
                    "file": chosen.path, "signed": chosen.signed, "protocol": chosen.protocol,
                    "hist_len": len(chosen.hist)}
    return {
        "scenario": spec.name,
        "project_root": root,
        "log_dir": log_dir,
        "env": env,
        "era": spec.era,
        "loop_class": LOOP_CLASSES[spec.kind],
        "snapshot": snapshot,
        "snapshot_count": len(session.dumps),
        "newest_by_mtime": session.dumps[-1].path if session.dumps else None,
        "highest_loop_step": max(session.dumps, key=lambda d: (d.loop, d.step)).path if session.dumps else None,
        "skipped": [d.path for d in session.dumps if d.truncated],
        "history": history,
        "expect": expect,
    }


def _pick(entry, why_missing):
    if entry is None:
        return {"exit": 3, "why": why_missing, "mentions": []}
    if entry["workspace"] is None:
        return {"exit": 3, "why": "the workspace {} does not exist".format(entry["workspace_recorded"]),
                "mentions": [entry["workspace_recorded"]], "index": entry["index"], "loop": entry["loop"]}
    parquet = os.path.join(entry["workspace"], FACTORS_FILE)
    if not entry["parquet_exists"]:
        return {"exit": 3, "why": "{} does not exist".format(parquet), "mentions": [parquet],
                "index": entry["index"], "loop": entry["loop"]}
    if not entry["parquet_valid"]:
        return {"exit": 3, "why": "{} is not a parquet file".format(parquet), "mentions": [parquet],
                "index": entry["index"], "loop": entry["loop"]}
    return {"index": entry["index"], "loop": entry["loop"], "workspace": entry["workspace"],
            "mapping": entry["mapping"], "parquet": parquet, "factors": entry["factors"]}


def pick_sota(history):
    """RD-Agent's SOTA: the last accepted entry; rd-chain wants the last accepted FACTOR experiment, and its
    parquet must be usable (no fall back to an earlier one, which lacks the later factors)."""
    accepted = [h for h in history if h["kind"] == "factor" and h["decision"]]
    return _pick(accepted[-1] if accepted else None, "no accepted factor experiment in the history")


def pick_latest(history):
    """The last factor experiment (accepted or not) whose workspace holds a parquet file (a missing one is
    skipped; a present but invalid one is an error)."""
    usable = [h for h in history if h["kind"] == "factor" and h["parquet_exists"]]
    return _pick(usable[-1] if usable else None, "no factor experiment with a parquet file in the history")


def pick_loop(history, loop):
    entries = [h for h in history if h["kind"] == "factor" and h["loop"] == loop]
    return _pick(entries[-1] if entries else None, "no factor experiment of loop {} in the history".format(loop))


def write_tree(out_dir, names, parquet):
    """Every scenario, or the named ones (bench scenarios can be named too)."""
    os.makedirs(out_dir, exist_ok=True)
    for spec in SCENARIOS + BENCH:
        if (names and spec.name not in names) or (not names and spec in BENCH):
            continue
        if spec.empty_session:
            write_empty_session(spec, out_dir)
            continue
        generate_scenario(spec, out_dir, parquet)


def write_empty_session(spec, out_dir):
    """A run that crashed before its first step: a log directory with an empty __session__."""
    root = os.path.join(os.path.abspath(out_dir), spec.dir_name)
    if os.path.lexists(root):
        shutil.rmtree(root)
    rng = random.Random("gen_fixtures:" + spec.name)
    log_dir = os.path.join(root, "log", scenario_start(rng).strftime(LOG_DIR_FORMAT))
    os.makedirs(os.path.join(log_dir, "__session__"))
    os.makedirs(os.path.join(root, PROJECT_WORKSPACE))
    expected = {
        "scenario": spec.name, "project_root": root, "log_dir": log_dir, "env": {}, "era": spec.era,
        "loop_class": LOOP_CLASSES[spec.kind], "snapshot": None, "snapshot_count": 0, "newest_by_mtime": None,
        "highest_loop_step": None, "skipped": [], "history": [],
        "expect": {
            "sota": {"exit": 3, "why": "no session snapshot under {}".format(log_dir), "mentions": [log_dir]},
            "latest": {"exit": 3, "why": "no session snapshot under {}".format(log_dir), "mentions": [log_dir]},
            "loop:0": {"exit": 3, "why": "no session snapshot under {}".format(log_dir), "mentions": [log_dir]},
        },
    }
    with open(os.path.join(root, "expected.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(expected, indent=2, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------------------------------------------------------
# answers: a factor run and a model run with RD-Agent 1.0's task shapes, known SOTA factor set and SOTA model
# (for `inspect --factors`, `resolve --kind model` and `export`)

UNEXPLAINED_COLUMN = "Legacy_Alpha_Unexplained"
ANSWERS_FACTOR_DECISIONS = {0: True, 1: False, 2: True, 3: True, 4: False}
ANSWERS_MODEL_DECISIONS = {0: False, 1: True, 2: True, 3: False}
# A description with a terminal escape sequence: human output must show it escaped, JSON exactly.
HOSTILE_DESCRIPTION = "Reversal after volume spikes \x1b[31mRED\x1b[0m (5 days)."


class AnswersSession(Session):
    """A Session whose tasks have RD-Agent 1.0's state: FactorTask keeps `description` (its
    `factor_description` is a property) and `name`; ModelTask has formulation, variables and
    training_hyperparameters; the model experiment's workspace holds the injected model.py."""

    def new_experiment(self, li, hypothesis):
        exp = super().new_experiment(li, hypothesis)
        for i, task in enumerate(exp.sub_tasks):
            d = task.__dict__
            if "factor_name" in d:
                description = d.pop("factor_description")
                if li == 0 and i == 0:
                    description = HOSTILE_DESCRIPTION
                d.update(name=d["factor_name"], version=1, description=description, user_instructions=None,
                         base_code=None)
            else:
                d.update(version=1, user_instructions=None, base_code=None,
                         formulation="h_t = GRU(x_{t-19}, ..., x_t); y_t = W h_t",
                         variables={"x_t": "the features of day t", "h_t": "the hidden state"},
                         training_hyperparameters={"n_epochs": "40", "lr": "2e-4", "early_stop": 8,
                                                   "batch_size": 512, "weight_decay": 0.0001})
        return exp

    def run_step(self, li, si):
        super().run_step(li, si)
        ctx = self.ctx.get(li, {})
        exp = ctx.get("exp")
        if self.spec.steps[si] == "coding" and exp is not None and self.spec.exp_kind(li) == "model":
            code = "import torch\n\n\nclass Net(torch.nn.Module):\n    # {}\n    pass\n\n\nmodel_cls = Net\n".format(
                exp.sub_tasks[0].name)
            exp.sub_workspace_list[0].file_dict["model.py"] = code
            exp.experiment_workspace.file_dict["model.py"] = code


def write_answers(out_dir):
    """Write <out_dir>/answers: a signed 1.0-era factor run (5 loops, real parquet files, the SOTA parquet with
    one extra column no experiment explains) and a model run (4 loops), and answers.json:
      factor_log, model_log, project_root, env;
      factor: {sota_index, sota_loop, workspace, parquet, columns (in order), unexplained,
               factors: [{name, index, loop, description, formulation, variables, code}]}
      model: {sota_index, sota_loop, workspace, name, model_type, architecture, hyperparameters,
              training_hyperparameters, code, metrics, baseline_loop, baseline_metrics}."""
    root = os.path.join(os.path.abspath(out_dir), "answers")
    if os.path.lexists(root):
        shutil.rmtree(root)
    rng = random.Random("gen_fixtures:answers")
    start = scenario_start(rng)
    workspace_dir = os.path.join(root, PROJECT_WORKSPACE)
    os.makedirs(workspace_dir)
    env = {"ARTIFACT_SIGNING_KEY": os.environ.get("ARTIFACT_SIGNING_KEY", DEFAULT_SIGNING_KEY)}
    sessions = {}
    for kind, loops, decisions, offset in (("factor", 5, ANSWERS_FACTOR_DECISIONS, 0),
                                           ("model", 4, ANSWERS_MODEL_DECISIONS, 3600)):
        stamp = (start + dt.timedelta(seconds=offset)).strftime(LOG_DIR_FORMAT)
        log_dir = os.path.join(root, "log", stamp)
        os.makedirs(os.path.join(log_dir, "__session__"))
        spec = Spec("answers-" + kind, kind=kind, era="1.0", protocol=5, signed=True, loops=loops,
                    decisions=decisions)
        session = AnswersSession(spec, log_dir, workspace_dir, workspace_dir, rng, FixedClock(start, rng), "real")
        session.run()
        sessions[kind] = (session, log_dir)

    factor_session, factor_log = sessions["factor"]
    index, loop, info = factor_session.sota()
    columns = info.factors + [UNEXPLAINED_COLUMN]
    parquet = os.path.join(info.directory, FACTORS_FILE)
    real_parquet(parquet, columns)
    hist = factor_session.trace.hist
    factors = []
    for name in info.factors:
        introduced = None
        for i, (exp, fb) in enumerate(hist[: index + 1]):
            if (fb.decision or i == index) and any(t.factor_name == name for t in exp.sub_tasks):
                introduced = i
                break
        exp = hist[introduced][0]
        task_index = [t.factor_name for t in exp.sub_tasks].index(name)
        task = exp.sub_tasks[task_index]
        factors.append({
            "name": name, "index": introduced, "loop": factor_session.infos[id(exp)].loop,
            "description": task.description, "formulation": task.factor_formulation, "variables": task.variables,
            "code": exp.sub_workspace_list[task_index].file_dict["factor.py"],
            "hypothesis": exp.hypothesis.hypothesis,
        })

    model_session, model_log = sessions["model"]
    mhist = model_session.trace.hist
    sota_model = [i for i, (e, fb) in enumerate(mhist) if fb.decision][-1]
    exp = mhist[sota_model][0]
    minfo = model_session.infos[id(exp)]
    task = exp.sub_tasks[0]
    baseline = [model_session.infos[id(e)] for e, _ in mhist if model_session.infos[id(e)].metrics][0]
    expected = {
        "project_root": root, "env": env, "factor_log": factor_log, "model_log": model_log,
        "factor": {"sota_index": index, "sota_loop": loop, "workspace": info.directory, "parquet": parquet,
                   "columns": columns, "unexplained": [UNEXPLAINED_COLUMN], "factors": factors},
        "model": {"sota_index": sota_model, "sota_loop": minfo.loop, "workspace": minfo.directory,
                  "name": task.name, "model_type": task.model_type, "architecture": task.architecture,
                  "hyperparameters": task.hyperparameters,
                  "training_hyperparameters": task.training_hyperparameters,
                  "code": exp.experiment_workspace.file_dict["model.py"], "metrics": minfo.metrics,
                  "baseline_loop": baseline.loop, "baseline_metrics": baseline.metrics},
    }
    with open(os.path.join(root, "answers.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(expected, indent=2, ensure_ascii=False) + "\n")
    return expected


# ---------------------------------------------------------------------------------------------------------------
# run: what the simulated rdagent calls


def parse_accept(pattern, loops):
    """A function loop -> bool for --accept: 'default', 'none', 'all', or a comma list of loop ids."""
    if pattern in (None, "", "default"):
        return None
    if pattern == "none":
        return {}
    if pattern == "all":
        return {i: True for i in range(loops)}
    accepted = {}
    for item in pattern.split(","):
        item = item.strip()
        if item:
            accepted[int(item)] = True
    return accepted


def run(log_dir, workspace_root, loops, kind="factor", signed=False, protocol=None, accept=None, parquet="auto",
        start_loop=0, era=None, seed=None, on_step=None, max_steps=None, should_stop=None, flavour="pd2-np2"):
    """Write a whole session into `log_dir` and workspaces into `workspace_root` (relative roots are recorded
    relative, as RD-Agent does). Loops `start_loop` .. `start_loop + loops - 1` are written; earlier ones are
    replayed (same seed) without writing so that the history matches a resumed run. Returns the JSON summary."""
    era = era or ("1.0" if signed else "0.8")
    protocol = protocol or (5 if signed else 4)
    total = start_loop + loops
    spec = Spec("run", kind=kind, era=era, loops=total, protocol=protocol, signed=signed,
                decisions=parse_accept(accept, total), flavour=flavour)
    seed = seed if seed is not None else "run:{}:{}".format(kind, os.path.basename(os.path.normpath(log_dir)))
    rng = random.Random(seed)
    workspace_dir = os.path.abspath(workspace_root)
    os.makedirs(os.path.join(log_dir, "__session__"), exist_ok=True)
    os.makedirs(workspace_dir, exist_ok=True)
    session = Session(spec, os.path.abspath(log_dir), workspace_dir, workspace_root, rng, RealClock(), parquet,
                      on_step=on_step)
    session.run(start_loop=start_loop, max_steps=max_steps, should_stop=should_stop)
    return summary(session)


def summary(session):
    found = session.sota()
    experiments = []
    for index, (exp, fb) in enumerate(session.trace.hist):
        info = session.infos[id(exp)]
        experiments.append({"index": index, "loop": info.loop, "kind": info.kind, "decision": fb.decision,
                            "workspace": info.recorded, "directory": info.directory, "factors": info.factors})
    return {
        "sota_index": found[0] if found else None,
        "sota_loop": found[1] if found else None,
        "sota_workspace": found[2].recorded if found else None,
        "log_dir": session.log_dir,
        "snapshots": len([d for d in session.dumps]),
        "experiments": experiments,
    }


# ---------------------------------------------------------------------------------------------------------------
# snapshot and bench


def write_snapshot(out_file, protocol=4, loops=3, signed=False, blob_bytes=128, kind="factor"):
    """One snapshot file: the loop object after `loops` loops. Workspaces are recorded under the file's directory
    but not created."""
    base = os.path.dirname(os.path.abspath(out_file))
    spec = Spec("snapshot", kind=kind, era="1.0" if signed else "0.8", loops=loops, protocol=protocol,
                signed=signed, blob_bytes=blob_bytes)
    rng = random.Random("gen_fixtures:snapshot:{}:{}".format(kind, loops))
    session = Session(spec, os.path.join(base, "log"), os.path.join(base, PROJECT_WORKSPACE),
                      os.path.join(base, PROJECT_WORKSPACE), rng, FixedClock(scenario_start(rng), rng))
    session.write = False
    session.run()
    payload = dumps(session.loop, protocol)
    write_file(out_file, sign(payload) if signed else payload)


BENCH = [
    Spec("hundred", era="1.0", protocol=5, signed=True, loops=100, stdout_bytes=26000, blob_bytes=1024),
    Spec("blobs", era="1.0", protocol=5, signed=True, loops=20, blob_bytes=1 << 20, stdout_bytes=2000),
]


def write_bench(out_dir):
    for spec in BENCH:
        expected = generate_scenario(spec, out_dir)
        print(expected["log_dir"])


# ---------------------------------------------------------------------------------------------------------------
# check: read a tree back (with the stubs) and compare it to expected.json


def load_snapshot(path):
    with open(path, "rb") as f:
        data = f.read()
    payload, signed, ok = unsign(data)
    if signed and not ok:
        raise ValueError("bad HMAC in " + path)
    return loads(payload), signed, payload[1] if payload[:1] == b"\x80" else None


def workspace_text(path_obj):
    return path_obj if isinstance(path_obj, str) else str(path_obj)


def check_scenario(root):
    problems = []
    with open(os.path.join(root, "expected.json"), encoding="utf-8") as f:
        expected = json.load(f)
    session_dir = os.path.join(expected["log_dir"], "__session__")
    files = []
    for loop in os.listdir(session_dir):
        for step in os.listdir(os.path.join(session_dir, loop)):
            files.append((int(loop), int(step.split("_", 1)[0]), os.path.join(session_dir, loop, step)))
    best = None
    for loop, step, path in files:
        try:
            obj, signed, protocol = load_snapshot(path)
        except Exception:  # noqa: BLE001 - any failure to read means the file must be skipped
            if path not in expected["skipped"]:
                problems.append("{} does not load but is not in skipped".format(path))
            continue
        if path in expected["skipped"]:
            problems.append("{} loads but is in skipped".format(path))
        if obj.tracker.loop_base is not obj:
            problems.append("{}: tracker.loop_base is not the loop".format(path))
        key = (len(obj.trace.hist), loop, step)
        if best is None or key > best[0]:
            best = (key, path, obj, signed, protocol)
    snap = expected["snapshot"]
    if snap is None:
        if best is not None:
            problems.append("expected no snapshot, found " + best[1])
        return problems
    if best is None or best[1] != snap["file"]:
        problems.append("best snapshot is {}, expected {}".format(best and best[1], snap["file"]))
        return problems
    _key, _path, obj, signed, protocol = best
    if (signed, protocol, len(obj.trace.hist)) != (snap["signed"], snap["protocol"], snap["hist_len"]):
        problems.append("snapshot format/hist_len differs: {}".format((signed, protocol, len(obj.trace.hist))))
    for index, (exp, fb) in enumerate(obj.trace.hist):
        h = expected["history"][index]
        loop = obj.trace.idx2loop_id[index] if hasattr(obj.trace, "idx2loop_id") else None
        recorded = workspace_text(exp.experiment_workspace.workspace_path)
        metrics = series_to_dict(result_of(exp)) if result_of(exp) is not None else None
        got = (loop, class_name(exp), fb.decision, recorded, metrics)
        want = (h["loop"], h["class"], h["decision"], h["workspace_recorded"], h["metrics"])
        if got != want:
            problems.append("history[{}]: got {}, expected {}".format(index, got, want))
        for based in exp.based_experiments[1:] if h["kind"] == "factor" else exp.based_experiments:
            if not any(based is e for e, _ in obj.trace.hist):
                problems.append("history[{}]: a based experiment is not a hist entry (not shared)".format(index))
    accepted = [i for i, (e, fb) in enumerate(obj.trace.hist)
                if fb.decision and class_name(e) == FACTOR_CLASS]
    sota = expected["expect"]["sota"]
    if accepted:
        if sota.get("index") != accepted[-1]:
            problems.append("sota index {} but last accepted factor is {}".format(sota.get("index"), accepted[-1]))
        if "workspace" in sota:
            exp = obj.trace.hist[accepted[-1]][0]
            uuid_hex = ntpath.basename(workspace_text(exp.experiment_workspace.workspace_path))
            if os.path.basename(sota["workspace"]) != uuid_hex or not os.path.isdir(sota["workspace"]):
                problems.append("sota workspace {} does not match {}".format(sota["workspace"], uuid_hex))
            if not parquet_is_valid(sota["parquet"]):
                problems.append("sota parquet invalid")
    elif "workspace" in sota:
        problems.append("sota has a workspace but nothing is accepted")
    return problems


def check_tree(out_dir):
    failed = 0
    for name in sorted(os.listdir(out_dir)):
        root = os.path.join(out_dir, name)
        if not os.path.isfile(os.path.join(root, "expected.json")):
            continue
        problems = check_scenario(root)
        print("{}: {}".format(name, "ok" if not problems else "FAILED"))
        for problem in problems:
            print("  " + problem)
        failed += bool(problems)
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------------------------------
# CLI


def main(argv=None):
    parser = argparse.ArgumentParser(prog="gen_fixtures.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("tree", help="write every scenario (or the named ones) under OUT_DIR")
    p.add_argument("out_dir", nargs="?")
    p.add_argument("--scenario", action="append", default=[], choices=SCENARIO_NAMES + [s.name for s in BENCH])
    p.add_argument("--list", action="store_true", help="print the scenario names, one a line")
    p.add_argument("--parquet", choices=["stub", "real", "auto"], default="stub")
    p = sub.add_parser("snapshot", help="write one snapshot file")
    p.add_argument("out_file")
    p.add_argument("--protocol", type=int, default=4, choices=[2, 3, 4, 5])
    p.add_argument("--loops", type=int, default=3)
    p.add_argument("--signed", action="store_true")
    p.add_argument("--blob-bytes", type=int, default=128)
    p.add_argument("--kind", choices=["factor", "model", "quant"], default="factor")
    p = sub.add_parser("run", help="write a whole session (what the simulated rdagent does)")
    p.add_argument("--log-dir", required=True)
    p.add_argument("--workspace-root", required=True)
    p.add_argument("--loops", type=int, required=True)
    p.add_argument("--kind", choices=["factor", "model", "quant"], default="factor")
    p.add_argument("--signed", action="store_true")
    p.add_argument("--protocol", type=int, choices=[2, 3, 4, 5])
    p.add_argument("--era", choices=sorted(ERA_STEPS))
    p.add_argument("--accept", help="comma list of accepted loop ids, or none, all, default")
    p.add_argument("--parquet", choices=["stub", "real", "auto"], default="auto")
    p.add_argument("--start-loop", type=int, default=0)
    p.add_argument("--max-steps", type=int, help="stop after this many steps (a run cut short)")
    p.add_argument("--seed")
    p.add_argument("--key-like-rdagent", action="store_true",
                   help="sign with RD-Agent's key file when ARTIFACT_SIGNING_KEY is not set and the file exists")
    p = sub.add_parser("answers", help="write the answers fixture (factor and model run, answers.json) under OUT_DIR")
    p.add_argument("out_dir")
    p = sub.add_parser("bench", help="write the benchmark project roots")
    p.add_argument("out_dir")
    p = sub.add_parser("check", help="read a tree back with the stubs and compare it to expected.json")
    p.add_argument("out_dir")
    p = sub.add_parser("query", help="print one value of a JSON file")
    p.add_argument("file")
    p.add_argument("keys", nargs="+")
    args = parser.parse_args(argv)

    if args.command == "tree":
        if args.list:
            print("\n".join(SCENARIO_NAMES))
            return 0
        if not args.out_dir:
            parser.error("tree needs OUT_DIR (or --list)")
        write_tree(args.out_dir, args.scenario, args.parquet)
        return 0
    if args.command == "snapshot":
        write_snapshot(args.out_file, args.protocol, args.loops, args.signed, args.blob_bytes, args.kind)
        return 0
    if args.command == "run":
        global KEY_LIKE_RDAGENT
        KEY_LIKE_RDAGENT = args.key_like_rdagent
        result = run(args.log_dir, args.workspace_root, args.loops, kind=args.kind, signed=args.signed,
                     protocol=args.protocol, accept=args.accept, parquet=args.parquet, start_loop=args.start_loop,
                     era=args.era, seed=args.seed, max_steps=args.max_steps)
        print(json.dumps(result, ensure_ascii=False))
        return 0
    if args.command == "answers":
        write_answers(args.out_dir)
        return 0
    if args.command == "bench":
        write_bench(args.out_dir)
        return 0
    if args.command == "check":
        return check_tree(args.out_dir)
    if args.command == "query":
        with open(args.file, encoding="utf-8") as f:
            value = json.load(f)
        for key in args.keys:
            value = value[int(key)] if isinstance(value, list) else value[key]
        print(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
