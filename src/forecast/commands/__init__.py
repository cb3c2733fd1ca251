"""One module per command: the only place that combines I/O, MLflow, progress and the steps of
the layers below. `forecast.cli` parses options and calls one function here.

May import every layer below; never `forecast.cli`.
"""

# MLflow's quiet environment must be set before a command module imports MLflow.
import forecast.mlops  # noqa: F401
