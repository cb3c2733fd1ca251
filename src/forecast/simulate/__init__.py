"""The synthetic organisation with known causes: demos, tests and benchmarks need data whose
causes are known. It writes the data contract's format and its own truth.

Sits beside `forecast.data` (it may use `data` and `errors`); only `forecast.commands` and the
tests use it. It must never import features, models, whatif, mlops, scoring or report.
"""

from forecast.simulate.config import CLI_OPTIONS, Effects, SimConfig
from forecast.simulate.organisation import SimResult, check_truth, simulate, write_simulation

__all__ = [
    "CLI_OPTIONS",
    "Effects",
    "SimConfig",
    "SimResult",
    "check_truth",
    "simulate",
    "write_simulation",
]
