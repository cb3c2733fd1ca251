"""Slow, obviously right references for the report's fast paths (tests against a slow
reference): the per-team, per-row loops that `forecast.report.render` used before issue 17,
kept verbatim. `tests/report/test_fast_paths.py` renders the same output folder with these and
with the fast code and compares the HTML bytes; `benchmarks/score_report.py` times both.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from forecast.report import charts, words
from forecast.report.render import (
    DETAIL_TEAMS,
    MIN_GROUP,
    SPARK_MONTHS,
    TOP_DRIVERS,
    _col,
    _csat_weighted,
    _interval_text,
    _num,
    _percentiles,
    _risk_order,
    attrition_waterfall,
    csat_waterfall,
    ex_cx_link,
    family_summary,
    feature_stats,
    is_protected,
    whatif_by_team,
)


def history_series(
    history: pd.DataFrame | None, team_id: str, months: int = SPARK_MONTHS
) -> tuple[list[float | None], list[float | None], list[str]]:
    """A team's recent monthly voluntary leavers and CSAT (oldest first) for sparklines."""
    if history is None or history.empty:
        return [], [], []
    mcol = _col(history, "month", "as_of")
    lcol = _col(history, "vol_leavers", "leavers", "voluntary_leavers")
    ccol = _col(history, "csat", "csat_mean")
    if mcol is None:
        return [], [], []
    h = history.loc[history["team_id"].astype("string") == team_id].sort_values(mcol)
    h = h.tail(months)
    leavers = [_num(v) for v in h[lcol]] if lcol else []
    csat = [_num(v) for v in h[ccol]] if ccol else []
    return leavers, csat, [str(m) for m in h[mcol]]


def team_table(scores: pd.DataFrame, history: pd.DataFrame | None) -> list[dict[str, Any]]:
    """Rows of the ranked table: reportable teams only, by expected leavers, with the rank by
    CSAT dip alongside and sparklines of the recent past."""
    rep = scores.loc[scores["reportable"].astype(bool)].copy()
    rep = rep.sort_values(["expected_leavers", "team_id"], ascending=[False, True])
    csat_rank = rep["csat_change"].astype(float).rank(method="min", na_option="keep")
    top = float(rep["leavers_p90"].max()) if "leavers_p90" in rep and len(rep) else 1.0
    rows = []
    for rank, (idx, r) in enumerate(rep.iterrows(), start=1):
        team = str(r["team_id"])
        leavers, csat, months = history_series(history, team)
        span = f"{months[0]} to {months[-1]}" if months else "no history"
        lv_text = ", ".join("–" if v is None else f"{v:.0f}" for v in leavers)
        cs_text = ", ".join("–" if v is None else f"{v:.0f}" for v in csat)
        csat_v = _num(r.get("csat_change"))
        rows.append(
            {
                "rank": rank,
                "team_id": team,
                "headcount": int(r["headcount"]),
                "expected": words.fmt_count(float(r["expected_leavers"])),
                "expected_sort": round(float(r["expected_leavers"]), 4),
                "leavers_interval": _interval_text(
                    r.get("leavers_p10"), r.get("leavers_p90"), lambda v: f"{v:.0f}"
                ),
                "interval_bar": charts.interval_bar(
                    float(r["expected_leavers"]),
                    _num(r.get("leavers_p10")) or 0.0,
                    _num(r.get("leavers_p90")) or 0.0,
                    scale_max=top,
                    title=f"{team}: 80% interval of leavers",
                )
                if "leavers_p10" in r
                else "",
                "rate": words.fmt_pct(_num(r["attrition_rate"]), 1),
                "rate_sort": round(float(r["attrition_rate"]), 6),
                "csat": words.fmt_points(csat_v),
                "csat_sort": round(csat_v, 4) if csat_v is not None else 999.0,
                "csat_interval": _interval_text(
                    r.get("csat_change_p10"), r.get("csat_change_p90"), words.fmt_points
                ),
                "csat_rank": int(csat_rank.loc[idx]) if pd.notna(csat_rank.loc[idx]) else None,
                "band": str(r.get("risk_band", "")) if pd.notna(r.get("risk_band")) else "",
                "band_sort": _risk_order(r.get("risk_band")),
                "spark_leavers": charts.sparkline(
                    leavers,
                    as_bars=True,
                    colour=charts.VERMILLION,
                    title=f"{team}: voluntary leavers per month",
                    desc=f"Voluntary leavers per month, {span}: {lv_text or 'none recorded'}.",
                ),
                "spark_csat": charts.sparkline(
                    csat,
                    colour=charts.BLUE,
                    title=f"{team}: CSAT per month",
                    desc=f"Monthly CSAT, {span}: {cs_text or 'no CSAT'}.",
                ),
            }
        )
    return rows


def driver_rows(
    drivers: pd.DataFrame,
    team_id: str,
    target: str,
    stats: pd.DataFrame,
) -> list[dict[str, Any]]:
    """One team's drivers for one target, largest |SHAP| first, each with a sentence."""
    d = drivers.loc[(drivers["team_id"] == team_id) & (drivers["target"] == target)]
    if d.empty:
        return []
    d = d.assign(abs_shap=d["shap_value"].abs()).sort_values(
        ["abs_shap", "feature"], ascending=[False, True]
    )
    rows = []
    for _, r in d.iterrows():
        feature = str(r["feature"])
        fam = (
            str(r["family"])
            if "family" in r and pd.notna(r["family"])
            else words.parse_feature(feature).family
        )
        label = r.get("feature_label") if "feature_label" in r else None
        key = (target, feature)
        med = stats["median"].get(key) if key in stats.index else None
        spread = stats["spread"].get(key) if key in stats.index else None
        value = float(r["feature_value"]) if pd.notna(r["feature_value"]) else float("nan")
        rows.append(
            {
                "feature": feature,
                "family": fam,
                "family_label": words.family_label(fam),
                "label": words.signal_label(
                    words.parse_feature(feature, fam).signal,
                    label if isinstance(label, str) else None,
                ),
                "full_label": str(label) if isinstance(label, str) and label else feature,
                "value": value,
                "shap": float(r["shap_value"]),
                "base": float(r["base_value"]),
                "actionable": words.is_actionable(fam),
                "sentence": words.describe_driver(
                    feature,
                    family=fam,
                    feature_label=label if isinstance(label, str) else None,
                    value=value,
                    shap_value=float(r["shap_value"]),
                    target=target,
                    percentile=_num(r.get("pct")),
                    spread=_num(spread),
                    org_median=_num(med),
                ),
            }
        )
    return rows


def team_sections(
    scores: pd.DataFrame,
    drivers: pd.DataFrame | None,
    whatif: pd.DataFrame | None,
    n_detail: int = DETAIL_TEAMS,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Detailed sections for the `n_detail` reportable teams with the most expected leavers,
    compact rows for the other reportable teams. Non-reportable teams get nothing."""
    rep = scores.loc[scores["reportable"].astype(bool)].sort_values(
        ["expected_leavers", "team_id"], ascending=[False, True]
    )
    d = None
    stats = pd.DataFrame()
    if drivers is not None and not drivers.empty:
        d = drivers.loc[drivers["team_id"].isin(set(rep["team_id"].astype(str)))].copy()
        d["team_id"] = d["team_id"].astype(str)
        d["target"] = d["target"].astype(str)
        d["pct"] = _percentiles(d)
        stats = feature_stats(d)
    wi = whatif_by_team(whatif)
    detailed, compact = [], []
    for i, (_, r) in enumerate(rep.iterrows()):
        team = str(r["team_id"])
        hc = int(r["headcount"])
        att = driver_rows(d, team, "attrition", stats) if d is not None else []
        cs = driver_rows(d, team, "csat", stats) if d is not None else []
        csat_v = _num(r.get("csat_change"))
        top_actionable = next((x for x in att if x["actionable"] and x["shap"] > 0), None)
        if i >= n_detail:
            compact.append(
                {
                    "team_id": team,
                    "headcount": hc,
                    "expected": words.fmt_count(float(r["expected_leavers"])),
                    "csat": words.fmt_points(csat_v),
                    "band": str(r.get("risk_band", "")),
                    "driver": att[0]["sentence"] if att else "",
                }
            )
            continue
        detailed.append(
            {
                "team_id": team,
                "anchor": "team-" + re.sub(r"[^A-Za-z0-9_-]", "-", team),
                "headcount": hc,
                "band": str(r.get("risk_band", "")),
                "expected": words.fmt_count(float(r["expected_leavers"])),
                "leavers_interval": _interval_text(
                    r.get("leavers_p10"), r.get("leavers_p90"), lambda v: f"{v:.0f}"
                ),
                "rate": words.fmt_pct(_num(r["attrition_rate"]), 1),
                "csat": words.fmt_points(csat_v),
                "csat_interval": _interval_text(
                    r.get("csat_change_p10"), r.get("csat_change_p90"), words.fmt_points
                ),
                "actionable": [x for x in att if x["actionable"]][:TOP_DRIVERS],
                "history": [x for x in att if not x["actionable"]][:TOP_DRIVERS],
                "families": family_summary(att, "attrition"),
                "waterfall": attrition_waterfall(team, hc, att),
                "csat_waterfall": csat_waterfall(team, cs),
                "ex_cx": ex_cx_link(cs, csat_v),
                "top_actionable": top_actionable["sentence"] if top_actionable else None,
                "whatif": wi.get(team),
            }
        )
    return detailed, compact


def rollups(
    scores: pd.DataFrame, attributes: pd.DataFrame | None, min_group: int = MIN_GROUP
) -> list[dict[str, Any]]:
    """Totals by each team attribute. A group with fewer than `min_group` people, or built
    only from non-reportable teams, is suppressed (counted, never shown)."""
    if attributes is None or attributes.empty:
        return []
    s = scores.copy()
    s["team_id"] = s["team_id"].astype(str)
    a = attributes.copy()
    a["team_id"] = a["team_id"].astype(str)
    merged = s.merge(a, on="team_id", how="left")
    out = []
    for col in [c for c in a.columns if c != "team_id"]:
        if is_protected(col):
            continue
        groups, suppressed = [], 0
        for value, g in merged.groupby(col, dropna=True):
            hc = int(g["headcount"].sum())
            if hc < min_group or not g["reportable"].astype(bool).any():
                suppressed += 1
                continue
            exp = float(g["expected_leavers"].sum())
            groups.append(
                {
                    "value": str(value),
                    "teams": len(g),
                    "headcount": hc,
                    "expected": words.fmt_count(exp),
                    "expected_sort": exp,
                    "rate": words.fmt_pct(exp / hc, 1),
                    "csat": words.fmt_points(_csat_weighted(g)),
                    "high": int(
                        (g.get("risk_band", pd.Series(dtype=str)).astype(str) == "high").sum()
                    ),
                }
            )
        if not groups and not suppressed:
            continue
        groups.sort(key=lambda x: -x["expected_sort"])
        out.append(
            {
                "attribute": col.replace("_", " ").capitalize(),
                "groups": groups,
                "suppressed": suppressed,
            }
        )
    return out
