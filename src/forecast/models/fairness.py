"""Fairness audit: is the attrition forecast equally well calibrated for teams of different
composition?

For each protected attribute present in `employees` (gender, birth_year, ...), every backtest
team-month gets a composition band (e.g. "majority women", "no majority"; median age "30-39"),
and the band's out-of-sample predicted leavers are compared with the realised ones. A band with
fewer than `min_teams` distinct teams is suppressed, and a band over- or under-forecast by more
than 10% gets a plain sentence.

Two steps, both pure:
- `fairness_input(predictions, employees)` -> one row per (team, as_of, attribute): band,
  predicted, realised. Team-level only: it is what `forecast score` saves as
  OUT/fairness.parquet, so no per-person value ever leaves this function;
- `fairness_audit(frame)` -> one row per (attribute, band).
Protected attributes are only ever read here to audit the model; they never become features.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from forecast.data.tables import PROTECTED

MIN_TEAMS = 5  # a band with fewer teams is suppressed
MIN_TEAM_SIZE = 5  # teams below the minimum group size get no composition band
AGE_BANDS = (
    (0, 30, "under 30"),
    (30, 40, "30 to 39"),
    (40, 50, "40 to 49"),
    (50, 200, "50 and over"),
)
AGE_COLUMNS = ("birth_year", "date_of_birth", "age")
VALUE_WORDS = {
    "f": "women",
    "female": "women",
    "w": "women",
    "woman": "women",
    "m": "men",
    "male": "men",
    "man": "men",
}
AUDIT_COLUMNS = [
    "attribute",
    "band",
    "teams",
    "team_months",
    "predicted",
    "realised",
    "ratio",
    "suppressed",
]


def _pred_columns(predictions: pd.DataFrame) -> tuple[str, str]:
    """Predicted and realised leaver columns of a backtest frame (backtest.py names them
    `pred_model` and `leavers`)."""
    pred = next(c for c in ("pred_model", "expected_leavers", "predicted") if c in predictions)
    real = next(c for c in ("leavers", "realised", "realised_leavers") if c in predictions)
    return pred, real


def _open_at(employees: pd.DataFrame, month: pd.Period) -> pd.DataFrame:
    end = month.to_timestamp(how="end")
    hire = pd.to_datetime(employees["hire_date"])
    exit_ = pd.to_datetime(employees["exit_date"])
    return employees.loc[(hire <= end) & (exit_.isna() | (exit_ > end))]


def _age_band(age: float) -> str | None:
    if not math.isfinite(age):
        return None
    for lo, hi, label in AGE_BANDS:
        if lo <= age < hi:
            return label
    return None


def _ages(values: pd.Series, column: str, month: pd.Period) -> pd.Series:
    if column == "age":
        return pd.to_numeric(values, errors="coerce")
    if column == "birth_year":
        return month.year - pd.to_numeric(values, errors="coerce")
    born = pd.to_datetime(values, errors="coerce")
    return (month.to_timestamp(how="end") - born).dt.days / 365.25


def _value_word(value: str) -> str:
    return VALUE_WORDS.get(value.strip().lower(), value)


def composition_bands(
    employees: pd.DataFrame, month: pd.Period | str, *, min_team_size: int = MIN_TEAM_SIZE
) -> pd.DataFrame:
    """Team composition bands at the end of `month`: (team_id, attribute, band).

    Age-like columns give the band of the team's median age; any other protected column gives
    "majority <value>" when one value holds more than half the team, else "no majority".
    """
    month = pd.Period(month, freq="M")
    present = [c for c in employees.columns if c.lower() in PROTECTED]
    cur = _open_at(employees, month)
    sizes = cur.groupby(cur["team_id"].astype(str)).size()
    big = sizes.index[sizes >= min_team_size]
    cur = cur.loc[cur["team_id"].astype(str).isin(big)]
    team = cur["team_id"].astype(str)
    frames = []
    for col in present:
        if col.lower() in AGE_COLUMNS:
            ages = _ages(cur[col], col.lower(), month)
            med = ages.groupby(team).median()
            band = med.map(_age_band)
            attribute = "median age"
        else:
            vals = cur[col].astype("string").str.strip()
            share = (
                pd.DataFrame({"team": team, "v": vals})
                .dropna()
                .groupby("team")["v"]
                .value_counts(normalize=True)
            )
            top = share.groupby(level=0).head(1).reset_index()
            top.columns = ["team", "v", "share"]
            top = top.set_index("team")
            majority = "majority " + top["v"].map(_value_word)
            band = pd.Series(np.where(top["share"] > 0.5, majority, "no majority"), index=top.index)
            attribute = col
        b = band.dropna()
        frames.append(
            pd.DataFrame(
                {
                    "team_id": b.index.astype(str),
                    "attribute": attribute,
                    "band": b.to_numpy(dtype=object),
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=["team_id", "attribute", "band"])
    return pd.concat(frames, ignore_index=True)


def fairness_input(
    predictions: pd.DataFrame, employees: pd.DataFrame, *, min_team_size: int = MIN_TEAM_SIZE
) -> pd.DataFrame:
    """Backtest out-of-sample predictions joined to the team's composition band at its as-of
    month: (team_id, as_of, attribute, band, predicted, realised). Team-level only; this is
    the frame to save as OUT/fairness.parquet."""
    pred_col, real_col = _pred_columns(predictions)
    p = predictions[["team_id", "as_of", pred_col, real_col]].copy()
    p["team_id"] = p["team_id"].astype(str)
    p["as_of"] = p["as_of"].astype(str)
    p = p.rename(columns={pred_col: "predicted", real_col: "realised"})
    frames = []
    for month, rows in p.groupby("as_of"):
        bands = composition_bands(employees, str(month), min_team_size=min_team_size)
        if bands.empty:
            continue
        frames.append(rows.merge(bands, on="team_id", how="inner"))
    cols = ["team_id", "as_of", "attribute", "band", "predicted", "realised"]
    if not frames:
        return pd.DataFrame(columns=cols)
    return pd.concat(frames, ignore_index=True)[cols]


def fairness_audit(frame: pd.DataFrame, *, min_teams: int = MIN_TEAMS) -> pd.DataFrame:
    """Predicted against realised leavers per (attribute, band); bands with fewer than
    `min_teams` distinct teams are suppressed (their numbers set to NaN)."""
    if frame.empty:
        return pd.DataFrame(columns=AUDIT_COLUMNS)
    g = frame.groupby(["attribute", "band"], sort=True)
    out = pd.DataFrame(
        {
            "teams": g["team_id"].nunique(),
            "team_months": g.size(),
            "predicted": g["predicted"].sum().astype(float),
            "realised": g["realised"].sum().astype(float),
        }
    ).reset_index()
    out["ratio"] = out["predicted"] / out["realised"].where(out["realised"] > 0)
    out["suppressed"] = out["teams"] < min_teams
    for col in ("predicted", "realised", "ratio", "team_months"):
        out[col] = out[col].where(~out["suppressed"])
    return out[AUDIT_COLUMNS]
