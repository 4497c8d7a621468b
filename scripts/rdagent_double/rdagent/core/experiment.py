"""Double of `rdagent.core.experiment`: the experiment state keys rd-chain and the model runner read."""


class Experiment:
    """An experiment: sub tasks, the experiments it builds on, its workspace and its result (None until run)."""

    def __init__(self, sub_tasks=None, based_experiments=None, hypothesis=None, workspace_path=None):
        from rdagent.scenarios.qlib.experiment.workspace import QlibFBWorkspace

        self.sub_tasks = list(sub_tasks) if sub_tasks is not None else []
        self.sub_workspace_list = [None] * len(self.sub_tasks)
        self.based_experiments = list(based_experiments) if based_experiments is not None else []
        self.hypothesis = hypothesis
        self.experiment_workspace = QlibFBWorkspace(workspace_path=workspace_path)
        self.result = None
        self.stdout = ""

    def __repr__(self):
        return "<{} {} sub_tasks={} result={}>".format(
            type(self).__name__,
            self.experiment_workspace.workspace_path if self.experiment_workspace is not None else None,
            len(self.sub_tasks),
            "None" if self.result is None else "set",
        )
