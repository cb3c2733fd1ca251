"""Training targets, exactly as the contract defines them, on the same rows as the panel.

- headcount(t): employed at the end of month t (whole months).
- leavers(t, h): of those, how many leave voluntarily in months t+1 .. t+h. Transfers and
  involuntary exits are not leavers; a hire after t is not in the cohort.
- csat_change(t, h): response-weighted mean CSAT over t+1 .. t+h minus that over t-2 .. t
  (rows without responses weigh 1); NaN when either window has no CSAT.

A row whose horizon runs past the latest complete month is unlabelled (NaN), never zero.
Targets look into the future by design; nothing here may feed `features.py`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecast.data.tables import MAX_HORIZON, Tables
from forecast.errors import check_param
from forecast.features.grid import (
    assemble,
    divide,
    headcount_grid,
    interval_counts,
    make_grid,
    make_spells,
    monthly_grid,
    panel_months,
    voluntary_leaves,
    weight_grid,
)


def build_targets(tables: Tables, horizon: int) -> pd.DataFrame:
    """Columns: team_id, as_of, headcount, leavers, csat_change, csat_weight, labelled.

    Rows are the panel's: every (team, month) with headcount >= 1, sorted by (team_id, as_of).
    `csat_weight` is the sum of response weights in the future window (for weighting the CSAT
    model); NaN when unlabelled.
    """
    ok = isinstance(horizon, int | np.integer) and not isinstance(horizon, bool)
    check_param(
        "horizon",
        horizon,
        ok and 1 <= horizon <= MAX_HORIZON,
        f"an integer between 1 and {MAX_HORIZON}",
    )
    first, last = panel_months(tables)
    grid = make_grid(tables, first, last)
    spells = make_spells(tables.employees, grid)
    hc = headcount_grid(spells, grid.shape)
    n_months = grid.n_months
    labelled = np.broadcast_to(np.arange(n_months) + horizon <= n_months - 1, grid.shape)

    # A voluntary exit in month b counts for every t with the spell employed at the end of t
    # and b in t+1 .. t+h, i.e. t in [max(hire, b - h), b - 1].
    vol = voluntary_leaves(spells)
    leavers = interval_counts(
        spells.team[vol],
        np.maximum(spells.a[vol], spells.b[vol] - horizon),
        spells.b[vol],
        grid.shape,
    ).astype(np.float64)
    leavers = np.where(labelled, leavers, np.nan)

    change = np.full(grid.shape, np.nan)
    future_weight = np.where(labelled, 0.0, np.nan)
    if tables.cx is not None and "csat" in tables.cx.columns and n_months:
        csat, _ = monthly_grid(tables.cx, "csat", grid)
        w = np.where(np.isnan(csat), 0.0, weight_grid(tables.cx, "responses", grid))
        cw = np.where(np.isnan(csat), 0.0, csat) * w
        before = divide(_window(cw, -2, 0), _window(w, -2, 0))
        fut_w = _window(w, 1, horizon)
        after = divide(_window(cw, 1, horizon), fut_w)
        change = np.where(labelled, after - before, np.nan)
        future_weight = np.where(labelled, fut_w, np.nan)

    return assemble(
        grid,
        hc,
        {
            "leavers": leavers,
            "csat_change": change,
            "csat_weight": future_weight,
        },
    ).assign(labelled=lambda f: f["leavers"].notna())


def _window(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Sum of x over columns j+lo .. j+hi for each column j (columns off the grid add 0)."""
    n_rows, n_months = x.shape
    c = np.zeros((n_rows, n_months + 1))
    np.cumsum(x, axis=1, out=c[:, 1:])
    j = np.arange(n_months)
    top = np.clip(j + hi + 1, 0, n_months)
    bottom = np.clip(j + lo, 0, n_months)
    return c[:, top] - c[:, bottom]
