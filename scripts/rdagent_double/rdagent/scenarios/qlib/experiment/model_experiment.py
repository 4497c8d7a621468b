"""Double of `rdagent.scenarios.qlib.experiment.model_experiment`."""

import os
from pathlib import Path

from rdagent.core.experiment import Experiment

# The Qlib config templates RD-Agent's model experiment injects into its workspace.
TEMPLATE_DIR = Path(__file__).resolve().parent / "model_template"


class QlibModelExperiment(Experiment):
    """A model experiment. The model runner records on it what it chose: `chosen_config` (the qlib config file
    name), `num_features` (the base features plus the SOTA factor columns, or None on the baseline branch) and
    `feature_names` / `feature_expressions` (what it would render into the Qlib config from `base_features`, a
    dict of name -> Qlib expression, empty by default as in RD-Agent 1.0). With RDAGENT_DOUBLE_INJECT_TEMPLATE=1
    the workspace's `file_dict` holds the files of `model_template/`, as RD-Agent's does."""

    def __init__(self, sub_tasks=None, *args, **kwargs):
        super().__init__(sub_tasks, *args, **kwargs)
        self.chosen_config = None
        self.num_features = None
        self.base_features = {}
        self.feature_names = None
        self.feature_expressions = None
        workspace = getattr(self, "experiment_workspace", None)
        if os.environ.get("RDAGENT_DOUBLE_INJECT_TEMPLATE") == "1" and workspace is not None:
            for path in sorted(TEMPLATE_DIR.glob("*.yaml")):
                workspace.file_dict.setdefault(path.name, path.read_text())
