"""Double of `rdagent.scenarios.qlib.developer.model_runner`: how the model runner picks its factors.

Behaviour (RD-Agent's, as documented; no RD-Agent code is copied): `QlibModelRunner.develop(exp)` first develops
`exp.based_experiments[-1]` if its result is None; then takes the `QlibFactorExperiment`s in
`exp.based_experiments`; with more than one (the seed's fork: at least one, selected here by the environment
variable RDAGENT_DOUBLE_SOTA_RULE=at-least-one) it gets their factors from the module-level
`process_factor_data`, nests the columns under 'feature', writes `<model workspace>/combined_factors_df.parquet`,
sets `num_features` (the base features in `exp.base_features` plus the factor columns) and chooses
`conf_sota_factors_model.yaml`; otherwise `conf_baseline_factors_model.yaml`. Either way it records the
`feature_names` and `feature_expressions` it would render into the config from `exp.base_features`.
`develop` is wrapped by a `cache_with_pickle`-like decorator (a descriptor object, not a plain function) whose key
hashes the task information of the based experiments' sub tasks and the experiment's own; with
RDAGENT_DOUBLE_CACHE_DIR set it really caches: a key it has seen returns the pickled earlier result.

No training happens: the outcome is recorded on the experiment (`chosen_config`, `num_features`, `result`) and in
`DEVELOP_LOG`. This module must not read any SOTA environment variable itself (rd-chain's `--hook auto` looks for
one in the real file to tell a fork with its own consumer from upstream).
"""

import functools
import hashlib
import os
import pickle
from pathlib import Path

from rdagent.core.exception import FactorEmptyError
from rdagent.scenarios.qlib.experiment.factor_experiment import QlibFactorExperiment
from rdagent.scenarios.qlib.experiment.model_experiment import QlibModelExperiment  # noqa: F401

SOTA_CONFIG = "conf_sota_factors_model.yaml"
BASELINE_CONFIG = "conf_baseline_factors_model.yaml"
FACTORS_FILE = "combined_factors_df.parquet"

# One entry per develop that reached the branch decision, in order:
# {"workspace": str, "based_types": [class names], "factor_experiments": int, "config": str}.
DEVELOP_LOG = []
# How many times the caching decorator was entered, and the keys it answered from the cache.
CACHE_WRAPPER_CALLS = 0
CACHE_HITS = []


def _sota_rule():
    """The smallest number of factor experiments that selects the SOTA branch: 2 upstream, 1 in the fork."""
    rule = os.environ.get("RDAGENT_DOUBLE_SOTA_RULE", "more-than-one")
    if rule == "more-than-one":
        return 2
    if rule == "at-least-one":
        return 1
    raise ValueError("RDAGENT_DOUBLE_SOTA_RULE must be more-than-one or at-least-one, not {!r}".format(rule))


class _PickleCachedMethod:
    """Stands in for `cache_with_pickle`: computes a key from the experiment (as a cache would) and calls the
    method. A descriptor object rather than a function, so whoever wraps `develop` must take it as it is."""

    def __init__(self, func, key_func, assign_func):
        self.func = func
        self.key_func = key_func
        self.assign_func = assign_func
        functools.update_wrapper(self, func)

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        return functools.partial(self.__call__, instance)

    def __call__(self, runner, exp, *args, **kwargs):
        global CACHE_WRAPPER_CALLS
        CACHE_WRAPPER_CALLS += 1
        key = self.key_func(runner, exp)
        folder = os.environ.get("RDAGENT_DOUBLE_CACHE_DIR")
        if not folder:
            return self.func(runner, exp, *args, **kwargs)
        path = Path(folder) / (key + ".pkl")
        if path.exists():
            CACHE_HITS.append(key)
            with open(path, "rb") as f:
                cached = pickle.load(f)
            return self.assign_func(exp, cached)
        result = self.func(runner, exp, *args, **kwargs)
        with open(path, "wb") as f:
            pickle.dump(result, f)
        return result


def cache_with_pickle(key_func, assign_func):
    def decorate(func):
        return _PickleCachedMethod(func, key_func, assign_func)

    return decorate


def _task_information(task):
    info = getattr(task, "get_task_information", None)
    return info() if callable(info) else str(task)


def qlib_model_cache_key(runner, exp):
    """The md5 of the task information of every based experiment's sub tasks, then the experiment's own: two
    experiments with the same tasks share a cached result."""
    tasks = [t for e in (exp.based_experiments or []) for t in e.sub_tasks] + list(exp.sub_tasks)
    return hashlib.md5("\n".join(_task_information(t) for t in tasks).encode("utf-8")).hexdigest()


class CachedRunner:
    @staticmethod
    def assign_cached_result(exp, cached):
        exp.result = cached.result
        exp.chosen_config = getattr(cached, "chosen_config", None)
        exp.num_features = getattr(cached, "num_features", None)
        return exp


def _flat_factor_frame(path):
    import pandas as pd

    df = pd.read_parquet(path)
    if isinstance(df.columns, pd.MultiIndex):
        df.columns = df.columns.get_level_values(-1)
    return df


def process_factor_data(exps):
    """The factors of these factor experiments, one flat column per factor (the frames concatenated side by
    side). A factor experiment with sub tasks has its factors in `<its workspace>/combined_factors_df.parquet`;
    one without (the initial baseline) contributes none. Raises FactorEmptyError when there is nothing."""
    import pandas as pd

    frames = []
    for exp in exps:
        if not exp.sub_tasks:
            continue
        frames.append(_flat_factor_frame(Path(exp.experiment_workspace.workspace_path) / FACTORS_FILE))
    if not frames:
        raise FactorEmptyError("no factor data in {} factor experiment(s)".format(len(exps)))
    return pd.concat(frames, axis=1)


class QlibModelRunner:
    def __init__(self, scen=None):
        self.scen = scen

    @cache_with_pickle(qlib_model_cache_key, CachedRunner.assign_cached_result)
    def develop(self, exp):
        if exp.based_experiments and exp.based_experiments[-1].result is None:
            exp.based_experiments[-1] = self.develop(exp.based_experiments[-1])

        based = list(exp.based_experiments or [])
        factor_exps = [e for e in based if isinstance(e, QlibFactorExperiment)]
        sota = None
        if len(factor_exps) >= _sota_rule():
            sota = process_factor_data(factor_exps)

        if sota is not None and not sota.empty:
            import pandas as pd

            sota = sota.sort_index()
            sota = sota.loc[:, ~sota.columns.duplicated(keep="last")]
            sota.columns = pd.MultiIndex.from_product([["feature"], list(sota.columns)])
            workspace = Path(exp.experiment_workspace.workspace_path)
            workspace.mkdir(parents=True, exist_ok=True)
            sota.to_parquet(workspace / FACTORS_FILE, engine="pyarrow")
            exp.num_features = len(getattr(exp, "base_features", {})) + len(sota.columns)
            exp.chosen_config = SOTA_CONFIG
        else:
            exp.num_features = None
            exp.chosen_config = BASELINE_CONFIG

        base_features = getattr(exp, "base_features", {})
        exp.feature_names = list(base_features.keys())
        exp.feature_expressions = list(base_features.values())
        DEVELOP_LOG.append(
            {
                "workspace": str(exp.experiment_workspace.workspace_path),
                "based_types": [type(e).__name__ for e in based],
                "factor_experiments": len(factor_exps),
                "config": exp.chosen_config,
            }
        )
        exp.result = {"config": exp.chosen_config, "num_features": exp.num_features}
        return exp
