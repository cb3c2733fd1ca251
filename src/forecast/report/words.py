"""Plain words for the leaders' report: numbers rounded the way a person reads them, and one
sentence per SHAP driver built from (signal label, transform, feature value, SHAP sign and size).

A leader should read "after-hours work is well above this team's usual level, which raises the
expected leaving rate by about 20%", never `workload__after_hours_ratio__vs_longrun`. The words
come from the feature's parts (see `features.split_feature`), so a new signal or window in a
feature spec gets a sentence without code changes.

Pure functions of numbers and strings; nothing here reads files or sees an employee.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast.features.names import (
    BASELINE_TERM,
    CALIBRATION_TERM,
    RATE_FAMILY,
    RATE_FEATURE,
    default_labels,
    is_feature_name,
    split_feature,
)

# --------------------------------------------------------------------------- numbers


def round_sensibly(x: float, digits: int = 2) -> float:
    """Round to `digits` significant figures (0.0123 -> 0.012, 1234 -> 1200)."""
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, -math.floor(math.log10(abs(x))) + digits - 1)


def fmt_count(x: float | None) -> str:
    """Expected leavers: one decimal below 10, whole numbers above (false precision misleads)."""
    if x is None or not math.isfinite(x):
        return "–"
    return f"{x:.1f}" if abs(x) < 10 else f"{x:,.0f}"


def fmt_points(x: float | None, signed: bool = True) -> str:
    """CSAT points, one decimal, with a true minus sign."""
    if x is None or not math.isfinite(x):
        return "–"
    text = f"{abs(x):.1f}"
    if text == "0.0":
        return "0.0"
    return ("+" if x > 0 and signed else "−" if x < 0 else "") + text


def fmt_pct(x: float | None, digits: int = 0) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    return f"{x * 100:.{digits}f}%"


def fmt_signed_count(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    text = fmt_count(abs(x))
    if text in ("0.0", "0"):
        return "0.0"
    return ("+" if x > 0 else "−") + text


def fmt_plain(x: float | None) -> str:
    """A general value: three significant figures, thousands separated."""
    if x is None or not math.isfinite(x):
        return "–"
    r = round_sensibly(x, 3)
    if abs(r) >= 100:
        return f"{r:,.0f}"
    return f"{r:g}"


def is_ratio_signal(signal: str) -> bool:
    return bool(re.search(r"(ratio|rate|share|pct|percent)$", signal))


def fmt_signal_value(signal: str, transform: str, value: float) -> str:
    """A feature value in the signal's own unit: ratios as %, differences of ratios in points."""
    if not math.isfinite(value):
        return "–"
    if transform.startswith("share_"):
        return fmt_pct(value)
    if transform == "age_months" or transform == "median":
        return f"{value:.0f} months"
    if is_ratio_signal(signal) and abs(value) <= 1.5:
        if transform in ("vs_longrun", "change") or transform.startswith("trend"):
            pts = value * 100
            return ("+" if pts > 0 else "−" if pts < 0 else "") + f"{abs(pts):.1f} points"
        return fmt_pct(value, 1 if abs(value) < 0.1 else 0)
    return fmt_plain(value)


# --------------------------------------------------------------------------- driver sentences


@dataclass(frozen=True)
class FeatureParts:
    family: str
    signal: str
    transform: str


def parse_feature(name: str, family: str | None = None) -> FeatureParts:
    """(family, signal, transform) of `family__signal__transform`; a name outside that pattern
    (e.g. the CSAT model's `expected_attrition_rate`) is its own signal."""
    if is_feature_name(name):
        return FeatureParts(*split_feature(name))
    return FeatureParts(family or RATE_FAMILY, name, "current")


def signal_label(signal: str, feature_label: str | None = None) -> str:
    """The signal in plain words: the feature spec's label (the part of `feature_label` before
    the comma) wins, then a known label, then the name with spaces."""
    if feature_label and isinstance(feature_label, str) and feature_label.strip():
        return feature_label.split(",")[0].strip()
    return default_labels().signal(signal)


def family_label(family: str) -> str:
    return default_labels().family(family)


def is_actionable(family: str) -> bool:
    return family in default_labels().actionable


def level_word(percentile: float | None) -> str:
    """Where a team sits among all teams, in words."""
    if percentile is None or not math.isfinite(percentile):
        return "at"
    if percentile >= 0.9:
        return "well above"
    if percentile >= 0.65:
        return "above"
    if percentile > 0.35:
        return "close to"
    if percentile > 0.1:
        return "below"
    return "well below"


def shift_word(value: float, spread: float) -> str:
    """A change against a typical spread across teams, in words."""
    if not math.isfinite(value):
        return "unchanged from"
    z = value / spread if spread and math.isfinite(spread) and spread > 0 else 0.0
    if z >= 1.0:
        return "well above"
    if z >= 0.3:
        return "above"
    if z <= -1.0:
        return "well below"
    if z <= -0.3:
        return "below"
    return "close to"


def effect_clause(target: str, shap_value: float) -> str:
    """What the driver does to the forecast. Attrition SHAP is on the log leaving rate, so a
    contribution s multiplies the rate by exp(s); CSAT SHAP is in points."""
    if target == "attrition":
        if shap_value >= 0:
            pct = (math.exp(shap_value) - 1) * 100
            return f"raises the expected leaving rate by about {_pct_words(pct)}"
        pct = (1 - math.exp(shap_value)) * 100
        return f"lowers the expected leaving rate by about {_pct_words(pct)}"
    pts = abs(shap_value)
    verb = "takes" if shap_value < 0 else "adds"
    prep = "off" if shap_value < 0 else "to"
    return f"{verb} about {pts:.1f} CSAT points {prep} the forecast"


def _pct_words(pct: float) -> str:
    return "1%" if pct < 1.5 else f"{round_sensibly(pct, 2):.0f}%"


def _window(transform: str) -> int | None:
    m = re.search(r"_(\d+)m$", transform)
    return int(m.group(1)) if m else None


def describe_driver(
    feature: str,
    *,
    family: str | None,
    feature_label: str | None,
    value: float,
    shap_value: float,
    target: str,
    percentile: float | None = None,
    spread: float | None = None,
    org_median: float | None = None,
) -> str:
    """One plain sentence about one driver of one team's forecast.

    `percentile` is the team's rank among all reportable teams for this feature (0..1),
    `spread` a typical spread of the feature across teams (for changes and trends), and
    `org_median` the organisation's median value (quoted for comparison).
    """
    parts = parse_feature(feature, family)
    label = signal_label(parts.signal, feature_label)
    cap = label[:1].upper() + label[1:]
    t = parts.transform
    w = _window(t)
    shown = fmt_signal_value(parts.signal, t, value)
    versus = (
        f" ({shown} against a typical {fmt_signal_value(parts.signal, t, org_median)})"
        if org_median is not None and math.isfinite(org_median) and math.isfinite(value)
        else (f" ({shown})" if math.isfinite(value) else "")
    )
    effect = effect_clause(target, shap_value)

    if parts.signal == RATE_FEATURE or feature == RATE_FEATURE:
        return (
            f"The expected attrition of this team ({fmt_pct(value, 1)} over the horizon) {effect}."
        )
    if feature == BASELINE_TERM:
        return (
            f"This team's own long-run leaving rate ({fmt_pct(value, 1)} of its people over the "
            f"horizon) {effect}."
        )
    if feature == CALIBRATION_TERM:
        return (
            f"How earlier forecasts for teams at this level of risk turned out (an adjustment "
            f"of x{value:.2f}) {effect}."
        )
    if not math.isfinite(value):
        return f"{cap} has no recent data, which {effect}."
    if t == "vs_longrun":
        where = shift_word(value, spread or 0.0)
        return f"{cap} is {where} this team's usual level ({shown}), which {effect}."
    if t.startswith("trend"):
        z = shift_word(value, spread or 0.0)
        motion = (
            "has been rising"
            if z in ("above", "well above")
            else "has been falling"
            if z in ("below", "well below")
            else "has been steady"
        )
        return f"{cap} {motion} over the last {w or 12} months ({shown} a month), which {effect}."
    if t == "change":
        z = shift_word(value, spread or 0.0)
        motion = (
            "rose"
            if z in ("above", "well above")
            else "fell"
            if z in ("below", "well below")
            else "barely moved"
        )
        return f"{cap} {motion} since the previous survey ({shown}), which {effect}."
    if t == "age_months":
        return f"The latest {label} survey is {value:.0f} months old, which {effect}."
    if t.startswith("sum_") or t.startswith("sum"):
        n = value
        count = f"{n:.0f}" if abs(n - round(n)) < 1e-9 else fmt_plain(n)
        where = level_word(percentile)
        compare = "" if where == "close to" else f", {_more_less(where)} than most teams"
        return f"{cap} in the last {w or 1} months: {count}{compare}; this {effect}."
    if t == "longrun_rate_shrunk":
        return (
            f"This team's long-run rate of {label} is {level_word(percentile)} the "
            f"organisation's typical rate, which {effect}."
        )
    if t.startswith("share_lt"):
        return (
            f"{fmt_pct(value)} of the team have under {w} months' tenure "
            f"({_more_less(level_word(percentile))} than most teams), which {effect}."
        )
    if t == "median" and parts.signal == "tenure":
        return (
            f"Median tenure is {value:.0f} months ({level_word(percentile)} the "
            f"organisation's typical team), which {effect}."
        )
    if parts.signal == "headcount":
        return f"Team size ({value:.0f} people) {effect}."
    when = {
        "current": "this month",
        "last": "in the latest survey",
        "longrun_mean": "over the long run",
    }.get(t, f"over the last {w} months" if w else "")
    when = f" {when}" if when else ""
    return (
        f"{cap}{when} is {level_word(percentile)} the organisation's typical level{versus}, "
        f"which {effect}."
    )


def _more_less(where: str) -> str:
    return {
        "well above": "far more",
        "above": "more",
        "close to": "about as many",
        "below": "fewer",
        "well below": "far fewer",
    }.get(where, "about as many")


# A band of the fairness audit forecast more than this off gets a sentence.
GAP = 0.10  # |predicted / realised - 1| above this gets a sentence


def audit_sentences(audit: pd.DataFrame, *, gap: float = GAP) -> list[str]:
    """A plain sentence for every shown band forecast more than `gap` off."""
    out = []
    for _, r in audit.iterrows():
        if r["suppressed"] or not np.isfinite(r["ratio"]):
            continue
        off = float(r["ratio"]) - 1.0
        if abs(off) <= gap:
            continue
        attr = str(r["attribute"]).replace("_", " ")
        band = str(r["band"])
        who = f"teams with {band}" if not band.startswith("majority") else f"teams with a {band}"
        if attr == "median age":
            who = f"teams whose median age is {band}"
        elif band == "no majority":
            who = f"teams with no {attr} majority"
        verb = "over-forecast" if off > 0 else "under-forecast"
        out.append(
            f"For {who}, leavers were {verb} by {abs(off):.0%} in the backtest "
            f"({float(r['predicted']):.0f} predicted, {float(r['realised']):.0f} realised, "
            f"{int(r['teams'])} teams)."
        )
    return out
