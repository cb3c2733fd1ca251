"""`forecast review --data DIR --out-root ROOT`: how did past forecasts do?

Every month folder under ROOT whose horizon has passed (as_of + horizon <= the latest complete
month of the data) is compared with what happened: predicted and realised leavers and CSAT
change per team, whether each realised value fell inside its interval, and the same for the
whole organisation. The realised values come from `targets.build_targets`, the definitions the
models were trained on. Writes ROOT/review.parquet (replaced atomically); never touches the
month folders.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

REVIEW_FILE = "review.parquet"
REVIEW_COLUMNS = (
    "level",
    "as_of",
    "horizon",
    "team_id",
    "model_version",
    "teams",
    "headcount",
    "predicted_leavers",
    "leavers_p10",
    "leavers_p90",
    "realised_leavers",
    "leavers_covered",
    "predicted_csat_change",
    "csat_change_p10",
    "csat_change_p90",
    "realised_csat_change",
    "csat_covered",
    "leavers_coverage",
    "csat_coverage",
)


def team_review(scores: pd.DataFrame, realised: pd.DataFrame) -> pd.DataFrame:
    """Per team of one forecast: predicted vs realised, and interval coverage (pure)."""
    real = realised[["team_id", "leavers", "csat_change"]].rename(
        columns={"leavers": "realised_leavers", "csat_change": "realised_csat_change"}
    )
    real = real.assign(team_id=real["team_id"].astype(str))
    s = scores.assign(team_id=scores["team_id"].astype(str))
    out = s.merge(real, on="team_id", how="left", validate="one_to_one")
    rl, rc = out["realised_leavers"], out["realised_csat_change"]
    out["leavers_covered"] = ((rl >= out["leavers_p10"]) & (rl <= out["leavers_p90"])).where(
        rl.notna()
    )
    out["csat_covered"] = ((rc >= out["csat_change_p10"]) & (rc <= out["csat_change_p90"])).where(
        rc.notna() & out["csat_change"].notna()
    )
    return pd.DataFrame(
        {
            "level": "team",
            "as_of": out["as_of"].astype(str),
            "team_id": out["team_id"],
            "teams": 1,
            "headcount": out["headcount"].astype(np.int64),
            "predicted_leavers": out["expected_leavers"],
            "leavers_p10": out["leavers_p10"],
            "leavers_p90": out["leavers_p90"],
            "realised_leavers": rl.astype(float),
            "leavers_covered": out["leavers_covered"].astype(float),
            "predicted_csat_change": out["csat_change"],
            "csat_change_p10": out["csat_change_p10"],
            "csat_change_p90": out["csat_change_p90"],
            "realised_csat_change": rc.astype(float),
            "csat_covered": out["csat_covered"].astype(float),
        }
    )


def organisation_row(teams: pd.DataFrame, org_interval: dict) -> dict:
    """The organisation's line: total leavers against the org interval of the manifest (team
    bounds do not add up), headcount-weighted CSAT change over teams with both values, and the
    share of teams whose realised value fell inside their interval."""
    lab = teams[teams["realised_leavers"].notna()]
    both = teams[teams["realised_csat_change"].notna() & teams["predicted_csat_change"].notna()]
    realised = float(lab["realised_leavers"].sum()) if len(lab) else np.nan
    lo, hi = org_interval.get("leavers_p10"), org_interval.get("leavers_p90")
    covered = (
        float(lo <= realised <= hi) if lo is not None and hi is not None and len(lab) else np.nan
    )
    w = both["headcount"].to_numpy(dtype=float)

    def wmean(col: str) -> float:
        return float(np.average(both[col], weights=w)) if len(both) and w.sum() > 0 else np.nan

    return {
        "level": "organisation",
        "team_id": None,
        "teams": len(teams),
        "headcount": int(teams["headcount"].sum()),
        "predicted_leavers": float(teams["predicted_leavers"].sum()),
        "leavers_p10": np.nan if lo is None else float(lo),
        "leavers_p90": np.nan if hi is None else float(hi),
        "realised_leavers": realised,
        "leavers_covered": covered,
        "predicted_csat_change": wmean("predicted_csat_change"),
        "realised_csat_change": wmean("realised_csat_change"),
        "leavers_coverage": float(teams["leavers_covered"].mean()) if len(lab) else np.nan,
        "csat_coverage": float(teams["csat_covered"].mean()) if len(both) else np.nan,
    }


__all__ = [
    "REVIEW_COLUMNS",
    "organisation_row",
    "team_review",
]
