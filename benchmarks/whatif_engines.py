"""What-if engines compared with the causal engine in `benchmarks/whatif.py` (not shipped):
plain re-scoring of the predictive models, and the candidates the causal engine beat."""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd

from forecast.data.months import month_str
from forecast.data.tables import Tables
from forecast.errors import (
    ConfigError,
)
from forecast.whatif.signals import (
    INTERVAL_COLUMNS,
    Settable,
    bound_result,
    check_signal,
    recent_csat,
    resolve_as_of,
)

NOTE = (
    "Re-scoring: the signal is held at the value over the months the features read, and both "
    "models are run again (CSAT moves through expected attrition too). It understates effects "
    "that history features (past leavers, tenure mix) absorb as the change is held."
)


def hold_signal(
    tables: Tables, setting: Settable, teams: list[str], value: float, as_of: pd.Period
) -> Tables:
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
    observed = (
        in_team & upto & frame[setting.column].notna().to_numpy() & (month > as_of - 12).to_numpy()
    )
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
        self,
        tables: Tables,
        pair: Any,
        teams: list[str],
        signal: str,
        value: float,
        as_of: pd.Period | str | None = None,
    ) -> pd.DataFrame:
        from forecast.features.panel import build_panel
        from forecast.scoring.batch import check_model_columns

        specs = self._specs()
        month = resolve_as_of(tables, as_of)
        setting = check_signal(
            tables, specs, signal, list(getattr(pair, "features", []) or []) or None
        )
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
        after_panel = build_panel(
            hold_signal(tables, setting, teams, value, month), specs, as_of=month
        )
        before = _predict(pair, before_panel, teams)
        after = _predict(pair, after_panel, teams)
        out = pd.DataFrame(
            {
                "team_id": teams,
                "as_of": month_str(month),
                "signal": setting.signal,
                "value": float(value),
                "before_expected_leavers": before.loc[teams, "expected_leavers"].to_numpy(float),
                "after_expected_leavers": after.loc[teams, "expected_leavers"].to_numpy(float),
                "before_csat_change": before.loc[teams, "csat_change"].to_numpy(float),
                "after_csat_change": after.loc[teams, "csat_change"].to_numpy(float),
            }
        )
        for col in INTERVAL_COLUMNS:
            if col in before.columns:
                out[f"before_{col}"] = before.loc[teams, col].to_numpy(float)
                out[f"after_{col}"] = after.loc[teams, col].to_numpy(float)
        out["engine"] = self.name
        hc = (
            before_panel.assign(team_id=before_panel["team_id"].astype(str))
            .set_index("team_id")
            .loc[teams, "headcount"]
            .to_numpy(float)
        )
        return bound_result(out, hc, recent_csat(tables, teams, month))
