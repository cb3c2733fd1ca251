"""The feature panel both models learn from and score on: one row per (team, as-of month).

One code path serves training and scoring (the feast lesson): `build_panel(tables, specs)`
builds every month, `build_panel(..., as_of=t)` builds month t from the tables truncated at
the end of t, and the two agree exactly. Everything for as-of t uses only data dated on or
before the end of t; features with no data yet are NaN, never filled from the future.

Families are declared in `features/*.yaml` (see `specs.py`); columns are named
`{family}__{signal}__{transform}`. The fast path works on dense (team x month) arrays indexed by
integer month ordinals, with cumulative sums for windows: no per-team Python loops. This module
never opens a file, never prints and never logs to MLflow.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast.data.months import month_str
from forecast.data.tables import NON_SIGNAL, VOLUNTARY, Tables, is_identifier_like, is_protected
from forecast.errors import ConfigError, SpecError
from forecast.features.grid import (
    Grid,
    Spells,
    assemble,
    divide,
    event_counts,
    headcount_grid,
    interval_counts,
    last_observed_index,
    make_grid,
    make_spells,
    monthly_grid,
    panel_months,
    point_in_time,
    table_positions,
    take,
    weight_grid,
    window_sum,
)
from forecast.features.names import BASELINE_COLUMNS, BASELINE_ORG_WINDOW, feature_name
from forecast.features.specs import (
    EMPLOYEE_KINDS,
    EMPLOYEE_SIGNALS,
    FamilySpec,
    FeatureSpecs,
    Transform,
)

# The people_flow signals counting exits, by the exit type they count.
EXIT_KIND = {"transfers_out": "transfer", "vol_leavers": VOLUNTARY, "invol_leavers": "involuntary"}
MIN_TREND_POINTS = 3  # a slope through two points is mostly noise
log = logging.getLogger("forecast")


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class PlannedFeature:
    name: str
    family: str
    source: str
    column: str  # source column (monthly tables, protected) or employees measure
    signal: str  # the name used in the feature (after `rename`)
    transform: Transform
    protected: bool = False
    category: str | None = None  # for a categorical protected attribute: the value shared


def _discover_signals(table: pd.DataFrame) -> list[str]:
    """Numeric, non-key, non-identifier, non-protected columns (used when Tables.signals lacks
    the table, e.g. a Tables built by hand)."""
    return [
        c
        for c in table.columns
        if c not in NON_SIGNAL
        and not is_identifier_like(c)
        and not is_protected(c)
        and pd.api.types.is_numeric_dtype(table[c])
        and not pd.api.types.is_bool_dtype(table[c])
    ]


def _slug(value: object) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(value).strip().lower()).strip("_") or "blank"


def _protected_numeric(values: pd.Series) -> pd.Series | None:
    """The column as float when every present value is a number, else None (categorical)."""
    num = pd.to_numeric(values, errors="coerce")
    present = values.notna() & (values.astype("string").str.strip() != "").fillna(False)
    if bool((present & num.isna()).any()):
        return None
    return num.astype("float64")


def plan_features(tables: Tables, specs: FeatureSpecs) -> tuple[list[PlannedFeature], list[str]]:
    """The feature columns these specs produce on these tables' schema, and the warnings.

    Depends only on column names and types (and, for an opted-in categorical protected
    attribute, its values), so the scoring path and the training path plan the same columns.
    """
    plan: list[PlannedFeature] = []
    warnings: list[str] = []
    for spec in specs.families:
        table = tables.table(spec.source)
        if table is None:
            continue  # an optional table is absent: its family yields no columns
        if spec.source == "employees":
            plan += _plan_employees(spec, table, warnings)
        else:
            plan += _plan_monthly(spec, tables, table, warnings)
    seen: set[str] = set()
    for p in plan:
        if p.name in seen:
            raise SpecError(
                f"{specs.family(p.family).file}: two columns would both be named {p.name}; "
                f"check `rename`."
            )
        seen.add(p.name)
    return plan, warnings


def _protected_warning(spec: FamilySpec, col: str) -> str:
    return (
        f"{spec.file}: protected attribute `{col}` is opted in (`opt_in_protected`) and becomes "
        f"a feature of family {spec.family}; check this is lawful and intended."
    )


def _plan_employees(
    spec: FamilySpec, table: pd.DataFrame, warnings: list[str]
) -> list[PlannedFeature]:
    signals = EMPLOYEE_SIGNALS if spec.signals == "all_numeric" else tuple(spec.signals)
    signals = tuple(s for s in signals if s not in spec.exclude)
    out = []
    for signal in signals:
        for t in spec.transforms:
            if signal in EMPLOYEE_KINDS[t.kind][1] and (t.signals is None or signal in t.signals):
                name = spec.rename.get(signal, signal)
                out.append(
                    PlannedFeature(
                        feature_name(spec.family, name, t.name),
                        spec.family,
                        spec.source,
                        signal,
                        name,
                        t,
                    )
                )
    for col in spec.opt_in_protected:
        if col not in table.columns:
            warnings.append(
                f"{spec.file}: opted-in protected attribute `{col}` is not in "
                f"employees; nothing to add."
            )
            continue
        warnings.append(_protected_warning(spec, col))
        name = spec.rename.get(col, col)
        if _protected_numeric(table[col]) is not None:
            out.append(
                PlannedFeature(
                    feature_name(spec.family, name, "mean"),
                    spec.family,
                    spec.source,
                    col,
                    name,
                    Transform("mean"),
                    protected=True,
                )
            )
        else:
            values = table[col].dropna().astype("string").str.strip()
            for v in sorted(set(values[values != ""].tolist())):
                out.append(
                    PlannedFeature(
                        feature_name(spec.family, name, f"share_{_slug(v)}"),
                        spec.family,
                        spec.source,
                        col,
                        name,
                        Transform("share"),
                        protected=True,
                        category=v,
                    )
                )
    return out


def _plan_monthly(
    spec: FamilySpec, tables: Tables, table: pd.DataFrame, warnings: list[str]
) -> list[PlannedFeature]:
    if spec.signals == "all_numeric":
        known = tables.signals.get(spec.source)
        signals = list(known) if known is not None else _discover_signals(table)
    else:
        signals = []
        for col in spec.signals:
            if col not in table.columns:
                warnings.append(
                    f"{spec.file}: signal `{col}` is not in table {spec.source}; skipped."
                )
            elif is_protected(col) and col not in spec.opt_in_protected:
                warnings.append(
                    f"{spec.file}: `{col}` is a protected attribute and is not taken "
                    f"unless listed in `opt_in_protected`."
                )
            else:
                signals.append(col)
    signals = [s for s in signals if s not in spec.exclude]
    for col in spec.opt_in_protected:
        if col in table.columns and col not in signals:
            warnings.append(_protected_warning(spec, col))
            signals.append(col)
    extra: list[str] = []
    for t in spec.transforms:
        for col in t.signals or ():
            if col in table.columns and col not in signals and col not in extra:
                extra.append(col)
    out = []
    for col in signals + extra:
        name = spec.rename.get(col, col)
        for t in spec.transforms:
            applies = (col in t.signals) if t.signals is not None else col in signals
            if applies:
                out.append(
                    PlannedFeature(
                        feature_name(spec.family, name, t.name),
                        spec.family,
                        spec.source,
                        col,
                        name,
                        t,
                        protected=is_protected(col),
                    )
                )
    return out


# --------------------------------------------------------------------------- month window


# --------------------------------------------------------------------------- dense grid


# --------------------------------------------------------------------------- employees families


def _employee_features(
    plan: list[PlannedFeature],
    employees: pd.DataFrame,
    spells: Spells,
    hc: np.ndarray,
    grid: Grid,
) -> dict[str, np.ndarray]:
    shape = grid.shape
    n_months = grid.n_months
    in_grid_start = (spells.a >= 0) & (spells.a < n_months)
    events = {
        "hires": event_counts(
            spells.team, np.where(in_grid_start & ~spells.transfer_in, spells.a, -1), shape
        ),
        "transfers_in": event_counts(
            spells.team, np.where(in_grid_start & spells.transfer_in, spells.a, -1), shape
        ),
    }
    for signal, kind in EXIT_KIND.items():
        events[signal] = event_counts(
            spells.team, np.where(spells.exit_type == kind, spells.b, -1), shape
        )
    out: dict[str, np.ndarray] = {}
    median: np.ndarray | None = None
    for p in plan:
        t = p.transform
        if p.protected:
            out[p.name] = _protected_share(p, employees, spells, hc, shape)
        elif t.kind == "current":
            out[p.name] = hc.astype(np.float64)
        elif t.kind == "share_lt":
            assert t.window is not None
            n = interval_counts(
                spells.team, spells.a, np.minimum(spells.b, spells.a + t.window), shape
            )
            out[p.name] = divide(n.astype(np.float64), hc)
        elif t.kind == "median":
            median = median_tenure(spells, hc, shape) if median is None else median
            out[p.name] = median
        elif t.kind == "sum":
            assert t.window is not None
            out[p.name] = window_sum(events[p.column], t.window).astype(np.float64)
        elif t.kind == "longrun_rate_shrunk":
            assert t.prior is not None
            out[p.name] = longrun_rate_shrunk(spells, EXIT_KIND[p.column], hc, t.prior, shape)
        elif t.kind == "growth":
            assert t.window is not None
            out[p.name] = headcount_growth(hc, t.window)
        elif t.kind == "of_year":
            month = (grid.first + np.arange(n_months)) % 12 + 1  # ordinal 0 is January 1970
            out[p.name] = np.broadcast_to(month.astype(np.float64), shape).copy()
    return out


def headcount_growth(hc: np.ndarray, window: int) -> np.ndarray:
    """Headcount now over headcount `window` months earlier, minus 1 (NaN before the first
    month or where the team had nobody then)."""
    before = np.zeros_like(hc)
    if window < hc.shape[1]:
        before[:, window:] = hc[:, :-window]
    return divide(hc.astype(np.float64), before.astype(np.float64)) - 1.0


def median_tenure(spells: Spells, hc: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Median tenure in whole months (month minus hire month) of those employed at the end of
    each month. Person-months are expanded and sorted once by a packed (cell, tenure) key."""
    n_months = shape[1]
    lo = np.clip(spells.a, 0, n_months)
    hi = np.clip(spells.b, 0, n_months)
    keep = (lo < hi) & (spells.team >= 0)
    lo, hi, a, team = lo[keep], hi[keep], spells.a[keep], spells.team[keep]
    lengths = hi - lo
    total = int(lengths.sum())
    out = np.full(shape, np.nan)
    if total == 0:
        return out
    rep = np.repeat(np.arange(len(lo)), lengths)
    starts = np.cumsum(lengths) - lengths
    j = lo[rep] + (np.arange(total) - starts[rep])
    tenure = j - a[rep]
    span = int(tenure.max()) + 1
    key = (team[rep] * n_months + j) * span + tenure
    key.sort()
    tenure_sorted = key % span
    counts = hc.ravel()
    ends = np.cumsum(counts)
    begins = ends - counts
    cells = np.flatnonzero(counts > 0)
    lo_mid = begins[cells] + (counts[cells] - 1) // 2
    hi_mid = begins[cells] + counts[cells] // 2
    flat = out.ravel()
    flat[cells] = (tenure_sorted[lo_mid] + tenure_sorted[hi_mid]) / 2.0
    return flat.reshape(shape)


def longrun_rate_shrunk(
    spells: Spells, exit_kind: str, hc: np.ndarray, prior: float, shape: tuple[int, int]
) -> np.ndarray:
    """Leavers per person-month over all months so far, shrunk toward the organisation's rate:
    (team leavers + prior * org rate) / (team person-months + prior).

    A leaver in month s counts against the exposure headcount(s-1), as the target does (those
    employed at the end of the previous month); the first panel month has no exposure, so its
    leavers do not count. Counts are integers, so the organisation's sums are exact.
    """
    eligible = (spells.exit_type == exit_kind) & (spells.a < spells.b) & (spells.b >= 1)
    leavers = event_counts(spells.team, np.where(eligible, spells.b, -1), shape)
    cum_leavers = np.cumsum(leavers, axis=1)
    exposure = np.zeros_like(hc)
    exposure[:, 1:] = np.cumsum(hc, axis=1)[:, :-1]
    org_rate = divide(
        cum_leavers.sum(axis=0).astype(np.float64), exposure.sum(axis=0).astype(np.float64)
    )
    return (cum_leavers + prior * org_rate) / (exposure + prior)


def _protected_share(
    p: PlannedFeature,
    employees: pd.DataFrame,
    spells: Spells,
    hc: np.ndarray,
    shape: tuple[int, int],
) -> np.ndarray:
    """An opted-in protected attribute as a team aggregate over those employed: the mean of a
    numeric column, or the share holding one value of a categorical column."""
    values = employees[p.column]
    if p.category is None:
        num = _protected_numeric(values)
        assert num is not None
        x = num.to_numpy()
        has = ~np.isnan(x)
        total = interval_counts(
            spells.team[has], spells.a[has], spells.b[has], shape, weights=x[has]
        )
        count = interval_counts(spells.team[has], spells.a[has], spells.b[has], shape)
        return divide(total, count)
    match = (values.astype("string").str.strip() == p.category).fillna(False).to_numpy(bool)
    n = interval_counts(spells.team[match], spells.a[match], spells.b[match], shape)
    return divide(n.astype(np.float64), hc)


# --------------------------------------------------------------------------- monthly families


def monthly_transform(values: np.ndarray, weights: np.ndarray, t: Transform) -> np.ndarray:
    """One transform of one signal on the grid; months without a value are NaN inputs."""
    valid = ~np.isnan(values)
    w = np.where(valid, weights, 0.0)
    vw = np.where(valid, values, 0.0) * w
    if t.kind == "current":
        return values.copy()
    if t.kind in ("last", "age_months", "change"):
        idx = last_observed_index(valid)
        if t.kind == "last":
            return take(values, idx)
        if t.kind == "age_months":
            return np.where(idx >= 0, np.arange(values.shape[1]) - idx, np.nan).astype(np.float64)
        prev = np.full_like(idx, -1)
        prev[:, 1:] = idx[:, :-1]
        change_at = np.where(valid, values - take(values, prev), np.nan)
        return take(change_at, idx)
    if t.kind in ("longrun_mean", "vs_longrun"):
        mean = divide(np.cumsum(vw, axis=1), np.cumsum(w, axis=1))
        return mean if t.kind == "longrun_mean" else values - mean
    assert t.window is not None
    if t.kind == "mean":
        return divide(window_sum(vw, t.window), window_sum(w, t.window))
    if t.kind == "sum":
        return window_sum(np.where(valid, values, 0.0), t.window)
    if t.kind == "trend":
        return trend(values, t.window)
    raise ValueError(t.kind)  # specs.py validated the kinds; reaching here is a bug


def trend(values: np.ndarray, window: int) -> np.ndarray:
    """Least-squares slope per month of the values present in the last `window` months."""
    valid = ~np.isnan(values)
    x = np.broadcast_to(np.arange(values.shape[1], dtype=np.float64), values.shape)
    y = np.where(valid, values, 0.0)
    xv = np.where(valid, x, 0.0)
    n = window_sum(valid.astype(np.float64), window)
    sx, sy = window_sum(xv, window), window_sum(y, window)
    sxx, sxy = window_sum(xv * xv, window), window_sum(xv * y, window)
    den = n * sxx - sx * sx
    out = np.full(values.shape, np.nan)
    ok = (n >= MIN_TREND_POINTS) & (den > 0)
    out[ok] = (n * sxy - sx * sy)[ok] / den[ok]
    return out


def _monthly_features(
    plan: list[PlannedFeature], tables: Tables, specs: FeatureSpecs, grid: Grid
) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    cache: dict[tuple[str, str], np.ndarray] = {}
    weights: dict[tuple[str, str | None], np.ndarray] = {}
    positions: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for p in plan:
        table = tables.table(p.source)
        assert table is not None
        spec = specs.family(p.family)
        if p.source not in positions:
            positions[p.source] = table_positions(table, grid)
        pos = positions[p.source]
        if (p.source, p.column) not in cache:
            cache[(p.source, p.column)] = monthly_grid(table, p.column, grid, pos)[0]
        if (p.source, spec.weight) not in weights:
            weights[(p.source, spec.weight)] = weight_grid(table, spec.weight, grid, pos)
        out[p.name] = monthly_transform(
            cache[(p.source, p.column)], weights[(p.source, spec.weight)], p.transform
        )
    return out


# --------------------------------------------------------------------------- the panel


def build_panel(
    tables: Tables, specs: FeatureSpecs, *, as_of: pd.Period | str | None = None
) -> pd.DataFrame:
    """One row per (team, as-of month) with headcount >= 1, sorted by (team_id, as_of).

    Columns: team_id (string), as_of (Period[M]), headcount (int64), then float64 features in
    plan order. With `as_of`, only that month's rows, computed from the tables truncated at
    the end of `as_of` (the scoring path); they equal the same rows of the full panel.
    Warnings (e.g. an opted-in protected attribute) are logged and kept in
    `panel.attrs["warnings"]`; `panel.attrs["spec_hash"]` names the specs used.
    """
    plan, warnings = plan_features(tables, specs)
    for w in warnings:
        log.warning(w)
    first, last = panel_months(tables)
    if as_of is not None:
        month = pd.Period(as_of, freq="M")
        if not first <= month <= last:
            raise ConfigError(
                f"`--as-of` must be a month between {month_str(first)} and {month_str(last)} "
                f"(the latest complete month). Got {month_str(month)} instead."
            )
        tables, last = point_in_time(tables, month), month
    # Months before `first` (data_start) are off the grid, so they feed nothing; hire dates
    # before it still give the tenure of people employed at data_start.
    panel = compute_panel(tables, specs, plan, first, last)
    if as_of is not None:
        panel = panel.loc[panel["as_of"] == last].reset_index(drop=True)
    panel.attrs["warnings"] = list(warnings)
    panel.attrs["spec_hash"] = specs.hash()
    return panel


def compute_panel(
    tables: Tables,
    specs: FeatureSpecs,
    plan: list[PlannedFeature],
    first: pd.Period,
    last: pd.Period,
) -> pd.DataFrame:
    grid = make_grid(tables, first, last)
    spells = make_spells(tables.employees, grid)
    hc = headcount_grid(spells, grid.shape)
    emp_plan = [p for p in plan if p.source == "employees"]
    arrays = _employee_features(emp_plan, tables.employees, spells, hc, grid)
    arrays |= _monthly_features([p for p in plan if p.source != "employees"], tables, specs, grid)
    columns = {p.name: arrays[p.name] for p in plan}
    return assemble(grid, hc, columns | baseline_inputs(spells, hc, grid.shape))


def baseline_counts(spells: Spells, hc: np.ndarray, shape: tuple[int, int]) -> tuple:
    """Per team and month: voluntary leavers in the month, counted against the headcount at
    the end of the month before (as `longrun_rate_shrunk` counts them), and that exposure."""
    eligible = (spells.exit_type == VOLUNTARY) & (spells.a < spells.b) & (spells.b >= 1)
    leavers = event_counts(spells.team, np.where(eligible, spells.b, -1), shape)
    exposure = np.zeros_like(hc)
    exposure[:, 1:] = hc[:, :-1]
    return leavers, exposure


def baseline_inputs(spells: Spells, hc: np.ndarray, shape: tuple[int, int]) -> dict:
    """The `BASELINE_COLUMNS`: the team's voluntary leavers and person-months so far, and the
    organisation's voluntary rate per person-month over the last `BASELINE_ORG_WINDOW` months
    (integer sums, so the rate is the same float whichever way the teams are split)."""
    leavers, exposure = baseline_counts(spells, hc, shape)
    org_leavers = window_sum(leavers.sum(axis=0, keepdims=True), BASELINE_ORG_WINDOW)
    org_exposure = window_sum(exposure.sum(axis=0, keepdims=True), BASELINE_ORG_WINDOW)
    org_rate = divide(org_leavers.astype(np.float64), org_exposure.astype(np.float64))
    names = dict(zip(("leavers", "exposure", "org"), BASELINE_COLUMNS, strict=True))
    return {
        names["leavers"]: np.cumsum(leavers, axis=1).astype(np.float64),
        names["exposure"]: np.cumsum(exposure, axis=1).astype(np.float64),
        names["org"]: np.broadcast_to(org_rate, shape),
    }


# --------------------------------------------------------------------------- metadata


def panel_warnings(tables: Tables, specs: FeatureSpecs) -> list[str]:
    """What a run should say about these specs on these tables (e.g. a protected attribute opted
    in); also logged to the "forecast" logger."""
    _, warnings = plan_features(tables, specs)
    for w in warnings:
        log.warning(w)
    return warnings


def features_by_table(tables: Tables, specs: FeatureSpecs) -> dict[str, list[str]]:
    """Feature columns each present table feeds (for `forecast validate`)."""
    plan, _ = plan_features(tables, specs)
    out: dict[str, list[str]] = {name: [] for name in tables.present()}
    for p in plan:
        out.setdefault(p.source, []).append(p.name)
    return out
