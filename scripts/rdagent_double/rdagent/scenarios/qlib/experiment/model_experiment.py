"""Double of `rdagent.scenarios.qlib.experiment.model_experiment`."""

from rdagent.core.experiment import Experiment


class QlibModelExperiment(Experiment):
    """A model experiment. The model runner records on it what it chose: `chosen_config` (the qlib config file
    name), `num_features` (the base features plus the SOTA factor columns, or None on the baseline branch) and
    `feature_names` / `feature_expressions` (what it would render into the Qlib config from `base_features`, a
    dict of name -> Qlib expression, empty by default as in RD-Agent 1.0)."""

    def __init__(self, sub_tasks=None, *args, **kwargs):
        super().__init__(sub_tasks, *args, **kwargs)
        self.chosen_config = None
        self.num_features = None
        self.base_features = {}
        self.feature_names = None
        self.feature_expressions = None
