"""Double of `rdagent.scenarios.qlib.experiment.workspace`: a workspace is a directory named by a uuid4 hex."""

import os
import uuid
from pathlib import Path

DEFAULT_WORKSPACE_ROOT = os.path.join("git_ignore_folder", "RD-Agent_workspace")


class QlibFBWorkspace:
    """`workspace_path` is `$WORKSPACE_PATH/<uuid4 hex>` (default root `git_ignore_folder/RD-Agent_workspace`)
    unless given. The directory is created only when something is written into it."""

    def __init__(self, workspace_path=None, template_folder_path=None):
        if workspace_path is None:
            root = os.environ.get("WORKSPACE_PATH") or DEFAULT_WORKSPACE_ROOT
            workspace_path = Path(root) / uuid.uuid4().hex
        self.workspace_path = Path(workspace_path)
        self.template_folder_path = template_folder_path
        # File name -> text, as RD-Agent's workspace holds its injected template and code.
        self.file_dict = {}

    def __repr__(self):
        return "<QlibFBWorkspace {}>".format(self.workspace_path)
