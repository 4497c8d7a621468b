"""The hook against the real RD-Agent 1.0.0, installed in the interpreter running the tests.

scripts/test.sh installs it into a venv of its own, .venv-rdagent (`pip install --no-deps -r
scripts/requirements-rdagent.txt`, no heavy extras), and runs these tests with that venv's python. A
missing rdagent, pandas or pyarrow is a failure naming that command; RD_CHAIN_TEST_SKIP_REAL_RDAGENT=1 skips these
tests instead (documented in scripts/test.sh and README.md).
The model is not trained: the experiment workspace's `execute` (which would start Qlib in Docker or conda) is
replaced in the child by a function that records the config and environment it was given. Everything else is
RD-Agent's own code: the model runner's SOTA branch, its result cache, its experiment and task classes.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SKIP = os.environ.get("RD_CHAIN_TEST_SKIP_REAL_RDAGENT") == "1"
if SKIP:
    pytest.skip("RD_CHAIN_TEST_SKIP_REAL_RDAGENT=1", allow_module_level=True)
import pandas as pd  # noqa: E402 - a missing pandas is a failure here, not a skip
import pyarrow  # noqa: E402,F401

SCRIPTS = Path(__file__).resolve().parent.parent
HOOK_SOURCE = SCRIPTS / "rdagent_hook" / "sitecustomize.py"
DOUBLE_DIR = SCRIPTS / "rdagent_double"


def real_rdagent_installed():
    """True when `import rdagent` in a clean child finds the real package (not the test double)."""
    probe = "import importlib.util, sys; s = importlib.util.find_spec('rdagent'); print(s.origin if s else '')"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env={"PATH": os.environ.get("PATH", "")})
    origin = out.stdout.strip()
    return bool(origin) and str(DOUBLE_DIR) not in origin


INSTALL = ("scripts/test.sh installs it into .venv-rdagent (pip install --no-deps -r scripts/requirements-rdagent.txt)"
           " and runs these tests with that venv's python")


@pytest.fixture(autouse=True)
def _real_rdagent_is_required():
    if not real_rdagent_installed():
        pytest.fail("the real rdagent package is not installed in {}: {}".format(sys.executable, INSTALL))

FACTORS = ["alpha_a", "alpha_b", "alpha_c", "alpha_d"]

MODEL_RUNNER_DRIVER = textwrap.dedent(
    """
    import json, sys
    import pandas as pd

    hook = sys.modules.get("sitecustomize")
    from rdagent.scenarios.qlib.developer import model_runner
    from rdagent.scenarios.qlib.experiment.model_experiment import QlibModelExperiment
    from rdagent.scenarios.qlib.experiment.workspace import QlibFBWorkspace
    from rdagent.components.coder.model_coder.model import ModelTask, ModelFBWorkspace

    calls = []

    def recorded_execute(self, qlib_config_name=None, run_env=None, **kwargs):
        calls.append(@RECORDED_CALL@)
        return pd.Series({"IC": 0.05}), "recorded, not trained"

    QlibFBWorkspace.execute = recorded_execute

    task = ModelTask(name="tiny_mlp", description="a tiny MLP", architecture="two dense layers",
                     hyperparameters={}, training_hyperparameters={}, model_type="Tabular")
    sub_workspace = ModelFBWorkspace(target_task=task)
    sub_workspace.inject_files(**{"model.py": "# the model\\n"})
    exp = QlibModelExperiment(sub_tasks=[task])
    exp.sub_workspace_list = [sub_workspace]
    exp.base_features = @BASE_FEATURES@
    baseline = QlibModelExperiment(sub_tasks=[])
    baseline.result = pd.Series({"IC": 0.0})
    exp.based_experiments = [baseline]

    model_runner.QlibModelRunner(None).develop(exp)
    written = exp.experiment_workspace.workspace_path / "combined_factors_df.parquet"
    frame = pd.read_parquet(written) if written.exists() else None
    print("REPORT " + json.dumps({
        "calls": calls,
        "columns": [list(c) for c in frame.columns] if frame is not None else None,
        @REPORT_FIELDS@
        "state": dict(hook.RD_CHAIN_HOOK_STATE) if hasattr(hook, "RD_CHAIN_HOOK_STATE") else None,
    }))
    """
)


def model_runner_driver(recorded_call, base_features, report_fields):
    """A driver that runs RD-Agent's own model runner once on a one-task model experiment (Qlib's execution
    recorded, not run) and prints a JSON report: `recorded_call` is what each execution records, `base_features`
    the experiment's base features, `report_fields` the report's fields besides calls, columns and the hook state."""
    return (MODEL_RUNNER_DRIVER.replace("@RECORDED_CALL@", recorded_call)
            .replace("@BASE_FEATURES@", base_features)
            .replace("@REPORT_FIELDS@", report_fields))


DRIVER = model_runner_driver(
    '{"config": qlib_config_name, "num_features": (run_env or {}).get("num_features")}',
    '{"RESI5": "Resi($close, 5)/$close"}',
    '''"rows": len(frame) if frame is not None else None,
    "based_after": [type(e).__name__ for e in exp.based_experiments],
    "baseline_kept": exp.based_experiments[-1] is baseline,''',
)


def run(tmp_path, env_extra, factors_file=None, driver_source=DRIVER):
    hook_dir = tmp_path / "rd-chain" / "run.hook"
    hook_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(HOOK_SOURCE, hook_dir / "sitecustomize.py")
    driver = tmp_path / "driver.py"
    driver.write_text(driver_source)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path / "home"),
        "PYTHONPATH": str(hook_dir),
        "PYTHONDONTWRITEBYTECODE": "1",
        # RD-Agent imports litellm, which otherwise fetches a price list from the network at import time.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    env.update(env_extra)
    proc = subprocess.run([sys.executable, str(driver)], cwd=str(tmp_path), env=env, capture_output=True,
                          text=True, timeout=600)
    report = None
    for line in proc.stdout.splitlines():
        if line.startswith("REPORT "):
            report = json.loads(line[len("REPORT "):])
    return proc, report


def write_factors(path, rows=12):
    index = pd.MultiIndex.from_product(
        [pd.date_range("2024-01-02", periods=rows // 3, freq="D"), ["SH600000", "SH600519", "SZ000001"]],
        names=["datetime", "instrument"],
    )
    frame = pd.DataFrame({("feature", n): [float(i + r) for r in range(len(index))] for i, n in enumerate(FACTORS)},
                         index=index)
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path)
    return frame


def test_real_rdagent_takes_its_sota_branch_with_the_hooked_factors(tmp_path):
    workspace = tmp_path / "factor_ws" / "0123456789abcdef0123456789abcdef"
    write_factors(workspace / "combined_factors_df.parquet")
    proc, report = run(tmp_path, {"LOAD_SOTA_FROM_WORKSPACE": "true", "SOTA_WORKSPACE_PATH": str(workspace)})
    assert proc.returncode == 0 and report is not None, proc.stderr[-3000:]
    # RD-Agent's own code chose the SOTA config and counted its one base feature plus the four factors.
    assert report["calls"] == [{"config": "conf_sota_factors_model.yaml", "num_features": "5"}]
    assert report["columns"] == [["feature", n] for n in FACTORS]
    assert report["rows"] == 12
    assert report["based_after"] == ["QlibModelExperiment"] and report["baseline_kept"]
    assert report["state"]["used"] == 1
    assert "rd-chain hook: the model runner uses the SOTA factors from" in proc.stderr


def test_real_rdagent_without_the_variables_trains_on_the_baseline(tmp_path):
    proc, report = run(tmp_path, {})
    assert proc.returncode == 0 and report is not None, proc.stderr[-3000:]
    assert report["calls"] == [{"config": "conf_baseline_factors_model.yaml", "num_features": None}]
    assert report["columns"] is None
    assert report["state"]["armed"] is False


def test_real_rdagents_result_cache_keys_on_the_factors(tmp_path):
    workspace = tmp_path / "factor_ws" / "fedcba9876543210fedcba9876543210"
    parquet = workspace / "combined_factors_df.parquet"
    write_factors(parquet)
    sota = {"LOAD_SOTA_FROM_WORKSPACE": "true", "SOTA_WORKSPACE_PATH": str(workspace)}
    # A baseline run fills RD-Agent's pickle cache first; the SOTA run must not be answered from it.
    proc, report = run(tmp_path, {})
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc, report = run(tmp_path, sota)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert report["calls"] == [{"config": "conf_sota_factors_model.yaml", "num_features": "5"}]
    # The same factors again: RD-Agent may answer from its cache (nothing is executed).
    proc, report = run(tmp_path, sota)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert report["calls"] == []
    # Other factors: executed again.
    write_factors(parquet, rows=9)
    proc, report = run(tmp_path, sota)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert report["calls"] == [{"config": "conf_sota_factors_model.yaml", "num_features": "5"}]


SNAPSHOT_WRITER = textwrap.dedent(
    """
    import sys
    from collections import defaultdict
    from pathlib import Path
    import pandas as pd

    from rdagent.app.qlib_rd_loop.factor import FactorRDLoop
    from rdagent.components.coder.factor_coder.factor import FactorTask
    from rdagent.core.proposal import Hypothesis, HypothesisFeedback, Trace
    from rdagent.core.serialization import dump
    from rdagent.scenarios.qlib.experiment.factor_experiment import QlibFactorExperiment

    root = Path(sys.argv[1])
    decisions = [True, False, True, False]
    trace = Trace(scen=None)
    accepted = []
    for loop, decision in enumerate(decisions):
        task = FactorTask("factor_{}".format(loop), "a factor", "x_t")
        exp = QlibFactorExperiment(sub_tasks=[task], based_experiments=list(accepted))
        exp.hypothesis = Hypothesis("h", "r", "c", "a", "b", "d")
        exp.result = pd.Series({"IC": 0.01 * (loop + 1), "ICIR": 0.1 * (loop + 1)})
        workspace = Path(exp.experiment_workspace.workspace_path)
        workspace.mkdir(parents=True, exist_ok=True)
        (workspace / "combined_factors_df.parquet").write_bytes(b"PAR1" + b"\\0" * 8 + b"PAR1")
        trace.hist.append((exp, HypothesisFeedback(reason="r", decision=decision)))
        trace.dag_parent.append((loop - 1,) if loop else ())
        trace.idx2loop_id[len(trace.hist) - 1] = loop
        if decision:
            accepted.append(exp)
    loop_obj = FactorRDLoop.__new__(FactorRDLoop)
    loop_obj.__dict__.update({"trace": trace, "loop_idx": len(decisions), "step_idx": defaultdict(int),
                              "loop_prev_out": defaultdict(dict)})
    snapshot = root / "log" / "2026-09-30_12-00-00-000000" / "__session__" / "3" / "4_record"
    snapshot.parent.mkdir(parents=True)
    with open(snapshot, "wb") as f:
        dump(loop_obj, f)
    print(accepted[-1].experiment_workspace.workspace_path)
    """
)


def rd_chain_binary():
    given = os.environ.get("RD_CHAIN_BIN")
    if given:
        return given
    for profile in ("debug", "release"):
        candidate = SCRIPTS.parent / "target" / profile / "rd-chain"
        if candidate.is_file():
            return str(candidate)
    pytest.fail("build rd-chain first (cargo build), or point RD_CHAIN_BIN at it")


def test_rd_chain_reads_a_snapshot_rdagent_itself_signed(tmp_path):
    key = "a signing key of at least thirty-two bytes for RD-Agent"
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path / "home"), "ARTIFACT_SIGNING_KEY": key,
           "PYTHONDONTWRITEBYTECODE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    writer = tmp_path / "writer.py"
    writer.write_text(SNAPSHOT_WRITER)
    proc = subprocess.run([sys.executable, str(writer), str(tmp_path)], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sota_workspace = proc.stdout.strip().splitlines()[-1]
    log_dir = tmp_path / "log" / "2026-09-30_12-00-00-000000"

    out = subprocess.run([rd_chain_binary(), "inspect", "--json", str(log_dir)], cwd=str(tmp_path), env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["snapshot"]["signed"] is True
    assert doc["snapshot"]["signature"] == "verified"
    assert doc["snapshot"]["loop_class"] == "rdagent.app.qlib_rd_loop.factor.FactorRDLoop"
    history = doc["history"]
    assert [h["decision"] for h in history] == [True, False, True, False]
    assert [h["loop"] for h in history] == [0, 1, 2, 3]
    assert all(h["class"].endswith("factor_experiment.QlibFactorExperiment") for h in history)
    assert history[2]["metrics"] == {"IC": pytest.approx(0.03), "ICIR": pytest.approx(0.3)}
    # The SOTA is the last accepted factor experiment (loop 2), not the first one.
    assert doc["pick"]["index"] == 2 and doc["workspace"] == sota_workspace

    # resolve checks the signature only when asked: with --verify and RD-Agent's key it verifies.
    out = subprocess.run([rd_chain_binary(), "resolve", "--verify", str(log_dir)], cwd=str(tmp_path), env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == sota_workspace, out.stderr

    # The same file under another key: inspect reads it all the same and reports the mismatch, resolve --verify
    # refuses it (exit 3, nothing on stdout), and resolve alone checks nothing and prints the workspace.
    env["ARTIFACT_SIGNING_KEY"] = "another key of at least thirty-two bytes, not RD-Agent's"
    out = subprocess.run([rd_chain_binary(), "inspect", "--json", str(log_dir)], cwd=str(tmp_path), env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["snapshot"]["signature"] == "mismatch"
    assert "does not match" in out.stderr
    out = subprocess.run([rd_chain_binary(), "resolve", "--verify", str(log_dir)], cwd=str(tmp_path), env=env,
                         capture_output=True, text=True)
    assert out.returncode == 3 and out.stdout == "", out.stderr
    assert "not verified" in out.stderr and "does NOT match" in out.stderr
    out = subprocess.run([rd_chain_binary(), "resolve", str(log_dir)], cwd=str(tmp_path), env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == sota_workspace, out.stderr
    assert "does not match" not in out.stderr


# USE_ALPHA_FACTORS=false: the driver records everything RD-Agent hands to Qlib (the whole run_env and the
# config file the workspace would render), with two base features on the experiment.
ALPHA_DRIVER = model_runner_driver(
    '''{"config": qlib_config_name, "run_env": {k: str(v) for k, v in (run_env or {}).items()},
                  "template": self.file_dict.get(qlib_config_name)}''',
    '{"RESI5": "Resi($close, 5)/$close", "WVMA5": "Std($volume, 5)/$volume"}',
    '"base_features_after": exp.base_features,',
)


def render_like_qrun(template, run_env):
    """What Qlib's `qrun` does with a config template: jinja2 with the variables found in its environment
    (undefined ones render empty), then YAML."""
    jinja2 = pytest.importorskip("jinja2")
    yaml = pytest.importorskip("yaml")
    from jinja2 import meta

    variables = meta.find_undeclared_variables(jinja2.Environment().parse(template))
    return yaml.safe_load(jinja2.Template(template).render({v: run_env[v] for v in variables if v in run_env}))


def qlib_fields(fields_info):
    """Qlib's DLWParser rule for one field group: a non-empty list or tuple, either of expressions or an
    (expressions, names) pair; returns (expressions, names) or raises as Qlib does."""
    if len(fields_info) == 0:
        raise ValueError("The size of fields must be greater than 0")
    if not isinstance(fields_info, (list, tuple)):
        raise TypeError("Unsupported type")
    if isinstance(fields_info[0], str):
        return fields_info, fields_info
    if isinstance(fields_info[0], (list, tuple)):
        exprs, names = fields_info
        return exprs, names
    raise NotImplementedError("This type of input is not supported")


def test_real_rdagent_with_use_alpha_factors_false_trains_on_the_sota_factors_alone(tmp_path):
    workspace = tmp_path / "factor_ws" / "00112233445566778899aabbccddeeff"
    write_factors(workspace / "combined_factors_df.parquet")
    report_file = tmp_path / "hook-report.tsv"
    proc, report = run(
        tmp_path,
        {"LOAD_SOTA_FROM_WORKSPACE": "true", "SOTA_WORKSPACE_PATH": str(workspace), "USE_ALPHA_FACTORS": "false",
         "RD_CHAIN_HOOK_REPORT": str(report_file)},
        driver_source=ALPHA_DRIVER,
    )
    assert proc.returncode == 0 and report is not None, proc.stderr[-3000:]

    # RD-Agent's own model runner took its SOTA branch with no base features.
    assert len(report["calls"]) == 1
    call = report["calls"][0]
    assert call["config"] == "conf_sota_factors_model.yaml"
    assert call["run_env"]["feature_names"] == "[]"
    assert call["run_env"]["feature_expressions"] == "[]"
    assert call["run_env"]["num_features"] == str(len(FACTORS))
    assert report["columns"] == [["feature", n] for n in FACTORS]
    assert report["base_features_after"] == {}
    assert report["state"]["alpha_factors"] is False and report["state"]["used"] == 1
    assert "USE_ALPHA_FACTORS=false: the model trains on the SOTA factors alone (2 base feature(s) left out)" \
        in proc.stderr

    # The config RD-Agent's workspace holds renders, with that environment, to valid YAML whose Alpha158DL
    # feature group is an empty (expressions, names) pair, which Qlib's loader config parser accepts.
    assert call["template"], "the workspace holds no conf_sota_factors_model.yaml"
    config = render_like_qrun(call["template"], call["run_env"])
    loaders = config["data_handler_config"]["data_loader"]["kwargs"]["dataloader_l"]
    alpha = [dl for dl in loaders if dl["class"].endswith("Alpha158DL")]
    static = [dl for dl in loaders if dl["class"].endswith("StaticDataLoader")]
    assert len(alpha) == 1 and len(static) == 1, loaders
    assert alpha[0]["kwargs"]["config"]["feature"] == [[], []]
    assert qlib_fields(alpha[0]["kwargs"]["config"]["feature"]) == ([], [])
    assert qlib_fields(alpha[0]["kwargs"]["config"]["label"]) == (["Ref($close, -2)/Ref($close, -1) - 1"],
                                                                  ["LABEL0"])
    assert static[0]["kwargs"]["config"] == "combined_factors_df.parquet"
    assert config["task"]["model"]["kwargs"]["pt_model_kwargs"]["num_features"] == len(FACTORS)

    # But Qlib loads that group through D.features, which refuses an empty field list ("fields cannot be empty",
    # qlib/data/data.py): the hook says so, and reports it for rd-chain.
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("rd-chain hook: warning:")]
    assert len(warnings) == 1 and "Alpha158DL an empty 'feature' field list" in warnings[0], proc.stderr[-3000:]
    events = [line.split("\t") for line in report_file.read_text().splitlines()]
    assert [e[0] for e in events] == ["armed", "base_features", "template", "used"]
    assert events[1][2:] == ["dropped", "2"]

    # The same factors with the base features (true): trained again, not served from RD-Agent's result cache
    # (the cache keys on task information, and the hook's marker task says "without base features").
    proc, report = run(tmp_path, {"LOAD_SOTA_FROM_WORKSPACE": "true", "SOTA_WORKSPACE_PATH": str(workspace),
                                  "USE_ALPHA_FACTORS": "true"}, driver_source=ALPHA_DRIVER)
    assert proc.returncode == 0 and report is not None, proc.stderr[-3000:]
    assert len(report["calls"]) == 1, "a result trained without the base features was served"
    run_env = report["calls"][0]["run_env"]
    assert run_env["feature_names"] == "['RESI5', 'WVMA5']"
    assert run_env["num_features"] == str(2 + len(FACTORS))
    assert report["base_features_after"] == {"RESI5": "Resi($close, 5)/$close", "WVMA5": "Std($volume, 5)/$volume"}


def test_real_rdagents_sota_template_is_checked_for_base_features(tmp_path):
    """The check a dry run can make before anything starts: RD-Agent's installed SOTA template, as is."""
    import importlib.util

    pytest.importorskip("jinja2")
    pytest.importorskip("yaml")
    spec = importlib.util.spec_from_file_location("rd_chain_hook_under_test", str(HOOK_SOURCE))
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    package = importlib.util.find_spec("rdagent").submodule_search_locations[0]
    template = Path(package) / "scenarios" / "qlib" / "experiment" / "model_template" / "conf_sota_factors_model.yaml"
    text = template.read_text()
    problem = hook.sota_template_problem(text)
    assert problem is not None and "Alpha158DL" in problem and "fields cannot be empty" in problem
    # Without its base-feature loader the same template has nothing to refuse.
    start = text.index("- class: qlib.contrib.data.loader.Alpha158DL")
    end = text.index("- class: qlib.data.dataset.loader.StaticDataLoader")
    assert hook.sota_template_problem(text[:start] + text[end:]) is None
