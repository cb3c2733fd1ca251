"""The in-memory form of a contract data directory: typed, validated tables.

`contract.load_tables(path)` builds it from files; the simulator and tests may build it
directly with `Tables.from_frames(...)`. Everything downstream (features, targets, models)
takes a `Tables` and never opens a file.

Normalised column types:
- identifiers (`employee_id`, `team_id`, any `*_id`/`*_code`/`*_key` column): pandas string
- `hire_date`, `exit_date`: datetime64[ns] (`exit_date` NaT while employed)
- `exit_type`: lower-case string (`voluntary`, `involuntary`, `transfer`) or <NA>
- `month`: Period[M]
- signal columns: float64, always finite (NaN where suppressed / empty, or a MISSING_TOKENS
  cell); `responses`: float64 (NaN = absent)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

PROTECTED = (
    "gender",
    "sex",
    "age",
    "birth_year",
    "date_of_birth",
    "ethnicity",
    "race",
    "religion",
    "disability",
    "marital_status",
    "nationality",
)
TABLE_NAMES = ("employees", "engagement", "workload", "cx")
MONTHLY_TABLES = ("engagement", "workload", "cx")
ID_SUFFIXES = ("_id", "_code", "_key")
EXIT_TYPES = ("voluntary", "involuntary", "transfer")
VOLUNTARY = "voluntary"  # the only exit type that counts as a leaver (contract)
# Months a forecast may look ahead: the contract's horizon (default 3) is 1 to MAX_HORIZON.
DEFAULT_HORIZON, MAX_HORIZON = 3, 24
# Columns of the monthly tables that are keys or weights, never signals.
NON_SIGNAL = {"team_id", "month", "responses"}
# Cells that mean "no value" in a numeric column, a date or exit_type (matched after stripping
# spaces, in any letter case). Identifiers are exempt: a team called NA is the team NA.
MISSING_TOKENS = ("", "NA", "N/A", "#N/A", "NaN", "null", "None", "-")


def is_protected(column: str) -> bool:
    return column.lower() in PROTECTED


def is_identifier_like(column: str) -> bool:
    return column == "employee_id" or column.lower().endswith(ID_SUFFIXES)


@dataclass(frozen=True)
class Tables:
    employees: pd.DataFrame
    engagement: pd.DataFrame | None = None
    workload: pd.DataFrame | None = None
    cx: pd.DataFrame | None = None
    # First month whose records are complete (meta.json `data_start`); None = all months.
    data_start: pd.Period | None = None
    # Signal columns per monthly table, discovered by type (protected and id-like excluded).
    signals: dict[str, list[str]] = field(default_factory=dict)
    # Protected attribute columns seen in employees (never features unless a spec opts in).
    protected: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def table(self, name: str) -> pd.DataFrame | None:
        return getattr(self, name)

    def present(self) -> list[str]:
        return [n for n in TABLE_NAMES if self.table(n) is not None]
