"""The team-level files `forecast score` writes beside the scores for the report, so that the
report is a pure function of the output folder: team attributes for roll-ups
(`team_attributes.parquet`), what-ifs by the causal engine (`whatif.parquet`) and the fairness
audit's input (`fairness.parquet`). None of them holds a per-person value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection

import numpy as np
import pandas as pd

from forecast.data.tables import Tables, is_identifier_like, is_protected
from forecast.features.names import split_feature
from forecast.features.specs import FeatureSpecs
from forecast.models.fairness import fairness_audit, fairness_input
from forecast.models.pair import ModelPair
from forecast.scoring.batch import MIN_GROUP
from forecast.whatif.engine import CausalEngine, StoredFit, make_engine
from forecast.whatif.month import WhatIfMonth
from forecast.whatif.signals import RESULT_COLUMNS, WhatIfEngine, settable_signals, signal_levels

# The report gives the 50 teams most at risk a full section (report.render.DETAIL_TEAMS); each
# gets a what-if.
WHATIF_TEAMS = 50


def top_actionable_drivers(
    tables: Tables,
    pair: ModelPair,
    specs: FeatureSpecs,
    scores: pd.DataFrame,
    drivers: pd.DataFrame,
    *,
    n_teams: int = WHATIF_TEAMS,
) -> pd.DataFrame:
    """For each of the `n_teams` reportable teams with the most expected leavers, its top
    actionable attrition driver (largest positive SHAP in a workload or engagement family):
    team_id, feature, signal, shap_value. Teams without one are absent."""
    settable = settable_signals(tables, specs, list(pair.features))
    rep = (
        scores.loc[scores["reportable"].astype(bool)]
        .sort_values(["expected_leavers", "team_id"], ascending=[False, True])
        .head(n_teams)
    )
    d = drivers.loc[
        (drivers["target"].astype(str) == "attrition")
        & drivers["team_id"].astype(str).isin(set(rep["team_id"].astype(str)))
        & (drivers["shap_value"] > 0)
    ].copy()
    d["feature"] = d["feature"].astype(str)
    d["signal"] = [split_feature(f)[1] if f.count("__") >= 2 else "" for f in d["feature"]]
    d = d.loc[d["signal"].isin(settable)]
    top = d.sort_values(["shap_value", "feature"], ascending=[False, True]).drop_duplicates(
        "team_id"
    )
    return top[["team_id", "feature", "signal", "shap_value"]]


def report_whatifs(
    tables: Tables,
    pair: ModelPair,
    specs: FeatureSpecs,
    scores: pd.DataFrame,
    drivers: pd.DataFrame,
    as_of: pd.Period | str,
    *,
    engine: WhatIfEngine,
    n_teams: int = WHATIF_TEAMS,
    signals: Collection[str] | None = None,
) -> pd.DataFrame:
    """For each of the `n_teams` reportable teams with the most expected leavers: move its top
    actionable attrition driver (largest positive SHAP in a workload or engagement family) to
    the organisation's median, with the engine. One engine call per signal (teams sharing a
    top driver are moved together: their features do not depend on one another's signals).
    `signals`: when given, only teams whose top driver is one of these get a what-if (the
    others are left out, never given another driver). Columns: the engine's, plus `feature`
    and `current_value`. Suggested output: OUT/whatif.parquet, written by `forecast score`."""
    month = pd.Period(as_of, freq="M")
    settable = settable_signals(tables, specs, list(pair.features))
    top = top_actionable_drivers(tables, pair, specs, scores, drivers, n_teams=n_teams)
    if signals is not None:
        top = top.loc[top["signal"].isin(set(signals))]
    frames = []
    for signal, group in top.groupby("signal", sort=True):
        setting = settable[signal]
        levels = signal_levels(tables, setting, month)
        # Observed values up to the month, so their median is inside `check_value`'s range.
        median = float(levels.median())
        teams = sorted(group["team_id"].astype(str))
        res = engine.estimate(tables, pair, teams, signal, median, month)
        res["feature"] = res["team_id"].map(
            dict(zip(group["team_id"].astype(str), group["feature"], strict=True))
        )
        res["current_value"] = res["team_id"].map(levels).astype(float)
        frames.append(res)
    if not frames:
        return pd.DataFrame(columns=[*RESULT_COLUMNS, "feature", "current_value"])
    return pd.concat(frames, ignore_index=True).sort_values("team_id").reset_index(drop=True)


def answerable_signals(
    what_if_fits: dict[str, StoredFit] | None,
    engine: CausalEngine,
    as_of: pd.Period | str,
    horizon: int,
    spec_hash: str,
) -> tuple[set[str], dict[str, str]]:
    """The signals whose stored fit can answer a what-if as of `as_of` without fitting, and
    why each other stored signal cannot (`StoredFit.refusal`)."""
    month = pd.Period(as_of, freq="M")
    ok, refused = set(), {}
    for signal, fit in (what_if_fits or {}).items():
        why = fit.refusal(month, horizon, engine.settings, spec_hash)
        if why is None:
            ok.add(signal)
        else:
            refused[signal] = why
    return ok, refused


def _skipped_whatifs_warning(
    top: pd.DataFrame, answerable: set[str], refused: dict[str, str], month: str
) -> str | None:
    """One line naming the at-risk teams left without a what-if, and why."""
    missing = top.loc[~top["signal"].isin(answerable)]
    if missing.empty:
        return None
    counts = missing["signal"].value_counts().sort_index()
    parts = [
        f"{signal} ({n} team{'s' if n > 1 else ''}: "
        + (refused.get(signal) or "no fit stored with the model")
        + ")"
        for signal, n in counts.items()
    ]
    return (
        f"what-ifs as of {month}: {len(missing)} of the teams most at risk have none in the "
        f"report, since `forecast score` never fits the what-if engine and their top actionable "
        f"driver has no usable fit stored with the model: {'; '.join(parts)}. Retrain "
        f"(`forecast train`, what_if.signals: auto) to store them."
    )


# Columns of employees that are never team attributes: keys, dates, exit details, free text.
EMPLOYEE_CORE = {"employee_id", "team_id", "hire_date", "exit_date", "exit_type", "exit_reason"}


# Columns whose values identify or describe a person, whatever their spread across teams.
PERSONAL = re.compile(
    r"(^|_)(name|first_?name|last_?name|surname|full_?name|email|e_?mail|phone|mobile|address|"
    r"postcode|zip|ssn|nin|passport|salary|pay|dob)($|_)",
    re.IGNORECASE,
)


PERSON_REF = re.compile(r"(manager|supervisor|lead|leader|boss|mentor|coach)", re.IGNORECASE)


def team_attributes(
    employees: pd.DataFrame,
    as_of: pd.Period | str,
    *,
    min_constancy: float = 0.8,
    min_group: int = MIN_GROUP,
) -> pd.DataFrame:
    """Team-level attributes (department, site, manager, ...) at the end of `as_of`, for
    roll-ups. One row per team; never a per-person value.

    A column qualifies when it is not a key, date, exit detail, protected attribute or
    personal field, and it is (nearly) constant within teams of two or more people: a
    name varies within a team, a department does not. A column that refers to a person
    (manager_id, or any value that is also an employee_id) is replaced by a label built from
    team ids ("manager of T0001, T0007"), so the report can roll up by manager without naming
    anyone. Suggested output: OUT/team_attributes.parquet, written by `forecast score`.
    """
    month = pd.Period(as_of, freq="M")
    end = month.to_timestamp(how="end")
    hire = pd.to_datetime(employees["hire_date"])
    exit_ = pd.to_datetime(employees["exit_date"])
    # Open at the end of the month, as in the contract's headcount.
    current = employees.loc[(hire <= end) & (exit_.isna() | (exit_ > end))]
    if current.empty:
        current = employees
    team = current["team_id"].astype("string")
    ids = set(employees["employee_id"].astype("string").dropna())
    out = pd.DataFrame({"team_id": sorted(team.dropna().unique())})
    sizes = team.value_counts()
    multi = sizes.index[sizes >= 2]
    for col in current.columns:
        if col in EMPLOYEE_CORE or is_protected(col) or PERSONAL.search(col):
            continue
        values = current[col].astype("string")
        if values.isna().all():
            continue
        modal, share = modal_values(team, values)
        if len(multi):
            share = share.loc[share.index.isin(multi)]
            if share.empty or share.mean() < min_constancy:
                continue
        elif values.nunique() > 1:
            continue  # one-person teams only: constancy cannot be told apart from a name
        # A set intersection: `isin` with 50,000 ids on an Arrow string column took a second.
        refers_to_person = bool(PERSON_REF.search(col)) or not ids.isdisjoint(modal.tolist())
        if refers_to_person:
            label = _person_label(col)
            by_value = modal.groupby(modal).groups
            names = {
                v: _group_label(label, list(map(str, teams)), sizes, min_group)
                for v, teams in by_value.items()
            }
            out[label] = out["team_id"].map(modal.map(names)).astype("string")
        elif is_identifier_like(col) or pd.api.types.is_numeric_dtype(current[col]):
            # Numeric or code-like columns that are constant per team are still attributes
            # (e.g. a cost-centre code), but only with few distinct values.
            if modal.nunique() > max(len(out) // 2, 1):
                continue
            out[col] = out["team_id"].map(modal).astype("string")
        else:
            out[col] = out["team_id"].map(modal).astype("string")
    return out


def modal_values(team: pd.Series, values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Per team (sorted): its most frequent non-missing value, ties to the one seen first (as
    `value_counts` orders them), and that value's share of the team's non-missing values.
    One grouping of the whole column instead of a `value_counts` per team (seconds at 1,500
    teams)."""
    f = pd.DataFrame({"team": team, "v": values}).dropna()
    counts = f.groupby(["team", "v"], sort=False, observed=True).size().reset_index(name="n")
    counts["seen"] = np.arange(len(counts))  # first appearance of each (team, value)
    counts = counts.sort_values(["team", "n", "seen"], ascending=[True, False, True])
    top = counts.drop_duplicates("team").set_index("team")
    total = counts.groupby("team", sort=True)["n"].sum()
    modal = top["v"].rename(None)
    modal.index.name = None
    share = (top["n"] / total.loc[top.index]).rename(None)
    share.index.name = None
    return modal, share


def _group_label(label: str, teams: list[str], sizes: pd.Series, min_group: int) -> str:
    """ "manager of T1, T2": named by the teams of at least `min_group` people only (a small
    team is never named), the rest counted."""
    big = sorted(t for t in teams if sizes.get(t, 0) >= min_group)
    small = len(teams) - len(big)
    if not big:
        return f"{label} of {small} small team{'s' if small > 1 else ''}"
    text = f"{label} of {', '.join(big[:4])}"
    more = len(big[4:]) + small
    return text + (f" and {more} more" if more else "")


def _person_label(col: str) -> str:
    m = PERSON_REF.search(col)
    return (m.group(1).lower() if m else "group").replace("_", " ")


def score_extras(
    tables: Tables,
    pair: ModelPair,
    specs: FeatureSpecs,
    scores: pd.DataFrame,
    drivers: pd.DataFrame,
    as_of: pd.Period | str,
    *,
    what_if_fits: dict[str, StoredFit] | None = None,
    backtest_predictions: pd.DataFrame | None = None,
    n_whatif: int = WHATIF_TEAMS,
    warn: Callable[[str], None] | None = None,
    month_inputs: WhatIfMonth | None = None,
) -> dict[str, pd.DataFrame]:
    """The team-level files `forecast score` saves for the report, by file name:
    team_attributes.parquet (roll-ups), whatif.parquet (each at-risk team's top actionable
    driver moved to the organisation's median, by the causal engine from the fits stored with
    the pair; `warn` hears which teams got none) and, given the backtest's
    out-of-sample predictions per team, fairness.parquet (the audit by composition band).
    None of them holds a per-person value. `month_inputs`: the month's what-if inputs, read
    from these tables (their panel rows are then not built again).
    """
    out = {"team_attributes.parquet": team_attributes(tables.employees, as_of)}
    # Scoring never fits the what-if engine (a fit per signal took minutes on a large
    # organisation): the fits stored with the pair answer, when they can (same horizon, specs
    # and settings, as of their month or later); other teams get no what-if and a warning.
    engine = make_engine(specs, stored=what_if_fits or {})
    month = pd.Period(as_of, freq="M")
    if month_inputs is not None and month_inputs.month == month:
        engine.seed_month(tables, month_inputs)
    answerable, refused = answerable_signals(
        what_if_fits, engine, month, int(pair.config.horizon), specs.hash()
    )
    top = top_actionable_drivers(tables, pair, specs, scores, drivers, n_teams=n_whatif)
    skipped = _skipped_whatifs_warning(top, answerable, refused, str(month))
    if skipped is not None and warn is not None:
        warn(skipped)
    out["whatif.parquet"] = report_whatifs(
        tables,
        pair,
        specs,
        scores,
        drivers,
        as_of,
        n_teams=n_whatif,
        engine=engine,
        signals=answerable,
    )
    if backtest_predictions is not None and len(backtest_predictions):
        out["fairness.parquet"] = fairness_audit(
            fairness_input(backtest_predictions, tables.employees)
        )
    return {name: frame.reset_index(drop=True) for name, frame in out.items() if len(frame)}
