"""`forecast score --engine spark`: the same scoring run with the data read, validated and
turned into features, scores and SHAP drivers by Spark (optional extra `forecast[spark]`,
pyspark 4.3.0, Java 17); docs/spark.md.

The driver never holds the organisation's rows. Spark reads the tables where they are
(data.spark_sources) and validates them with the contract's rules (data.spark_contract); the
driver decides from aggregates what depends on the whole organisation (the feature plan, the
grid's first month, the as-of month). Teams are hashed into buckets (`crc32(team_id) % n`) and
each bucket runs the local engine's own functions on its teams (scoring.spark_buckets). What
comes back to the driver is one row per team (features, scores, SHAP values), the history's
12 rows per team, and each team's first month: the driver assembles the batch with
scoring.batch's functions and writer, so scores.parquet and drivers.parquet are byte-identical
to `--engine local`.

Never imported unless `--engine spark` is asked for: pyspark is optional.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from forecast.data.months import from_ordinal, month_str
from forecast.data.spark_contract import SparkTables
from forecast.data.spark_parse import q
from forecast.data.spark_sources import jdbc_jar
from forecast.data.tables import Tables
from forecast.errors import ConfigError
from forecast.features.names import BASELINE_COLUMNS, KEY_COLUMNS, feature_catalog
from forecast.features.panel import plan_features
from forecast.features.specs import FeatureSpecs
from forecast.models import drift as drift_mod
from forecast.models import explain
from forecast.models.fit import design_matrix
from forecast.models.pair import ModelPair
from forecast.scoring.batch import (
    ScoreBatch,
    batch_drift,
    check_additivity,
    check_model_columns,
    csat_design,
    scores_frame,
)
from forecast.scoring.spark_buckets import (
    HISTORY_COLUMNS,
    MONTHLY,
    NAT,
    PRED_COLUMNS,
    Layout,
    OrgCounts,
    bound,
    feature_schema,
    org_counts_bucket,
    output_schema,
    pair_files,
    panel_bucket,
    score_bucket,
)

DEFAULT_MASTER = "local[2]"
ENGINES = ("local", "spark")
SPARK_VERSION = "4.3.0"
# A bucket holds this many teams: large enough that per-call overhead (Arrow batches, a LightGBM
# predict) is amortised, small enough that a bucket's person-months fit a worker comfortably.
TEAMS_PER_BUCKET = 500
_DAY_US = 86_400_000_000


# --------------------------------------------------------------------------- the session


def spark_session(
    master: str = DEFAULT_MASTER,
    app_name: str = "forecast-score",
    conf: dict[str, str] | None = None,
) -> Any:
    """A Spark session for scoring; a ConfigError (exit 2) when pyspark or Java is missing.
    An active session (a notebook's, a test's) is used as it is. `conf`: settings on top of
    these (a test's small session).

    Local masters run Python workers with this interpreter (the package must be importable
    there); on a cluster the executors' Python comes from the cluster's own settings
    (`spark.pyspark.python`, docs/spark.md). The PostgreSQL JDBC driver goes on the class
    path when this machine has it (data.spark_sources.jdbc_jar).
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError(
            f"`--engine spark` needs the spark extra: pip install 'forecast[spark]' "
            f"(pyspark {SPARK_VERSION}) and Java 17."
        ) from None
    # pyspark 4.3 warns on every pandas call that pandas 3 is "not fully supported"; the paths
    # used here are covered by tests/scoring/test_spark.py (byte-identical to the local engine).
    warnings.filterwarnings(
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
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
    jar = jdbc_jar()
    if jar:
        builder = builder.config("spark.jars", jar)
    if local:
        # A laptop or CI runner: few shuffle partitions, a small driver.
        builder = builder.config("spark.sql.shuffle.partitions", "4").config(
            "spark.driver.memory", "2g"
        )
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def borrow(master: str = DEFAULT_MASTER) -> tuple[Any, bool]:
    """A session for a run and whether the run started it (and so stops it): an active session
    (a notebook's, a test's) is used and left running."""
    try:
        from pyspark.sql import SparkSession

        active = SparkSession.getActiveSession()
    except ImportError:
        active = None
    if active is not None:
        return active, False
    return spark_session(master), True


# --------------------------------------------------------------------------- the driver's plan


def schema_tables(st: SparkTables, specs: FeatureSpecs) -> Tables:
    """The tables' columns and signals without their rows, for features.plan_features (which
    reads only names and types), plus the distinct values of any protected attribute a spec
    opts in (the plan has one feature per category)."""
    opted = {c for f in specs.families if f.source == "employees" for c in f.opt_in_protected}
    values: dict[str, list[Any]] = {}
    for col in sorted(opted & set(st.columns["employees"])):
        rows = st.employees.select(q(col)).where(f"{q(col)} IS NOT NULL").distinct().collect()
        values[col] = [r[0] for r in rows]
    width = max([len(v) for v in values.values()], default=0)

    def column(name: str, numeric: bool) -> pd.Series:
        if name in values:
            cells = values[name] + [None] * (width - len(values[name]))
            return pd.Series(cells, dtype=object)
        return pd.Series([np.nan] * width if numeric else [None] * width, dtype=object)

    employees = pd.DataFrame(
        {c: column(c, c in st.employee_numeric) for c in st.columns["employees"]}
    )
    monthly = {}
    for name, frame_columns in st.columns.items():
        if name == "employees" or name not in st.monthly:
            continue
        numbers = set(st.numeric[name])
        monthly[name] = pd.DataFrame(
            {c: pd.Series(dtype="float64" if c in numbers else object) for c in frame_columns}
        )
    return Tables(
        employees=employees,
        data_start=st.data_start,
        signals=dict(st.signals),
        protected=list(st.protected),
        **monthly,
    )


def make_layout(st: SparkTables, specs: FeatureSpecs, as_of: pd.Period) -> tuple[Layout, list[str]]:
    plan, warned = plan_features(schema_tables(st, specs), specs)
    first, last = st.first_month, st.latest
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
                if c and c not in cols and c in st.columns.get(p.source, ()):
                    cols.append(c)
    emp_cols = tuple(
        dict.fromkeys(p.column for p in plan if p.source == "employees" and p.protected)
    )
    layout = Layout(
        plan=plan,
        specs=specs,
        first=int(first.ordinal),
        as_of=int(as_of.ordinal),
        data_start=st.data_start,
        signals=dict(st.signals),
        protected=list(st.protected),
        employee_columns=emp_cols,
        monthly_columns={k: tuple(v) for k, v in monthly.items()},
        present=tuple(t for t in MONTHLY if t in st.monthly),
    )
    return layout, warned


def n_buckets_for(spark: Any, n_teams: int) -> int:
    return max(
        2 * int(spark.sparkContext.defaultParallelism), math.ceil(n_teams / TEAMS_PER_BUCKET), 1
    )


# --------------------------------------------------------------------------- stacking tables


def _bucket(n: int) -> str:
    # crc32 of the id's UTF-8 bytes, as zlib.crc32 computes it: stable across processes.
    return f"CAST(pmod(crc32(CAST(team_id AS BINARY)), {n}) AS INT)"


def stacked(st: SparkTables, layout: Layout, n_buckets: int) -> Any:
    """Every table's rows known at the end of the as-of month, in one Spark frame with each
    row's bucket, hash-partitioned by bucket: ids as text, dates as microseconds (no exit date
    as int64 min), months as ordinals, only the columns the plan reads. An employee with spells
    in several buckets (a transfer) has all spells copied into each of them, `_own` false
    outside the spell's home bucket, so a bucket recognises a transfer in from another team."""
    following = pd.Period(ordinal=layout.as_of, freq="M") + 1
    cut = f"DATE'{following.year:04d}-{following.month:02d}-01'"
    days = "CAST(datediff({}, DATE'1970-01-01') AS BIGINT) * " + str(_DAY_US)
    emp = st.employees.where(f"hire_date < {cut}").selectExpr(
        "'employees' AS _table",
        "team_id",
        "employee_id",
        f"{days.format('hire_date')} AS hire_us",
        f"coalesce({days.format('exit_date')}, CAST({NAT} AS BIGINT)) AS exit_us",
        "exit_type",
        *[f"{q(c)} AS {q('e__' + c)}" for c in layout.employee_columns],
        f"{_bucket(n_buckets)} AS _bucket",
        "true AS _own",
    )
    reach = emp.select("employee_id", "_bucket").distinct()
    movers = reach.groupBy("employee_id").count().where("count > 1").select("employee_id")
    copies = (
        emp.join(movers, "employee_id", "left_semi")
        .drop("_bucket", "_own")
        .join(reach, "employee_id")
        .where(f"_bucket <> {_bucket(n_buckets)}")
        .selectExpr("*", "false AS _own")
    )
    parts = [emp, copies.select(*emp.columns)]
    for name in layout.present:
        cols = layout.monthly_columns.get(name, ())
        parts.append(
            st.monthly[name]
            .where(f"month <= {layout.as_of}")
            .selectExpr(
                f"'{name}' AS _table",
                "team_id",
                "month",
                *[f"{q(c)} AS {q(layout.shipped(name, c))}" for c in cols],
                f"{_bucket(n_buckets)} AS _bucket",
                "true AS _own",
            )
        )
    frame = parts[0]
    for part in parts[1:]:
        frame = frame.unionByName(part, allowMissingColumns=True)
    return frame.repartition(n_buckets, "_bucket")


# --------------------------------------------------------------------------- the passes


def org_counts(frame: Any, layout: Layout) -> OrgCounts:
    """Pass 1: the organisation's leavers and person-months for each shrunk rate and the
    attrition baseline's organisation rate, per returned month (integer sums: the same whatever
    the order, so each rate is the local engine's float)."""
    counts = (
        frame.groupBy("_bucket")
        .applyInPandas(
            bound(org_counts_bucket, layout=layout),
            "feature string, month long, leavers long, exposure long",
        )
        .groupBy("feature", "month")
        .agg({"leavers": "sum", "exposure": "sum"})
        .toDF("feature", "month", "leavers", "exposure")
        .collect()
    )
    return {
        (r["feature"], int(r["month"])): (int(r["leavers"]), int(r["exposure"])) for r in counts
    }


@dataclass
class SparkRun:
    """What the Spark passes returned, collected on the driver: one row per team."""

    panel: pd.DataFrame  # the as-of panel rows, as features.build_panel(as_of=) returns them
    predictions: pd.DataFrame  # as ModelPair.predict returns them
    att_contrib: dict[str, np.ndarray]
    csat_contrib: dict[str, np.ndarray]
    history: pd.DataFrame
    buckets: int


def _sorted(res: pd.DataFrame) -> pd.DataFrame:
    """By team, then month (features.build_panel's order)."""
    res = res.iloc[np.argsort(res["month"].to_numpy(dtype=np.int64), kind="stable")]
    ids = res["team_id"].astype(str).to_numpy(dtype=object)
    return res.iloc[np.argsort(ids, kind="stable")].reset_index(drop=True)


def _panel(res: pd.DataFrame, slots: list[str]) -> pd.DataFrame:
    data: dict[str, Any] = {
        "team_id": pd.array(res["team_id"].astype(object).to_numpy(), dtype="string"),
        "as_of": from_ordinal(res["month"].to_numpy(dtype=np.int64)).array,
        "headcount": res["headcount"].to_numpy(dtype=np.int64),
    }
    for i, name in enumerate(slots):
        data[name] = res[f"f{i}"].to_numpy(dtype=np.float64, na_value=np.nan)
    return pd.DataFrame(data)


def spark_panel_and_scores(
    spark: Any, st: SparkTables, pair: ModelPair, layout: Layout, min_group: int
) -> SparkRun:
    """Pass 1 (org counts), pass 2 (features, scores, SHAP and history), collected."""
    n = n_buckets_for(spark, st.teams)
    frame = stacked(st, layout, n).persist()
    try:
        org = org_counts(frame, layout)
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
        both = frame.groupBy("_bucket").applyInPandas(fn, output_schema(len(slots))).toPandas()
    finally:
        frame.unpersist()
    history = both.loc[both["_kind"] == "history"]
    history = history[["team_id", *HISTORY_COLUMNS.values()]].rename(
        columns={v: k for k, v in HISTORY_COLUMNS.items()}
    )
    res = _sorted(both.loc[both["_kind"] == "team"])
    panel = _panel(res, slots)
    as_of = pd.Period(ordinal=layout.as_of, freq="M")
    predictions = pd.DataFrame(
        {
            "team_id": res["team_id"].to_numpy(dtype=object),
            "as_of": as_of,
            "headcount": panel["headcount"].to_numpy(),
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
    return SparkRun(
        panel, predictions, keep["att_contrib"], keep["csat_contrib"], _history(history), n
    )


def _history(parts: pd.DataFrame) -> pd.DataFrame:
    """The buckets' history rows in the local engine's order and types (scoring.batch)."""
    h = parts.sort_values(["team_id", "month"], kind="stable").reset_index(drop=True)
    return pd.DataFrame(
        {
            "team_id": h["team_id"].to_numpy(dtype=object).astype(str),
            "month": h["month"].to_numpy(dtype=object),
            "headcount": h["headcount"].to_numpy(dtype=np.int64),
            "voluntary_leavers": h["voluntary_leavers"].to_numpy(dtype=np.int64),
            "csat": h["csat"].to_numpy(dtype=np.float64, na_value=np.nan),
            "csat_responses": h["csat_responses"].to_numpy(dtype=np.float64, na_value=np.nan),
        }
    )


def team_first_months(st: SparkTables) -> pd.Series:
    """Each team's first month with a hire (not before data_start): one value per team."""
    rows = st.employees.groupBy("team_id").agg({"hire_date": "min"}).toDF("t", "d").collect()
    first = pd.Series(
        pd.PeriodIndex([pd.Period(r["d"], freq="M") for r in rows], freq="M"),
        index=[str(r["t"]) for r in rows],
        dtype="period[M]",
    )
    if st.data_start is not None:
        first = first.clip(lower=pd.Period(st.data_start, freq="M"))
    return first.sort_index()


def spark_reference(
    spark: Any, st: SparkTables, pair: ModelPair, specs: FeatureSpecs
) -> tuple[pd.DataFrame | None, str]:
    """scoring.batch.training_reference: the pair's saved reference, else the features of
    every team at the model's last training month and the months before it (the thresholds of
    drift.month_reference), built on Spark from these data."""
    saved = getattr(pair, "drift_reference", None)
    if isinstance(saved, pd.DataFrame) and len(saved):
        return saved, "model"
    trained = pd.Period(pair.trained_until, freq="M") if pair.trained_until else None
    if trained is None or not st.first_month <= trained <= st.latest:
        return None, "none (the data do not reach the model's last training month)"
    layout, _ = make_layout(st, specs, trained)
    layout = replace(layout, rows_from=int((trained - drift_mod.LOOKBACK_MONTHS).ordinal))
    frame = stacked(st, layout, n_buckets_for(spark, st.teams)).persist()
    try:
        slots = [p.name for p in layout.plan]
        org = org_counts(frame, layout)
        res = (
            frame.groupBy("_bucket")
            .applyInPandas(
                bound(panel_bucket, layout=layout, org=org, slots=slots),
                feature_schema(len(slots)),
            )
            .toPandas()
        )
    finally:
        frame.unpersist()
    panel = _panel(_sorted(res), slots)
    panel = panel.loc[panel["headcount"] >= 1].reset_index(drop=True)
    feats = [f for f in pair.features if f in panel.columns]
    reference = drift_mod.month_reference(panel, feats, trained)
    return reference, f"rebuilt from the data at {pair.trained_until}"


# --------------------------------------------------------------------------- the batch


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
    st: SparkTables,
    pair: ModelPair,
    specs: FeatureSpecs,
    *,
    as_of: pd.Period,
    min_group: int,
    reference: tuple[pd.DataFrame | None, str],
    first_months: pd.Series,
    calibration: pd.DataFrame | None = None,
) -> ScoreBatch:
    """scoring.batch.build_batch, with the data on Spark. Same ScoreBatch, same bytes."""

    layout, warned = make_layout(st, specs, as_of)
    # Fail before Spark starts any work when the data lack a column the model needs.
    check_model_columns(
        pair, pd.DataFrame(columns=[*KEY_COLUMNS, *(p.name for p in layout.plan)]), specs
    )
    run = spark_panel_and_scores(spark, st, pair, layout, min_group)
    as_of_text = month_str(as_of)
    scores = scores_frame(run.predictions, as_of_text, min_group)
    catalog = feature_catalog(specs, list(run.panel.columns))
    explanations, additivity = explanations_from(run, pair, scores)
    ref, source = reference
    drift, summary = batch_drift(
        None, pair, specs, run.panel, catalog, ref, source, first_months=first_months
    )
    if calibration is None:
        calibration = getattr(pair, "calibration_table", None)
    return ScoreBatch(
        as_of=as_of_text,
        horizon=int(pair.config.horizon),
        scores=scores.drop(columns=["expected_attrition_rate"]),
        drivers=explain.long_form(explanations, as_of_text, catalog),
        drivers_by_family=explain.by_family(explanations, as_of_text, catalog),
        drift=drift,
        history=run.history,
        calibration=calibration if isinstance(calibration, pd.DataFrame) else None,
        coverage=getattr(pair, "coverage_table", None),
        organisation={k: float(v) for k, v in pair.org_total_interval(scores).items()},
        drift_summary=summary,
        additivity=additivity,
        warnings=list(warned) + drift_mod.warnings_for(summary),
    )


__all__ = [
    "DEFAULT_MASTER",
    "ENGINES",
    "build_batch_spark",
    "make_layout",
    "spark_reference",
    "spark_session",
    "stacked",
    "team_first_months",
]
