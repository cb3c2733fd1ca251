"""What-if: expected leavers and CSAT change if a team's workload or engagement signal were held
at a value over the horizon (an intervention, not a different past).

The engine interface is small so a later, causal engine can replace the first one:

    WhatIfEngine.estimate(tables, pair, teams, signal, value, as_of) -> DataFrame
      team_id, as_of, signal, value, before_expected_leavers, after_expected_leavers,
      before_csat_change, after_csat_change (+ before_/after_ leavers_p10/p90 and
      csat_change_p10/p90)

`RescoringEngine` (the first engine) sets the raw signal to VALUE for the named teams over the
last W months the feature windows read up to the as-of month (so the current value, window
means and the last observed survey all become VALUE), rebuilds the panel, and runs both models
again, so CSAT moves through the attrition input too. It understates effects that history
features (past leavers, tenure mix) would absorb as the intervention is held.

Only signals of actionable families (workload, engagement by default) can be set; protected
attributes, tenure and history signals are refused with a one-line ConfigError. Pure apart from
running the models: no files, no printing.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Protocol

import numpy as np
import pandas as pd

from forecast.data.months import month_str
from forecast.data.tables import Tables, is_protected
from forecast.errors import ConfigError

RESULT_COLUMNS = [
    "team_id", "as_of", "signal", "value", "before_expected_leavers", "after_expected_leavers",
    "before_csat_change", "after_csat_change",
]
INTERVAL_COLUMNS = ["leavers_p10", "leavers_p90", "csat_change_p10", "csat_change_p90"]
DEFAULT_WINDOW = 3  # months held when the family has no window transform (e.g. engagement)
NOTE = (
    "Re-scoring: the signal is held at the value over the months the features read, and both "
    "models are run again (CSAT moves through expected attrition too). It understates effects "
    "that history features (past leavers, tenure mix) absorb as the change is held."
)


class WhatIfEngine(Protocol):
    """Anything that can estimate an intervention's effect on a pair's forecasts."""

    name: str
    note: str

    def estimate(
        self, tables: Tables, pair: Any, teams: list[str], signal: str, value: float,
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


def settable_signals(tables: Tables, specs: Any, features: list[str] | None = None
                     ) -> dict[str, Settable]:
    """Signals of actionable families that feed at least one model feature."""
    from forecast.features.panel import plan_features

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


def history_signals(tables: Tables, specs: Any) -> dict[str, str]:
    """Signals that feed features but are not actionable (tenure, people flow, past CSAT),
    with their family: a what-if must refuse them."""
    from forecast.features.panel import plan_features

    plan, _ = plan_features(tables, specs)
    return {p.signal: p.family for p in plan if not specs.family(p.family).actionable
            or p.source == "employees"}


def check_signal(tables: Tables, specs: Any, signal: str, features: list[str] | None = None
                 ) -> Settable:
    """The settable signal, or a one-line ConfigError saying why it cannot be set."""
    from forecast.features.specs import EMPLOYEE_SIGNALS

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


def hold_signal(tables: Tables, setting: Settable, teams: list[str], value: float,
                as_of: pd.Period) -> Tables:
    """The tables with `setting`'s raw column at `value` for `teams` over the last `window`
    months up to `as_of`, and on the team's last observation at or before `as_of` (a quarterly
    survey may be older than the window). Later months are left alone: the panel as of `as_of`
    never reads them."""
    frame = tables.table(setting.table)
    assert frame is not None
    month = frame["month"]
    lo = as_of - (setting.window - 1)
    in_team = frame["team_id"].astype("string").isin(teams).to_numpy()
    upto = (month <= as_of).to_numpy()
    mask = in_team & upto & (month >= lo).to_numpy()
    # The last observed (non-empty) value of each team at or before as_of.
    # (Only within a year: an older observation is a closed team's, not a survey cadence.)
    observed = (in_team & upto & frame[setting.column].notna().to_numpy()
                & (month > as_of - 12).to_numpy())
    if observed.any():
        seen = frame.loc[observed].sort_values("month", kind="stable")
        last = seen.groupby(seen["team_id"].astype("string")).tail(1).index
        mask[frame.index.get_indexer(last)] = True
    changed = frame.copy()
    changed.loc[mask, setting.column] = float(value)
    return dataclasses.replace(tables, **{setting.table: changed})


def _predict(pair: Any, panel: pd.DataFrame, teams: list[str]) -> pd.DataFrame:
    rows = panel.loc[panel["team_id"].astype("string").isin(teams)]
    pred = pair.predict(rows)
    pred["team_id"] = pred["team_id"].astype(str)
    return pred.set_index("team_id")


def _resolve_as_of(tables: Tables, as_of: pd.Period | str | None) -> pd.Period:
    from forecast.data.contract import latest_complete_month

    if as_of is None:
        return latest_complete_month(tables)
    try:
        return pd.Period(as_of, freq="M")
    except (ValueError, TypeError):
        raise ConfigError(f"`--as-of` must be a month YYYY-MM. Got {as_of!r} instead.") from None


@dataclasses.dataclass
class RescoringEngine:
    """The first what-if engine: change the inputs, run both models again."""

    specs: Any = None  # FeatureSpecs; default: the repository's features/
    name: str = "rescoring"
    note: str = NOTE

    def _specs(self) -> Any:
        if self.specs is None:
            from forecast.features.specs import load_specs

            self.specs = load_specs()
        return self.specs

    def estimate(
        self, tables: Tables, pair: Any, teams: list[str], signal: str, value: float,
        as_of: pd.Period | str | None = None,
    ) -> pd.DataFrame:
        from forecast.features.panel import build_panel
        from forecast.scoring.batch import check_model_columns

        specs = self._specs()
        month = _resolve_as_of(tables, as_of)
        setting = check_signal(tables, specs, signal, list(getattr(pair, "features", []) or [])
                               or None)
        teams = list(dict.fromkeys(str(t) for t in teams))
        before_panel = build_panel(tables, specs, as_of=month)
        # Same refusal as `forecast score`: a signal the model needs but the data lack would
        # otherwise be predicted as "unknown" and shift both the before and the after.
        check_model_columns(pair, before_panel, specs)
        known = set(before_panel["team_id"].astype(str))
        unknown = [t for t in teams if t not in known]
        if unknown:
            raise ConfigError(
                f"`--team` must name a team with people at {month_str(month)}. Got "
                f"{unknown[0]!r} instead (not in the data at that month)."
            )
        after_panel = build_panel(hold_signal(tables, setting, teams, value, month), specs,
                                  as_of=month)
        before = _predict(pair, before_panel, teams)
        after = _predict(pair, after_panel, teams)
        out = pd.DataFrame({
            "team_id": teams,
            "as_of": month_str(month),
            "signal": setting.signal,
            "value": float(value),
            "before_expected_leavers": before.loc[teams, "expected_leavers"].to_numpy(float),
            "after_expected_leavers": after.loc[teams, "expected_leavers"].to_numpy(float),
            "before_csat_change": before.loc[teams, "csat_change"].to_numpy(float),
            "after_csat_change": after.loc[teams, "csat_change"].to_numpy(float),
        })
        for col in INTERVAL_COLUMNS:
            if col in before.columns:
                out[f"before_{col}"] = before.loc[teams, col].to_numpy(float)
                out[f"after_{col}"] = after.loc[teams, col].to_numpy(float)
        out["engine"] = self.name
        return out


# --------------------------------------------------------------------------- for the report


def signal_levels(tables: Tables, setting: Settable, as_of: pd.Period) -> pd.Series:
    """Each team's current raw level of a signal at `as_of`: the value that month, or the last
    observed one (surveys) within the last 12 months."""
    frame = tables.table(setting.table)
    assert frame is not None
    f = frame.loc[(frame["month"] <= as_of) & (frame["month"] > as_of - 12)]
    f = f.dropna(subset=[setting.column]).sort_values("month")
    return f.groupby(f["team_id"].astype(str))[setting.column].last()


def report_whatifs(
    tables: Tables, pair: Any, specs: Any, scores: pd.DataFrame, drivers: pd.DataFrame,
    as_of: pd.Period | str, *, n_teams: int = 50, engine: WhatIfEngine | None = None,
) -> pd.DataFrame:
    """For each of the `n_teams` reportable teams with the most expected leavers: move its top
    actionable attrition driver (largest positive SHAP in a workload or engagement family) to
    the organisation's median, with the engine. One engine call per signal (teams sharing a
    top driver are moved together: their features do not depend on one another's signals).
    Columns: the engine's, plus `feature` and `current_value`. Suggested output:
    OUT/whatif.parquet, written by `forecast score`."""
    from forecast.features.names import split_feature

    engine = engine or RescoringEngine(specs=specs)
    month = pd.Period(as_of, freq="M")
    settable = settable_signals(tables, specs, list(pair.features))
    rep = scores.loc[scores["reportable"].astype(bool)].sort_values(
        ["expected_leavers", "team_id"], ascending=[False, True]).head(n_teams)
    d = drivers.loc[(drivers["target"].astype(str) == "attrition")
                    & drivers["team_id"].astype(str).isin(set(rep["team_id"].astype(str)))
                    & (drivers["shap_value"] > 0)].copy()
    d["feature"] = d["feature"].astype(str)
    d["signal"] = [split_feature(f)[1] if f.count("__") >= 2 else "" for f in d["feature"]]
    d = d.loc[d["signal"].isin(settable)]
    top = d.sort_values(["shap_value", "feature"], ascending=[False, True]).drop_duplicates(
        "team_id")
    frames = []
    for signal, group in top.groupby("signal", sort=True):
        setting = settable[signal]
        levels = signal_levels(tables, setting, month)
        median = float(levels.median())
        teams = sorted(group["team_id"].astype(str))
        res = engine.estimate(tables, pair, teams, signal, median, month)
        res["feature"] = res["team_id"].map(dict(zip(group["team_id"].astype(str),
                                                     group["feature"], strict=True)))
        res["current_value"] = res["team_id"].map(levels).astype(float)
        frames.append(res)
    if not frames:
        return pd.DataFrame(columns=[*RESULT_COLUMNS, "feature", "current_value"])
    return pd.concat(frames, ignore_index=True).sort_values("team_id").reset_index(drop=True)


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


def run_what_if(
    data: Any, teams: list[str], assignment: str, *, as_of: str | None = None,
    model: str = "champion", tracking_uri: str | None = None,
    engine: WhatIfEngine | None = None,
) -> pd.DataFrame:
    """`forecast what-if`: read the data, resolve the pair, estimate. The CLI renders it."""
    from forecast.data.contract import load_tables
    from forecast.data.months import parse_month
    from forecast.mlops.registry import resolve_pair

    signal, value = parse_assignment(assignment)
    month = None
    if as_of is not None:
        try:
            month = parse_month(as_of)
        except ValueError:
            raise ConfigError(f"`--as-of` must be a month YYYY-MM. Got {as_of!r} instead.") \
                from None
    if not teams:
        raise ConfigError("`--team` must name at least one team.")
    from forecast.whatif.engine import check_what_if_signal, make_engine
    from forecast.whatif.store import stored_fits

    tables = load_tables(data)
    given = getattr(engine, "specs", None) if engine is not None else None
    specs = given if given is not None else _load_specs()
    # Refuse a bad signal before the (slower) model lookup.
    check_what_if_signal(tables, specs, signal)
    pair = resolve_pair(model, tracking_uri).pair
    # The causal engine by default: re-scoring lets history features absorb the effect
    # (docs/what-if.md); RescoringEngine stays available for comparison. It reuses the fits
    # `forecast train` stored with the pair when they can answer this what-if.
    engine = engine or make_engine(specs, stored=stored_fits(pair))
    return engine.estimate(tables, pair, teams, signal, value, month)


def _load_specs() -> Any:
    from forecast.features.specs import load_specs

    return load_specs()
