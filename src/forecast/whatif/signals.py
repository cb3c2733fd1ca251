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
from forecast.data.months import month_str
from forecast.data.tables import Tables, is_protected
from forecast.errors import ConfigError
from forecast.features.panel import plan_features
from forecast.features.specs import EMPLOYEE_SIGNALS, FeatureSpecs

RESULT_COLUMNS = [
    "team_id",
    "as_of",
    "signal",
    "value",
    "before_expected_leavers",
    "after_expected_leavers",
    "before_csat_change",
    "after_csat_change",
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
        self,
        tables: Tables,
        pair: Forecaster | None,
        teams: list[str],
        signal: str,
        value: float,
        as_of: pd.Period | str | None,
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


def settable_signals(
    tables: Tables, specs: FeatureSpecs, features: list[str] | None = None
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
            t.window
            for t in spec.transforms
            if t.window is not None
            and t.kind in ("mean", "sum")
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
    return {
        p.signal: p.family
        for p in plan
        if not specs.family(p.family).actionable or p.source == "employees"
    }


def check_signal(
    tables: Tables, specs: FeatureSpecs, signal: str, features: list[str] | None = None
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


def split_assignment(text: str) -> tuple[str, str]:
    """`SIGNAL=VALUE` -> (signal, value as typed); `check_value` reads the value, once the
    signal is known, so a refusal can name the signal and the range it takes."""
    if text.count("=") != 1:
        raise ConfigError(
            f"`--set` must be SIGNAL=VALUE, e.g. after_hours_ratio=0.05. Got {text!r} instead."
        )
    name, raw = (part.strip() for part in text.split("="))
    if not name or not raw:
        raise ConfigError(
            f"`--set` must be SIGNAL=VALUE with a number, e.g. "
            f"after_hours_ratio=0.05. Got {text!r} instead."
        )
    return name, raw


def parse_assignment(text: str) -> tuple[str, float]:
    """`SIGNAL=VALUE` -> (signal, value), without the data: any finite number is taken."""
    name, raw = split_assignment(text)
    value = _number(raw)
    if value is None:
        raise ConfigError(
            f"`--set` must be SIGNAL=VALUE with a number, e.g. "
            f"after_hours_ratio=0.05. Got {text!r} instead."
        )
    return name, value


def _number(raw: object) -> float | None:
    """`raw` as a finite float, or None (text that is not a number, nan, inf, a bool)."""
    if isinstance(raw, bool):
        return None
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def signal_range(
    tables: Tables, setting: Settable, as_of: pd.Period | str | None
) -> tuple[float, float]:
    """The lowest and highest raw value of the signal the organisation's data hold, over all
    teams, as known at the end of `as_of` (later rows are the future of that what-if)."""
    month = resolve_as_of(tables, as_of)
    frame = tables.table(setting.table)
    if frame is None or setting.column not in frame.columns:
        raise ConfigError(
            f"`--set` signal {setting.signal}: the data have no {setting.table} table with it."
        )
    values = pd.to_numeric(frame.loc[frame["month"] <= month, setting.column], errors="coerce")
    values = values.to_numpy(np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        raise ConfigError(
            f"`--as-of {month_str(month)}`: the data have no value of "
            f"{setting.signal} up to that month, so a what-if of it cannot be "
            f"checked against them; choose a later month."
        )
    return float(values.min()), float(values.max())


def _outward(lo: float, hi: float, digits: int = 3) -> tuple[float, float]:
    """lo rounded down and hi rounded up to `digits` significant digits: the range as a
    message shows it, so a value copied from the message is accepted."""

    def step(x: float) -> float:
        return 10.0 ** (math.floor(math.log10(abs(x))) - digits + 1) if x else 1.0

    def clean(x: float, q: float) -> float:
        return round(x, max(0, -math.floor(math.log10(q)))) if q < 1 else x

    # The 1e-9 keeps float noise (0.31 / 0.001 = 310.00000000000006) from adding a step.
    qlo, qhi = step(lo), step(hi)
    return (
        clean(math.floor(lo / qlo + 1e-9) * qlo, qlo) if lo else 0.0,
        clean(math.ceil(hi / qhi - 1e-9) * qhi, qhi) if hi else 0.0,
    )


def _show(x: float) -> str:
    return np.format_float_positional(x, trim="-")


def value_range(
    tables: Tables, setting: Settable, as_of: pd.Period | str | None
) -> tuple[float, float]:
    """The values a what-if may hold `setting` at as of `as_of`: `signal_range` rounded
    outward to 3 significant digits, the range `check_value` accepts and its message shows."""
    return _outward(*signal_range(tables, setting, as_of))


def check_value(
    tables: Tables, setting: Settable, value: object, as_of: pd.Period | str | None
) -> float:
    """The value a what-if may hold `setting` at, as a float, or a one-line ConfigError.

    Refused: text that is not a finite number, and a number outside the range the
    organisation's data have seen for the signal up to `as_of` (`signal_range`, shown to 3
    significant digits, rounded outward). The engines learn effects from that range only; a
    value beyond it is an extrapolation (an after-hours ratio of 50 answered a CSAT change of
    -322 points). Check the signal first (`check_signal` / engine.check_what_if_signal).
    """
    return check_in_range(setting, value, value_range(tables, setting, as_of))


def check_in_range(setting: Settable, value: object, accepted: tuple[float, float]) -> float:
    """`check_value` given the signal's `value_range` (`WhatIfMonth` holds it)."""
    lo, hi = accepted
    shown = f"{_show(lo)} to {_show(hi)}"
    number = _number(value)
    if number is None:
        raise ConfigError(
            f"`--set` value for {setting.signal} must be a number in the range the data have "
            f"seen ({shown}). Got {str(value)!r} instead."
        )
    if not lo <= number <= hi:
        typed = value if isinstance(value, str) else f"{number:g}"
        raise ConfigError(
            f"`--set {setting.signal}={typed}` is outside the range the data have seen for "
            f"{setting.signal} ({shown}); choose a value in it."
        )
    return number


# --------------------------------------------------------------------------- bounds


CSAT_MIN, CSAT_MAX = 0.0, 100.0  # the contract's CSAT scale


def recent_csat(tables: Tables, teams: list[str], as_of: pd.Period) -> np.ndarray:
    """Each team's recent CSAT level at `as_of`, in `teams` order: the response-weighted mean
    over as_of-2 .. as_of (rows without responses weigh 1), the level `csat_change` is measured
    from (forecast.features.targets). NaN where the team has no CSAT in that window."""
    cx = tables.table("cx")
    if cx is None or "csat" not in cx.columns:
        return np.full(len(teams), np.nan)
    month = pd.Period(as_of, freq="M")
    f = cx.loc[(cx["month"] > month - 3) & (cx["month"] <= month) & cx["csat"].notna()]
    w = (
        f["responses"].astype("float64").fillna(1.0)
        if "responses" in f.columns
        else pd.Series(1.0, index=f.index)
    )
    team = f["team_id"].astype(str)
    num = (f["csat"].astype("float64") * w).groupby(team).sum()
    den = w.groupby(team).sum()
    level = (num / den.where(den > 0)).reindex([str(t) for t in teams])
    return level.to_numpy(np.float64)


def csat_change_bounds(level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The CSAT changes that keep level + change on the CSAT scale; where the level is unknown
    (NaN), the widest a change on that scale can be."""
    level = np.asarray(level, dtype=np.float64)
    known = np.isfinite(level)
    lo = np.where(known, CSAT_MIN - level, CSAT_MIN - CSAT_MAX)
    hi = np.where(known, CSAT_MAX - level, CSAT_MAX - CSAT_MIN)
    return lo, hi


def bound_result(result: pd.DataFrame, headcount: np.ndarray, level: np.ndarray) -> pd.DataFrame:
    """An engine's result (rows in team order) with expected leavers, before and after the
    change, in [0, headcount] and every CSAT change (and interval bound) such that the team's
    recent level plus the change stays within 0..100: a held value the models never saw together
    with this team's state can still push a forecast off the scale. Before and after share the
    scale, so a forecast above the headcount (backfills leave too) reads no effect where there is
    none. NaN stays NaN."""
    out = result.copy()
    hc = np.asarray(headcount, dtype=np.float64)
    lo, hi = csat_change_bounds(level)
    for col in out.columns:
        if col.startswith(("before_", "after_")) and ("leavers" in col):
            out[col] = np.clip(out[col].to_numpy(np.float64), 0.0, hc)
        elif col.startswith(("before_", "after_")) and "csat_change" in col:
            out[col] = np.clip(out[col].to_numpy(np.float64), lo, hi)
    return out


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
            "before": {
                "expected_leavers": num(r["before_expected_leavers"]),
                "csat_change": num(r["before_csat_change"]),
            },
            "after": {
                "expected_leavers": num(r["after_expected_leavers"]),
                "csat_change": num(r["after_csat_change"]),
            },
        }
        for _, r in result.iterrows()
    ]
