"""The dense (team x month) grid every feature and target is computed on: which months a panel
spans, the tables as known at the end of a month, employee spells on the grid, and the counting
helpers (interval sums, event counts, window sums) built from cumulative sums. Pure numpy and
pandas: no file, no print, no MLflow. Imports only `forecast.data` and `forecast.errors`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast.data.contract import latest_complete_month
from forecast.data.months import NEVER, dates_to_ordinal, from_ordinal, to_ordinal
from forecast.data.tables import VOLUNTARY, Tables


def panel_months(tables: Tables) -> tuple[pd.Period, pd.Period]:
    """First and last as-of month of the panel.

    First: `data_start` when set (earlier months are incomplete), else the earliest month any
    table mentions. Last: the latest complete month (contract). Adding later rows never
    moves the first month, which keeps the as-of path equal to the full panel.
    """
    last = latest_complete_month(tables)
    if tables.data_start is not None:
        return pd.Period(tables.data_start, freq="M"), last
    firsts = [int(dates_to_ordinal(tables.employees["hire_date"]).min())]
    for name in ("engagement", "workload", "cx"):
        t = tables.table(name)
        if t is not None and len(t):
            firsts.append(int(to_ordinal(t["month"]).min()))
    return pd.Period(ordinal=min(firsts), freq="M"), last


def point_in_time(tables: Tables, month: pd.Period) -> Tables:
    """The tables as they were known at the end of `month`: later hires and monthly rows are
    dropped, and an exit after `month` is not yet known (HRIS exports often fill a future
    exit date into a spell that is still open: the look-ahead trap)."""
    end = pd.Period(month, freq="M").ordinal
    emp = tables.employees
    hire = dates_to_ordinal(emp["hire_date"])
    emp = emp.loc[hire <= end].copy()
    future_exit = dates_to_ordinal(emp["exit_date"]) > end
    if future_exit.any():
        emp.loc[future_exit, "exit_date"] = pd.NaT
        emp.loc[future_exit, "exit_type"] = pd.NA
    changes: dict[str, object] = {"employees": emp}
    for name in ("engagement", "workload", "cx"):
        t = tables.table(name)
        if t is not None:
            changes[name] = t.loc[to_ordinal(t["month"]) <= end]
    return dataclasses.replace(tables, **changes)


@dataclass
class Grid:
    """Teams x months: row i is `teams[i]`, column j is month `first + j`."""

    teams: np.ndarray  # sorted team ids (object array of str)
    first: int  # ordinal of column 0
    n_months: int

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.teams), self.n_months

    def codes(self, team_ids: pd.Series) -> np.ndarray:
        return pd.Index(self.teams).get_indexer(team_ids.astype("string").to_numpy(dtype=object))


@dataclass
class Spells:
    """Employee spells on the grid: employed in columns [a, b), hired in a, left in b."""

    team: np.ndarray
    a: np.ndarray  # hire month - first (may be negative: hired before the panel starts)
    b: np.ndarray  # exit month - first (huge while open)
    exit_type: np.ndarray  # "voluntary", "involuntary", "transfer" or "" while open
    transfer_in: np.ndarray  # bool: the employee's previous spell ended by transfer
    frame_index: np.ndarray  # row positions in the employees frame


def make_grid(tables: Tables, first: pd.Period, last: pd.Period) -> Grid:
    teams = np.sort(tables.employees["team_id"].astype("string").unique().to_numpy(dtype=object))
    return Grid(teams=teams, first=first.ordinal, n_months=max(last.ordinal - first.ordinal + 1, 0))


def make_spells(employees: pd.DataFrame, grid: Grid) -> Spells:
    a = dates_to_ordinal(employees["hire_date"])
    b = dates_to_ordinal(employees["exit_date"])
    etype = employees["exit_type"].astype("string").fillna("").str.lower().to_numpy(dtype=object)
    # A spell starting where the same employee's previous spell ended by transfer is a move
    # between teams, not a hire. Known at the hire date, so it is point-in-time safe.
    emp_ids = employees["employee_id"].astype("string").to_numpy(dtype=object)
    hire_ns = employees["hire_date"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    exit_ns = employees["exit_date"].to_numpy(dtype="datetime64[ns]")
    exit_ns = np.where(np.isnat(exit_ns), np.iinfo(np.int64).max, exit_ns.astype(np.int64))
    order = np.lexsort((exit_ns, hire_ns, emp_ids))
    same = emp_ids[order][1:] == emp_ids[order][:-1]
    prev_transfer = np.zeros(len(a), dtype=bool)
    prev_transfer[order[1:]] = same & (etype[order][:-1] == "transfer")
    first = grid.first
    far = np.int64(NEVER) - first
    return Spells(
        team=grid.codes(employees["team_id"]),
        a=a - first,
        b=np.where(b >= NEVER, far, b - first),
        exit_type=etype,
        transfer_in=prev_transfer,
        frame_index=np.arange(len(a)),
    )


def interval_counts(
    row: np.ndarray,
    start: np.ndarray,
    stop: np.ndarray,
    shape: tuple[int, int],
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Sum over intervals: out[row, j] = sum of weights of intervals with start <= j < stop
    (clipped to the grid). Integer counts stay exact, so team order never changes a sum."""
    n_rows, n_months = shape
    lo = np.clip(start, 0, n_months)
    hi = np.clip(stop, 0, n_months)
    keep = (lo < hi) & (row >= 0)
    width = n_months + 1
    size = n_rows * width
    w = None if weights is None else weights[keep]
    diff = np.bincount(row[keep] * width + lo[keep], weights=w, minlength=size)
    diff = diff - np.bincount(row[keep] * width + hi[keep], weights=w, minlength=size)
    out = np.cumsum(diff.reshape(n_rows, width)[:, :n_months], axis=1)
    return out if weights is not None else out.astype(np.int64)


def event_counts(row: np.ndarray, month: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """out[row, j] = number of events in column j (events off the grid are ignored)."""
    n_rows, n_months = shape
    keep = (month >= 0) & (month < n_months) & (row >= 0)
    flat = np.bincount(row[keep] * n_months + month[keep], minlength=n_rows * n_months)
    return flat.reshape(n_rows, n_months).astype(np.int64)


def headcount_grid(spells: Spells, shape: tuple[int, int]) -> np.ndarray:
    """Employed at the end of each month: hired in or before it and not exited in or before it
    (whole months; a same-month hire and exit is never counted)."""
    return interval_counts(spells.team, spells.a, spells.b, shape)


def window_sum(x: np.ndarray, window: int) -> np.ndarray:
    """Sum over the `window` months ending at each column (inclusive), from cumulative sums."""
    n_months = x.shape[1]
    c = np.zeros((x.shape[0], n_months + 1), dtype=x.dtype)
    np.cumsum(x, axis=1, out=c[:, 1:])
    j = np.arange(n_months)
    return c[:, j + 1] - c[:, np.maximum(j + 1 - window, 0)]


def divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def table_positions(table: pd.DataFrame, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """(keep, flat cell) of each row: rows outside the grid or of unknown teams are dropped."""
    row = grid.codes(table["team_id"])
    j = to_ordinal(table["month"]) - grid.first
    keep = (row >= 0) & (j >= 0) & (j < grid.n_months)
    return keep, row[keep] * grid.n_months + j[keep]


def monthly_grid(
    table: pd.DataFrame,
    column: str,
    grid: Grid,
    positions: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(values, present): the column on the grid (NaN where absent or suppressed), and whether a
    row exists for the cell."""
    keep, cell = positions if positions is not None else table_positions(table, grid)
    values = np.full(grid.shape, np.nan)
    present = np.zeros(grid.shape, dtype=bool)
    col = table[column]
    if not pd.api.types.is_float_dtype(col):
        col = pd.to_numeric(col, errors="coerce")
    x = col.to_numpy(dtype=np.float64, na_value=np.nan)
    values.ravel()[cell] = x[keep]
    present.ravel()[cell] = True
    return values, present


def weight_grid(
    table: pd.DataFrame,
    weight: str | None,
    grid: Grid,
    positions: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Row weights on the grid: the weight column, 1 where a row has none, 0 where no row."""
    keep, cell = positions if positions is not None else table_positions(table, grid)
    if weight is None or weight not in table.columns:
        present = np.zeros(grid.shape)
        present.ravel()[cell] = 1.0
        return present
    w, present = monthly_grid(table, weight, grid, (keep, cell))
    return np.where(present, np.where(np.isnan(w), 1.0, w), 0.0)


def last_observed_index(valid: np.ndarray) -> np.ndarray:
    """Column of the last valid value at or before each column (-1 when none yet)."""
    idx = np.where(valid, np.arange(valid.shape[1]), -1)
    return np.maximum.accumulate(idx, axis=1)


def take(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    rows = np.arange(values.shape[0])[:, None]
    return np.where(idx >= 0, values[rows, np.maximum(idx, 0)], np.nan)


def assemble(grid: Grid, hc: np.ndarray, arrays: dict[str, np.ndarray]) -> pd.DataFrame:
    """Flatten (team x month) arrays into rows where headcount >= 1, in (team_id, as_of) order."""
    cells = np.flatnonzero(hc.ravel() > 0)
    n_months = max(grid.n_months, 1)
    data: dict[str, object] = {
        "team_id": pd.array(grid.teams[cells // n_months], dtype="string"),
        "as_of": from_ordinal(grid.first + cells % n_months).array,
        "headcount": hc.ravel()[cells].astype(np.int64),
    }
    for name, arr in arrays.items():
        data[name] = np.ascontiguousarray(arr, dtype=np.float64).ravel()[cells]
    return pd.DataFrame(data)


def voluntary_leaves(spells: Spells) -> np.ndarray:
    """The spells that end in a voluntary leaver (contract): a voluntary exit of someone who was
    in a headcount, i.e. not hired in the month they left (whole months)."""
    return (spells.exit_type == VOLUNTARY) & (spells.a < spells.b)
