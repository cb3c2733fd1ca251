"""`forecast score --engine spark`: the same scoring run, with features, scores and SHAP built on
Spark (optional extra `forecast[spark]`, pyspark 4.3.0, Java 17).

Everything a team's features need is that team's own rows, with two exceptions handled here:
- `longrun_rate_shrunk` shrinks a team's rate toward the organisation's rate, and the attrition
  baseline's `baseline_org_rate` is the organisation's rate over its last 12 months: a first
  Spark pass sums each bucket's integer leaver and person-month counts, and the driver
  broadcasts the exact org rates (integer sums do not depend on order, so the rate is
  bit-identical to the local one);
- a spell that starts where the same employee's spell in another team ended by transfer is a
  transfer in, not a hire: each bucket also receives the other spells of its employees.
The grid's first month and the feature plan (which columns exist) are decided on the driver from
the whole organisation, as the local path does.

Teams are hashed into buckets (`crc32(team_id) % n`); each bucket runs the local engine's
own functions (features.point_in_time / make_spells / the panel, ModelPair.predict, LightGBM's
exact TreeSHAP) in `applyInPandas`, so the numbers are the same floats. The driver collects one
row per team through Arrow and assembles the batch with score.py's functions and writer, so
scores.parquet and drivers.parquet are byte-identical to `--engine local`.

Never imported unless `--engine spark` is asked for: pyspark is optional.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
import warnings
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecast.data.months import from_ordinal, month_str
from forecast.data.tables import Tables
from forecast.errors import ConfigError
from forecast.features.grid import (
    event_counts,
    headcount_grid,
    make_grid,
    make_spells,
    panel_months,
    point_in_time,
)
from forecast.features.names import (
    BASELINE_COLUMNS,
    BASELINE_ORG_WINDOW,
    KEY_COLUMNS,
    feature_catalog,
)
from forecast.features.panel import EXIT_KIND, baseline_counts, compute_panel, plan_features
from forecast.features.specs import FeatureSpecs
from forecast.models import drift as drift_mod
from forecast.models import explain
from forecast.models.fit import RATE_FEATURE, design_matrix
from forecast.models.pair import FORECAST_COLUMNS, ModelPair
from forecast.scoring.batch import (
    ScoreBatch,
    batch_drift,
    check_additivity,
    check_model_columns,
    csat_design,
    scores_frame,
    team_history,
    training_reference,
)

DEFAULT_MASTER = "local[2]"
ENGINES = ("local", "spark")
SPARK_VERSION = "4.3.0"
# A bucket holds this many teams: large enough that per-call overhead (Arrow batches, a LightGBM
# predict) is amortised, small enough that a bucket's person-months fit a worker comfortably.
TEAMS_PER_BUCKET = 500
# employees -> exit kind counted by `longrun_rate_shrunk` (as features._employee_features maps it)
# The org pass's key for the attrition baseline's trailing organisation counts (not a feature).
BASELINE_KEY = BASELINE_COLUMNS[2]
NAT = np.iinfo(np.int64).min  # datetime64[ns] NaT as int64: dates travel as exact integers
MONTHLY = ("engagement", "workload", "cx")


# --------------------------------------------------------------------------- the session


def spark_session(master: str = DEFAULT_MASTER, app_name: str = "forecast-score") -> Any:
    """A Spark session for scoring; a ConfigError (exit 2) when pyspark or Java is missing.

    Local masters run Python workers with this interpreter (the package must be importable
    there); on a cluster the executors' Python comes from the cluster's own settings
    (`spark.pyspark.python`, docs/spark.md).
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError(
            f"`--engine spark` needs the spark extra: pip install 'forecast[spark]' "
            f"(pyspark {SPARK_VERSION}) and Java 17."
        ) from None
    # pyspark 4.3 warns on every pandas call that pandas 3 is "not fully supported"; the paths
    # used here are covered by tests/test_spark.py (byte-identical to the local engine).
    warnings.filterwarnings(
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )
    local = master.startswith("local")
    if local and not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        raise ConfigError("`--engine spark` needs Java 17 (no `java` on PATH and no JAVA_HOME).")
    if local:
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
    )
    if local:
        # A laptop or CI runner: few shuffle partitions, a small driver.
        builder = builder.config("spark.sql.shuffle.partitions", "4").config(
            "spark.driver.memory", "2g"
        )
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


# --------------------------------------------------------------------------- what workers get


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

    def shipped(self, table: str, column: str) -> str:
        return f"m__{table}__{column}"


def make_layout(tables: Tables, specs: FeatureSpecs, as_of: pd.Period) -> tuple[Layout, list[str]]:

    plan, warnings = plan_features(tables, specs)
    first, last = panel_months(tables)
    if not first <= as_of <= last:
        raise ConfigError(
            f"`--as-of` must be a month between {month_str(first)} and {month_str(last)} "
            f"(the latest complete month). Got {month_str(as_of)} instead."
        )
    monthly: dict[str, list[str]] = {}
    for p in plan:
        if p.source in MONTHLY:
            cols = monthly.setdefault(p.source, [])
            weight = specs.family(p.family).weight
            for c in (p.column, weight):
                if c and c not in cols and c in tables.table(p.source).columns:
                    cols.append(c)
    emp_cols = tuple(
        dict.fromkeys(p.column for p in plan if p.source == "employees" and p.protected)
    )
    layout = Layout(
        plan=plan,
        specs=specs,
        first=int(first.ordinal),
        as_of=int(as_of.ordinal),
        data_start=tables.data_start,
        signals=dict(tables.signals),
        protected=list(tables.protected),
        employee_columns=emp_cols,
        monthly_columns={k: tuple(v) for k, v in monthly.items()},
        present=tuple(t for t in MONTHLY if tables.table(t) is not None),
    )
    return layout, warnings


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


# --------------------------------------------------------------------------- stacking tables


def stacked_frames(tables: Tables, layout: Layout) -> dict[str, pd.DataFrame]:
    """Each table as an Arrow-friendly frame: ids as text, dates as int64 microseconds (NaT as
    int64 min), months as ordinals, only the columns the plan reads."""
    emp = tables.employees
    out = {
        "employees": pd.DataFrame(
            {
                "_table": "employees",
                "team_id": emp["team_id"].astype(str).to_numpy(dtype=object),
                "employee_id": emp["employee_id"].astype(str).to_numpy(dtype=object),
                "hire_us": _us(emp["hire_date"]),
                "exit_us": _us(emp["exit_date"]),
                "exit_type": emp["exit_type"]
                .astype(object)
                .where(emp["exit_type"].notna(), None)
                .to_numpy(dtype=object),
                **{
                    f"e__{c}": emp[c]
                    .astype(object)
                    .where(emp[c].notna(), None)
                    .to_numpy(dtype=object)
                    for c in layout.employee_columns
                },
            }
        )
    }
    for name in layout.present:
        t = tables.table(name)
        frame = pd.DataFrame(
            {
                "_table": name,
                "team_id": t["team_id"].astype(str).to_numpy(dtype=object),
                "month": np.asarray(t["month"].array.asi8, dtype=np.int64),
            }
        )
        for c in layout.monthly_columns.get(name, ()):
            frame[layout.shipped(name, c)] = t[c].to_numpy(dtype=np.float64, na_value=np.nan)
        out[name] = frame
    return out


def _us(dates: pd.Series) -> np.ndarray:
    # Microseconds stay exact even when Arrow hands a column with nulls back as float64
    # (|value| < 2**53); NaT is int64 min, which float64 also holds exactly.
    return dates.to_numpy(dtype="datetime64[us]").view(np.int64)


def _dates(values: pd.Series) -> np.ndarray:
    us = np.asarray(values, dtype=np.float64).astype(np.int64)
    return us.view("datetime64[us]").astype("datetime64[ns]")


def bucket_of(team_ids: pd.Series, n_buckets: int) -> np.ndarray:
    """Bucket of each team: crc32 of its id modulo `n_buckets`. A stable hash (Python's own
    `hash` is salted per process), computed once on the driver, so every table agrees."""
    codes, uniques = pd.factorize(team_ids.astype(str), sort=False)
    per_team = np.array(
        [zlib.crc32(str(t).encode("utf-8")) % n_buckets for t in uniques], dtype=np.int32
    )
    return per_team[codes] if len(codes) else np.zeros(0, dtype=np.int32)


def stacked_input(tables: Tables, layout: Layout, n_buckets: int) -> pd.DataFrame:
    """Every table in one frame with its team's bucket. An employee with spells in several
    buckets (a transfer) has all spells copied into each of them, `_own` false outside the
    spell's home bucket, so a bucket recognises a transfer in from another team."""
    frames = stacked_frames(tables, layout)
    emp = frames.pop("employees")
    emp["_bucket"] = bucket_of(emp["team_id"], n_buckets)
    emp["_own"] = True
    reach = emp[["employee_id", "_bucket"]].drop_duplicates()
    movers = reach["employee_id"].duplicated(keep=False)
    if movers.any():
        ids = reach.loc[movers, "employee_id"].unique()
        mine = emp[emp["employee_id"].isin(ids)]
        copies = mine.drop(columns="_bucket").merge(reach[movers], on="employee_id")
        copies = copies[copies["_bucket"] != bucket_of(copies["team_id"], n_buckets)]
        emp = pd.concat([emp, copies.assign(_own=False)], ignore_index=True)
    parts = [emp]
    for frame in frames.values():
        parts.append(frame.assign(_bucket=bucket_of(frame["team_id"], n_buckets), _own=True))
    return pd.concat(parts, ignore_index=True)


def spark_input(spark: Any, tables: Tables, layout: Layout, n_buckets: int) -> Any:
    """The stacked tables as one Spark frame, hash-partitioned by bucket."""
    return spark.createDataFrame(stacked_input(tables, layout, n_buckets)).repartition("_bucket")


def unstack(pdf: pd.DataFrame, layout: Layout) -> tuple[Any, np.ndarray]:
    """A bucket's rows back into `Tables` typed as contract.load_tables types them, and the
    teams the bucket owns."""

    e = pdf[pdf["_table"] == "employees"]
    employees = pd.DataFrame(
        {
            "employee_id": pd.array(e["employee_id"].astype(object).to_numpy(), dtype="string"),
            "team_id": pd.array(e["team_id"].astype(object).to_numpy(), dtype="string"),
            "hire_date": _dates(e["hire_us"]),
            "exit_date": _dates(e["exit_us"]),
            "exit_type": pd.array(e["exit_type"].astype(object).to_numpy(), dtype="string"),
        }
    )
    for c in layout.employee_columns:
        employees[c] = pd.array(e[f"e__{c}"].astype(object).to_numpy(), dtype="string")
    monthly: dict[str, pd.DataFrame] = {}
    for name in layout.present:
        m = pdf[pdf["_table"] == name]
        frame = pd.DataFrame(
            {
                "team_id": pd.array(m["team_id"].astype(object).to_numpy(), dtype="string"),
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


# --------------------------------------------------------------------------- per bucket


def shrunk_counts(known: Tables, layout: Layout, owned: np.ndarray) -> pd.DataFrame:
    """Per owned team and `longrun_rate_shrunk` feature: cumulative leavers and person-months
    at the as-of month, counted exactly as features.longrun_rate_shrunk counts them."""

    first, last = (
        pd.Period(ordinal=layout.first, freq="M"),
        pd.Period(ordinal=layout.as_of, freq="M"),
    )
    grid = make_grid(known, first, last)
    spells = make_spells(known.employees, grid)
    hc = headcount_grid(spells, grid.shape)
    mine = np.isin(grid.teams.astype(str), owned)
    rows = []
    for p in layout.plan:
        if p.source != "employees" or p.transform.kind != "longrun_rate_shrunk":
            continue
        kind = EXIT_KIND[p.column]
        eligible = (spells.exit_type == kind) & (spells.a < spells.b) & (spells.b >= 1)
        leavers = event_counts(spells.team, np.where(eligible, spells.b, -1), grid.shape)
        rows.append(
            pd.DataFrame(
                {
                    "team_id": grid.teams.astype(str)[mine],
                    "feature": p.name,
                    # cumsum(leavers)[:, last] and cumsum(hc)[:, last - 1]: the local
                    # feature's inputs
                    "leavers": leavers.sum(axis=1)[mine].astype(np.int64),
                    "exposure": hc[:, :-1].sum(axis=1)[mine].astype(np.int64),
                }
            )
        )
    # The baseline's organisation rate: leavers and exposure of the owned teams over the last
    # BASELINE_ORG_WINDOW months, as features.panel.baseline_inputs sums them.
    leavers, exposure = baseline_counts(spells, hc, grid.shape)
    window = slice(max(grid.shape[1] - BASELINE_ORG_WINDOW, 0), grid.shape[1])
    rows.append(
        pd.DataFrame(
            {
                "team_id": grid.teams.astype(str)[mine],
                "feature": BASELINE_KEY,
                "leavers": leavers[:, window].sum(axis=1)[mine].astype(np.int64),
                "exposure": exposure[:, window].sum(axis=1)[mine].astype(np.int64),
            }
        )
    )
    cols = {"team_id": str, "feature": str, "leavers": np.int64, "exposure": np.int64}
    return (
        pd.concat(rows, ignore_index=True)
        if rows
        else pd.DataFrame({k: pd.Series(dtype=v) for k, v in cols.items()})
    )


def org_counts_bucket(pdf: pd.DataFrame, layout: Layout) -> pd.DataFrame:
    """Pass 1: this bucket's share of the organisation's leavers and person-months."""

    tables, owned = unstack(pdf, layout)
    known = point_in_time(tables, pd.Period(ordinal=layout.as_of, freq="M"))
    counts = shrunk_counts(known, layout, owned)
    return counts.groupby("feature", as_index=False)[["leavers", "exposure"]].sum()


def bucket_panel(pdf: pd.DataFrame, layout: Layout, org: dict[str, tuple[int, int]]) -> Any:
    """The as-of rows of the owned teams, through the local engine's own panel code, with the
    organisation-level rate put back where a bucket only sees its own teams."""

    as_of = pd.Period(ordinal=layout.as_of, freq="M")
    tables, owned = unstack(pdf, layout)
    known = point_in_time(tables, as_of)
    panel = compute_panel(
        known, layout.specs, layout.plan, pd.Period(ordinal=layout.first, freq="M"), as_of
    )
    panel = panel.loc[
        (panel["as_of"] == as_of).to_numpy()
        & np.isin(panel["team_id"].astype(str).to_numpy(), owned)
    ]
    panel = panel.reset_index(drop=True)
    counts = shrunk_counts(known, layout, owned)
    priors = {p.name: p.transform.prior for p in layout.plan}
    leavers, exposure = org[BASELINE_KEY]
    panel[BASELINE_KEY] = (
        np.float64(leavers) / np.float64(exposure) if exposure > 0 else np.float64("nan")
    )
    for name, part in counts.loc[counts["feature"] != BASELINE_KEY].groupby("feature", sort=False):
        leavers, exposure = org[name]
        rate = np.float64(leavers) / np.float64(exposure) if exposure > 0 else np.float64("nan")
        by_team = part.set_index("team_id")
        idx = panel["team_id"].astype(str).to_numpy()
        cum = by_team["leavers"].reindex(idx).to_numpy(dtype=np.int64)
        exp_ = by_team["exposure"].reindex(idx).to_numpy(dtype=np.int64)
        prior = priors[name]
        # Same operands and order as features.longrun_rate_shrunk: the same float.
        panel[name] = (cum + prior * rate) / (exp_ + prior)
    return panel


def score_bucket(
    pdf: pd.DataFrame,
    layout: Layout,
    org: dict[str, tuple[int, int]],
    files: Any,
    min_group: int,
    feature_slots: list[str],
) -> pd.DataFrame:
    """Pass 2: features, scores and exact TreeSHAP of the bucket's teams, one row per team."""

    pair = load_pair(files.value if hasattr(files, "value") else files)
    panel = bucket_panel(pdf, layout, org)
    if panel.empty:  # e.g. only monthly rows of teams no employee belongs to: local drops them
        return pd.DataFrame({f.name: [] for f in output_schema(len(feature_slots)).fields})
    pred = pair.predict(panel)
    out = pd.DataFrame(
        {
            "team_id": panel["team_id"].astype(str).to_numpy(dtype=object),
            "headcount": panel["headcount"].to_numpy(dtype=np.int64),
        }
    )
    for i, name in enumerate(feature_slots):
        out[f"f{i}"] = panel[name].to_numpy(dtype=np.float64)
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


PRED_COLUMNS = (*FORECAST_COLUMNS, RATE_FEATURE)


def output_schema(n_features: int) -> Any:
    # pyspark is the optional `spark` extra: imported only when the Spark engine runs.
    from pyspark.sql.types import (
        ArrayType,
        DoubleType,
        LongType,
        StringType,
        StructField,
        StructType,
    )

    fields = [StructField("team_id", StringType()), StructField("headcount", LongType())]
    fields += [StructField(f"f{i}", DoubleType()) for i in range(n_features)]
    fields += [StructField(c, DoubleType()) for c in PRED_COLUMNS]
    fields += [
        StructField("risk_band", StringType()),
        StructField("att_contrib", ArrayType(DoubleType())),
        StructField("csat_contrib", ArrayType(DoubleType())),
    ]
    return StructType(fields)


# --------------------------------------------------------------------------- driver


@dataclass
class SparkRun:
    """What the Spark passes returned, collected on the driver."""

    panel: pd.DataFrame  # the as-of panel rows, as features.build_panel(as_of=) returns them
    predictions: pd.DataFrame  # as ModelPair.predict returns them
    att_contrib: dict[str, np.ndarray]
    csat_contrib: dict[str, np.ndarray]
    buckets: int


def bound(fn: Any, **kwargs: Any) -> Any:
    """`fn` with its keyword arguments fixed, as a plain function: applyInPandas reads the type
    hints of what it is given (a functools.partial has none it can read, and warns)."""

    def run(pdf: pd.DataFrame) -> pd.DataFrame:
        return fn(pdf, **kwargs)

    return run


def n_buckets_for(spark: Any, n_teams: int) -> int:
    return max(
        2 * int(spark.sparkContext.defaultParallelism), math.ceil(n_teams / TEAMS_PER_BUCKET), 1
    )


def spark_panel_and_scores(
    spark: Any, tables: Tables, pair: ModelPair, layout: Layout, min_group: int
) -> SparkRun:
    """Pass 1 (org counts) and pass 2 (features, scores, SHAP), collected through Arrow."""
    from pyspark.sql import functions as F  # the optional extra, see spark_session

    n_teams = int(tables.employees["team_id"].nunique())
    n = n_buckets_for(spark, n_teams)
    stacked = spark_input(spark, tables, layout, n).persist()
    try:
        counts = (
            stacked.groupBy("_bucket")
            .applyInPandas(
                bound(org_counts_bucket, layout=layout),
                "feature string, leavers long, exposure long",
            )
            .groupBy("feature")
            .agg(F.sum("leavers").alias("leavers"), F.sum("exposure").alias("exposure"))
            .collect()
        )
        org = {r["feature"]: (int(r["leavers"]), int(r["exposure"])) for r in counts}
        # The attrition baseline's inputs travel with the features (not model inputs).
        slots = [p.name for p in layout.plan] + list(BASELINE_COLUMNS)
        files = spark.sparkContext.broadcast(pair_files(pair))
        fn = bound(
            score_bucket,
            layout=layout,
            org=org,
            files=files,
            min_group=min_group,
            feature_slots=slots,
        )
        res = stacked.groupBy("_bucket").applyInPandas(fn, output_schema(len(slots))).toPandas()
    finally:
        stacked.unpersist()
    ids = res["team_id"].astype(str).to_numpy(dtype=object)
    res = res.iloc[np.argsort(ids, kind="stable")].reset_index(drop=True)
    as_of = pd.Period(ordinal=layout.as_of, freq="M")
    data: dict[str, Any] = {
        "team_id": pd.array(res["team_id"].astype(object).to_numpy(), dtype="string"),
        "as_of": from_ordinal(np.full(len(res), layout.as_of)).array,
        "headcount": res["headcount"].to_numpy(dtype=np.int64),
    }
    for i, name in enumerate(slots):
        data[name] = res[f"f{i}"].to_numpy(dtype=np.float64, na_value=np.nan)
    panel = pd.DataFrame(data)
    predictions = pd.DataFrame(
        {
            "team_id": res["team_id"].to_numpy(dtype=object),
            "as_of": as_of,
            "headcount": data["headcount"],
        }
    )
    for col in PRED_COLUMNS:
        predictions[col] = res[col].to_numpy(dtype=np.float64, na_value=np.nan)
    predictions["risk_band"] = res["risk_band"].astype(object).to_numpy()
    keep = {
        c: {
            str(t): np.asarray(v, dtype=np.float64)
            for t, v in zip(res["team_id"], res[c], strict=True)
            if v is not None
        }
        for c in ("att_contrib", "csat_contrib")
    }
    return SparkRun(panel, predictions, keep["att_contrib"], keep["csat_contrib"], n)


def explanations_from(
    run: SparkRun, pair: ModelPair, scores: pd.DataFrame
) -> tuple[list[Any], dict[str, float]]:
    """The explanations score.explain_batch would build, from the workers' TreeSHAP values; the
    same additivity check (1e-6) against the scores."""

    rep = scores.loc[
        scores["reportable"],
        ["team_id", "attrition_rate", "csat_change", "expected_attrition_rate"],
    ]
    rows = run.panel.set_index(run.panel["team_id"].astype(str)).loc[rep["team_id"].to_numpy()]
    X = design_matrix(rows.reset_index(drop=True), pair.features)
    ids = rep["team_id"].to_numpy(dtype=object)

    def stack(which: dict[str, np.ndarray], teams: np.ndarray, width: int) -> np.ndarray:
        if not len(teams):
            return np.zeros((0, width + 1))
        return np.vstack([which[t] for t in teams])

    feats = [str(c) for c in X.columns]
    att = explain.TargetExplanation(
        "attrition",
        ids.astype(str).astype(object),
        feats,
        explain.as_matrix(X, feats),
        stack(run.att_contrib, ids, len(feats)),
    )
    terms = pair.driver_terms(rows.reset_index(drop=True), rep["expected_attrition_rate"])
    out = [explain.with_terms(att, *terms)]
    errors = {"attrition": explain.additivity_error(out[0], np.log(rep["attrition_rate"]))}
    if pair.csat_booster is not None:
        has, Xc = csat_design(X, rep, pair)
        cfeats = [str(c) for c in Xc.columns]
        out.append(
            explain.TargetExplanation(
                "csat",
                ids[has].astype(str).astype(object),
                cfeats,
                explain.as_matrix(Xc, cfeats),
                stack(run.csat_contrib, ids[has], len(cfeats)),
            )
        )
        errors["csat"] = explain.additivity_error(out[1], rep["csat_change"].to_numpy()[has])
    check_additivity(errors)
    return out, errors


def build_batch_spark(
    spark: Any,
    tables: Tables,
    pair: ModelPair,
    specs: FeatureSpecs,
    *,
    as_of: pd.Period,
    min_group: int,
    reference: tuple[pd.DataFrame | None, str] | None = None,
    calibration: pd.DataFrame | None = None,
) -> Any:
    """score.build_batch, with the per-team work on Spark. Same ScoreBatch, same bytes."""

    layout, warnings = make_layout(tables, specs, as_of)
    # Fail before Spark starts any work when the data lack a column the model needs.
    check_model_columns(
        pair, pd.DataFrame(columns=[*KEY_COLUMNS, *(p.name for p in layout.plan)]), specs
    )
    run = spark_panel_and_scores(spark, tables, pair, layout, min_group)
    as_of_text = month_str(as_of)
    scores = scores_frame(run.predictions, as_of_text, min_group)
    catalog = feature_catalog(specs, list(run.panel.columns))
    explanations, additivity = explanations_from(run, pair, scores)
    ref, source = reference if reference is not None else training_reference(tables, pair, specs)
    drift, summary = batch_drift(tables, pair, specs, run.panel, catalog, ref, source)
    if calibration is None:
        calibration = getattr(pair, "calibration_table", None)
    batch = ScoreBatch(
        as_of=as_of_text,
        horizon=int(pair.config.horizon),
        scores=scores.drop(columns=["expected_attrition_rate"]),
        drivers=explain.long_form(explanations, as_of_text, catalog),
        drivers_by_family=explain.by_family(explanations, as_of_text, catalog),
        drift=drift,
        history=team_history(tables, as_of),
        calibration=calibration if isinstance(calibration, pd.DataFrame) else None,
        coverage=getattr(pair, "coverage_table", None),
        organisation={k: float(v) for k, v in pair.org_total_interval(scores).items()},
        drift_summary=summary,
        additivity=additivity,
        warnings=list(warnings) + drift_mod.warnings_for(summary),
    )
    return batch


# --------------------------------------------------------------------------- the edge


__all__ = [
    "DEFAULT_MASTER",
    "ENGINES",
    "build_batch_spark",
    "spark_session",
]
