"""Slow, obviously right reference for `forecast.scoring.extras.team_attributes` (tests against
a slow reference): the per-team `value_counts` loop it used before issue 17, kept verbatim.
`tests/scoring/test_extras.py` checks the grouped version gives the same frame.
"""

from __future__ import annotations

import pandas as pd

from forecast.data.tables import is_identifier_like, is_protected
from forecast.scoring.batch import MIN_GROUP
from forecast.scoring.extras import (
    EMPLOYEE_CORE,
    PERSON_REF,
    PERSONAL,
    _group_label,
    _person_label,
)


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
