"""`forecast score`: batch-score every team as of a month and write the output folder.

The middle is pure (`build_batch`: tables and a model pair in, frames out); this module's edges
read the data directory, resolve the registered pair, and publish the folder atomically:
everything is written into a temporary directory beside OUT and swapped into place under a
lock, so a failed or killed run leaves an earlier OUT as it was, and two runs at once leave one
complete output. Parquet files carry no timestamps and keep a fixed row order and fixed types:
the same data, month and model versions give byte-identical files. Only manifest.json records
when it was made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from forecast.data.lineage import MANIFEST
from forecast.data.months import month_str
from forecast.data.tables import Tables
from forecast.errors import ModelError
from forecast.features.grid import (
    event_counts,
    headcount_grid,
    make_grid,
    make_spells,
    monthly_grid,
    panel_months,
    point_in_time,
    voluntary_leaves,
    weight_grid,
)
from forecast.features.names import feature_catalog, is_feature_name, split_feature
from forecast.features.panel import build_panel
from forecast.features.specs import FeatureSpecs
from forecast.models import drift as drift_mod
from forecast.models import explain
from forecast.models.fit import RATE_FEATURE, design_matrix
from forecast.models.pair import FORECAST_COLUMNS, ModelPair

MIN_GROUP = 5
HISTORY_MONTHS = 12
ADDITIVITY_TOL = 1e-6
SCORE_COLUMNS = (
    "team_id",
    "as_of",
    "headcount",
    "expected_leavers",
    "attrition_rate",
    "csat_change",
    "reportable",
    "leavers_p10",
    "leavers_p90",
    "csat_change_p10",
    "csat_change_p90",
    "risk_band",
)
Say = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


# --------------------------------------------------------------------------- the pure middle


@dataclass
class ScoreBatch:
    """Everything one scoring run writes, before it is written."""

    as_of: str
    horizon: int
    scores: pd.DataFrame
    drivers: pd.DataFrame
    drivers_by_family: pd.DataFrame
    drift: pd.DataFrame
    history: pd.DataFrame
    calibration: pd.DataFrame | None
    organisation: dict[str, float]
    drift_summary: dict[str, Any]
    additivity: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    # Optional team-level files other parts of the project read (e.g. the report's roll-ups).
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)
    # The backtest's interval coverage per origin, from the pair (the report's trust section).
    coverage: pd.DataFrame | None = None


def check_model_columns(pair: ModelPair, panel: pd.DataFrame, specs: FeatureSpecs = None) -> None:
    """Refuse data that lack inputs the model was trained on: silently scoring a missing signal
    as "unknown" would shift every forecast without anyone noticing."""
    needed = [f for f in pair.features if f not in panel.columns]
    if not needed:
        return
    sources: dict[str, list[str]] = {}
    for name in needed:
        family, signal, _ = split_feature(name) if is_feature_name(name) else ("", name, "")
        table, column = _source_of(specs, family, signal)
        sources.setdefault(f"{table}.{column}" if table else name, []).append(name)
    missing = ", ".join(sources)
    raise ModelError(
        f"the data lack column(s) the model was trained on: {missing} (needed by "
        f"{len(needed)} feature(s), e.g. {needed[0]}). Add them to the data, or score with a "
        f"model trained without them."
    )


def _source_of(specs: FeatureSpecs, family: str, signal: str) -> tuple[str, str]:
    """(table, column) a feature's signal comes from, undoing a spec's `rename`."""
    try:
        spec = specs.family(family)
    except (AttributeError, KeyError):
        return "", signal
    back = {new: old for old, new in spec.rename.items()}
    return spec.source, back.get(signal, signal)


def scores_frame(predictions: pd.DataFrame, as_of: str, min_group: int) -> pd.DataFrame:
    """The contract's scores table: one row per team with headcount >= 1, sorted by team_id,
    with fixed types (ids as strings, `as_of` as YYYY-MM text, headcount int64)."""
    p = predictions.loc[predictions["headcount"].to_numpy() >= 1]
    out = pd.DataFrame(
        {
            "team_id": p["team_id"].astype(str).to_numpy(dtype=object),
            "as_of": as_of,
            "headcount": p["headcount"].to_numpy(dtype=np.int64),
        }
    )
    for col in FORECAST_COLUMNS:
        out[col] = p[col].to_numpy(dtype=np.float64, na_value=np.nan)
    out["reportable"] = out["headcount"] >= min_group
    out["risk_band"] = p["risk_band"].astype(str).to_numpy(dtype=object)
    out["expected_attrition_rate"] = p["expected_attrition_rate"].to_numpy(dtype=np.float64)
    out = out.sort_values("team_id", kind="stable").reset_index(drop=True)
    return out[[*SCORE_COLUMNS, "expected_attrition_rate"]]


def explain_batch(
    pair: ModelPair, panel: pd.DataFrame, scores: pd.DataFrame
) -> tuple[list[explain.TargetExplanation], dict[str, float]]:
    """TreeSHAP of both targets for the reportable teams, checked for additivity against the
    scores (1e-6): a mismatch means the explanation is not of the model that scored."""

    rep = scores.loc[
        scores["reportable"],
        ["team_id", "attrition_rate", "csat_change", "expected_attrition_rate"],
    ]
    rows = panel.set_index(panel["team_id"].astype(str)).loc[rep["team_id"].to_numpy()]
    rows = rows.reset_index(drop=True)
    X = design_matrix(rows, pair.features)
    att = explain.explain_target("attrition", pair.attrition_booster, X, rep["team_id"])
    out = [explain.with_terms(att, *pair.driver_terms(rows, rep["expected_attrition_rate"]))]
    errors = {"attrition": explain.additivity_error(out[0], np.log(rep["attrition_rate"]))}
    if pair.csat_booster is not None:
        has, Xc = csat_design(X, rep, pair)
        out.append(explain.explain_target("csat", pair.csat_booster, Xc, rep["team_id"][has]))
        errors["csat"] = explain.additivity_error(out[1], rep["csat_change"].to_numpy()[has])
    check_additivity(errors)
    return out, errors


def csat_design(
    X: pd.DataFrame, rep: pd.DataFrame, pair: ModelPair
) -> tuple[np.ndarray, pd.DataFrame]:
    """The CSAT model's input for the rows that have a CSAT forecast: the features plus the
    attrition model's rate (the stacked input), in the model's column order."""

    has = rep["csat_change"].notna().to_numpy()
    Xc = X.loc[has].copy()
    Xc[RATE_FEATURE] = rep["expected_attrition_rate"].to_numpy()[has]
    return has, Xc[list(pair.csat_features)]


def check_additivity(errors: dict[str, float]) -> None:
    """Drivers must add up to the model's output; anything else means a broken model pair."""
    worst = max(errors, key=errors.get)
    if errors[worst] > ADDITIVITY_TOL:
        raise ModelError(
            f"the {worst} drivers do not add up to the model's output (largest gap "
            f"{errors[worst]:.3g}); the loaded model pair is inconsistent, re-register it."
        )


def team_history(
    tables: Tables,
    as_of: pd.Period,
    months: int = HISTORY_MONTHS,
    *,
    start: pd.Period | None = None,
) -> pd.DataFrame:
    """Team-level monthly aggregates of the months up to `as_of` (for the report's sparklines):
    headcount at month end, voluntary leavers in the month, response-weighted CSAT. Built from
    the tables as known at the end of `as_of`, like the features, and never per person.
    `start`: the panel's first month when `tables` hold only some teams (the Spark engine's
    buckets), else features.panel_months decides it."""

    known = point_in_time(tables, as_of)
    start = start if start is not None else panel_months(tables)[0]
    first = max(start, as_of - (months - 1))
    grid = make_grid(known, first, as_of)
    spells = make_spells(known.employees, grid)
    hc = headcount_grid(spells, grid.shape)
    vol = voluntary_leaves(spells)
    leavers = event_counts(spells.team[vol], spells.b[vol], grid.shape)
    csat = np.full(grid.shape, np.nan)
    if known.cx is not None and "csat" in known.cx.columns:
        csat, _ = monthly_grid(known.cx, "csat", grid)
        responses = weight_grid(known.cx, "responses", grid)
        responses = np.where(np.isnan(csat), 0.0, responses)
    else:
        responses = np.zeros(grid.shape)
    keep = (hc > 0) | (leavers > 0)
    rows, cols = np.nonzero(keep)
    month_names = [month_str(first + j) for j in range(grid.n_months)]
    return pd.DataFrame(
        {
            "team_id": grid.teams[rows].astype(str),
            "month": np.array(month_names, dtype=object)[cols]
            if len(cols)
            else np.zeros(0, object),
            "headcount": hc[rows, cols].astype(np.int64),
            "voluntary_leavers": leavers[rows, cols].astype(np.int64),
            "csat": csat[rows, cols],
            "csat_responses": responses[rows, cols],
        }
    )


def batch_drift(
    tables: Tables | None,
    pair: ModelPair,
    specs: FeatureSpecs,
    panel: pd.DataFrame,
    catalog: pd.DataFrame,
    reference: pd.DataFrame | None,
    reference_source: str,
    first_months: pd.Series | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Drift of the batch's features against the training reference, and its summary (with
    the teams new since training; `first_months`: each team's first month, when the caller
    has them without the tables, else `team_first_months(tables)`)."""
    families = dict(zip(catalog["feature"], catalog["family"], strict=True)) if len(catalog) else {}
    if reference is None:
        drift = pd.DataFrame({c: [] for c in drift_mod.DRIFT_COLUMNS})
    else:
        drift = drift_mod.feature_drift(panel, reference, families)
    first = team_first_months(tables) if first_months is None else first_months
    trained = pd.Period(pair.trained_until, freq="M") if pair.trained_until else None
    new = drift_mod.new_teams(panel["team_id"], first, trained)
    return drift, drift_mod.summarize(drift, len(new), len(panel), reference_source)


def team_first_months(tables: Tables) -> pd.Series:
    """Each team's first month with a hire (not before data_start), by team id."""
    emp = tables.employees
    first = emp["hire_date"].dt.to_period("M").groupby(emp["team_id"].astype(str)).min()
    if tables.data_start is not None:
        first = first.clip(lower=pd.Period(tables.data_start, freq="M"))
    return first


def training_reference(
    tables: Tables, pair: ModelPair, specs: FeatureSpecs
) -> tuple[pd.DataFrame | None, str]:
    """The training distribution to measure drift against: saved with the model when it has one
    (`pair.drift_reference`), else rebuilt from these data at the model's last training month
    through the same feature path (the data directory normally holds the training history)."""
    saved = getattr(pair, "drift_reference", None)
    if isinstance(saved, pd.DataFrame) and len(saved):
        return saved, "model"

    month = pd.Period(pair.trained_until, freq="M")
    panel = build_panel(tables, specs)
    if not (panel["as_of"] == month).any():
        return None, "none (the data do not reach the model's last training month)"
    feats = [f for f in pair.features if f in panel.columns]
    reference = drift_mod.month_reference(panel, feats, month)
    return reference, f"rebuilt from the data at {pair.trained_until}"


def build_batch(
    tables: Tables,
    pair: ModelPair,
    specs: FeatureSpecs,
    *,
    as_of: pd.Period,
    min_group: int = MIN_GROUP,
    reference: tuple[pd.DataFrame | None, str] | None = None,
    calibration: pd.DataFrame | None = None,
) -> ScoreBatch:
    """Score, explain and check drift for one month. Pure: no files, no MLflow, no printing."""

    panel = build_panel(tables, specs, as_of=as_of)
    check_model_columns(pair, panel, specs)
    as_of_text = month_str(as_of)
    scores = scores_frame(pair.predict(panel), as_of_text, min_group)
    catalog = feature_catalog(specs, list(panel.columns))
    explanations, additivity = explain_batch(pair, panel, scores)
    drivers = explain.long_form(explanations, as_of_text, catalog)
    by_family = explain.by_family(explanations, as_of_text, catalog)
    ref, source = reference if reference is not None else training_reference(tables, pair, specs)
    drift, summary = batch_drift(tables, pair, specs, panel, catalog, ref, source)
    organisation = {k: float(v) for k, v in pair.org_total_interval(scores).items()}
    if calibration is None:
        calibration = getattr(pair, "calibration_table", None)
    warnings = list(panel.attrs.get("warnings", [])) + drift_mod.warnings_for(summary)
    return ScoreBatch(
        as_of=as_of_text,
        horizon=int(pair.config.horizon),
        scores=scores.drop(columns=["expected_attrition_rate"]),
        drivers=drivers,
        drivers_by_family=by_family,
        drift=drift,
        history=team_history(tables, as_of),
        calibration=calibration if isinstance(calibration, pd.DataFrame) else None,
        organisation=organisation,
        drift_summary=summary,
        additivity=additivity,
        warnings=warnings,
        coverage=getattr(pair, "coverage_table", None),
    )


# --------------------------------------------------------------------------- parquet, stably


# --------------------------------------------------------------------------- atomic folders


# --------------------------------------------------------------------------- the edge


__all__ = [
    "MANIFEST",
    "SCORE_COLUMNS",
    "ScoreBatch",
    "build_batch",
    "check_model_columns",
    "scores_frame",
    "team_history",
]
