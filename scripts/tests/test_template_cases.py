"""The hook's `sota_template_problem` against the shared SOTA template cases (scripts/rdagent_double/
sota_templates/verdicts.tsv), the same table rd-chain's Rust check (src/hook/template.rs) is tested against, so
the dry run's verdict and the hook's warning cannot disagree on a template."""

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("jinja2")
pytest.importorskip("yaml")

SCRIPTS = Path(__file__).resolve().parent.parent
HOOK_SOURCE = SCRIPTS / "rdagent_hook" / "sitecustomize.py"
CASES_DIR = SCRIPTS / "rdagent_double" / "sota_templates"


def load_hook():
    spec = importlib.util.spec_from_file_location("rd_chain_hook_template_cases", str(HOOK_SOURCE))
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    return hook


def cases():
    rows = []
    for line in (CASES_DIR / "verdicts.tsv").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        rows.append(pytest.param(fields[0], fields[1], tuple(fields[2:4]), id=Path(fields[0]).stem))
    return rows


HOOK = load_hook()


def test_the_table_has_both_verdicts():
    verdicts = [case.values[1] for case in cases()]
    assert verdicts.count("runs") >= 2 and verdicts.count("needs-base-features") >= 2, verdicts


@pytest.mark.parametrize("name,verdict,where", cases())
def test_the_hook_gives_each_shared_case_its_verdict(name, verdict, where):
    text = (CASES_DIR / name).read_text()
    problem = HOOK.sota_template_problem(text)
    config = HOOK.render_qlib_config(text, {"feature_names": "[]", "feature_expressions": "[]",
                                            "num_features": "1", "dataset_cls": "DatasetH"})
    empty = HOOK.empty_loader_groups(config)
    if verdict == "runs":
        assert problem is None and empty == [], (problem, empty)
    else:
        assert verdict == "needs-base-features"
        assert empty[0] == where, empty
        loader, group = where
        assert "{} an empty '{}' field list".format(loader, group) in problem
        assert "fields cannot be empty" in problem


def test_with_base_features_every_case_has_fields():
    # The verdicts are about leaving the base features out: with one base feature no loader is empty.
    for case in cases():
        text = (CASES_DIR / case.values[0]).read_text()
        config = HOOK.render_qlib_config(text, {"feature_names": "['RESI5']", "feature_expressions":
                                                "['Resi($close, 5)/$close']", "num_features": "2"})
        assert HOOK.empty_loader_groups(config) == [], case.values[0]
