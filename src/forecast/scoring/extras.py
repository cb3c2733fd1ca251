"""The team-level files `forecast score` writes beside the scores for the report, so that the
report is a pure function of the output folder: team attributes for roll-ups
(`team_attributes.parquet`), what-ifs by the causal engine (`whatif.parquet`) and the fairness
audit's input (`fairness.parquet`). None of them holds a per-person value.
"""

from __future__ import annotations

import re

import pandas as pd

from forecast.data.tables import Tables, is_identifier_like, is_protected
from forecast.features.names import split_feature
from forecast.features.specs import FeatureSpecs
from forecast.models.fairness import fairness_audit, fairness_input
from forecast.models.pair import ModelPair
from forecast.scoring.batch import MIN_GROUP
from forecast.whatif.engine import StoredFit, make_engine
from forecast.whatif.signals import RESULT_COLUMNS, WhatIfEngine, settable_signals, signal_levels

# The report gives the 50 teams most at risk a full section (report.render.DETAIL_TEAMS); each
# gets a what-if.
WHATIF_TEAMS = 50


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
) -> pd.DataFrame:
    """For each of the `n_teams` reportable teams with the most expected leavers: move its top
    actionable attrition driver (largest positive SHAP in a workload or engagement family) to
    the organisation's median, with the engine. One engine call per signal (teams sharing a
    top driver are moved together: their features do not depend on one another's signals).
    Columns: the engine's, plus `feature` and `current_value`. Suggested output:
    OUT/whatif.parquet, written by `forecast score`."""
    month = pd.Period(as_of, freq="M")
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
        modal = (
            pd.DataFrame({"team": team, "v": values})
            .dropna()
            .groupby("team")["v"]
            .agg(lambda s: s.value_counts().index[0])
        )
        if len(multi):
            share = (
                pd.DataFrame({"team": team, "v": values})
                .loc[lambda d: d["team"].isin(multi)]
                .groupby("team")["v"]
                .agg(lambda s: s.value_counts(normalize=True).iloc[0])
            )
            if share.empty or share.mean() < min_constancy:
                continue
        elif values.nunique() > 1:
            continue  # one-person teams only: constancy cannot be told apart from a name
        refers_to_person = bool(PERSON_REF.search(col)) or bool(modal.isin(ids).any())
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
) -> dict[str, pd.DataFrame]:
    """The team-level files `forecast score` saves for the report, by file name:
    team_attributes.parquet (roll-ups), whatif.parquet (each at-risk team's top actionable
    driver moved to the organisation's median, by the causal engine) and, given the backtest's
    out-of-sample predictions per team, fairness.parquet (the audit by composition band).
    None of them holds a per-person value.
    """
    out = {"team_attributes.parquet": team_attributes(tables.employees, as_of)}
    # The engine reuses the fits stored with the pair when they can answer (same horizon,
    # as of their month or later); otherwise it fits, once per signal.
    engine = make_engine(specs, stored=what_if_fits or {})
    out["whatif.parquet"] = report_whatifs(
        tables, pair, specs, scores, drivers, as_of, n_teams=n_whatif, engine=engine
    )
    if backtest_predictions is not None and len(backtest_predictions):
        out["fairness.parquet"] = fairness_audit(
            fairness_input(backtest_predictions, tables.employees)
        )
    return {name: frame.reset_index(drop=True) for name, frame in out.items() if len(frame)}
