"""Forecasts over the scored months against what happened: the trend of `forecast serve` (and
anything else that reads a scoring ROOT), from each month's scores and `forecast review`'s rows.

Pure: frames in, plain values and SVG out. The caller cuts the frames to a reader's teams first
(report.scope), so every total here is over those teams; a month whose teams hold fewer people
than the minimum group size is counted as suppressed and never shown.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from forecast.report import charts, words
from forecast.report.render import approximate_org_interval


def _weighted(values: pd.Series, weights: pd.Series) -> float | None:
    ok = values.notna() & weights.notna()
    w = weights[ok].astype(float)
    if not ok.any() or w.sum() <= 0:
        return None
    return float(np.average(values[ok].astype(float), weights=w))


def trend_rows(
    month_scores: dict[str, pd.DataFrame], review: pd.DataFrame | None, min_group: int
) -> list[dict[str, Any]]:
    """One row per scored month, oldest first: the expected leavers over its teams (with an
    approximate 80% interval: team errors treated as independent), the expected CSAT change,
    and, where `forecast review` has the month (its horizon has passed), the leavers that
    happened in those teams, the forecast for the same teams, and the share of teams whose
    outcome fell inside their own interval."""
    team_rows = review
    if team_rows is not None and "level" in team_rows.columns:
        team_rows = team_rows.loc[team_rows["level"].astype("string") == "team"]
    rows = []
    for month in sorted(month_scores):
        s = month_scores[month]
        people = int(s["headcount"].sum()) if len(s) else 0
        row: dict[str, Any] = {"as_of": month, "teams": len(s), "headcount": people}
        if people < min_group:
            rows.append({**row, "suppressed": True})
            continue
        interval = approximate_org_interval(s)
        csat = _weighted(s["csat_change"], s["headcount"])
        row.update(
            suppressed=False,
            predicted=float(s["expected_leavers"].sum()),
            p10=interval["p10"],
            p90=interval["p90"],
            csat=csat,
            reviewed=False,
        )
        r = None
        if team_rows is not None and len(team_rows):
            r = team_rows.loc[team_rows["as_of"].astype("string") == month]
            r = r.loc[r["team_id"].astype("string").isin(set(s["team_id"].astype(str)))]
            r = r.loc[r["realised_leavers"].notna()]
        if r is not None and len(r):
            both = r["realised_csat_change"].notna() & r["predicted_csat_change"].notna()
            row.update(
                reviewed=True,
                realised=float(r["realised_leavers"].sum()),
                predicted_reviewed=float(r["predicted_leavers"].sum()),
                coverage=float(r["leavers_covered"].mean()),
                csat_predicted=_weighted(
                    r.loc[both, "predicted_csat_change"], r.loc[both, "headcount"]
                ),
                csat_realised=_weighted(
                    r.loc[both, "realised_csat_change"], r.loc[both, "headcount"]
                ),
            )
        rows.append(row)
    return rows


def trend_table(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """`trend_rows` in words for a table."""
    out = []
    for r in rows:
        if r["suppressed"]:
            out.append({"as_of": r["as_of"], "suppressed": "yes"})
            continue
        real = r.get("realised")
        pred = r.get("predicted_reviewed")
        out.append(
            {
                "as_of": r["as_of"],
                "suppressed": "",
                "teams": str(r["teams"]),
                "people": f"{r['headcount']:,}",
                "predicted": words.fmt_count(r["predicted"]),
                "interval": f"{words.fmt_count(r['p10'])} to {words.fmt_count(r['p90'])}",
                "csat": words.fmt_points(r["csat"]),
                "realised": words.fmt_count(real) if real is not None else "not due yet",
                "error": f"{(pred - real) / real:+.0%}"
                if real is not None and pred is not None and real > 0
                else "–",
                "coverage": f"{r['coverage']:.0%}"
                if r.get("coverage") is not None and math.isfinite(r["coverage"])
                else "–",
                "csat_realised": words.fmt_points(r.get("csat_realised"))
                if r.get("reviewed")
                else "–",
            }
        )
    return out


def trend_chart(rows: list[dict[str, Any]]) -> str:
    """Expected leavers per scored month with their interval, and what happened."""
    shown = [r for r in rows if not r["suppressed"]]
    if not shown:
        return ""
    months = [r["as_of"] for r in shown]
    desc = "; ".join(
        f"{r['as_of']}: expected {words.fmt_count(r['predicted'])}"
        + (f", realised {words.fmt_count(r['realised'])}" if r.get("reviewed") else "")
        for r in shown
    )
    return charts.forecast_vs_actual(
        months,
        [r["predicted"] for r in shown],
        [r["p10"] for r in shown],
        [r["p90"] for r in shown],
        [r.get("realised") for r in shown],
        title="Expected leavers by scored month, against what happened",
        desc=desc,
    )


__all__ = ["trend_chart", "trend_rows", "trend_table"]
