"""Tests of rd-chain's sitecustomize hook (scripts/rdagent_hook) against the RD-Agent test double
(scripts/rdagent_double).

sitecustomize only runs when an interpreter starts, so every test runs a fresh Python subprocess with
PYTHONPATH = <a private copy of the hook>:<the double>[:more], as rd-chain does for `rdagent fin_model`. The
subprocess runs a small driver (PRELUDE + the test's body + EPILOGUE) and prints one `REPORT {json}` line.
Needs pytest, pandas and pyarrow; Python 3.9+.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

SCRIPTS = Path(__file__).resolve().parent.parent
HOOK_SOURCE = SCRIPTS / "rdagent_hook" / "sitecustomize.py"
DOUBLE_DIR = SCRIPTS / "rdagent_double"
TARGET = "rdagent.scenarios.qlib.developer.model_runner"
SOTA_CONFIG = "conf_sota_factors_model.yaml"
BASELINE_CONFIG = "conf_baseline_factors_model.yaml"
SOTA_FACTORS = ["alpha_momentum_20d", "alpha_volatility_10d", "alpha_reversal_5d"]
HOOK_LINE = "rd-chain hook: the model runner uses the SOTA factors from"

PRELUDE = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path

    TARGET = "rdagent.scenarios.qlib.developer.model_runner"
    hook = sys.modules.get("sitecustomize")
    report = {
        "startup": {
            "model_runner_loaded": TARGET in sys.modules,
            "rdagent_loaded": any(m == "rdagent" or m.startswith("rdagent.") for m in sys.modules),
            "pandas_loaded": "pandas" in sys.modules,
            "hook_loaded": hasattr(hook, "RD_CHAIN_HOOK_STATE"),
            "state": dict(hook.RD_CHAIN_HOOK_STATE) if hasattr(hook, "RD_CHAIN_HOOK_STATE") else None,
        }
    }
    WS = Path(sys.argv[1])

    from rdagent.scenarios.qlib.developer import model_runner
    from rdagent.scenarios.qlib.developer.model_runner import QlibModelRunner
    from rdagent.scenarios.qlib.experiment.factor_experiment import QlibFactorExperiment
    from rdagent.scenarios.qlib.experiment.model_experiment import QlibModelExperiment

    def model_exp(name, based=(), developed=False):
        e = QlibModelExperiment(sub_tasks=[], workspace_path=WS / name)
        e.based_experiments = list(based)
        if developed:
            e.result = {"config": "developed before"}
            e.chosen_config = "developed before"
        return e

    def describe(e):
        return {
            "workspace": str(e.experiment_workspace.workspace_path),
            "chosen_config": getattr(e, "chosen_config", None),
            "num_features": getattr(e, "num_features", None),
            "result_is_none": e.result is None,
        }

    def based_summary(e):
        b = e.based_experiments
        if b is None:
            return None
        return {"type": type(b).__name__, "items": [type(x).__name__ for x in b],
                "markers": sum(1 for x in b if hasattr(x, "_rd_chain_sota_factors"))}
    """
)

EPILOGUE = textwrap.dedent(
    """
    report["state"] = dict(hook.RD_CHAIN_HOOK_STATE) if hasattr(hook, "RD_CHAIN_HOOK_STATE") else None
    report["develop_log"] = model_runner.DEVELOP_LOG
    report["cache_wrapper_calls"] = model_runner.CACHE_WRAPPER_CALLS
    print("REPORT " + json.dumps(report, default=str))
    """
)

# The common case: a model experiment building on an earlier model experiment that was never run.
DEVELOP_AFTER_UNRUN_MODEL = textwrap.dedent(
    """
    prev = model_exp("prev")
    exp = model_exp("exp", based=[prev])
    out = QlibModelRunner().develop(exp)
    report["returned_same"] = out is exp
    report["exp"] = describe(exp)
    report["prev"] = describe(prev)
    report["prev_is_last"] = exp.based_experiments[-1] is prev
    report["based_after"] = based_summary(exp)
    report["prev_based_after"] = based_summary(prev)
    """
)


@pytest.fixture
def sota_frame():
    """The SOTA factors as RD-Agent writes them: ('feature', name) columns, (datetime, instrument) rows."""
    index = pd.MultiIndex.from_product(
        [pd.date_range("2024-01-02", periods=5, freq="D"), ["SH600000", "SH600519", "SZ000001", "SZ300750"]],
        names=["datetime", "instrument"],
    )
    data = {("feature", name): [i * 100.0 + r for r in range(len(index))] for i, name in enumerate(SOTA_FACTORS)}
    frame = pd.DataFrame(data, index=index)
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    return frame


@pytest.fixture
def sota_workspace(tmp_path, sota_frame):
    workspace = tmp_path / "factor_ws" / "0123456789abcdef0123456789abcdef"
    workspace.mkdir(parents=True)
    sota_frame.to_parquet(workspace / "combined_factors_df.parquet", engine="pyarrow")
    return workspace


class Run:
    def __init__(self, proc):
        self.proc = proc
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.report = None
        for line in proc.stdout.splitlines():
            if line.startswith("REPORT "):
                self.report = json.loads(line[len("REPORT "):])

    def hook_lines(self):
        return [line for line in self.stderr.splitlines() if line.startswith(HOOK_LINE)]

    def __str__(self):
        return "exit {}\n--- stdout ---\n{}\n--- stderr ---\n{}".format(self.returncode, self.stdout, self.stderr)


def run_driver(tmp_path, body, env=None, extra_pythonpath=(), hook=True):
    """Run PRELUDE + body + EPILOGUE in a fresh interpreter started the way rd-chain starts fin_model."""
    hook_dir = tmp_path / "rd-chain" / "run.hook"
    if hook:
        hook_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(HOOK_SOURCE, hook_dir / "sitecustomize.py")
    entries = ([str(hook_dir)] if hook else []) + [str(DOUBLE_DIR)] + [str(p) for p in extra_pythonpath]
    script = tmp_path / "driver.py"
    script.write_text(PRELUDE + textwrap.dedent(body) + EPILOGUE)
    workspaces = tmp_path / "model_ws"
    workspaces.mkdir(exist_ok=True)
    child_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join(entries),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "WORKSPACE_PATH": str(tmp_path / "marker_ws"),
    }
    child_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, str(script), str(workspaces)],
        cwd=str(tmp_path),
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return Run(proc)


def sota_env(workspace, **more):
    env = {"LOAD_SOTA_FROM_WORKSPACE": "true", "SOTA_WORKSPACE_PATH": str(workspace)}
    env.update(more)
    return env


def assert_sota_parquet(model_workspace, sota_frame):
    written = pd.read_parquet(Path(model_workspace) / "combined_factors_df.parquet")
    assert list(written.columns) == [("feature", name) for name in SOTA_FACTORS]
    assert written.shape == sota_frame.shape
    pd.testing.assert_frame_equal(written, sota_frame.sort_index(), check_names=False)


# -------------------------------------------------------------------------------------------------------------


def test_with_hook_and_env_the_sota_branch_trains_on_the_sota_factors(tmp_path, sota_workspace, sota_frame):
    run = run_driver(tmp_path, DEVELOP_AFTER_UNRUN_MODEL, env=sota_env(sota_workspace))
    assert run.returncode == 0, run
    r = run.report
    assert r["exp"]["chosen_config"] == SOTA_CONFIG
    assert r["exp"]["num_features"] == len(SOTA_FACTORS)
    assert_sota_parquet(r["exp"]["workspace"], sota_frame)
    factors_path = str(sota_workspace / "combined_factors_df.parquet")
    assert r["state"]["armed"] is True
    assert r["state"]["factors_path"] == factors_path
    # Two develops (the unrun previous model first, then exp): two hand-overs, one line each.
    assert r["state"]["used"] == 2
    assert run.hook_lines() == [
        "{} {} (20 rows x 3 columns)".format(HOOK_LINE, factors_path),
    ] * 2
    # The markers are gone once develop has returned, and the list is still the runner's list.
    assert r["based_after"] == {"type": "list", "items": ["QlibModelExperiment"], "markers": 0}
    assert r["prev_based_after"] == {"type": "list", "items": [], "markers": 0}
    assert r["returned_same"] is True
    # develop went through the cache wrapper each time (the hook wrapped the decorated attribute).
    assert r["cache_wrapper_calls"] == 2


def test_one_log_line_for_one_develop(tmp_path, sota_workspace):
    body = """
    exp = model_exp("exp", based=[model_exp("prev", developed=True)])
    QlibModelRunner().develop(exp)
    report["exp"] = describe(exp)
    """
    run = run_driver(tmp_path, body, env=sota_env(sota_workspace))
    assert run.returncode == 0, run
    assert run.report["exp"]["chosen_config"] == SOTA_CONFIG
    assert run.report["state"]["used"] == 1
    assert len(run.hook_lines()) == 1, run
    assert "(20 rows x 3 columns)" in run.hook_lines()[0]


def test_sota_factors_path_wins_over_the_workspace(tmp_path, sota_workspace, sota_frame):
    other = tmp_path / "elsewhere.parquet"
    sota_frame.iloc[:4].to_parquet(other)
    run = run_driver(
        tmp_path, DEVELOP_AFTER_UNRUN_MODEL, env=sota_env(sota_workspace, SOTA_FACTORS_PATH=str(other))
    )
    assert run.returncode == 0, run
    assert run.report["state"]["factors_path"] == str(other)
    written = pd.read_parquet(Path(run.report["exp"]["workspace"]) / "combined_factors_df.parquet")
    assert written.shape == (4, 3)
    assert "(4 rows x 3 columns)" in run.hook_lines()[0]


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"LOAD_SOTA_FROM_WORKSPACE": "false"},
        {"LOAD_SOTA_FROM_WORKSPACE": "0"},
        {"LOAD_SOTA_FROM_WORKSPACE": ""},
        {"LOAD_SOTA_FROM_WORKSPACE": "true", "SOTA_WORKSPACE_PATH": ""},
        {"SOTA_WORKSPACE_PATH": "<ws>"},
    ],
    ids=["unset", "false", "zero", "empty", "no-path", "path-without-load"],
)
def test_without_the_env_vars_nothing_changes(tmp_path, sota_workspace, env):
    env = {k: v.replace("<ws>", str(sota_workspace)) for k, v in env.items()}
    run = run_driver(tmp_path, DEVELOP_AFTER_UNRUN_MODEL, env=env)
    assert run.returncode == 0, run
    r = run.report
    assert r["exp"]["chosen_config"] == BASELINE_CONFIG
    assert r["prev"]["chosen_config"] == BASELINE_CONFIG
    assert not (Path(r["exp"]["workspace"]) / "combined_factors_df.parquet").exists()
    assert r["state"]["armed"] is False
    assert r["state"]["used"] == 0
    assert "LOAD_SOTA_FROM_WORKSPACE" in r["state"]["reason"]
    assert run.hook_lines() == []
    assert [entry["based_types"] for entry in r["develop_log"]] == [[], ["QlibModelExperiment"]]
    # Not armed: the runner's attributes are the module's own.
    assert run.stderr == "", run


def test_without_the_hook_the_double_runs_the_baseline(tmp_path, sota_workspace):
    """The control: the double alone, even with the env vars, never reaches the SOTA branch."""
    run = run_driver(tmp_path, DEVELOP_AFTER_UNRUN_MODEL, env=sota_env(sota_workspace), hook=False)
    assert run.returncode == 0, run
    assert run.report["startup"]["hook_loaded"] is False
    assert run.report["exp"]["chosen_config"] == BASELINE_CONFIG


@pytest.mark.parametrize("word", ["true", "TRUE", "1", "yes", "Yes", "on", "ON", " true "])
def test_true_words_arm_the_hook(tmp_path, sota_workspace, word):
    body = "report['sub'] = 1\n"
    run = run_driver(tmp_path, body, env=sota_env(sota_workspace, LOAD_SOTA_FROM_WORKSPACE=word))
    assert run.returncode == 0, run
    assert run.report["state"]["armed"] is True, run.report["state"]


@pytest.mark.parametrize("word", ["false", "no", "off", "2", "enabled", "y"])
def test_other_words_do_not_arm_the_hook(tmp_path, sota_workspace, word):
    run = run_driver(tmp_path, "", env=sota_env(sota_workspace, LOAD_SOTA_FROM_WORKSPACE=word))
    assert run.returncode == 0, run
    assert run.report["state"]["armed"] is False
    assert repr(word) in run.report["state"]["reason"]


def test_missing_parquet_stops_the_run_naming_the_file(tmp_path):
    workspace = tmp_path / "factor_ws" / "gone"
    workspace.mkdir(parents=True)
    run = run_driver(tmp_path, DEVELOP_AFTER_UNRUN_MODEL, env=sota_env(workspace))
    assert run.returncode != 0, run
    assert run.report is None, run
    expected = str(workspace / "combined_factors_df.parquet")
    assert expected in run.stderr
    assert "does not exist" in run.stderr
    assert "RdChainHookError" in run.stderr


@pytest.mark.parametrize(
    "content",
    [b"datetime,instrument,alpha\n2024-01-02,SH600000,0.1\n", b"PAR1" + b"\0" * 32 + b"PAR1", b""],
    ids=["csv", "stub", "empty-file"],
)
def test_corrupt_parquet_stops_the_run_naming_the_file(tmp_path, content):
    path = tmp_path / "bad.parquet"
    path.write_bytes(content)
    run = run_driver(
        tmp_path,
        DEVELOP_AFTER_UNRUN_MODEL,
        env={"LOAD_SOTA_FROM_WORKSPACE": "true", "SOTA_FACTORS_PATH": str(path)},
    )
    assert run.returncode != 0, run
    assert run.report is None, run
    assert str(path) in run.stderr
    assert "not a readable parquet file" in run.stderr


def test_parquet_without_factor_columns_stops_the_run(tmp_path, sota_frame):
    path = tmp_path / "no-factors.parquet"
    sota_frame.iloc[:, :0].to_parquet(path)
    run = run_driver(
        tmp_path,
        DEVELOP_AFTER_UNRUN_MODEL,
        env={"LOAD_SOTA_FROM_WORKSPACE": "true", "SOTA_FACTORS_PATH": str(path)},
    )
    assert run.returncode != 0, run
    assert "holds no factors (20 rows x 0 columns)" in run.stderr
    assert str(path) in run.stderr


def test_a_parquet_removed_after_start_fails_at_the_hand_over(tmp_path, sota_workspace):
    body = """
    os.remove(os.environ["SOTA_WORKSPACE_PATH"] + "/combined_factors_df.parquet")
    exp = model_exp("exp", based=[model_exp("prev", developed=True)])
    try:
        QlibModelRunner().develop(exp)
        report["raised"] = None
    except Exception as err:
        report["raised"] = type(err).__name__ + ": " + str(err)
    report["based_after"] = based_summary(exp)
    """
    run = run_driver(tmp_path, body, env=sota_env(sota_workspace))
    assert run.returncode == 0, run
    assert run.report["raised"].startswith("RdChainHookError: rd-chain hook: cannot read the SOTA factors file")
    assert str(sota_workspace / "combined_factors_df.parquet") in run.report["raised"]
    # Even on failure the markers are taken out again.
    assert run.report["based_after"]["markers"] == 0
    assert run.report["develop_log"] == []


@pytest.mark.parametrize("armed", [True, False], ids=["armed", "not-armed"])
def test_a_pre_existing_sitecustomize_still_runs(tmp_path, sota_workspace, armed):
    user_site = tmp_path / "user_site"
    user_site.mkdir()
    (user_site / "sitecustomize.py").write_text(
        "import os, sys\n"
        "USER_SETTING = 'from the user sitecustomize'\n"
        "os.environ['USER_SITECUSTOMIZE_RAN'] = __file__\n"
        "sys.user_sitecustomize_saw_hook = 'rdagent.scenarios.qlib.developer.model_runner' in sys.modules\n"
    )
    body = """
    report["user_ran"] = os.environ.get("USER_SITECUSTOMIZE_RAN")
    report["user_setting"] = getattr(hook, "USER_SETTING", None)
    report["chained"] = getattr(hook.RD_CHAIN_CHAINED_SITECUSTOMIZE, "__file__", None)
    report["user_saw_model_runner"] = sys.user_sitecustomize_saw_hook
    exp = model_exp("exp", based=[model_exp("prev", developed=True)])
    QlibModelRunner().develop(exp)
    report["exp"] = describe(exp)
    """
    env = sota_env(sota_workspace) if armed else {}
    run = run_driver(tmp_path, body, env=env, extra_pythonpath=[user_site])
    assert run.returncode == 0, run
    r = run.report
    assert r["user_ran"] == str(user_site / "sitecustomize.py")
    assert r["chained"] == str(user_site / "sitecustomize.py")
    assert r["user_setting"] == "from the user sitecustomize"
    assert r["user_saw_model_runner"] is False
    assert r["startup"]["hook_loaded"] is True
    assert r["exp"]["chosen_config"] == (SOTA_CONFIG if armed else BASELINE_CONFIG)


def test_a_failing_user_sitecustomize_is_reported_and_the_hook_still_works(tmp_path, sota_workspace):
    user_site = tmp_path / "user_site"
    user_site.mkdir()
    (user_site / "sitecustomize.py").write_text("raise ValueError('broken user sitecustomize')\n")
    body = """
    exp = model_exp("exp", based=[model_exp("prev", developed=True)])
    QlibModelRunner().develop(exp)
    report["exp"] = describe(exp)
    """
    run = run_driver(tmp_path, body, env=sota_env(sota_workspace), extra_pythonpath=[user_site])
    assert run.returncode == 0, run
    assert "Error in sitecustomize {}".format(user_site / "sitecustomize.py") in run.stderr
    assert "ValueError: broken user sitecustomize" in run.stderr
    assert run.report["exp"]["chosen_config"] == SOTA_CONFIG


def test_another_copy_of_the_hook_later_on_the_path_is_skipped(tmp_path, sota_workspace):
    """A stale rd-chain hook dir further down PYTHONPATH must not install a second hook; the user's
    sitecustomize behind it still runs."""
    stale = tmp_path / "stale.hook"
    stale.mkdir()
    shutil.copy(HOOK_SOURCE, stale / "sitecustomize.py")
    user_site = tmp_path / "user_site"
    user_site.mkdir()
    (user_site / "sitecustomize.py").write_text("import os\nos.environ['USER_SITECUSTOMIZE_RAN'] = '1'\n")
    body = """
    report["user_ran"] = os.environ.get("USER_SITECUSTOMIZE_RAN")
    report["finders"] = sum(1 for f in sys.meta_path if getattr(f, "rd_chain_hook", None))
    exp = model_exp("exp", based=[model_exp("prev", developed=True)])
    QlibModelRunner().develop(exp)
    report["exp"] = describe(exp)
    """
    run = run_driver(tmp_path, body, env=sota_env(sota_workspace), extra_pythonpath=[stale, user_site])
    assert run.returncode == 0, run
    assert run.report["user_ran"] == "1"
    assert run.report["finders"] == 1
    assert run.report["develop_log"][0]["factor_experiments"] == 2
    assert len(run.hook_lines()) == 1


def test_the_recursion_guard_still_develops_the_last_based_experiment_first(tmp_path, sota_workspace, sota_frame):
    run = run_driver(tmp_path, DEVELOP_AFTER_UNRUN_MODEL, env=sota_env(sota_workspace))
    assert run.returncode == 0, run
    r = run.report
    log = r["develop_log"]
    # prev (based_experiments[-1], result None) was developed first, then exp.
    assert [entry["workspace"] for entry in log] == [r["prev"]["workspace"], r["exp"]["workspace"]]
    assert r["prev"]["result_is_none"] is False
    assert r["prev_is_last"] is True
    # Markers stood at the START: while exp was developed its last based experiment was still prev.
    assert log[1]["based_types"] == ["QlibFactorExperiment", "QlibFactorExperiment", "QlibModelExperiment"]
    # prev had nothing to build on: only the markers, whose results are not None, so nothing else was developed.
    assert log[0]["based_types"] == ["QlibFactorExperiment", "QlibFactorExperiment"]
    assert r["prev"]["chosen_config"] == SOTA_CONFIG
    assert_sota_parquet(r["prev"]["workspace"], sota_frame)


@pytest.mark.parametrize("rule", ["more-than-one", "at-least-one"])
def test_upstream_and_fork_rules_both_get_the_sota_branch(tmp_path, sota_workspace, sota_frame, rule):
    run = run_driver(
        tmp_path, DEVELOP_AFTER_UNRUN_MODEL, env=sota_env(sota_workspace, RDAGENT_DOUBLE_SOTA_RULE=rule)
    )
    assert run.returncode == 0, run
    assert run.report["exp"]["chosen_config"] == SOTA_CONFIG
    assert [e["factor_experiments"] for e in run.report["develop_log"]] == [2, 2]
    assert_sota_parquet(run.report["exp"]["workspace"], sota_frame)


def test_the_fork_rule_alone_without_factor_experiments_is_baseline(tmp_path, sota_workspace):
    run = run_driver(
        tmp_path,
        DEVELOP_AFTER_UNRUN_MODEL,
        env={"RDAGENT_DOUBLE_SOTA_RULE": "at-least-one", "SOTA_WORKSPACE_PATH": str(sota_workspace)},
    )
    assert run.returncode == 0, run
    assert run.report["exp"]["chosen_config"] == BASELINE_CONFIG


def test_the_model_runner_is_not_imported_at_startup(tmp_path, sota_workspace):
    run = run_driver(tmp_path, "", env=sota_env(sota_workspace))
    assert run.returncode == 0, run
    startup = run.report["startup"]
    assert startup["hook_loaded"] is True
    assert startup["model_runner_loaded"] is False
    assert startup["rdagent_loaded"] is False
    assert startup["pandas_loaded"] is False
    assert startup["state"]["armed"] is True


def test_the_model_runner_module_keeps_its_real_loader(tmp_path, sota_workspace):
    body = """
    import inspect
    report["loader"] = type(model_runner.__loader__).__name__
    report["spec_loader"] = type(model_runner.__spec__.loader).__name__
    report["source_ok"] = "class QlibModelRunner" in inspect.getsource(model_runner)
    report["develop_name"] = QlibModelRunner.develop.__name__
    """
    run = run_driver(tmp_path, body, env=sota_env(sota_workspace))
    assert run.returncode == 0, run
    assert run.report["loader"] == "SourceFileLoader"
    assert run.report["spec_loader"] == "SourceFileLoader"
    assert run.report["source_ok"] is True
    assert run.report["develop_name"] == "develop"


@pytest.mark.parametrize("shape", ["empty-list", "none", "tuple"])
def test_based_experiments_none_empty_or_tuple(tmp_path, sota_workspace, sota_frame, shape):
    body = """
    exp = model_exp("exp")
    shape = {shape!r}
    if shape == "none":
        exp.based_experiments = None
    elif shape == "tuple":
        exp.based_experiments = (model_exp("prev", developed=True),)
    QlibModelRunner().develop(exp)
    report["exp"] = describe(exp)
    report["based_after"] = based_summary(exp)
    """.format(shape=shape)
    run = run_driver(tmp_path, body, env=sota_env(sota_workspace))
    assert run.returncode == 0, run
    r = run.report
    assert r["exp"]["chosen_config"] == SOTA_CONFIG
    assert_sota_parquet(r["exp"]["workspace"], sota_frame)
    expected_after = {
        "empty-list": {"type": "list", "items": [], "markers": 0},
        "none": None,
        "tuple": {"type": "tuple", "items": ["QlibModelExperiment"], "markers": 0},
    }[shape]
    assert r["based_after"] == expected_after
    expected_during = ["QlibFactorExperiment", "QlibFactorExperiment"] + (
        ["QlibModelExperiment"] if shape == "tuple" else []
    )
    assert r["develop_log"][0]["based_types"] == expected_during


def test_developing_the_same_experiment_twice_adds_no_extra_markers(tmp_path, sota_workspace):
    body = """
    exp = model_exp("exp", based=[model_exp("prev", developed=True)])
    runner = QlibModelRunner()
    runner.develop(exp)
    report["after_first"] = based_summary(exp)
    runner.develop(exp)
    report["after_second"] = based_summary(exp)
    """
    run = run_driver(tmp_path, body, env=sota_env(sota_workspace))
    assert run.returncode == 0, run
    r = run.report
    assert [e["factor_experiments"] for e in r["develop_log"]] == [2, 2]
    assert r["after_first"] == r["after_second"] == {"type": "list", "items": ["QlibModelExperiment"], "markers": 0}
    assert r["state"]["used"] == 2


def test_re_entering_develop_with_the_same_experiment_adds_no_extra_markers(tmp_path, sota_workspace):
    body = """
    runner = QlibModelRunner()
    exp = model_exp("exp", based=[model_exp("prev", developed=True)])
    hooked = model_runner.process_factor_data
    calls = []

    def re_entering(exps, *args, **kwargs):
        calls.append(len(exps))
        if len(calls) == 1:
            report["inner_during"] = based_summary(exp)
            runner.develop(exp)
            report["inner_after"] = based_summary(exp)
        return hooked(exps, *args, **kwargs)

    model_runner.process_factor_data = re_entering
    runner.develop(exp)
    report["calls"] = calls
    report["after"] = based_summary(exp)
    report["exp"] = describe(exp)
    """
    run = run_driver(tmp_path, body, env=sota_env(sota_workspace))
    assert run.returncode == 0, run
    r = run.report
    assert r["calls"] == [2, 2]
    assert r["inner_during"]["markers"] == 2
    # The inner call neither added markers nor took the outer call's away.
    assert r["inner_after"]["markers"] == 2
    assert r["after"] == {"type": "list", "items": ["QlibModelExperiment"], "markers": 0}
    assert r["exp"]["chosen_config"] == SOTA_CONFIG


def test_other_factor_experiments_are_still_processed_and_concatenated(tmp_path, sota_workspace, sota_frame):
    extra_ws = tmp_path / "extra_factor_ws"
    extra_ws.mkdir()
    extra = pd.DataFrame(
        {("feature", "extra_factor"): 7.0, ("feature", SOTA_FACTORS[0]): -1.0}, index=sota_frame.index
    )
    extra.columns = pd.MultiIndex.from_tuples(extra.columns)
    extra.to_parquet(extra_ws / "combined_factors_df.parquet")
    body = """
    baseline_factors = QlibFactorExperiment(sub_tasks=[], workspace_path=WS / "baseline_factors")
    baseline_factors.result = {{"IC": 0.0}}
    real_factors = QlibFactorExperiment(sub_tasks=["extra_factor"], workspace_path=Path({extra!r}))
    real_factors.result = {{"IC": 0.1}}
    exp = model_exp("exp", based=[baseline_factors, real_factors, model_exp("prev", developed=True)])
    QlibModelRunner().develop(exp)
    report["exp"] = describe(exp)
    report["based_after"] = based_summary(exp)
    """.format(extra=str(extra_ws))
    run = run_driver(tmp_path, body, env=sota_env(sota_workspace))
    assert run.returncode == 0, run
    r = run.report
    assert r["exp"]["chosen_config"] == SOTA_CONFIG
    written = pd.read_parquet(Path(r["exp"]["workspace"]) / "combined_factors_df.parquet")
    # The other experiments' factors come first; on a name clash the SOTA factor wins (the runner keeps the last).
    assert list(written.columns) == [("feature", "extra_factor")] + [("feature", n) for n in SOTA_FACTORS]
    assert (written[("feature", "extra_factor")] == 7.0).all()
    pd.testing.assert_series_equal(
        written[("feature", SOTA_FACTORS[0])], sota_frame[("feature", SOTA_FACTORS[0])].sort_index()
    )
    assert r["develop_log"][0]["factor_experiments"] == 4
    assert r["based_after"]["items"] == ["QlibFactorExperiment", "QlibFactorExperiment", "QlibModelExperiment"]
    assert r["based_after"]["markers"] == 0
    assert "plus 2 column(s) from 2 other factor experiment(s)" in run.hook_lines()[0]


def test_without_markers_process_factor_data_is_the_original(tmp_path, sota_workspace):
    body = """
    try:
        model_runner.process_factor_data([QlibFactorExperiment(sub_tasks=[])])
        report["raised"] = None
    except Exception as err:
        report["raised"] = type(err).__name__
    report["wrapped"] = hasattr(model_runner.process_factor_data, "__wrapped__")
    """
    run = run_driver(tmp_path, body, env=sota_env(sota_workspace))
    assert run.returncode == 0, run
    assert run.report["wrapped"] is True
    assert run.report["raised"] == "FactorEmptyError"
    assert run.report["state"]["used"] == 0


def test_markers_fall_back_to_new_when_the_constructor_fails(tmp_path, sota_workspace, sota_frame):
    body = """
    def refuse(self, *args, **kwargs):
        raise TypeError("this release needs more arguments")
    QlibFactorExperiment.__init__ = refuse
    exp = model_exp("exp", based=[model_exp("prev", developed=True)])
    QlibModelRunner().develop(exp)
    report["exp"] = describe(exp)
    """
    run = run_driver(tmp_path, body, env=sota_env(sota_workspace))
    assert run.returncode == 0, run
    assert run.report["exp"]["chosen_config"] == SOTA_CONFIG
    assert run.report["develop_log"][0]["based_types"][:2] == ["QlibFactorExperiment", "QlibFactorExperiment"]
    assert_sota_parquet(run.report["exp"]["workspace"], sota_frame)


def test_markers_that_cannot_be_made_fail_loudly(tmp_path, sota_workspace):
    body = """
    def refuse(self, *args, **kwargs):
        raise TypeError("this release needs more arguments")
    def refuse_new(cls, *args, **kwargs):
        raise TypeError("no bare instances")
    QlibFactorExperiment.__init__ = refuse
    QlibFactorExperiment.__new__ = refuse_new
    exp = model_exp("exp", based=[model_exp("prev", developed=True)])
    QlibModelRunner().develop(exp)
    """
    run = run_driver(tmp_path, body, env=sota_env(sota_workspace))
    assert run.returncode != 0, run
    assert run.report is None
    assert "cannot create a marker" in run.stderr
    assert "QlibFactorExperiment" in run.stderr
    assert "no bare instances" in run.stderr
    assert "--hook off" in run.stderr


def test_a_factor_experiment_developed_by_the_runner_gets_no_markers(tmp_path, sota_workspace):
    body = """
    factor = QlibFactorExperiment(sub_tasks=[], workspace_path=WS / "factor")
    QlibModelRunner().develop(factor)
    report["log"] = model_runner.DEVELOP_LOG
    """
    run = run_driver(tmp_path, body, env=sota_env(sota_workspace))
    assert run.returncode == 0, run
    assert run.report["develop_log"][0]["based_types"] == []
    assert run.report["develop_log"][0]["config"] == BASELINE_CONFIG


def test_the_double_model_runner_does_not_look_like_a_fork_with_its_own_consumer():
    """`--hook auto` turns the hook off when model_runner.py mentions SOTA_WORKSPACE_PATH; the double stands
    for upstream RD-Agent, so it must not."""
    runner = DOUBLE_DIR / "rdagent" / "scenarios" / "qlib" / "developer" / "model_runner.py"
    assert runner.is_file()
    assert "SOTA_WORKSPACE_PATH" not in runner.read_text()


def test_the_result_cache_never_serves_a_result_trained_on_other_factors(tmp_path, sota_workspace, sota_frame):
    """RD-Agent caches develop's result under a key hashed from the based experiments' task information. The
    markers name the factors' content there, so the SOTA run does not get the baseline run's cached result, a
    run on other factors does not get this one's, and only the same factors share a key."""
    cache = tmp_path / "result-cache"
    cache.mkdir()
    body = """
    exp = model_exp("exp", based=[model_exp("prev", developed=True)])
    QlibModelRunner().develop(exp)
    report["exp"] = describe(exp)
    report["hits"] = list(model_runner.CACHE_HITS)
    """
    with_cache = {"RDAGENT_DOUBLE_CACHE_DIR": str(cache)}
    baseline = run_driver(tmp_path, body, env=with_cache)
    assert baseline.returncode == 0, baseline
    assert baseline.report["exp"]["chosen_config"] == BASELINE_CONFIG
    assert baseline.report["hits"] == []

    sota = run_driver(tmp_path, body, env=sota_env(sota_workspace, **with_cache))
    assert sota.returncode == 0, sota
    assert sota.report["hits"] == [], "the baseline result was served for the SOTA factors"
    assert sota.report["exp"]["chosen_config"] == SOTA_CONFIG

    again = run_driver(tmp_path, body, env=sota_env(sota_workspace, **with_cache))
    assert again.returncode == 0, again
    assert len(again.report["hits"]) == 1, "the same factors share the cached result"
    assert again.report["exp"]["chosen_config"] == SOTA_CONFIG

    other = tmp_path / "other.parquet"
    sota_frame.iloc[:8].to_parquet(other)
    changed = run_driver(tmp_path, body, env=sota_env(sota_workspace, SOTA_FACTORS_PATH=str(other), **with_cache))
    assert changed.returncode == 0, changed
    assert changed.report["hits"] == [], "a result trained on other factors was served"
    assert len(list(cache.glob("*.pkl"))) == 3


def test_the_report_file_tells_rd_chain_what_reached_the_model_runner(tmp_path, sota_workspace):
    report = tmp_path / "hook-report.tsv"
    run = run_driver(tmp_path, DEVELOP_AFTER_UNRUN_MODEL,
                     env=sota_env(sota_workspace, RD_CHAIN_HOOK_REPORT=str(report)))
    assert run.returncode == 0, run
    lines = [line.split("\t") for line in report.read_text().splitlines()]
    factors = str(sota_workspace / "combined_factors_df.parquet")
    assert [line[0] for line in lines] == ["armed", "used", "used"]
    assert lines[0][2:] == [factors]
    assert lines[1][2:] == ["20", "3", factors]
    assert len({line[1] for line in lines}) == 1, "one process"
    # Not armed: nothing to report.
    quiet = tmp_path / "quiet.tsv"
    run = run_driver(tmp_path, DEVELOP_AFTER_UNRUN_MODEL, env={"RD_CHAIN_HOOK_REPORT": str(quiet)})
    assert run.returncode == 0, run
    assert not quiet.exists()


# -------------------------------------------------------------------------------------------------------------
# USE_ALPHA_FACTORS

BASE_FEATURES = {"RESI5": "Resi($close, 5)/$close", "WVMA5": "Std(Abs($close/Ref($close, 1)-1)*$volume, 5)"}

# One model experiment with two base features, building on a model experiment that already ran.
DEVELOP_WITH_BASE_FEATURES = textwrap.dedent(
    """
    exp = model_exp("exp", based=[model_exp("prev", developed=True)])
    exp.base_features = {"RESI5": "Resi($close, 5)/$close",
                         "WVMA5": "Std(Abs($close/Ref($close, 1)-1)*$volume, 5)"}
    template = os.environ.get("TEMPLATE_FILE")
    if template:
        exp.experiment_workspace.file_dict["conf_sota_factors_model.yaml"] = Path(template).read_text()
    QlibModelRunner().develop(exp)
    report["exp"] = describe(exp)
    report["feature_names"] = exp.feature_names
    report["feature_expressions"] = exp.feature_expressions
    report["base_features_after"] = exp.base_features
    """
)

ALPHA_OFF_LINE = "rd-chain hook: USE_ALPHA_FACTORS=false: the model trains on the SOTA factors alone"

# A Qlib config template shaped like RD-Agent's SOTA one: the base features feed a QlibDataLoader.
TEMPLATE_WITH_BASE_LOADER = textwrap.dedent(
    """
    data_handler_config: &data_handler_config
        data_loader:
            class: NestedDataLoader
            kwargs:
                dataloader_l:
                    - class: qlib.contrib.data.loader.Alpha158DL
                      kwargs:
                        config:
                            label:
                                - ["Ref($close, -2)/Ref($close, -1) - 1"]
                                - ["LABEL0"]
                            feature:
                                - {{ feature_expressions }}
                                - {{ feature_names }}
                    - class: qlib.data.dataset.loader.StaticDataLoader
                      kwargs:
                        config: "combined_factors_df.parquet"
    task:
        model:
            kwargs:
                pt_model_kwargs: {"num_features": {{ num_features }}}
    """
)


@pytest.mark.parametrize("value", ["false", "FALSE", "0", "no", " off "])
def test_use_alpha_factors_false_trains_on_the_sota_factors_alone(tmp_path, sota_workspace, value):
    report_file = tmp_path / "hook-report.tsv"
    run = run_driver(tmp_path, DEVELOP_WITH_BASE_FEATURES,
                     env=sota_env(sota_workspace, USE_ALPHA_FACTORS=value, RD_CHAIN_HOOK_REPORT=str(report_file)))
    assert run.returncode == 0, run
    r = run.report
    assert r["exp"]["chosen_config"] == SOTA_CONFIG
    # RD-Agent's own count: no base features, the three SOTA factors.
    assert r["exp"]["num_features"] == len(SOTA_FACTORS)
    assert r["feature_names"] == [] and r["feature_expressions"] == []
    assert r["base_features_after"] == {}, "the experiment records what the model was trained on"
    assert r["state"]["alpha_factors"] is False
    assert "{} (2 base feature(s) left out)".format(ALPHA_OFF_LINE) in run.stderr.splitlines()
    lines = [line.split("\t") for line in report_file.read_text().splitlines()]
    assert [line[0] for line in lines] == ["armed", "base_features", "used"]
    assert lines[1][2:] == ["dropped", "2"]


@pytest.mark.parametrize("value", [None, "", "true", "TRUE", "1", "yes", "on"])
def test_use_alpha_factors_true_or_unset_keeps_the_base_features(tmp_path, sota_workspace, value):
    env = sota_env(sota_workspace) if value is None else sota_env(sota_workspace, USE_ALPHA_FACTORS=value)
    run = run_driver(tmp_path, DEVELOP_WITH_BASE_FEATURES, env=env)
    assert run.returncode == 0, run
    r = run.report
    assert r["exp"]["chosen_config"] == SOTA_CONFIG
    assert r["exp"]["num_features"] == len(BASE_FEATURES) + len(SOTA_FACTORS)
    assert r["feature_names"] == list(BASE_FEATURES)
    assert r["feature_expressions"] == list(BASE_FEATURES.values())
    assert r["base_features_after"] == BASE_FEATURES
    assert r["state"]["alpha_factors"] is True
    assert ALPHA_OFF_LINE not in run.stderr


def test_use_alpha_factors_false_without_sota_factors_changes_nothing(tmp_path):
    # The baseline branch trains on the base features alone: the hook is not armed and leaves them.
    run = run_driver(tmp_path, DEVELOP_WITH_BASE_FEATURES, env={"USE_ALPHA_FACTORS": "false"})
    assert run.returncode == 0, run
    r = run.report
    assert r["exp"]["chosen_config"] == BASELINE_CONFIG
    assert r["feature_names"] == list(BASE_FEATURES)
    assert r["state"]["armed"] is False
    assert ALPHA_OFF_LINE not in run.stderr


def test_use_alpha_factors_that_is_not_a_boolean_stops_the_run(tmp_path, sota_workspace):
    run = run_driver(tmp_path, DEVELOP_WITH_BASE_FEATURES, env=sota_env(sota_workspace, USE_ALPHA_FACTORS="maybe"))
    assert run.returncode != 0, run
    assert "RdChainHookError" in run.stderr
    assert "USE_ALPHA_FACTORS='maybe' is not a boolean" in run.stderr
    assert run.report is None, "nothing may be trained"


def test_results_with_and_without_base_features_never_share_a_cache_entry(tmp_path, sota_workspace):
    cache = tmp_path / "cache"
    cache.mkdir()
    body = DEVELOP_WITH_BASE_FEATURES + "report['hits'] = model_runner.CACHE_HITS\n"
    with_cache = {"RDAGENT_DOUBLE_CACHE_DIR": str(cache)}
    first = run_driver(tmp_path, body, env=sota_env(sota_workspace, **with_cache))
    assert first.returncode == 0, first
    assert first.report["exp"]["num_features"] == len(BASE_FEATURES) + len(SOTA_FACTORS)
    off = run_driver(tmp_path, body, env=sota_env(sota_workspace, USE_ALPHA_FACTORS="false", **with_cache))
    assert off.returncode == 0, off
    assert off.report["hits"] == [], "a result trained with the base features was served"
    assert off.report["exp"]["num_features"] == len(SOTA_FACTORS)
    again = run_driver(tmp_path, body, env=sota_env(sota_workspace, USE_ALPHA_FACTORS="false", **with_cache))
    assert again.returncode == 0, again
    assert len(again.report["hits"]) == 1, "the same factors without base features share the cached result"
    assert again.report["exp"]["num_features"] == len(SOTA_FACTORS)


def test_a_template_whose_qlib_loader_needs_the_base_features_is_reported(tmp_path, sota_workspace):
    pytest.importorskip("jinja2")
    pytest.importorskip("yaml")
    template = tmp_path / "conf_sota_factors_model.yaml"
    template.write_text(TEMPLATE_WITH_BASE_LOADER)
    report_file = tmp_path / "hook-report.tsv"
    env = sota_env(sota_workspace, USE_ALPHA_FACTORS="false", TEMPLATE_FILE=str(template),
                   RD_CHAIN_HOOK_REPORT=str(report_file))
    run = run_driver(tmp_path, DEVELOP_WITH_BASE_FEATURES, env=env)
    assert run.returncode == 0, run
    warning = [line for line in run.stderr.splitlines() if line.startswith("rd-chain hook: warning:")]
    assert len(warning) == 1, run
    assert "qlib.contrib.data.loader.Alpha158DL an empty 'feature' field list" in warning[0]
    assert "fields cannot be empty" in warning[0]
    events = [line.split("\t")[0] for line in report_file.read_text().splitlines()]
    assert events == ["armed", "base_features", "template", "used"]

    # The same template without the base-feature loader trains on the static factors alone: no warning.
    static_only = TEMPLATE_WITH_BASE_LOADER.replace("Alpha158DL", "StaticFeatureLoader")
    template.write_text(static_only)
    run = run_driver(tmp_path, DEVELOP_WITH_BASE_FEATURES, env=env)
    assert run.returncode == 0, run
    assert "rd-chain hook: warning:" not in run.stderr
