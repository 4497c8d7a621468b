"""Double of `rdagent.scenarios.qlib.experiment.factor_experiment`."""

from rdagent.core.experiment import Experiment


class QlibFactorExperiment(Experiment):
    """A factor experiment. Its factors are the `combined_factors_df.parquet` in its workspace (see
    `model_runner.process_factor_data`); one without sub tasks (the initial baseline) has none."""

    def __init__(self, sub_tasks=None, *args, **kwargs):
        super().__init__(sub_tasks, *args, **kwargs)
