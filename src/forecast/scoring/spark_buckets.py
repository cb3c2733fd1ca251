"""What Spark's Python workers run for `forecast score --engine spark` (forecast.scoring.spark
drives it): each bucket of teams arrives as one pandas frame of stacked rows, becomes a
`Tables` again, and goes through the local engine's own functions (features.point_in_time, the
panel builder, ModelPair.predict, LightGBM's exact TreeSHAP, scoring.batch.team_history), so
the numbers are the same floats as the local engine's. Pure: no file, no print, no MLflow.

Everything a team's features need is that team's own rows, with two exceptions:
- `longrun_rate_shrunk` shrinks a team's rate toward the organisation's rate, and the attrition
  baseline's `baseline_org_rate` is the organisation's rate over its last 12 months: pass 1
  counts each bucket's integer leavers and person-months (`org_counts_bucket`), the driver sums
  them, and pass 2 puts the organisation's exact rates back (`bucket_panel`; integer sums do not
  depend on order, so each rate is the local engine's float);
- a spell that starts where the same employee's spell in another team ended by transfer is a
  transfer in, not a hire: a bucket also receives the other spells of its employees (`_own`
  false), and returns only the teams it owns.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecast.data.months import from_ordinal
from forecast.data.tables import Tables
from forecast.features.grid import (
    event_counts,
    headcount_grid,
    make_grid,
    make_spells,
    point_in_time,
    window_sum,
)
from forecast.features.names import BASELINE_COLUMNS, BASELINE_ORG_WINDOW
from forecast.features.panel import EXIT_KIND, baseline_counts, compute_panel
from forecast.features.specs import FeatureSpecs
from forecast.models import explain
from forecast.models.fit import RATE_FEATURE, design_matrix
from forecast.models.pair import FORECAST_COLUMNS, ModelPair
from forecast.scoring.batch import team_history

NAT = np.iinfo(np.int64).min  # datetime64[ns] NaT as int64: dates travel as exact integers
MONTHLY = ("engagement", "workload", "cx")
PRED_COLUMNS = (*FORECAST_COLUMNS, RATE_FEATURE)
# The org pass's key for the attrition baseline's trailing organisation counts (not a feature).
BASELINE_KEY = BASELINE_COLUMNS[2]
# team_history's columns as pass 2 returns them (beside a team row's columns).
HISTORY_COLUMNS = {
    "month": "h_month",
    "headcount": "h_headcount",
    "voluntary_leavers": "h_voluntary_leavers",
    "csat": "h_csat",
    "csat_responses": "h_csat_responses",
}


@dataclass(frozen=True)
class Layout:
    """What a bucket needs besides its rows: the driver's decisions, identical everywhere."""

    plan: list  # features.PlannedFeature, decided on the whole organisation
    specs: FeatureSpecs
    first: int  # ordinal of the grid's first month (data_start or the org's first month)
    as_of: int  # ordinal of the as-of month
    data_start: pd.Period | None
    signals: dict[str, list[str]]
    protected: list[str]
    employee_columns: tuple[str, ...]  # opted-in protected attributes shipped as text
    monthly_columns: dict[str, tuple[str, ...]]  # table -> numeric columns shipped
    present: tuple[str, ...]  # monthly tables present in the organisation
    # ordinal of the first month whose rows a bucket returns: `as_of` when scoring, earlier for
    # the drift reference (the training month and the months before it)
    rows_from: int | None = None

    @property
    def months(self) -> range:
        """The ordinals of the months whose rows a bucket returns."""
        start = self.as_of if self.rows_from is None else max(self.rows_from, self.first)
        return range(start, self.as_of + 1)

    def shipped(self, table: str, column: str) -> str:
        return f"m__{table}__{column}"


# --------------------------------------------------------------------------- the model pair


def pair_files(pair: ModelPair) -> dict[str, bytes]:
    """The pair in its registered on-disk form (ModelPair.to_dir), shipped as bytes: workers
    load exactly what `forecast score` loads, never a re-pickled booster. Workers score and
    explain only: the what-if engine's stored fits stay on the driver."""
    if getattr(pair, "what_if_fits", None) is not None:
        pair = replace(pair, what_if_fits=None)
    with tempfile.TemporaryDirectory() as tmp:
        path = pair.to_dir(Path(tmp) / "pair")
        return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


_PAIRS: dict[int, Any] = {}


def load_pair(files: dict[str, bytes]) -> ModelPair:
    """One ModelPair per worker process and model (buckets of a run share it)."""

    key = hash(tuple(sorted((k, hash(v)) for k, v in files.items())))
    if key not in _PAIRS:
        with tempfile.TemporaryDirectory() as tmp:
            for name, data in files.items():
                (Path(tmp) / name).write_bytes(data)
            _PAIRS[key] = ModelPair.from_dir(Path(tmp))
    return _PAIRS[key]


# --------------------------------------------------------------------------- a bucket's tables


def _dates(values: pd.Series) -> np.ndarray:
    # Microseconds stay exact even when Arrow hands a column with nulls back as float64
    # (|value| < 2**53); NaT is int64 min, which float64 also holds exactly.
    us = np.asarray(values, dtype=np.float64).astype(np.int64)
    return us.view("datetime64[us]").astype("datetime64[ns]")


def _text(values: pd.Series) -> Any:
    return pd.array(values.astype(object).to_numpy(), dtype="string")


def unstack(pdf: pd.DataFrame, layout: Layout) -> tuple[Tables, np.ndarray]:
    """A bucket's rows back into `Tables` typed as contract.load_tables types them, and the
    teams the bucket owns."""

    e = pdf[pdf["_table"] == "employees"]
    employees = pd.DataFrame(
        {
            "employee_id": _text(e["employee_id"]),
            "team_id": _text(e["team_id"]),
            "hire_date": _dates(e["hire_us"]),
            "exit_date": _dates(e["exit_us"]),
            "exit_type": _text(e["exit_type"]),
        }
    )
    for c in layout.employee_columns:
        employees[c] = _text(e[f"e__{c}"])
    monthly: dict[str, pd.DataFrame] = {}
    for name in layout.present:
        m = pdf[pdf["_table"] == name]
        frame = pd.DataFrame(
            {
                "team_id": _text(m["team_id"]),
                "month": from_ordinal(np.asarray(m["month"], dtype=np.float64).astype(np.int64)),
            }
        )
        for c in layout.monthly_columns.get(name, ()):
            frame[c] = m[layout.shipped(name, c)].to_numpy(dtype=np.float64, na_value=np.nan)
        monthly[name] = frame.reset_index(drop=True)
    tables = Tables(
        employees=employees.reset_index(drop=True),
        data_start=layout.data_start,
        signals=layout.signals,
        protected=layout.protected,
        **monthly,
    )
    owned = np.unique(pdf.loc[pdf["_own"].astype(bool), "team_id"].astype(str).to_numpy())
    return tables, owned


# --------------------------------------------------------------------------- pass 1


def shrunk_counts(known: Tables, layout: Layout, owned: np.ndarray) -> pd.DataFrame:
    """Per owned team, organisation-level rate and returned month: the integer leavers and
    person-months behind it, counted exactly as the local panel counts them. For each
    `longrun_rate_shrunk` feature, everything so far (features.longrun_rate_shrunk); for the
    baseline's organisation rate, the last `BASELINE_ORG_WINDOW` months
    (features.baseline_inputs)."""

    first, last = (
        pd.Period(ordinal=layout.first, freq="M"),
        pd.Period(ordinal=layout.as_of, freq="M"),
    )
    grid = make_grid(known, first, last)
    spells = make_spells(known.employees, grid)
    hc = headcount_grid(spells, grid.shape)
    mine = np.isin(grid.teams.astype(str), owned)
    cols = np.array([m - layout.first for m in layout.months], dtype=np.int64)
    exposure_so_far = np.zeros_like(hc)
    exposure_so_far[:, 1:] = np.cumsum(hc, axis=1)[:, :-1]
    sums = {}
    for p in layout.plan:
        if p.source != "employees" or p.transform.kind != "longrun_rate_shrunk":
            continue
        kind = EXIT_KIND[p.column]
        eligible = (spells.exit_type == kind) & (spells.a < spells.b) & (spells.b >= 1)
        leavers = event_counts(spells.team, np.where(eligible, spells.b, -1), grid.shape)
        sums[p.name] = (np.cumsum(leavers, axis=1), exposure_so_far)
    leavers, exposure = baseline_counts(spells, hc, grid.shape)
    sums[BASELINE_KEY] = (
        window_sum(leavers, BASELINE_ORG_WINDOW),
        window_sum(exposure, BASELINE_ORG_WINDOW),
    )
    teams = grid.teams.astype(str)[mine]
    rows = [
        pd.DataFrame(
            {
                "team_id": np.repeat(teams, len(cols)),
                "feature": name,
                "month": np.tile(cols + layout.first, len(teams)),
                "leavers": team_leavers[mine][:, cols].ravel().astype(np.int64),
                "exposure": team_exposure[mine][:, cols].ravel().astype(np.int64),
            }
        )
        for name, (team_leavers, team_exposure) in sums.items()
    ]
    return pd.concat(rows, ignore_index=True)


def org_counts_bucket(pdf: pd.DataFrame, layout: Layout) -> pd.DataFrame:
    """Pass 1: this bucket's share of the organisation's leavers and person-months."""

    tables, owned = unstack(pdf, layout)
    known = point_in_time(tables, pd.Period(ordinal=layout.as_of, freq="M"))
    counts = shrunk_counts(known, layout, owned)
    return counts.groupby(["feature", "month"], as_index=False)[["leavers", "exposure"]].sum()


# --------------------------------------------------------------------------- pass 2

OrgCounts = dict[tuple[str, int], tuple[int, int]]  # (rate, month ordinal) -> (leavers, exposure)


def _org_rate(org: OrgCounts, name: str, months: np.ndarray) -> np.ndarray:
    """The organisation's rate `name` at each of `months` (NaN without exposure)."""
    rate = {}
    for m in np.unique(months):
        leavers, exposure = org.get((name, int(m)), (0, 0))
        rate[m] = np.float64(leavers) / np.float64(exposure) if exposure > 0 else np.nan
    return np.array([rate[m] for m in months], dtype=np.float64)


def bucket_panel(pdf: pd.DataFrame, layout: Layout, org: OrgCounts) -> Any:
    """The rows of the owned teams in `layout.months`, through the local engine's own panel
    code, with the organisation-level rates put back where a bucket only sees its own teams."""

    as_of = pd.Period(ordinal=layout.as_of, freq="M")
    tables, owned = unstack(pdf, layout)
    known = point_in_time(tables, as_of)
    panel = compute_panel(
        known, layout.specs, layout.plan, pd.Period(ordinal=layout.first, freq="M"), as_of
    )
    months = np.asarray(panel["as_of"].array.asi8, dtype=np.int64)
    keep = (months >= layout.months.start) & np.isin(panel["team_id"].astype(str).to_numpy(), owned)
    panel = panel.loc[keep].reset_index(drop=True)
    months = months[keep]
    counts = shrunk_counts(known, layout, owned).set_index(["feature", "team_id", "month"])
    idx = pd.MultiIndex.from_arrays([panel["team_id"].astype(str).to_numpy(), months])
    priors = {p.name: p.transform.prior for p in layout.plan}
    panel[BASELINE_KEY] = _org_rate(org, BASELINE_KEY, months)
    for name in counts.index.unique("feature"):
        if name == BASELINE_KEY:
            continue
        part = counts.loc[name].reindex(idx)
        cum = part["leavers"].to_numpy(dtype=np.int64)
        exp_ = part["exposure"].to_numpy(dtype=np.int64)
        # Same operands and order as features.longrun_rate_shrunk: the same float.
        panel[name] = (cum + priors[name] * _org_rate(org, name, months)) / (exp_ + priors[name])
    return panel


def features_frame(panel: pd.DataFrame, slots: list[str]) -> pd.DataFrame:
    """One row per team and month: id, month ordinal, headcount and the features as f0, f1, ...
    (Arrow-friendly)."""
    out = pd.DataFrame(
        {
            "team_id": panel["team_id"].astype(str).to_numpy(dtype=object),
            "month": np.asarray(panel["as_of"].array.asi8, dtype=np.int64),
            "headcount": panel["headcount"].to_numpy(dtype=np.int64),
        }
    )
    for i, name in enumerate(slots):
        out[f"f{i}"] = panel[name].to_numpy(dtype=np.float64)
    return out


def panel_bucket(
    pdf: pd.DataFrame, layout: Layout, org: OrgCounts, slots: list[str]
) -> pd.DataFrame:
    """The panel rows of the bucket's teams in `layout.months` (the drift reference: the
    model's last training month and the months before it, when the pair has none saved)."""
    return features_frame(bucket_panel(pdf, layout, org), slots)


def score_bucket(
    pdf: pd.DataFrame,
    layout: Layout,
    org: OrgCounts,
    files: Any,
    min_group: int,
    feature_slots: list[str],
) -> pd.DataFrame:
    """Pass 2: features, scores and exact TreeSHAP of the bucket's teams, one row per team
    (`_kind` team), and the teams' history (scoring.batch.team_history, `_kind` history, its
    columns prefixed h_): one pass over the bucket for both."""

    columns = [f.name for f in output_schema(len(feature_slots)).fields]
    history = history_bucket(pdf, layout).rename(columns=HISTORY_COLUMNS).assign(_kind="history")
    teams = _team_rows(pdf, layout, org, files, min_group, feature_slots).assign(_kind="team")
    out = pd.concat([teams, history], ignore_index=True).reindex(columns=columns)
    for c in ("att_contrib", "csat_contrib"):  # Arrow wants None, not NaN, for no array
        out[c] = [v if isinstance(v, list | np.ndarray) else None for v in out[c]]
    for c in ("team_id", "risk_band", "_kind", "h_month"):  # plain objects for pyspark's Arrow
        out[c] = [None if pd.isna(v) else str(v) for v in out[c]]
    return out


def _team_rows(
    pdf: pd.DataFrame,
    layout: Layout,
    org: OrgCounts,
    files: Any,
    min_group: int,
    feature_slots: list[str],
) -> pd.DataFrame:
    pair = load_pair(files.value if hasattr(files, "value") else files)
    panel = bucket_panel(pdf, layout, org)
    if panel.empty:  # e.g. only monthly rows of teams no employee belongs to: local drops them
        return pd.DataFrame({"team_id": pd.Series(dtype=object)})
    pred = pair.predict(panel)
    out = features_frame(panel, feature_slots)
    for col in PRED_COLUMNS:
        out[col] = pred[col].to_numpy(dtype=np.float64)
    out["risk_band"] = pred["risk_band"].astype(str).to_numpy(dtype=object)
    att: list[Any] = [None] * len(out)
    cs: list[Any] = [None] * len(out)
    rep = np.flatnonzero(out["headcount"].to_numpy() >= min_group)
    if rep.size:
        X = design_matrix(panel.iloc[rep].reset_index(drop=True), pair.features)
        for j, row in zip(rep, explain.contributions(pair.attrition_booster, X), strict=True):
            att[j] = row
        if pair.csat_booster is not None:
            has = pred["csat_change"].notna().to_numpy()[rep]
            Xc = X.loc[has].copy()
            Xc[RATE_FEATURE] = pred["expected_attrition_rate"].to_numpy()[rep][has]
            contrib = explain.contributions(pair.csat_booster, Xc[list(pair.csat_features)])
            for j, row in zip(rep[has], contrib, strict=True):
                cs[j] = row
    out["att_contrib"] = att
    out["csat_contrib"] = cs
    return out


def history_bucket(pdf: pd.DataFrame, layout: Layout) -> pd.DataFrame:
    """scoring.batch.team_history of the bucket's own teams (the grid starts where the whole
    organisation's does)."""
    tables, owned = unstack(pdf, layout)
    history = team_history(
        tables,
        pd.Period(ordinal=layout.as_of, freq="M"),
        start=pd.Period(ordinal=layout.first, freq="M"),
    )
    mine = np.isin(history["team_id"].astype(str).to_numpy(), owned)
    return history.loc[mine].reset_index(drop=True)


def feature_schema(n_features: int) -> Any:
    # pyspark is the optional `spark` extra: imported only when the Spark engine runs.
    from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

    fields = [
        StructField("team_id", StringType()),
        StructField("month", LongType()),
        StructField("headcount", LongType()),
    ]
    fields += [StructField(f"f{i}", DoubleType()) for i in range(n_features)]
    return StructType(fields)


def output_schema(n_features: int) -> Any:
    from pyspark.sql.types import (
        ArrayType,
        DoubleType,
        LongType,
        StringType,
        StructField,
        StructType,
    )

    fields = list(feature_schema(n_features).fields)
    fields += [StructField(c, DoubleType()) for c in PRED_COLUMNS]
    fields += [
        StructField("risk_band", StringType()),
        StructField("att_contrib", ArrayType(DoubleType())),
        StructField("csat_contrib", ArrayType(DoubleType())),
        StructField("_kind", StringType()),
        StructField("h_month", StringType()),
        StructField("h_headcount", LongType()),
        StructField("h_voluntary_leavers", LongType()),
        StructField("h_csat", DoubleType()),
        StructField("h_csat_responses", DoubleType()),
    ]
    return StructType(fields)


def bound(fn: Any, **kwargs: Any) -> Any:
    """`fn` with its keyword arguments fixed, as a plain function: applyInPandas reads the type
    hints of what it is given (a functools.partial has none it can read, and warns)."""

    def run(pdf: pd.DataFrame) -> pd.DataFrame:
        return fn(pdf, **kwargs)

    return run
