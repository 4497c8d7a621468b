"""rd-chain's hand-off of the SOTA factors to RD-Agent's model runner, without changing RD-Agent's code.

rd-chain writes this file into a private directory of its own and puts that directory first on PYTHONPATH for
`rdagent fin_model`, so Python imports it at start-up as `sitecustomize`. It then:

1. loads the `sitecustomize` that would otherwise have run (the next one on sys.path outside this directory,
   skipping other copies of this hook), so a user's or a distribution's own is never hidden;
2. puts a finder on sys.meta_path that waits for `rdagent.scenarios.qlib.developer.model_runner` to be imported
   (nothing is imported early), and if LOAD_SOTA_FROM_WORKSPACE is true (true/1/yes/on, any case) and
   SOTA_FACTORS_PATH, else SOTA_WORKSPACE_PATH/combined_factors_df.parquet, names the factors:
   - checks that file is a readable, non-empty parquet file, else the import fails (the run stops before any
     model is trained; there is never a silent fall back to the baseline features);
   - wraps `QlibModelRunner.develop` (the attribute on the class, whatever it is: upstream decorates it with
     `cache_with_pickle`) so that, for the duration of each call, two marker `QlibFactorExperiment`s (real
     instances of the class the runner tests against, each with a non-None `result`) stand at the START of
     `exp.based_experiments`: enough for upstream's "more than one" and a fork's "at least one" test, and never
     `based_experiments[-1]`, which the runner develops first when its result is None. Each marker carries one
     task naming the sha256 of the factors file, so RD-Agent's result cache (keyed on the based experiments'
     task information) never serves a result trained on other factors or none. The markers are removed
     again when develop returns or raises, so the trace, the feedback and later proposals never see them;
   - wraps the module-level `process_factor_data` so that a list holding the markers yields the parquet's
     DataFrame with its columns flattened from ('feature', name) to name (any other experiments in the list
     still go through the original function, and their factors come first). RD-Agent's own code then writes the
     factors into the model workspace, counts num_features and chooses conf_sota_factors_model.yaml;
   - if USE_ALPHA_FACTORS is false (false/0/no/off, any case; unset or true keeps the base features), empties
     `exp.base_features` (name -> Qlib expression) before develop runs, so RD-Agent renders empty
     feature_names/feature_expressions and counts only the SOTA factors in num_features. The experiment keeps
     the empty dict: it records what the model was trained on. The markers' task then also says "without base
     features", so RD-Agent's result cache never serves a result trained with them. If the workspace's
     conf_sota_factors_model.yaml feeds the feature list to a Qlib data loader that cannot load an empty one
     (RD-Agent 1.0's Alpha158DL: Qlib raises "fields cannot be empty"), a warning says so and the report gets a
     `template` line (`sota_template_problem` is the check).

Each hand-over prints one line to stderr (and to the `rd_chain.hook` logger) naming the file and its shape.
`RD_CHAIN_HOOK_STATE` says what the hook did. Standard library only at import time; Python 3.6+ syntax (the
model phase's child processes may run other interpreters with the same PYTHONPATH). This file must never copy or
edit RD-Agent code, never be installed into site-packages, and never swallow an error about the factors.
"""

import os
import sys

# Text by which a copy of this hook is recognised (and skipped) when looking for the sitecustomize to chain.
RD_CHAIN_HOOK_MARKER = "rd-chain-sitecustomize-hook-v1"

# CONTRACT_BEGIN: the names and formats shared with rd-chain (src/hook/contract.rs). A Rust test reads this block
# and checks every value against rd-chain's; change both together.
TARGET_MODULE = "rdagent.scenarios.qlib.developer.model_runner"
FACTOR_EXPERIMENT_MODULE = "rdagent.scenarios.qlib.experiment.factor_experiment"
FACTORS_FILE = "combined_factors_df.parquet"
TRUE_WORDS = ("true", "1", "yes", "on")
LOAD_ENV = "LOAD_SOTA_FROM_WORKSPACE"
FACTORS_PATH_ENV = "SOTA_FACTORS_PATH"
WORKSPACE_ENV = "SOTA_WORKSPACE_PATH"
REPORT_ENV = "RD_CHAIN_HOOK_REPORT"
REPORT_SEPARATOR = "\t"
REPORT_ARMED = "armed"
REPORT_USED = "used"
FALSE_WORDS = ("false", "0", "no", "off")
# With a false value, the SOTA branch trains on the SOTA factors alone (no `exp.base_features`).
ALPHA_FACTORS_ENV = "USE_ALPHA_FACTORS"
# The report's lines for USE_ALPHA_FACTORS=false: `base_features <pid> dropped <n>` when the base features were
# left out, `template <pid> <reason>` when the SOTA config cannot train without them.
REPORT_BASE_FEATURES = "base_features"
REPORT_TEMPLATE = "template"
# The config RD-Agent's model runner renders for its SOTA-factors branch, and Qlib's data loaders that load
# every field group through `D.features`, which refuses an empty field list.
SOTA_MODEL_TEMPLATE = "conf_sota_factors_model.yaml"
QLIB_FIELD_LOADERS = ("QlibDataLoader", "Alpha158DL", "Alpha360DL")
# CONTRACT_END

# Upstream takes the SOTA branch with more than one factor experiment, the fork that
# run_factor_then_model_with_log.sh's model_runner.py patch made with at least one.
MARKER_COUNT = 2
# The attribute that makes an experiment a marker; its value is the factors file it stands for.
MARKER_ATTRIBUTE = "_rd_chain_sota_factors"

RD_CHAIN_HOOK_STATE = {
    "armed": False,
    "reason": "not evaluated yet",
    "factors_path": None,
    "alpha_factors": True,
    "used": 0,
}

# The sitecustomize module this one loaded (None if there was none).
RD_CHAIN_CHAINED_SITECUSTOMIZE = None

_HOOK_DIR = os.path.dirname(os.path.abspath(__file__))


class RdChainHookError(RuntimeError):
    """The SOTA factors cannot be handed to the model runner; the run must stop."""


# ---------------------------------------------------------------------------------------------------------------
# The environment


def evaluate(environ=None):
    """What the environment asks for: a dict with the keys of RD_CHAIN_HOOK_STATE except "used"."""
    env = os.environ if environ is None else environ
    load = env.get(LOAD_ENV)
    if load is None:
        return _decision(False, "LOAD_SOTA_FROM_WORKSPACE is not set", None)
    if load.strip().lower() not in TRUE_WORDS:
        return _decision(
            False, "LOAD_SOTA_FROM_WORKSPACE={!r} is not true (true, 1, yes or on)".format(load), None
        )
    if env.get(FACTORS_PATH_ENV):
        source = FACTORS_PATH_ENV
        path = env[FACTORS_PATH_ENV]
    elif env.get(WORKSPACE_ENV):
        source = WORKSPACE_ENV
        path = os.path.join(env[WORKSPACE_ENV], FACTORS_FILE)
    else:
        return _decision(
            False,
            "LOAD_SOTA_FROM_WORKSPACE is true but neither SOTA_FACTORS_PATH nor SOTA_WORKSPACE_PATH is set",
            None,
        )
    path = os.path.abspath(path)
    if os.path.isfile(path):
        return _decision(True, "LOAD_SOTA_FROM_WORKSPACE is true and {} names {}".format(source, path), path)
    return _decision(
        True,
        "LOAD_SOTA_FROM_WORKSPACE is true but {} names {}, which is not a file: importing the model runner "
        "will fail".format(source, path),
        path,
    )


def _decision(armed, reason, factors_path):
    return {"armed": armed, "reason": reason, "factors_path": factors_path, "alpha_factors": alpha_factors()}


def alpha_factors(environ=None):
    """USE_ALPHA_FACTORS: True when unset, empty or true; False when false; None for anything else (an error
    once the hook is armed: the hook never guesses what the user meant)."""
    env = os.environ if environ is None else environ
    value = env.get(ALPHA_FACTORS_ENV, "").strip().lower()
    if value == "" or value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    return None


def _is_marker(obj):
    return isinstance(getattr(obj, MARKER_ATTRIBUTE, None), str)


# ---------------------------------------------------------------------------------------------------------------
# The factors file


def check_factors_file(path):
    """Fail now, before any model is trained, unless `path` is a parquet file with at least one row."""
    if not os.path.isfile(path):
        raise RdChainHookError(
            "rd-chain hook: the SOTA factors file {} does not exist. {}".format(path, _WHAT_TO_DO)
        )
    try:
        import pyarrow.parquet as pq
    except ImportError as err:
        raise RdChainHookError(
            "rd-chain hook: pyarrow is needed to read the SOTA factors file {} ({}). {}".format(
                path, err, _WHAT_TO_DO
            )
        )
    try:
        rows = pq.read_metadata(path).num_rows
    except Exception as err:
        raise RdChainHookError(
            "rd-chain hook: the SOTA factors file {} is not a readable parquet file ({}: {}). {}".format(
                path, type(err).__name__, err, _WHAT_TO_DO
            )
        )
    if rows == 0:
        raise RdChainHookError("rd-chain hook: the SOTA factors file {} has no rows. {}".format(path, _WHAT_TO_DO))


def read_factors(path):
    """The factors in `path` as a DataFrame whose columns are the factor names (('feature', name) flattened)."""
    import pandas as pd

    try:
        frame = pd.read_parquet(path, engine="pyarrow")
    except Exception as err:
        raise RdChainHookError(
            "rd-chain hook: cannot read the SOTA factors file {} ({}: {}). {}".format(
                path, type(err).__name__, err, _WHAT_TO_DO
            )
        )
    if isinstance(frame.columns, pd.MultiIndex):
        if frame.columns.nlevels != 2:
            raise RdChainHookError(
                "rd-chain hook: the SOTA factors file {} has {} column levels; expected ('feature', <factor "
                "name>) columns. {}".format(path, frame.columns.nlevels, _WHAT_TO_DO)
            )
        frame.columns = frame.columns.get_level_values(1)
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise RdChainHookError(
            "rd-chain hook: the SOTA factors file {} holds no factors ({} rows x {} columns). {}".format(
                path, frame.shape[0], frame.shape[1], _WHAT_TO_DO
            )
        )
    return frame


_WHAT_TO_DO = (
    "Point SOTA_FACTORS_PATH (or SOTA_WORKSPACE_PATH) at the combined_factors_df.parquet of the factor run, or "
    "unset LOAD_SOTA_FROM_WORKSPACE to train on RD-Agent's baseline features."
)


def _announce(path, shape, extra_columns, extra_experiments):
    line = "rd-chain hook: the model runner uses the SOTA factors from {} ({} rows x {} columns)".format(
        path, shape[0], shape[1]
    )
    if extra_columns:
        line += ", plus {} column(s) from {} other factor experiment(s)".format(extra_columns, extra_experiments)
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
    import logging

    logging.getLogger("rd_chain.hook").info(line)


# ---------------------------------------------------------------------------------------------------------------
# The markers


def _marker_class(module):
    cls = getattr(module, "QlibFactorExperiment", None)
    if isinstance(cls, type):
        return cls
    import importlib

    try:
        cls = getattr(importlib.import_module(FACTOR_EXPERIMENT_MODULE), "QlibFactorExperiment", None)
    except Exception as err:
        raise RdChainHookError(
            "rd-chain hook: {} has no QlibFactorExperiment and {} cannot be imported ({}: {}); this RD-Agent "
            "version is not supported by the hook: run rd-chain with --hook off".format(
                TARGET_MODULE, FACTOR_EXPERIMENT_MODULE, type(err).__name__, err
            )
        )
    if not isinstance(cls, type):
        raise RdChainHookError(
            "rd-chain hook: no QlibFactorExperiment class in {} or {}; this RD-Agent version is not supported "
            "by the hook: run rd-chain with --hook off".format(TARGET_MODULE, FACTOR_EXPERIMENT_MODULE)
        )
    return cls


def _marker_result():
    """A non-None result shaped like RD-Agent's (a pandas Series of metrics), so nothing develops a marker."""
    nan = float("nan")
    try:
        import pandas as pd
    except ImportError:
        return {"IC": nan, "ICIR": nan, "Rank IC": nan, "Rank ICIR": nan}
    return pd.Series({"IC": nan, "ICIR": nan, "Rank IC": nan, "Rank ICIR": nan}, name="rd-chain SOTA factors")


_IDENTITIES = {}


def factors_identity(path):
    """What the markers' one task says about the factors: the sha256 of the file's bytes. RD-Agent's result
    cache (`cache_with_pickle` around develop) keys on the task information of the based experiments' sub
    tasks; without this, a model result trained on the baseline features or on other factors would share the
    key and be served from the cache. Computed once per file version."""
    import hashlib

    try:
        st = os.stat(path)
        version = (path, st.st_size, st.st_mtime_ns)
        identity = _IDENTITIES.get(version)
        if identity is None:
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
            identity = "rd-chain SOTA factors sha256={}".format(digest.hexdigest())
            _IDENTITIES[version] = identity
    except OSError as err:
        raise RdChainHookError(
            "rd-chain hook: cannot read the SOTA factors file {} ({}: {}). {}".format(
                path, type(err).__name__, err, _WHAT_TO_DO
            )
        )
    return identity


def _marker_task(identity):
    """A task RD-Agent's cache key can read (`get_task_information()`), built only from picklable standard
    library objects: the cache pickles the developed experiment while the markers still stand in it, and must be
    able to load it again in any process."""
    import functools
    import types

    return types.SimpleNamespace(
        name="rd_chain_sota_factors", get_task_information=functools.partial(str, identity)
    )


def make_marker(cls, factors_path, base_features=True):
    """A real instance of `cls` that stands for the SOTA factors, with one task naming their content (and, when
    the model trains without the base features, saying so). Tries `cls(sub_tasks=[task])`, then `cls([task])`,
    then `cls.__new__(cls)` with the experiment attributes set by hand; raises if none works."""
    identity = factors_identity(factors_path)
    if not base_features:
        identity += " without base features"
    task = _marker_task(identity)
    failures = []
    marker = None
    for how, build in (
        ("{}(sub_tasks=[task])", lambda: cls(sub_tasks=[task])),
        ("{}([task])", lambda: cls([task])),
    ):
        try:
            marker = build()
            break
        except Exception as err:
            failures.append("{}: {}: {}".format(how.format(cls.__name__), type(err).__name__, err))
    if marker is None:
        try:
            marker = cls.__new__(cls)
            for name, value in (
                ("sub_tasks", [task]),
                ("sub_workspace_list", [None]),
                ("based_experiments", []),
                ("experiment_workspace", None),
                ("hypothesis", None),
                ("stdout", ""),
            ):
                setattr(marker, name, value)
        except Exception as err:
            failures.append("{}.__new__: {}: {}".format(cls.__name__, type(err).__name__, err))
            raise RdChainHookError(
                "rd-chain hook: cannot create a marker {}.{} to hand the SOTA factors to the model runner ({}); "
                "this RD-Agent version is not supported by the hook: run rd-chain with --hook off".format(
                    cls.__module__, cls.__name__, "; ".join(failures)
                )
            )
    try:
        marker.result = _marker_result()
        setattr(marker, MARKER_ATTRIBUTE, factors_path)
    except Exception as err:
        raise RdChainHookError(
            "rd-chain hook: cannot mark a {}.{} as the SOTA factors ({}: {}); run rd-chain with --hook off".format(
                cls.__module__, cls.__name__, type(err).__name__, err
            )
        )
    return marker


def _insert_markers(exp, markers):
    """Put the markers at the start of exp.based_experiments (a list is changed in place)."""
    based = getattr(exp, "based_experiments", None)
    if based is None:
        exp.based_experiments = list(markers)
    elif isinstance(based, list):
        based[0:0] = markers
    elif isinstance(based, tuple):
        exp.based_experiments = tuple(markers) + based
    else:
        raise RdChainHookError(
            "rd-chain hook: exp.based_experiments is a {}; the hook handles a list, a tuple or None: run "
            "rd-chain with --hook off".format(type(based).__name__)
        )
    return based is None


def _remove_markers(exp, was_none):
    """Take every marker out of exp.based_experiments again, keeping its type (and a list's identity)."""
    based = getattr(exp, "based_experiments", None)
    if isinstance(based, list):
        based[:] = [e for e in based if not _is_marker(e)]
        if was_none and not based:
            exp.based_experiments = None
    elif isinstance(based, tuple):
        exp.based_experiments = tuple(e for e in based if not _is_marker(e))


# ---------------------------------------------------------------------------------------------------------------
# USE_ALPHA_FACTORS=false


def drop_base_features(exp):
    """Train `exp` on the SOTA factors alone: empty its `base_features` (RD-Agent renders them into the SOTA
    config's feature list and counts them in num_features). Says so on stderr, checks the config the workspace
    will render, and reports both."""
    base = getattr(exp, "base_features", None)
    dropped = len(base) if isinstance(base, dict) else 0
    if base is not None and not isinstance(base, dict):
        raise RdChainHookError(
            "rd-chain hook: exp.base_features is a {}, not a dict of name -> Qlib expression; {}=false cannot be "
            "applied: run rd-chain with --alpha-factors or --hook off".format(type(base).__name__, ALPHA_FACTORS_ENV)
        )
    exp.base_features = {}
    line = "rd-chain hook: {}=false: the model trains on the SOTA factors alone ({} base feature(s) left out)".format(
        ALPHA_FACTORS_ENV, dropped
    )
    _say(line)
    report_event(REPORT_BASE_FEATURES, "dropped", dropped)
    template = _workspace_template(exp)
    problem = sota_template_problem(template) if template is not None else None
    if problem:
        _say("rd-chain hook: warning: {}".format(problem))
        report_event(REPORT_TEMPLATE, problem)
    return dropped


def _workspace_template(exp):
    """The text of the SOTA config in the experiment's workspace (None if it has none)."""
    workspace = getattr(exp, "experiment_workspace", None)
    files = getattr(workspace, "file_dict", None)
    text = files.get(SOTA_MODEL_TEMPLATE) if isinstance(files, dict) else None
    return text if isinstance(text, str) else None


def render_qlib_config(template_text, run_env):
    """Render a Qlib config template the way `qrun` does (jinja2, only the variables present in the
    environment, the rest undefined) and parse it as YAML. Needs jinja2 and PyYAML (RD-Agent depends on both)."""
    import jinja2
    import yaml
    from jinja2 import meta

    env = jinja2.Environment()
    variables = meta.find_undeclared_variables(env.parse(template_text))
    context = {name: str(run_env[name]) for name in variables if name in run_env}
    return yaml.safe_load(jinja2.Template(template_text).render(context))


def empty_loader_groups(config):
    """Every (loader class, field group) of a rendered config whose Qlib data loader would get no fields: a
    group given as an empty list, or as an (expressions, names) pair with no expressions. Qlib's QlibDataLoader
    family loads each group through `D.features`, which raises "fields cannot be empty" for these."""
    found = []

    def walk(node, depth):
        if depth > 50:
            return
        if isinstance(node, dict):
            cls = node.get("class")
            if isinstance(cls, str) and cls.rsplit(".", 1)[-1] in QLIB_FIELD_LOADERS:
                groups = ((node.get("kwargs") or {}).get("config")) or {}
                if isinstance(groups, dict):
                    for group, fields in groups.items():
                        exprs = fields[0] if isinstance(fields, (list, tuple)) and fields and isinstance(
                            fields[0], (list, tuple)) else fields
                        if isinstance(exprs, (list, tuple)) and len(exprs) == 0:
                            found.append((cls, group))
            for value in node.values():
                walk(value, depth + 1)
        elif isinstance(node, list):
            for value in node:
                walk(value, depth + 1)

    walk(config, 0)
    return found


def sota_template_problem(template_text):
    """Why the SOTA config cannot train without base features, or None if it can. Renders it as RD-Agent's
    model runner would with empty base features and looks for Qlib data loaders left with no fields. A dry run
    can ask this of `<rdagent>/scenarios/qlib/experiment/model_template/conf_sota_factors_model.yaml`."""
    try:
        import jinja2  # noqa: F401
        import yaml  # noqa: F401
    except ImportError as err:
        # RD-Agent depends on both, so this is an interpreter without RD-Agent's dependencies: say so, claim nothing.
        _say("rd-chain hook: cannot check {} without jinja2 and PyYAML ({})".format(SOTA_MODEL_TEMPLATE, err))
        return None
    try:
        config = render_qlib_config(template_text, {"feature_names": "[]", "feature_expressions": "[]",
                                                    "num_features": "1", "dataset_cls": "DatasetH"})
    except Exception as err:
        return "{} does not render to YAML with empty base features ({}: {})".format(
            SOTA_MODEL_TEMPLATE, type(err).__name__, err)
    empty = empty_loader_groups(config)
    if not empty:
        return None
    return (
        "{} gives {} an empty '{}' field list when the base features are left out, and Qlib's data loader "
        "refuses that at load time (\"fields cannot be empty\"): every model run will fail. Keep the base features "
        "({}=true) with this RD-Agent release".format(
            SOTA_MODEL_TEMPLATE, empty[0][0], empty[0][1], ALPHA_FACTORS_ENV)
    )


def _say(line):
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
    import logging

    logging.getLogger("rd_chain.hook").info(line)


# ---------------------------------------------------------------------------------------------------------------
# The wrappers


def _class_attribute(cls, name):
    for klass in cls.__mro__:
        if name in vars(klass):
            return vars(klass)[name]
    return None


def _as_wrapper_of(wrapper, original, names):
    """`wrapper` dressed as `original` (the names that exist on it), marked so it is never wrapped twice."""
    for name in names:
        try:
            setattr(wrapper, name, getattr(original, name))
        except (AttributeError, TypeError):
            pass
    wrapper.__wrapped__ = original
    wrapper.__rd_chain_hooked__ = True
    return wrapper


def _wrap_develop(module, runner_cls, factors_path, base_features=True):
    raw = _class_attribute(runner_cls, "develop")
    if raw is None:
        raise RdChainHookError(
            "rd-chain hook: {}.QlibModelRunner has no develop; this RD-Agent version is not supported by the "
            "hook: run rd-chain with --hook off".format(TARGET_MODULE)
        )
    if getattr(raw, "__rd_chain_hooked__", False):
        return
    bind = getattr(type(raw), "__get__", None)

    def develop(self, exp, *args, **kwargs):
        original = bind(raw, self, type(self)) if bind is not None else raw
        factor_cls = _marker_class(module)
        based = getattr(exp, "based_experiments", None)
        if isinstance(exp, factor_cls) or (
            isinstance(based, (list, tuple)) and any(_is_marker(e) for e in based)
        ):
            # A factor experiment is not trained on factors; an experiment that already holds markers is being
            # developed by an outer call (re-entered), which also takes them out again.
            return original(exp, *args, **kwargs)
        markers = [make_marker(factor_cls, factors_path, base_features) for _ in range(MARKER_COUNT)]
        if not base_features:
            drop_base_features(exp)
        was_none = _insert_markers(exp, markers)
        try:
            developed = original(exp, *args, **kwargs)
        finally:
            _remove_markers(exp, was_none)
        if developed is not None and developed is not exp:
            # A cache may hand back another object (a pickled copy): it must not keep markers either.
            _remove_markers(developed, False)
        return developed

    runner_cls.develop = _as_wrapper_of(develop, raw, ("__name__", "__qualname__", "__doc__"))


def _wrap_process_factor_data(module, factors_path):
    original = module.process_factor_data
    if getattr(original, "__rd_chain_hooked__", False):
        return

    def process_factor_data(exp_or_list, *args, **kwargs):
        items = list(exp_or_list) if isinstance(exp_or_list, (list, tuple)) else [exp_or_list]
        if not any(_is_marker(e) for e in items):
            return original(exp_or_list, *args, **kwargs)
        others = [e for e in items if not _is_marker(e)]
        sota = read_factors(factors_path)
        combined = sota
        extra_columns = 0
        if others:
            try:
                extra = original(others, *args, **kwargs)
            except Exception as err:
                # Upstream raises FactorEmptyError when the experiments hold no factors (the initial baseline
                # experiment has none): then the SOTA factors are all there is. Anything else is a real error.
                if type(err).__name__ != "FactorEmptyError":
                    raise
                extra = None
            if extra is not None and not extra.empty:
                import pandas as pd

                extra_columns = extra.shape[1]
                combined = pd.concat([extra, sota], axis=1)
        RD_CHAIN_HOOK_STATE["used"] += 1
        _announce(factors_path, sota.shape, extra_columns, len(others))
        report_event(REPORT_USED, sota.shape[0], sota.shape[1], factors_path)
        return combined

    module.process_factor_data = _as_wrapper_of(
        process_factor_data, original, ("__name__", "__qualname__", "__doc__", "__module__")
    )


def patch_model_runner(module):
    """Called right after the model runner module has run: arm the hand-over if the environment asks for it."""
    decision = evaluate()
    RD_CHAIN_HOOK_STATE.update(decision)
    if not decision["armed"]:
        return
    factors_path = decision["factors_path"]
    if decision["alpha_factors"] is None:
        raise RdChainHookError(
            "rd-chain hook: {}={!r} is not a boolean: use true/false, 1/0, yes/no or on/off".format(
                ALPHA_FACTORS_ENV, os.environ.get(ALPHA_FACTORS_ENV)
            )
        )
    check_factors_file(factors_path)
    runner_cls = getattr(module, "QlibModelRunner", None)
    if not isinstance(runner_cls, type) or not callable(getattr(module, "process_factor_data", None)):
        raise RdChainHookError(
            "rd-chain hook: {} has no QlibModelRunner class or no process_factor_data function; this RD-Agent "
            "version is not supported by the hook: run rd-chain with --hook off".format(TARGET_MODULE)
        )
    _marker_class(module)
    _wrap_process_factor_data(module, factors_path)
    _wrap_develop(module, runner_cls, factors_path, decision["alpha_factors"])
    report_event(REPORT_ARMED, factors_path)


def report_event(event, *fields):
    """Tell rd-chain what happened, one tab-separated line per event in the file RD_CHAIN_HOOK_REPORT names:
    `armed <pid> <factors path>` when the model runner was patched, `used <pid> <rows> <columns> <factors path>`
    for each hand-over. rd-chain reads it after the model phase, so a run whose factors never reached the model
    runner is reported instead of passing for a SOTA run. A report that cannot be written is said on stderr."""
    path = os.environ.get(REPORT_ENV)
    if not path:
        return
    cleaned = [str(f).replace(REPORT_SEPARATOR, " ").replace("\n", " ") for f in fields]
    line = REPORT_SEPARATOR.join([event, str(os.getpid())] + cleaned)
    try:
        with open(path, "a") as report:
            report.write(line + "\n")
    except OSError as err:
        sys.stderr.write("rd-chain hook: cannot write the report {} ({}); rd-chain will say the factors were not "
                         "seen\n".format(path, err))


# ---------------------------------------------------------------------------------------------------------------
# The post-import hook


class _PatchingLoader(object):
    """Runs the real loader, then `patch_model_runner`. The module gets the real loader as its __loader__."""

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def create_module(self, spec):
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module):
        module.__loader__ = self._loader
        spec = getattr(module, "__spec__", None)
        if spec is not None:
            spec.loader = self._loader
        self._loader.exec_module(module)
        patch_model_runner(module)


class _ModelRunnerFinder(object):
    """On sys.meta_path: finds nothing itself; for the model runner module it asks the other finders and wraps
    the loader they return."""

    rd_chain_hook = RD_CHAIN_HOOK_MARKER

    def __init__(self):
        self._busy = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname != TARGET_MODULE or self._busy:
            return None
        self._busy = True
        try:
            spec = None
            for finder in list(sys.meta_path):
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
        finally:
            self._busy = False
        if spec is None or spec.loader is None:
            return None
        if not hasattr(spec.loader, "exec_module"):
            if evaluate()["armed"]:
                raise RdChainHookError(
                    "rd-chain hook: the loader of {} ({}) has no exec_module, so the hook cannot hand over the "
                    "SOTA factors: run rd-chain with --hook off".format(TARGET_MODULE, type(spec.loader).__name__)
                )
            return None
        spec.loader = _PatchingLoader(spec.loader)
        return spec


def _install_finder():
    if any(getattr(f, "rd_chain_hook", None) == RD_CHAIN_HOOK_MARKER for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _ModelRunnerFinder())


# ---------------------------------------------------------------------------------------------------------------
# The sitecustomize this one replaces


def _same_dir(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def _is_rd_chain_hook(spec):
    origin = getattr(spec, "origin", None)
    if not origin or not os.path.isfile(origin):
        return False
    try:
        with open(origin, "rb") as f:
            return RD_CHAIN_HOOK_MARKER.encode("ascii") in f.read()
    except OSError:
        return False


def _load_chained_sitecustomize():
    """Find and run the sitecustomize that Python would have imported without this directory."""
    import importlib.machinery

    for entry in list(sys.path):
        if not isinstance(entry, str) or _same_dir(entry or os.curdir, _HOOK_DIR):
            continue
        try:
            spec = importlib.machinery.PathFinder.find_spec("sitecustomize", [entry])
        except Exception:
            continue
        if spec is None or spec.loader is None or _is_rd_chain_hook(spec):
            continue
        import importlib.util

        module = importlib.util.module_from_spec(spec)
        ours = sys.modules.get("sitecustomize")
        sys.modules["sitecustomize"] = module
        try:
            spec.loader.exec_module(module)
        except Exception as err:
            # What site.py does when sitecustomize fails: report and go on starting up.
            if sys.flags.verbose:
                sys.excepthook(*sys.exc_info())
            else:
                sys.stderr.write(
                    "Error in sitecustomize {}; set PYTHONVERBOSE for traceback:\n{}: {}\n".format(
                        spec.origin, type(err).__name__, err
                    )
                )
        finally:
            if ours is not None:
                sys.modules["sitecustomize"] = ours
            else:
                sys.modules.pop("sitecustomize", None)
        return module
    return None


def __getattr__(name):
    """Attributes of the chained sitecustomize stay reachable as `sitecustomize.<name>` (Python 3.7+)."""
    if RD_CHAIN_CHAINED_SITECUSTOMIZE is not None and not name.startswith("__"):
        return getattr(RD_CHAIN_CHAINED_SITECUSTOMIZE, name)
    raise AttributeError("module {!r} has no attribute {!r}".format(__name__, name))


RD_CHAIN_CHAINED_SITECUSTOMIZE = _load_chained_sitecustomize()
RD_CHAIN_HOOK_STATE.update(evaluate())
_install_finder()
if TARGET_MODULE in sys.modules:
    patch_model_runner(sys.modules[TARGET_MODULE])
