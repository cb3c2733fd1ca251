"""The one grammar of feature names, `family__signal__transform`, and their plain-words labels.

Every module that reads a feature name (drivers, drift, the report's words, what-if signals)
parses it here; signal labels come from the `labels:` of the family's YAML spec under
`features/`, transform labels from the tables below. Imports only `forecast.features.specs`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import pandas as pd

from forecast.features.specs import FeatureSpecs, load_specs

# The CSAT model's input carrying the attrition model's forecast (the EX -> CX link): a feature
# outside the family grammar, shown to leaders as its own family.
RATE_FEATURE = "expected_attrition_rate"
RATE_FAMILY = "attrition"
RATE_FAMILY_LABEL = "Expected attrition"
RATE_LABEL = "expected attrition (people risk)"

FEATURE_SEP = "__"

# Panel columns that are not model inputs: what the attrition model's starting point, the team's
# own long-run voluntary rate shrunk toward the organisation's recent rate, is computed from
# (`forecast.models.baseline`). Voluntary leavers and person-months so far, counted as
# `longrun_rate_shrunk` counts them, and the organisation's rate per person-month over the last
# `BASELINE_ORG_WINDOW` months. All as of the end of the row's month.
BASELINE_COLUMNS = ("baseline_leavers", "baseline_person_months", "baseline_org_rate")
BASELINE_ORG_WINDOW = 12
# The attrition drivers' extra terms outside the trees (`forecast.models.explain`): the model
# starts from the team's own long-run rate, and the backtest's recalibration adjusts its output.
BASELINE_TERM = "team_longrun_rate"
BASELINE_LABEL = "the team's own long-run rate"
CALIBRATION_TERM = "backtest_calibration"
CALIBRATION_LABEL = "adjustment learnt from past forecasts (backtest calibration)"
CALIBRATION_FAMILY = "calibration"
CALIBRATION_FAMILY_LABEL = "Calibration"


KEY_COLUMNS = ("team_id", "as_of", "headcount")


def feature_name(family: str, signal: str, transform: str) -> str:
    return FEATURE_SEP.join((family, signal, transform))


TRANSFORM_LABELS = {
    "current": "this month",
    "last": "latest survey",
    "age_months": "months since last survey",
    "change": "change since previous survey",
    "longrun_mean": "long-run average",
    "vs_longrun": "vs. own long-run level",
    "median": "median (months)",
    "longrun_rate_shrunk": "long-run rate per person-month",
    "of_year": "month of the year",
    "mean": "team average",
}


KIND_LABELS = {
    "mean": "{w}-month average",
    "sum": "last {w} months",
    "trend": "{w}-month trend",
    "share_lt": "share under {w} months",
    "growth": "change over {w} months",
}


def transform_label(transform: str) -> str:
    if transform == "sum_1m":
        return "this month"
    if transform in TRANSFORM_LABELS:
        return TRANSFORM_LABELS[transform]
    m = re.fullmatch(r"([a-z_]+?)_(\d+)m", transform)
    if m and m.group(1) in KIND_LABELS:
        return KIND_LABELS[m.group(1)].format(w=m.group(2))
    if transform.startswith("share_"):
        return f"share {transform.removeprefix('share_').replace('_', ' ')}"
    return transform.replace("_", " ")


def split_feature(name: str) -> tuple[str, str, str]:
    """(family, signal, transform) of a feature name; the signal may itself contain `__`."""
    parts = name.split(FEATURE_SEP)
    if len(parts) < 3:
        raise ValueError(f"{name!r} is not a feature name family__signal__transform")
    return parts[0], FEATURE_SEP.join(parts[1:-1]), parts[-1]


def feature_catalog(specs: FeatureSpecs, panel_columns: list[str]) -> pd.DataFrame:
    """One row per feature column: family, signal, transform, plain-words label, actionable,
    source table. Key columns and names that are not features are skipped."""
    by_family = {f.family: f for f in specs.families}
    rows = []
    for col in panel_columns:
        if col in KEY_COLUMNS or FEATURE_SEP not in col:
            continue
        family, signal, transform = split_feature(col)
        spec = by_family.get(family)
        if spec is None:
            continue
        default = "team size" if signal == "headcount" else signal.replace("_", " ")
        label = f"{spec.labels.get(signal, default)}, {transform_label(transform)}"
        rows.append(
            {
                "feature": col,
                "family": family,
                "signal": signal,
                "transform": transform,
                "label": label,
                "actionable": spec.actionable,
                "source_table": spec.source,
            }
        )
    columns = ["feature", "family", "signal", "transform", "label", "actionable", "source_table"]
    out = pd.DataFrame(rows, columns=columns)
    return out.astype({"actionable": bool})


def is_feature_name(name: str) -> bool:
    """Does `name` follow the grammar `family__signal__transform`?"""
    return name.count(FEATURE_SEP) >= 2


@dataclass(frozen=True)
class Labels:
    """Plain words for signals and families, from the `label:` and `labels:` of the specs."""

    signals: dict[str, str]
    families: dict[str, str]
    actionable: frozenset[str]

    def signal(self, signal: str) -> str:
        return self.signals.get(signal, signal.replace("_", " "))

    def family(self, family: str) -> str:
        return self.families.get(family, family.replace("_", " ").capitalize())


def labels_of(specs: FeatureSpecs) -> Labels:
    signals: dict[str, str] = {}
    for spec in specs.families:
        signals.update(spec.labels)
    families = {spec.family: spec.label for spec in specs.families}
    families[RATE_FAMILY] = RATE_FAMILY_LABEL
    families[CALIBRATION_FAMILY] = CALIBRATION_FAMILY_LABEL
    return Labels(signals, families, frozenset(s.family for s in specs.families if s.actionable))


@cache
def default_labels() -> Labels:
    """The labels of the shipped specs (`features/*.yaml`)."""
    return labels_of(load_specs())
