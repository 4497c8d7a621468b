"""Test double of the `rdagent` package: RD-Agent's module paths and the few behaviours rd-chain relies on.

Written from RD-Agent's documented behaviour; no RD-Agent code is copied. It exists so the
rd-chain hook (scripts/rdagent_hook/sitecustomize.py) and the simulated rdagent (scripts/fake-rdagent) can be
tested without RD-Agent. It must never be installed next to, or mistaken for, the real package.

Interface (kept stable for the simulated rdagent):

    from rdagent.scenarios.qlib.experiment.model_experiment import QlibModelExperiment
    from rdagent.scenarios.qlib.experiment.factor_experiment import QlibFactorExperiment
    from rdagent.scenarios.qlib.developer import model_runner

    exp = QlibModelExperiment(sub_tasks=[], workspace_path=some_dir)   # workspace_path optional
    exp.based_experiments = [...]                                      # list, tuple or None
    model_runner.QlibModelRunner().develop(exp)
    exp.chosen_config   # "conf_sota_factors_model.yaml" or "conf_baseline_factors_model.yaml"
    exp.num_features    # SOTA factor columns written, or None on the baseline branch
    # SOTA branch: <exp.experiment_workspace.workspace_path>/combined_factors_df.parquet holds the factors.
    model_runner.DEVELOP_LOG  # one dict per develop, in order

The SOTA branch needs pandas and pyarrow; the baseline branch needs neither. RDAGENT_DOUBLE_SOTA_RULE selects
upstream's "more than one factor experiment" (more-than-one, the default) or the seed fork's "at least one"
(at-least-one).
"""

IS_RD_CHAIN_TEST_DOUBLE = True
