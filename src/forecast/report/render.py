"""The leaders' report: one self-contained HTML file built from the outputs of `forecast score`.

Layout of the module (I/O at the edges, pure functions in the middle):
- `load_outputs(out_dir)` reads OUT/*.parquet, manifest.json, a sibling month folder's scores
  (for "compared with last month") and ROOT/review.parquet when present;
- `build_context(inputs)` turns those frames into plain values and inline SVG, with no I/O;
- `render(context)` fills the Jinja2 template; `write_report(out_dir)` does all three and
  replaces OUT/report.html atomically.

The report is a pure function of the output folder: whatever it shows (what-ifs, fairness,
roll-ups, calibration) is a file that scoring wrote, and it imports nothing from
`forecast.models`, `whatif`, `mlops` or `scoring`. It must never name an individual employee:
it reads team-level files only (`scoring.extras.team_attributes` keeps team attributes that
are constant within teams and turns a manager identifier into "manager of teams T1, T2").
Teams below the minimum group size appear only as a count. Charts are inline SVG or base64
PNG, the script is inline, and nothing is fetched from the network.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from forecast.data.atomic import write_text_atomic
from forecast.data.lineage import MANIFEST, file_sha256, manifest_text
from forecast.data.months import is_month_folder
from forecast.data.tables import PROTECTED, is_protected
from forecast.errors import ConfigError, OutputError
from forecast.features.names import RATE_FEATURE, is_feature_name
from forecast.report import assets, charts, words
from forecast.report.scope import (
    Scope,
    check_scope_keys,
    scope_inputs,
    scope_text,
    teams_in_scope,
)

MIN_GROUP = 5  # contract default of `--min-group`
DETAIL_TEAMS = 50  # teams most at risk that get a full section; the rest get a compact row
TOP_DRIVERS = 3  # sentences per kind (actionable, history) in a team section
WATERFALL_STEPS = 7  # bars before "all other drivers"
SPARK_MONTHS = 12
FAIRNESS_GAP = 0.10  # a band over- or under-forecast by more than this gets a sentence
MIN_FAIRNESS_TEAMS = 5
MODEL_LIMITS = (
    "The link from expected attrition to CSAT is validated on simulated data only; on real "
    "data it is an association learnt by the CSAT model, not a measured causal effect.",
    "Forecasts describe teams, never individuals, and are not a basis for decisions about any "
    "one person.",
    "What-if numbers are causal estimates validated on simulated organisations only; they "
    "assume no hidden driver of both the signal and leaving (docs/what-if.md).",
    "Intervals are calibrated on past out-of-sample errors; an organisational change the model "
    "has not seen (re-organisation, new policy) can make them too narrow.",
)


# =========================================================================== inputs (edge)


@dataclass
class PreviousRun:
    as_of: str
    scores: pd.DataFrame
    org_total: dict[str, float] | None


@dataclass
class ReportInputs:
    """Everything the report reads; every frame but `scores` is optional."""

    scores: pd.DataFrame
    manifest: dict[str, Any] = field(default_factory=dict)
    drivers: pd.DataFrame | None = None
    drivers_by_family: pd.DataFrame | None = None
    history: pd.DataFrame | None = None
    calibration: pd.DataFrame | None = None
    coverage: pd.DataFrame | None = None
    drift: pd.DataFrame | None = None
    whatif: pd.DataFrame | None = None
    team_attributes: pd.DataFrame | None = None
    fairness: pd.DataFrame | None = None
    review: pd.DataFrame | None = None
    previous: PreviousRun | None = None
    model_card: dict[str, Any] | None = None
    # The reader's scope in words when the folder was cut down to it (report.scope), else None.
    scope: str | None = None
    # With a scope: the whole organisation's drivers, against which the scope's teams are put in
    # words ("above the organisation's typical level"); never shown themselves.
    reference_drivers: pd.DataFrame | None = None


def _read_parquet(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    frame = pd.read_parquet(path)
    # Categorical columns (explain.py writes them to keep files small) behave like strings here.
    for col in frame.columns:
        if isinstance(frame[col].dtype, pd.CategoricalDtype):
            frame[col] = frame[col].astype("string")
    return frame


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def load_outputs(out_dir: Path | str) -> ReportInputs:
    """Read a score output folder. Only `scores.parquet` is required."""
    out = Path(out_dir)
    scores = _read_parquet(out / "scores.parquet")
    if scores is None:
        raise OutputError(f"{out}: no scores.parquet here; run `forecast score --out {out}` first.")
    manifest = _read_json(out / MANIFEST) or {}
    as_of = _as_of(scores, manifest)
    # `forecast score` builds the report in a temporary folder beside OUT before swapping it in:
    # the manifest's `output` is where the folder will live, so siblings are looked up there.
    home = Path(manifest["output"]) if manifest.get("output") else out
    return ReportInputs(
        scores=scores,
        manifest=manifest,
        drivers=_read_parquet(out / "drivers.parquet"),
        drivers_by_family=_read_parquet(out / "drivers_by_family.parquet"),
        history=_read_parquet(out / "history.parquet"),
        calibration=_read_parquet(out / "backtest_calibration.parquet"),
        coverage=_read_parquet(out / "backtest_coverage.parquet"),
        drift=_read_parquet(out / "drift.parquet"),
        whatif=_read_parquet(out / "whatif.parquet"),
        team_attributes=_read_parquet(out / "team_attributes.parquet"),
        fairness=_read_parquet(out / "fairness.parquet"),
        review=_read_parquet(home.parent / "review.parquet")
        if is_month_folder(home.name)
        else _read_parquet(out / "review.parquet"),
        previous=_previous_run(home, as_of),
        model_card=_read_json(out / "model_card.json"),
    )


def _previous_run(out: Path, as_of: str | None) -> PreviousRun | None:
    """The latest sibling month folder (ROOT/YYYY-MM) scored before this one."""
    root = out.resolve().parent
    if not root.is_dir():
        return None
    current = as_of or (out.name if is_month_folder(out.name) else None)
    candidates = sorted(
        p
        for p in root.iterdir()
        if p.is_dir()
        and is_month_folder(p.name)
        and p.resolve() != out.resolve()
        and (current is None or p.name < current)
        and (p / "scores.parquet").exists()
    )
    if not candidates:
        return None
    prev = candidates[-1]
    scores = _read_parquet(prev / "scores.parquet")
    if scores is None:
        return None
    manifest = _read_json(prev / MANIFEST) or {}
    return PreviousRun(as_of=prev.name, scores=scores, org_total=_org_total_from(manifest))


# =========================================================================== team attributes


# =========================================================================== pure helpers


def _as_of(scores: pd.DataFrame, manifest: dict[str, Any]) -> str | None:
    value = manifest.get("as_of")
    if value:
        return str(value)
    if "as_of" in scores and len(scores):
        return str(scores["as_of"].iloc[0])
    return None


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _pick(d: dict[str, Any] | None, *paths: str) -> Any:
    """The first present value of dotted `paths` in a nested dict (manifests evolve)."""
    for path in paths:
        node: Any = d
        for key in path.split("."):
            if not isinstance(node, dict) or key not in node:
                node = None
                break
            node = node[key]
        if node not in (None, ""):
            return node
    return None


def _col(frame: pd.DataFrame | None, *names: str) -> str | None:
    if frame is None:
        return None
    for n in names:
        if n in frame.columns:
            return n
    return None


def _org_total_from(manifest: dict[str, Any]) -> dict[str, float] | None:
    node = _pick(manifest, "organisation", "org_total", "org_total_interval")
    if not isinstance(node, dict):
        return None
    exp = _num(node.get("expected_leavers", node.get("expected")))
    if exp is None:
        return None
    return {
        "expected": exp,
        "p10": _num(node.get("leavers_p10", node.get("p10"))),
        "p90": _num(node.get("leavers_p90", node.get("p90"))),
    }


def approximate_org_interval(scores: pd.DataFrame, level: float = 0.8) -> dict[str, Any]:
    """Fallback when the manifest lacks the model's org interval: treat team errors as
    independent normals sized from each team's interval. Team errors share causes, so this is
    too narrow; the report says "approximate" when it is used."""
    z = 1.2815515655446004  # the 90th percentile of a standard normal
    exp = float(scores["expected_leavers"].sum())
    if {"leavers_p10", "leavers_p90"} <= set(scores.columns):
        sd = (scores["leavers_p90"] - scores["leavers_p10"]) / (2 * z)
        total_sd = float(np.sqrt(np.nansum(sd.to_numpy(dtype=float) ** 2)))
    else:
        total_sd = math.sqrt(exp)
    return {
        "expected": exp,
        "p10": max(exp - z * total_sd, 0.0),
        "p90": exp + z * total_sd,
        "approximate": True,
    }


def _csat_weighted(scores: pd.DataFrame) -> float | None:
    """Organisation's expected CSAT change: team changes weighted by headcount (a proxy for
    the customer contacts a team handles)."""
    s = scores.dropna(subset=["csat_change"])
    if s.empty:
        return None
    w = s["headcount"].astype(float)
    return float(np.average(s["csat_change"].astype(float), weights=w)) if w.sum() > 0 else None


def headline(
    scores: pd.DataFrame, manifest: dict[str, Any], previous: PreviousRun | None
) -> dict[str, Any]:
    """The first thing a leader reads: total expected leavers with its 80% interval, the
    expected CSAT effect, and the change since the last scored month."""
    org = _org_total_from(manifest) or approximate_org_interval(scores)
    csat = _csat_weighted(scores)
    dips = scores.loc[scores["csat_change"].astype(float) <= -1.0]
    hc = int(scores["headcount"].sum())
    out: dict[str, Any] = {
        "expected": words.fmt_count(org["expected"]),
        "p10": words.fmt_count(org.get("p10")),
        "p90": words.fmt_count(org.get("p90")),
        "approximate": bool(org.get("approximate")),
        "rate": words.fmt_pct(org["expected"] / hc, 1) if hc else "–",
        "headcount": f"{hc:,}",
        "teams": len(scores),
        "csat": words.fmt_points(csat),
        "csat_is_dip": csat is not None and csat < 0,
        "teams_with_dip": len(dips),
        "previous": None,
    }
    if previous is not None:
        prev_org = previous.org_total or approximate_org_interval(previous.scores)
        delta = org["expected"] - prev_org["expected"]
        prev_csat = _csat_weighted(previous.scores)
        out["previous"] = {
            "as_of": previous.as_of,
            "expected": words.fmt_count(prev_org["expected"]),
            "delta": words.fmt_signed_count(delta),
            "direction": "more" if delta > 0.05 else "fewer" if delta < -0.05 else "about the same",
            "csat": words.fmt_points(prev_csat),
            "csat_delta": words.fmt_points(csat - prev_csat)
            if csat is not None and prev_csat is not None
            else "–",
        }
    return out


def history_by_team(
    history: pd.DataFrame | None, months: int = SPARK_MONTHS
) -> dict[str, tuple[list[float | None], list[float | None], list[str]]]:
    """Each team's recent monthly voluntary leavers and CSAT (oldest first) for sparklines, by
    team id: the history sorted once and cut per team, instead of a filter of the whole file
    per team (1,500 teams made that seconds)."""
    if history is None or history.empty:
        return {}
    mcol = _col(history, "month", "as_of")
    lcol = _col(history, "vol_leavers", "leavers", "voluntary_leavers")
    ccol = _col(history, "csat", "csat_mean")
    if mcol is None:
        return {}
    h = history.assign(_team=history["team_id"].astype("string")).dropna(subset=["_team"])
    # Stable, so rows of a team sharing a month keep their file order.
    h = h.sort_values(["_team", mcol], kind="stable")
    teams = h["_team"].to_numpy(dtype=object)
    month_values = [str(m) for m in h[mcol]]
    leaver_values = [_num(v) for v in h[lcol]] if lcol else None
    csat_values = [_num(v) for v in h[ccol]] if ccol else None
    out = {}
    starts = np.flatnonzero(np.r_[True, teams[1:] != teams[:-1]]) if len(teams) else []
    for start, stop in zip(starts, [*starts[1:], len(teams)], strict=True):
        lo = max(int(start), int(stop) - months)
        out[str(teams[start])] = (
            leaver_values[lo:stop] if leaver_values is not None else [],
            csat_values[lo:stop] if csat_values is not None else [],
            month_values[lo:stop],
        )
    return out


def _risk_order(band: Any) -> int:
    return {"high": 0, "medium": 1, "low": 2}.get(str(band).lower(), 3)


def _interval_text(lo: Any, hi: Any, fmt: Any) -> str:
    lo_v, hi_v = _num(lo), _num(hi)
    if lo_v is None or hi_v is None:
        return ""
    return f"{fmt(lo_v)} to {fmt(hi_v)}"


def team_table(scores: pd.DataFrame, history: pd.DataFrame | None) -> list[dict[str, Any]]:
    """Rows of the ranked table: reportable teams only, by expected leavers, with the rank by
    CSAT dip alongside and sparklines of the recent past."""
    rep = scores.loc[scores["reportable"].astype(bool)].copy()
    rep = rep.sort_values(["expected_leavers", "team_id"], ascending=[False, True])
    csat_rank = rep["csat_change"].astype(float).rank(method="min", na_option="keep").tolist()
    top = float(rep["leavers_p90"].max()) if "leavers_p90" in rep and len(rep) else 1.0
    recent = history_by_team(history)
    rows = []
    # Records, not iterrows: a Series per team cost more than the row it describes.
    for rank, (r, c_rank) in enumerate(
        zip(rep.to_dict("records"), csat_rank, strict=True), start=1
    ):
        team = str(r["team_id"])
        leavers, csat, months = recent.get(team, ([], [], []))
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
                "csat_rank": int(c_rank) if pd.notna(c_rank) else None,
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


# ---------------------------------------------------------------------- drivers


def feature_stats(drivers: pd.DataFrame) -> pd.DataFrame:
    """Across reportable teams, per (target, feature): the median value and a robust spread,
    so a team's value can be put in words ("well above the typical level")."""
    d = drivers.dropna(subset=["feature_value"])
    g = d.groupby(["target", "feature"])["feature_value"]
    stats = pd.DataFrame(
        {
            "median": g.median(),
            "spread": (g.quantile(0.75) - g.quantile(0.25)) / 1.349,
            "std": g.std(),
        }
    )
    stats["spread"] = stats["spread"].where(stats["spread"] > 0, stats["std"])
    return stats


def _percentiles(drivers: pd.DataFrame) -> pd.Series:
    return drivers.groupby(["target", "feature"])["feature_value"].rank(pct=True)


@dataclass
class TeamDrivers:
    """The drivers of the reportable teams grouped once (the report used to filter the whole
    drivers file and walk its rows one by one for every team and target: 2.2 million pandas
    lookups at 1,500 teams). Columns are plain lists in section order: by team, target, then
    largest |SHAP| first and feature name; `spans[(team, target)]` is that slice."""

    columns: dict[str, list[Any]]
    spans: dict[tuple[str, str], tuple[int, int]]
    median: dict[tuple[str, str], float]
    spread: dict[tuple[str, str], float]


def team_drivers(drivers: pd.DataFrame, stats: pd.DataFrame | None = None) -> TeamDrivers:
    """Group `drivers` (team_id and target as strings; `pct` when percentiles are known) for
    `driver_rows`; `stats` from `feature_stats`."""
    stats = feature_stats(drivers) if stats is None else stats
    team, teams = pd.factorize(drivers["team_id"], sort=True)
    target, targets = pd.factorize(drivers["target"], sort=True)
    feature, _ = pd.factorize(drivers["feature"], sort=True)
    # Ties of |SHAP| go by feature name, then file order: the order `sort_values` gave.
    order = np.lexsort((feature, -drivers["shap_value"].abs().to_numpy(np.float64), target, team))
    names = ["feature", "family", "feature_label", "feature_value", "shap_value", "base_value"]
    columns = {
        name: drivers[name].to_numpy(dtype=object)[order].tolist()
        for name in [*names, "pct"]
        if name in drivers.columns
    }
    team, target = team[order], target[order]
    key = team * max(len(targets), 1) + target
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.array([], int)
    stops = [*starts[1:].tolist(), len(key)]
    spans = {
        (str(teams[team[s]]), str(targets[target[s]])): (s, e)
        for s, e in zip(starts.tolist(), stops, strict=True)
    }
    return TeamDrivers(
        columns=columns,
        spans=spans,
        median=stats["median"].to_dict() if "median" in stats else {},
        spread=stats["spread"].to_dict() if "spread" in stats else {},
    )


def driver_rows(
    grouped: TeamDrivers, team_id: str, target: str, limit: int | None = None
) -> list[dict[str, Any]]:
    """One team's drivers for one target, largest |SHAP| first, each with a sentence (the
    first `limit` only, when given)."""
    start, stop = grouped.spans.get((team_id, target), (0, 0))
    if limit is not None:
        stop = min(stop, start + limit)
    c = grouped.columns
    families, labels, pcts = c.get("family"), c.get("feature_label"), c.get("pct")
    rows = []
    for i in range(start, stop):
        feature = str(c["feature"][i])
        fam = (
            str(families[i])
            if families is not None and pd.notna(families[i])
            else words.parse_feature(feature).family
        )
        label = labels[i] if labels is not None else None
        key = (target, feature)
        med = grouped.median.get(key)
        spread = grouped.spread.get(key)
        raw = c["feature_value"][i]
        value = float(raw) if pd.notna(raw) else float("nan")
        shap = float(c["shap_value"][i])
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
                "shap": shap,
                "base": float(c["base_value"][i]),
                "actionable": words.is_actionable(fam),
                "sentence": words.describe_driver(
                    feature,
                    family=fam,
                    feature_label=label if isinstance(label, str) else None,
                    value=value,
                    shap_value=shap,
                    target=target,
                    percentile=_num(pcts[i]) if pcts is not None else None,
                    spread=_num(spread),
                    org_median=_num(med),
                ),
            }
        )
    return rows


def _log_rate_ticks(headcount: int) -> tuple[Any, Any]:
    def tick(v: float) -> str:
        # Two decimals on the axis: a team's bars often span less than one leaver in total.
        n = headcount * math.exp(v)
        return f"{n:.2f} leavers" if n < 10 else f"{n:.0f} leavers"

    def step(d: float) -> str:
        pct = (math.exp(d) - 1) * 100
        return ("+" if pct >= 0 else "−") + f"{abs(pct):.0f}%"

    return tick, step


def attrition_waterfall(team_id: str, headcount: int, rows: list[dict[str, Any]]) -> str:
    """SHAP waterfall of the attrition forecast on the log-rate scale (exactly additive),
    labelled in expected leavers for this team's headcount."""
    if not rows:
        return ""
    base = rows[0]["base"]
    steps = [(r["full_label"], r["shap"]) for r in rows[:WATERFALL_STEPS]]
    rest = sum(r["shap"] for r in rows[WATERFALL_STEPS:])
    if len(rows) > WATERFALL_STEPS:
        steps.append((f"{len(rows) - WATERFALL_STEPS} other drivers", rest))
    tick, step = _log_rate_ticks(headcount)
    desc = _waterfall_text(
        f"baseline of {tick(base)} for a team of {headcount}", base, steps, tick, step
    )
    return charts.waterfall(
        base,
        steps,
        title=f"{team_id}: what drives expected leavers",
        desc=desc,
        start_label="organisation baseline",
        end_label=f"{team_id} forecast",
        tick_format=tick,
        step_format=step,
        up_is_bad=True,
    )


def _waterfall_text(
    start: str, base: float, steps: list[tuple[str, float]], tick: Any, step: Any
) -> str:
    """The text alternative of a waterfall chart: start, each step, end."""
    final = base + sum(v for _, v in steps)
    return (
        f"Starting from the organisation's {start}, "
        + "; ".join(f"{lab} {step(v)}" for lab, v in steps)
        + f"; ending at {tick(final)} for this team."
    )


def csat_waterfall(team_id: str, rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    base = rows[0]["base"]
    steps = [(r["full_label"], r["shap"]) for r in rows[:WATERFALL_STEPS]]
    if len(rows) > WATERFALL_STEPS:
        steps.append(
            (
                f"{len(rows) - WATERFALL_STEPS} other drivers",
                sum(r["shap"] for r in rows[WATERFALL_STEPS:]),
            )
        )
    highlight = next(
        (lab for (lab, _), r in zip(steps, rows, strict=False) if r["feature"] == RATE_FEATURE),
        None,
    )

    def tick(v: float) -> str:
        return f"{words.fmt_points(v)} pts"

    def step(d: float) -> str:
        return words.fmt_points(d)

    desc = _waterfall_text(f"baseline CSAT change of {tick(base)}", base, steps, tick, step)
    return charts.waterfall(
        base,
        steps,
        title=f"{team_id}: what drives the CSAT change",
        desc=desc,
        start_label="organisation baseline",
        end_label=f"{team_id} forecast",
        tick_format=tick,
        step_format=step,
        up_is_bad=False,
        highlight=highlight,
    )


def family_summary(rows: list[dict[str, Any]], target: str) -> list[dict[str, Any]]:
    """SHAP summed by family, largest effect first, in words."""
    sums: dict[str, float] = {}
    for r in rows:
        sums[r["family"]] = sums.get(r["family"], 0.0) + r["shap"]
    out = []
    for fam, v in sorted(sums.items(), key=lambda kv: -abs(kv[1])):
        out.append(
            {
                "family": words.family_label(fam),
                "actionable": words.is_actionable(fam),
                "effect": words.effect_clause(target, v),
                "up": v > 0,
            }
        )
    return out


def ex_cx_link(csat_rows: list[dict[str, Any]], csat_change: float | None) -> dict[str, Any] | None:
    """How much of this team's CSAT forecast comes through its expected attrition: the SHAP
    of `expected_attrition_rate` in the CSAT model, relative to a team of typical attrition."""
    link = next((r for r in csat_rows if r["feature"] == RATE_FEATURE), None)
    if link is None or csat_change is None:
        return None
    shap = link["shap"]
    share = None
    if csat_change < 0 and shap < 0:
        share = min(shap / csat_change, 1.0)
    if shap < -0.05:
        sentence = (
            f"Expected attrition takes about {abs(shap):.1f} CSAT points off this team's "
            f"forecast, compared with a team of typical attrition"
            + (
                f" (about {share:.0%} of the expected change of "
                f"{words.fmt_points(csat_change)} points)."
                if share is not None
                else "."
            )
        )
    elif shap > 0.05:
        sentence = (
            f"This team's low expected attrition adds about {shap:.1f} CSAT points to its "
            f"forecast, compared with a team of typical attrition."
        )
    else:
        sentence = "Expected attrition barely moves this team's CSAT forecast."
    return {"shap": words.fmt_points(shap), "sentence": sentence}


def group_drivers(
    drivers: pd.DataFrame | None,
    team_ids: set[str],
    reference: pd.DataFrame | None = None,
) -> TeamDrivers | None:
    """The drivers of `team_ids`, grouped once for `driver_rows`, with each value's percentile
    and typical level (for the words) among these teams, or, given `reference` (a scoped
    reader's view), among the reference's teams: the whole organisation."""
    if drivers is None or drivers.empty:
        return None
    if reference is None:
        d = drivers.loc[drivers["team_id"].isin(team_ids)].copy()
    else:
        d = reference.copy()
    d["team_id"] = d["team_id"].astype(str)
    d["target"] = d["target"].astype(str)
    d["pct"] = _percentiles(d)
    stats = feature_stats(d)
    if reference is not None:
        d = d.loc[d["team_id"].isin({str(t) for t in team_ids})]
    return team_drivers(d, stats)


def team_section(
    r: dict[str, Any], grouped: TeamDrivers | None, whatifs: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """One team's full section (a row of `scores` as a dict): drivers in words, both
    waterfalls, the CSAT link and the stored what-if."""
    team = str(r["team_id"])
    hc = int(r["headcount"])
    csat_v = _num(r.get("csat_change"))
    att = driver_rows(grouped, team, "attrition") if grouped is not None else []
    cs = driver_rows(grouped, team, "csat") if grouped is not None else []
    top_actionable = next((x for x in att if x["actionable"] and x["shap"] > 0), None)
    return {
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
        "whatif": whatifs.get(team),
    }


def team_sections(
    scores: pd.DataFrame,
    drivers: pd.DataFrame | None,
    whatif: pd.DataFrame | None,
    n_detail: int = DETAIL_TEAMS,
    reference: pd.DataFrame | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Detailed sections for the `n_detail` reportable teams with the most expected leavers,
    compact rows for the other reportable teams. Non-reportable teams get nothing.
    `reference`: see `group_drivers`."""
    rep = scores.loc[scores["reportable"].astype(bool)].sort_values(
        ["expected_leavers", "team_id"], ascending=[False, True]
    )
    grouped = group_drivers(drivers, set(rep["team_id"].astype(str)), reference)
    wi = whatif_by_team(whatif)
    detailed, compact = [], []
    for i, r in enumerate(rep.to_dict("records")):
        if i < n_detail:
            detailed.append(team_section(r, grouped, wi))
            continue
        # A compact row shows the top attrition driver only: its sentence is all it needs.
        team = str(r["team_id"])
        att = driver_rows(grouped, team, "attrition", limit=1) if grouped is not None else []
        compact.append(
            {
                "team_id": team,
                "headcount": int(r["headcount"]),
                "expected": words.fmt_count(float(r["expected_leavers"])),
                "csat": words.fmt_points(_num(r.get("csat_change"))),
                "band": str(r.get("risk_band", "")),
                "driver": att[0]["sentence"] if att else "",
            }
        )
    return detailed, compact


# ---------------------------------------------------------------------- what-if


def whatif_by_team(whatif: pd.DataFrame | None) -> dict[str, dict[str, Any]]:
    """What-if results (whatif.py's engine frame plus `feature` and `current_value`) in words."""
    if whatif is None or whatif.empty:
        return {}
    out = {}
    for _, r in whatif.iterrows():
        signal = str(r["signal"])
        label = words.signal_label(signal, r.get("signal_label") if "signal_label" in r else None)
        d_leavers = float(r["after_expected_leavers"]) - float(r["before_expected_leavers"])
        b_cs, a_cs = _num(r.get("before_csat_change")), _num(r.get("after_csat_change"))
        d_csat = a_cs - b_cs if a_cs is not None and b_cs is not None else None
        current = _num(r.get("current_value"))
        transform = "current"
        out[str(r["team_id"])] = {
            "team_id": str(r["team_id"]),
            "signal": label,
            "from": words.fmt_signal_value(signal, transform, current)
            if current is not None
            else "–",
            "to": words.fmt_signal_value(signal, transform, float(r["value"])),
            "before_leavers": words.fmt_count(float(r["before_expected_leavers"])),
            "after_leavers": words.fmt_count(float(r["after_expected_leavers"])),
            "delta_leavers": words.fmt_signed_count(d_leavers),
            "before_csat": words.fmt_points(b_cs),
            "after_csat": words.fmt_points(a_cs),
            "delta_csat": words.fmt_points(d_csat),
            "sentence": (
                f"Holding {label} at the organisation's median "
                f"({words.fmt_signal_value(signal, transform, float(r['value']))}) would change "
                f"expected leavers by {words.fmt_signed_count(d_leavers)} and the CSAT forecast "
                f"by {words.fmt_points(d_csat)} points."
            ),
        }
    return out


# ---------------------------------------------------------------------- roll-ups


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
    # Columns as arrays once; each group is a slice of them (a manager roll-up has a group
    # per manager: a sub-frame each cost seconds at 1,500 teams).
    headcount = merged["headcount"].to_numpy()
    expected = merged["expected_leavers"].to_numpy(np.float64)
    csat = merged["csat_change"].astype(float).to_numpy(np.float64)
    reportable = merged["reportable"].astype(bool).to_numpy()
    high = (
        merged["risk_band"].astype(str).to_numpy(dtype=object) == "high"
        if "risk_band" in merged
        else np.zeros(len(merged), dtype=bool)
    )
    out = []
    for col in [c for c in a.columns if c != "team_id"]:
        if is_protected(col):
            continue
        groups, suppressed = [], 0
        codes, values = pd.factorize(merged[col], sort=True)  # NA: -1, as groupby drops it
        order = np.argsort(codes, kind="stable")  # a group's teams in file order
        cut = np.searchsorted(codes[order], np.arange(len(values) + 1))
        for k, value in enumerate(values):
            idx = order[cut[k] : cut[k + 1]]
            hc = int(headcount[idx].sum())
            if hc < min_group or not reportable[idx].any():
                suppressed += 1
                continue
            exp = float(_nansum(expected[idx]))
            groups.append(
                {
                    "value": str(value),
                    "teams": len(idx),
                    "headcount": hc,
                    "expected": words.fmt_count(exp),
                    "expected_sort": exp,
                    "rate": words.fmt_pct(exp / hc, 1),
                    "csat": words.fmt_points(_weighted_mean(csat[idx], headcount[idx])),
                    "high": int(high[idx].sum()),
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


def _nansum(values: np.ndarray) -> float:
    """pandas' `Series.sum` of these values: missing values count as 0, summed the same way
    (numpy's pairwise sum), so a roll-up's total keeps its last digit."""
    missing = np.isnan(values)
    return float(np.where(missing, 0.0, values).sum() if missing.any() else values.sum())


def _weighted_mean(values: np.ndarray, headcount: np.ndarray) -> float | None:
    """`_csat_weighted` on arrays: CSAT changes weighted by headcount, missing ones left out."""
    ok = ~np.isnan(values)
    if not ok.any():
        return None
    w = headcount[ok].astype(float)
    return float(np.average(values[ok], weights=w)) if _nansum(w) > 0 else None


# ---------------------------------------------------------------------- org drivers


def org_drivers(
    drivers: pd.DataFrame | None, top: int = 15, *, beeswarm: bool = True
) -> dict[str, Any] | None:
    """Mean |SHAP| of the attrition model by family and by feature across reportable teams
    (`beeswarm`: with SHAP's beeswarm picture, which costs seconds to draw)."""
    if drivers is None or drivers.empty:
        return None
    d = drivers.loc[drivers["target"].astype(str) == "attrition"].copy()
    if d.empty:
        return None
    d["abs"] = d["shap_value"].abs()
    fam_col = "family" if "family" in d else None
    if fam_col is None:
        d["family"] = [words.parse_feature(f).family for f in d["feature"].astype(str)]
    n_teams = d["team_id"].nunique()
    # Mean |SHAP| by family: per team first sum within the family (a family's net push),
    # then average the absolute value over teams.
    fam = (
        d.groupby(["team_id", "family"])["shap_value"]
        .sum()
        .abs()
        .groupby("family")
        .mean()
        .sort_values(ascending=False)
    )
    feat = d.groupby("feature")["abs"].mean().sort_values(ascending=False).head(top)
    labels = (
        d.drop_duplicates("feature").set_index("feature")["feature_label"].astype(str)
        if "feature_label" in d
        else pd.Series(dtype=str)
    )

    def pct(v: float) -> str:
        return f"±{(math.exp(v) - 1) * 100:.0f}%"

    fam_items = [(words.family_label(str(f)), float(v)) for f, v in fam.items()]
    feat_items = [(str(labels.get(f, f)), float(v)) for f, v in feat.items()]
    return {
        "n_teams": n_teams,
        "families": [
            {"label": lab, "value": pct(v), "actionable": words.is_actionable(str(f))}
            for (lab, v), f in zip(fam_items, fam.index, strict=True)
        ],
        "features": [{"label": lab, "value": pct(v)} for lab, v in feat_items],
        "family_chart": charts.hbar(
            fam_items,
            title="Mean size of each family's effect on the leaving rate",
            desc="; ".join(f"{lab}: {pct(v)}" for lab, v in fam_items),
            value_format=pct,
            colour=charts.BLUE,
        ),
        "feature_chart": charts.hbar(
            feat_items,
            title=f"The {len(feat_items)} strongest drivers across teams",
            desc="; ".join(f"{lab}: {pct(v)}" for lab, v in feat_items),
            value_format=pct,
            colour=charts.ORANGE,
        ),
        "beeswarm": beeswarm_png(d) if beeswarm else None,
    }


def load_beeswarm_libraries() -> bool:
    """Import what the beeswarm draws with (False when one is missing). Lazy: pyplot needs
    the Agg backend chosen before it is imported, and SHAP's plotting costs seconds to import;
    only the beeswarm pays for them (`forecast score` loads them while it waits for MLflow)."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot
        import shap  # noqa: F401
    except ImportError:
        return False
    return True


def beeswarm_png(attrition_drivers: pd.DataFrame, max_display: int = 12) -> str | None:
    """SHAP's beeswarm of the attrition model as a base64 PNG (None when shap cannot draw)."""
    if not load_beeswarm_libraries():
        return None
    import matplotlib.pyplot as plt
    import shap
    from matplotlib.colors import LinearSegmentedColormap

    d = attrition_drivers
    values = d.pivot_table(
        index="team_id", columns="feature", values="shap_value", aggfunc="first", observed=True
    )
    data = d.pivot_table(
        index="team_id",
        columns="feature",
        values="feature_value",
        aggfunc="first",
        observed=True,
        dropna=False,
    ).reindex_like(values)
    if values.shape[0] < 2:
        return None
    labels = (
        d.drop_duplicates("feature").set_index("feature")["feature_label"].astype(str)
        if "feature_label" in d
        else pd.Series(dtype=str)
    )
    names = [str(labels.get(f, f)) for f in values.columns]
    explanation = shap.Explanation(
        values=values.to_numpy(float), data=data.to_numpy(float), feature_names=names
    )
    # Blue to orange (Okabe-Ito ends) instead of shap's red-blue: readable with colour-vision
    # deficiencies.
    cmap = LinearSegmentedColormap.from_list("okabe", [charts.BLUE, "#CCCCCC", charts.ORANGE])
    fig = plt.figure(figsize=(8, 5))
    # shap jitters overlapping dots with numpy's global generator: seed it (and restore it) so
    # the same outputs give the same report bytes.
    state = np.random.get_state()
    np.random.seed(0)
    try:
        shap.plots.beeswarm(
            explanation, max_display=max_display, show=False, color=cmap, plot_size=None
        )
        plt.xlabel("effect on log leaving rate (SHAP value)")
        buf = io.BytesIO()
        plt.gcf().savefig(
            buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None}
        )
    finally:
        np.random.set_state(state)
        plt.close("all")
    del fig
    return base64.b64encode(buf.getvalue()).decode("ascii")


# ---------------------------------------------------------------------- trust


def calibration_view(calibration: pd.DataFrame | None) -> dict[str, Any] | None:
    """Predicted against realised leavers per team by risk decile (backtest, out of sample)."""
    if calibration is None or calibration.empty:
        return None
    c = calibration.sort_values(_col(calibration, "decile", "bin") or calibration.columns[0])
    dcol = _col(c, "decile", "bin")
    pcol, rcol = _col(c, "predicted", "pred"), _col(c, "realised", "realized", "observed")
    if pcol is None or rcol is None:
        return None
    rows = c["rows"].astype(float) if "rows" in c else pd.Series(1.0, index=c.index)
    pred = (c[pcol].astype(float) / rows).tolist()
    real = (c[rcol].astype(float) / rows).tolist()
    labels = [str(int(v)) for v in c[dcol]] if dcol else [str(i + 1) for i in range(len(c))]
    table = [
        {
            "decile": lab,
            "predicted": f"{p:.2f}",
            "realised": f"{r:.2f}",
            "ratio": f"{p / r:.2f}" if r > 0 else "–",
        }
        for lab, p, r in zip(labels, pred, real, strict=True)
    ]
    tot_p, tot_r = float(c[pcol].sum()), float(c[rcol].sum())
    return {
        "chart": charts.calibration(
            pred,
            real,
            labels=labels,
            title="Backtest calibration: predicted against realised leavers by risk decile",
            desc="; ".join(
                f"decile {t['decile']}: predicted {t['predicted']}, realised {t['realised']}"
                for t in table
            ),
        ),
        "table": table,
        "sentence": (
            f"Over the backtest the model predicted {words.fmt_count(tot_p)} leavers in total "
            f"against {words.fmt_count(tot_r)} realised "
            f"({'over' if tot_p > tot_r else 'under'}-forecast by "
            f"{abs(tot_p / tot_r - 1):.0%})."
            if tot_r > 0
            else ""
        ),
    }


def coverage_view(coverage: pd.DataFrame | None) -> dict[str, Any] | None:
    """The backtest's interval coverage per origin next to the nominal level (out of sample:
    each origin's intervals calibrated on the other origins)."""
    if coverage is None or coverage.empty or "origin" not in coverage:
        return None
    rows = []
    for _, r in coverage.sort_values("origin").iterrows():
        rows.append(
            {
                "origin": str(r["origin"]),
                "nominal": f"{float(r['nominal']):.0%}",
                "teams": f"{float(r['team_leavers']):.0%}"
                if _num(r.get("team_leavers")) is not None
                else "–",
                "total": f"{float(r['org_p10']):,.0f}–{float(r['org_p90']):,.0f}",
                "realised": words.fmt_count(float(r["org_realised"])),
                "covered": "yes" if bool(r["org_total_covered"]) else "no",
            }
        )
    covered = int(coverage["org_total_covered"].astype(bool).sum())
    level = float(coverage["nominal"].iloc[0])
    team = coverage["team_leavers"].astype(float)
    weights = coverage["teams"].astype(float) if "teams" in coverage else None
    share = float(np.average(team, weights=weights)) if team.notna().all() else float("nan")
    teams = (
        f"the {level:.0%} intervals of team leavers held the realised number for {share:.0%} of "
        f"team forecasts, and "
        if math.isfinite(share)
        else ""
    )
    return {
        "rows": rows,
        "sentence": (
            f"In the backtest {teams}the organisation's total fell inside its {level:.0%} "
            f"interval at {covered} of {len(coverage)} origins."
        ),
    }


def drift_view(drift: pd.DataFrame | None, labels: dict[str, str] | None = None) -> list[str]:
    """Plain warnings from drift.parquet (features whose distribution moved); `labels` puts
    feature names into words."""
    if drift is None or drift.empty:
        return []
    flag = _col(drift, "warn", "warning", "drifted", "flag", "alert")
    psi_col = _col(drift, "psi")
    d = drift
    if flag is not None:
        if d[flag].dtype == bool or pd.api.types.is_bool_dtype(d[flag]):
            d = d.loc[d[flag].astype(bool)]
        else:
            d = d.loc[
                d[flag].notna()
                & (d[flag].astype(str).str.len() > 0)
                & (d[flag].astype(str).str.lower() != "false")
            ]
    elif psi_col is not None:
        d = d.loc[d[psi_col].astype(float) > 0.25]
    out = []
    for _, r in d.head(20).iterrows():
        feat = str(r.get("feature", ""))
        label = r.get("feature_label") if "feature_label" in r else None
        name = str(label) if isinstance(label, str) and label else (labels or {}).get(feat, feat)
        if is_feature_name(name):
            parts_ = words.parse_feature(name)
            name = f"{words.signal_label(parts_.signal)} ({parts_.transform.replace('_', ' ')})"
        parts = [f"{name} has shifted since training"]
        if psi_col is not None and _num(r.get(psi_col)) is not None:
            parts.append(f"(population stability index {float(r[psi_col]):.2f})")
        if flag is not None and isinstance(r.get(flag), str) and len(r[flag]) > 5:
            parts = [str(r[flag])]
        out.append(" ".join(parts) + ("" if parts[-1].endswith(".") else "."))
    return out


def review_view(review: pd.DataFrame | None) -> list[dict[str, str]]:
    """Earlier months' forecasts against what happened (from `forecast review`)."""
    if review is None or review.empty:
        return []
    mcol = _col(review, "as_of", "month", "scored_month")
    pcol = _col(review, "expected_leavers", "predicted", "expected")
    rcol = _col(review, "realised_leavers", "realised", "realized", "actual", "leavers")
    if mcol is None or pcol is None or rcol is None:
        return []
    agg = {pcol: "sum", rcol: "sum"}
    lo, hi = _col(review, "leavers_p10", "p10"), _col(review, "leavers_p90", "p90")
    per_team = "team_id" in review.columns
    g = review.groupby(mcol).agg(agg)
    if not per_team and lo and hi:
        g = review.groupby(mcol).agg({pcol: "sum", rcol: "sum", lo: "first", hi: "first"})
    rows = []
    for m, r in g.sort_index().iterrows():
        p, a = float(r[pcol]), float(r[rcol])
        inside = ""
        if not per_team and lo and hi and _num(r[lo]) is not None:
            inside = "yes" if float(r[lo]) <= a <= float(r[hi]) else "no"
        rows.append(
            {
                "as_of": str(m),
                "predicted": words.fmt_count(p),
                "realised": words.fmt_count(a),
                "error": f"{(p - a) / a:+.0%}" if a > 0 else "–",
                "inside": inside,
            }
        )
    return rows


def trust_view(inputs: ReportInputs, suppressed: int) -> dict[str, Any]:
    m = inputs.manifest
    as_of = _as_of(inputs.scores, m) or "–"
    card = inputs.model_card or {}
    limits = _pick(card, "limits", "limitations") or _pick(m, "model_card.limits", "limits")
    if isinstance(limits, str):
        limits = [limits]
    limits = list(limits or [])
    for text in MODEL_LIMITS:
        if text not in limits:
            limits.append(text)
    labels = {}
    if inputs.drivers is not None and "feature_label" in inputs.drivers:
        pairs = inputs.drivers[["feature", "feature_label"]].drop_duplicates("feature")
        labels = dict(
            zip(pairs["feature"].astype(str), pairs["feature_label"].astype(str), strict=True)
        )
    warnings = drift_view(inputs.drift, labels)
    extra = _pick(m, "warnings")
    if isinstance(extra, list):
        # Run warnings name features by column; put them in words like everything else.
        def _words(match: re.Match[str]) -> str:
            return labels.get(match.group(0)) or words.signal_label(
                words.parse_feature(match.group(0)).signal
            )

        itemised = bool(warnings)
        for w in extra:
            if itemised and "drift.parquet" in str(w):
                continue  # the same drift, already listed feature by feature
            text = re.sub(r"\b[a-z0-9_]+__[a-z0-9_]+__[a-z0-9_]+\b", _words, str(w))
            text = text.replace("; see drift.parquet", "")
            if text not in warnings:
                warnings.append(text)
    return {
        "model": _pick(m, "model.attrition.name", "models.attrition.name") or "forecast-attrition",
        "version": _pick(m, "model.attrition.version", "models.attrition.version") or "–",
        "aliases": ", ".join(_pick(m, "model.aliases") or []),
        "run_id": _pick(m, "model.run_id", "models.run_id", "run_id") or "–",
        "trained": _pick(m, "model.trained_at", "models.trained_at", "trained_at") or "–",
        "trained_until": _pick(m, "model.trained_until", "models.trained_until") or "–",
        "data_last_month": _pick(m, "data.last_month", "data.latest_complete_month") or as_of,
        "made_at": _pick(m, "created_at") or "–",
        "data_hash": str(_pick(m, "data.hash", "data_hash") or "–")[:12],
        "horizon": _pick(m, "horizon") or "–",
        "calibration": _calibration_for(inputs),
        "coverage": coverage_view(inputs.coverage),
        "drift": warnings,
        "review": review_view(inputs.review),
        "limits": limits,
        "suppressed": suppressed,
    }


def _calibration_for(inputs: ReportInputs) -> dict[str, Any] | None:
    """The backtest's calibration by risk decile (per team, the model's property); for a
    scoped reader without its sentence, whose totals are the whole organisation's."""
    view = calibration_view(inputs.calibration)
    if view is not None and inputs.scope is not None:
        view["sentence"] = ""
    return view


def fairness_view(fairness: pd.DataFrame | None) -> dict[str, Any] | None:
    """The fairness audit: calibration of the attrition forecast by team composition band."""
    if fairness is None or fairness.empty:
        return None
    table = fairness  # the audit by band, computed by scoring (scoring.extras)
    rows = [
        {
            "attribute": str(r["attribute"]).replace("_", " "),
            "band": str(r["band"]),
            "teams": int(r["teams"]),
            "predicted": words.fmt_count(float(r["predicted"])) if not r["suppressed"] else "–",
            "realised": words.fmt_count(float(r["realised"])) if not r["suppressed"] else "–",
            "ratio": f"{float(r['ratio']):.2f}"
            if not r["suppressed"] and _num(r["ratio"]) is not None
            else "–",
            "suppressed": bool(r["suppressed"]),
        }
        for _, r in table.iterrows()
    ]
    return {"rows": rows, "sentences": words.audit_sentences(table)}


# =========================================================================== context


def _generated(manifest: dict[str, Any], now: datetime | None) -> str:
    """When the outputs were made (the manifest's time), so that `forecast report OUT` rebuilds
    the same bytes from the folder alone."""
    made = _pick(manifest, "created_at")
    when = now or (datetime.fromisoformat(made) if made else datetime.now(UTC))
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def build_context(
    inputs: ReportInputs, *, n_detail: int = DETAIL_TEAMS, now: datetime | None = None
) -> dict[str, Any]:
    """Everything the template shows, as plain values and SVG strings. Pure."""
    scores = inputs.scores.copy()
    scores["team_id"] = scores["team_id"].astype(str)
    min_group = int(_pick(inputs.manifest, "min_group", "min_group_size") or MIN_GROUP)
    if "reportable" not in scores:
        scores["reportable"] = scores["headcount"] >= min_group
    scores["reportable"] = scores["reportable"].astype(bool)
    suppressed = int((~scores["reportable"]).sum())
    drivers = inputs.drivers
    if drivers is not None:
        # Defence in depth: even if a drivers file held rows of small teams, never show them.
        drivers = drivers.loc[
            drivers["team_id"].astype(str).isin(set(scores.loc[scores["reportable"], "team_id"]))
        ]
    # Only a scoped report passes a reference (the slow reference of the tests takes none).
    extra = {} if inputs.reference_drivers is None else {"reference": inputs.reference_drivers}
    detailed, compact = team_sections(scores, drivers, inputs.whatif, n_detail, **extra)
    as_of = _as_of(scores, inputs.manifest) or "–"
    horizon = _pick(inputs.manifest, "horizon") or 3
    whatifs = whatif_by_team(inputs.whatif)
    return {
        "as_of": as_of,
        "scope": inputs.scope,
        "horizon": horizon,
        "min_group": min_group,
        "generated": _generated(inputs.manifest, now),
        "headline": headline(scores, inputs.manifest, inputs.previous),
        "teams": team_table(scores, inputs.history),
        "detailed": detailed,
        "compact": compact,
        "rollups": rollups(scores, inputs.team_attributes, min_group),
        "org_drivers": org_drivers(drivers),
        "whatifs": [whatifs[t["team_id"]] for t in detailed if t["team_id"] in whatifs],
        # The engine's own sentence, which stands next to every what-if number
        # (docs/what-if.md); scoring writes it into the manifest with whatif.parquet.
        "whatif_note": _pick(inputs.manifest, "whatif_note") or "",
        "trust": trust_view(inputs, suppressed),
        "fairness": fairness_view(inputs.fairness),
        "suppressed": suppressed,
    }


# =========================================================================== rendering (edge)


def render(context: dict[str, Any]) -> str:

    env = Environment(
        loader=PackageLoader("forecast.report.render", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["inline"] = assets.inline  # one self-contained file: its CSS and JS inline
    return env.get_template("report.html").render(**context)


def write_report(out_dir: Path | str, *, n_detail: int = DETAIL_TEAMS) -> Path:
    """Rebuild OUT/report.html from the files in OUT; the old report stays until the new one
    is complete (written beside it, then renamed)."""
    out = Path(out_dir)
    html = render(build_context(load_outputs(out), n_detail=n_detail))
    target = write_text_atomic(out / "report.html", html)
    _list_in_manifest(out, target.name)
    return target


def scoped_report_name(scope: Scope) -> str:
    """`report-department-Sales.html`: the default file of `forecast report OUT --scope`."""
    slug = "_".join(f"{k}-{v}" for k, v in scope)
    return "report-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", slug).strip("-.")[:120] + ".html"


def write_scoped_report(
    out_dir: Path | str,
    scope: Scope,
    target: Path | None = None,
    *,
    n_detail: int = DETAIL_TEAMS,
) -> tuple[Path, int]:
    """The report of OUT limited to the teams of `scope` (report.scope, the rule `forecast
    serve` applies), written to `target` (default OUT/report-<scope>.html); OUT/report.html and
    the manifest are left alone. Returns the file and the number of teams in it."""
    out = Path(out_dir)
    inputs = load_outputs(out)
    check_scope_keys(inputs.team_attributes, scope, str(out / "team_attributes.parquet"))
    teams = teams_in_scope(inputs.team_attributes, scope)
    scoped = scope_inputs(inputs, teams, scope_text(scope))
    min_group = int(_pick(inputs.manifest, "min_group", "min_group_size") or MIN_GROUP)
    people = int(scoped.scores["headcount"].sum()) if len(scoped.scores) else 0
    if people < min_group:
        raise ConfigError(
            f"`--scope {scope_text(scope)}`: the teams of {out} in this scope hold {people} "
            f"people, fewer than the minimum group size of {min_group}; no report is written."
        )
    path = target if target is not None else out / scoped_report_name(scope)
    write_text_atomic(path, render(build_context(scoped, n_detail=n_detail)))
    return path, len(scoped.scores)


def _list_in_manifest(out: Path, name: str) -> None:
    """Keep a score manifest's file list true: the sha256 of the (re)built `name`."""
    manifest = _read_json(out / MANIFEST)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        return
    manifest["files"][name] = file_sha256(out / name)
    write_text_atomic(out / MANIFEST, manifest_text(manifest))


__all__ = [
    "PROTECTED",
    "ReportInputs",
    "build_context",
    "load_outputs",
    "render",
    "write_report",
    "write_scoped_report",
]
