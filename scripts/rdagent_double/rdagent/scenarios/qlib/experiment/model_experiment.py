"""Double of `rdagent.scenarios.qlib.experiment.model_experiment`."""

from rdagent.core.experiment import Experiment


class QlibModelExperiment(Experiment):
    """A model experiment. The model runner records on it what it chose: `chosen_config` (the qlib config file
    name) and `num_features` (the number of SOTA factor columns, or None on the baseline branch)."""

    def __init__(self, sub_tasks=None, *args, **kwargs):
        super().__init__(sub_tasks, *args, **kwargs)
        self.chosen_config = None
        self.num_features = None
