"""What a what-if may set, and the one check of a what-if's signal and value.

A what-if asks: expected leavers and CSAT change if a team's workload or engagement signal were
held at a value over the horizon (an intervention, not a different past). Only signals of
actionable families (workload, engagement by default) can be set; protected attributes, tenure
and history signals are refused with a one-line ConfigError. Engines answer through one small
interface (`WhatIfEngine.estimate`) and see the predictive models only through `Forecaster`, so
this package never imports `forecast.models`.

Pure: no files, no printing. Imports only `forecast.data`, `forecast.features`, `errors`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Protocol

import numpy as np
import pandas as pd

from forecast.data.contract import latest_complete_month
from forecast.data.tables import Tables, is_protected
from forecast.errors import ConfigError
from forecast.features.panel import plan_features
from forecast.features.specs import EMPLOYEE_SIGNALS, FeatureSpecs

RESULT_COLUMNS = [
    "team_id", "as_of", "signal", "value", "before_expected_leavers", "after_expected_leavers",
    "before_csat_change", "after_csat_change",
]
INTERVAL_COLUMNS = ["leavers_p10", "leavers_p90", "csat_change_p10", "csat_change_p90"]
DEFAULT_WINDOW = 3  # months held when the family has no window transform (e.g. engagement)


class Forecaster(Protocol):
    """What an engine needs of the predictive model pair (`forecast.models.pair.ModelPair`)."""

    features: list[str]

    def predict(self, panel: pd.DataFrame) -> pd.DataFrame: ...


class WhatIfEngine(Protocol):
    """Anything that can estimate an intervention's effect on a pair's forecasts."""

    name: str
    note: str

    def estimate(
        self, tables: Tables, pair: Forecaster | None, teams: list[str], signal: str,
        value: float, as_of: pd.Period | str | None,
    ) -> pd.DataFrame: ...


@dataclasses.dataclass(frozen=True)
class Settable:
    """A signal a what-if may set: where its raw values live and how far back windows read."""

    signal: str
    family: str
    table: str
    column: str
    window: int


# --------------------------------------------------------------------------- validation


def settable_signals(tables: Tables, specs: FeatureSpecs, features: list[str] | None = None
                     ) -> dict[str, Settable]:
    """Signals of actionable families that feed at least one model feature."""

    plan, _ = plan_features(tables, specs)
    wanted = set(features) if features is not None else None
    out: dict[str, Settable] = {}
    for p in plan:
        if wanted is not None and p.name not in wanted:
            continue
        spec = specs.family(p.family)
        if not spec.actionable or p.source == "employees" or p.protected:
            continue
        windows = [
            t.window for t in spec.transforms
            if t.window is not None and t.kind in ("mean", "sum")
            and (t.signals is None or p.signal in t.signals)
        ]
        w = max(windows, default=DEFAULT_WINDOW)
        prev = out.get(p.signal)
        if prev is None or w > prev.window:
            out[p.signal] = Settable(p.signal, p.family, p.source, p.column, w)
    return out


def history_signals(tables: Tables, specs: FeatureSpecs) -> dict[str, str]:
    """Signals that feed features but are not actionable (tenure, people flow, past CSAT),
    with their family: a what-if must refuse them."""

    plan, _ = plan_features(tables, specs)
    return {p.signal: p.family for p in plan if not specs.family(p.family).actionable
            or p.source == "employees"}


def check_signal(tables: Tables, specs: FeatureSpecs, signal: str, features: list[str] | None = None
                 ) -> Settable:
    """The settable signal, or a one-line ConfigError saying why it cannot be set."""

    name = signal.strip()
    if is_protected(name):
        raise ConfigError(
            f"`--set` cannot change {name!r}: it is a protected attribute, never a model input "
            f"or a lever."
        )
    settable = settable_signals(tables, specs, features)
    if name in settable:
        return settable[name]
    history = history_signals(tables, specs)
    if name in history or name in EMPLOYEE_SIGNALS or name in ("tenure", "headcount"):
        family = history.get(name, "tenure")
        raise ConfigError(
            f"`--set` cannot change {name!r}: it is a {family} (history) signal, not something "
            f"a leader can set. Settable signals: {', '.join(sorted(settable)) or 'none'}."
        )
    raise ConfigError(
        f"`--set` must name a workload or engagement signal the model uses "
        f"({', '.join(sorted(settable)) or 'none in these data'}). Got {name!r} instead."
    )


def parse_assignment(text: str) -> tuple[str, float]:
    """`SIGNAL=VALUE` -> (signal, value)."""
    if text.count("=") != 1:
        raise ConfigError(f"`--set` must be SIGNAL=VALUE, e.g. after_hours_ratio=0.05. "
                          f"Got {text!r} instead.")
    name, raw = (part.strip() for part in text.split("="))
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not name or not math.isfinite(value):
        raise ConfigError(f"`--set` must be SIGNAL=VALUE with a number, e.g. "
                          f"after_hours_ratio=0.05. Got {text!r} instead.")
    return name, value


# --------------------------------------------------------------------------- intervention


def resolve_as_of(tables: Tables, as_of: pd.Period | str | None) -> pd.Period:

    if as_of is None:
        return latest_complete_month(tables)
    try:
        return pd.Period(as_of, freq="M")
    except (ValueError, TypeError):
        raise ConfigError(f"`--as-of` must be a month YYYY-MM. Got {as_of!r} instead.") from None


# --------------------------------------------------------------------------- for the report


def signal_levels(tables: Tables, setting: Settable, as_of: pd.Period) -> pd.Series:
    """Each team's current raw level of a signal at `as_of`: the value that month, or the last
    observed one (surveys) within the last 12 months."""
    frame = tables.table(setting.table)
    assert frame is not None
    f = frame.loc[(frame["month"] <= as_of) & (frame["month"] > as_of - 12)]
    f = f.dropna(subset=[setting.column]).sort_values("month")
    return f.groupby(f["team_id"].astype(str))[setting.column].last()


def as_json_records(result: pd.DataFrame) -> list[dict[str, Any]]:
    """The contract's `--json` shape: one object per team with before and after."""

    def num(x: Any) -> float | None:
        v = float(x)
        return v if np.isfinite(v) else None

    return [
        {
            "team_id": str(r["team_id"]),
            "as_of": str(r["as_of"]),
            "signal": str(r["signal"]),
            "value": float(r["value"]),
            "before": {"expected_leavers": num(r["before_expected_leavers"]),
                       "csat_change": num(r["before_csat_change"])},
            "after": {"expected_leavers": num(r["after_expected_leavers"]),
                      "csat_change": num(r["after_csat_change"])},
        }
        for _, r in result.iterrows()
    ]


