"""MLflow: where the tracking store lives and how to reach it, the registry of model pairs (two
models + meta + what-if fits as one folder), the pyfunc wrappers and the promotion gate.

May import models, whatif, features, data and errors; never scoring, report or commands.
"""

import os

# MLflow reads some of these when it is imported (its log level, GitPython's refresh) and the
# rest when it logs (run links printed to stdout, progress bars): set quiet defaults before any
# module of this package imports it. A user's own values win.
QUIET_ENV = {
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_LOGGING_LEVEL": "ERROR",
    "GIT_PYTHON_REFRESH": "quiet",
}
for _key, _value in QUIET_ENV.items():
    os.environ.setdefault(_key, _value)
