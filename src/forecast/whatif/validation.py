"""Validation of the what-if engine against known effects, in a form MLflow can log.

`validate_engine` simulates a few small organisations with known after-hours effects
(including none), holds after-hours at the organisation median for the 20 most loaded teams
with the engine, and compares with the simulator's intervention truth; it also runs the
distractor `system_uptime`, whose true effect is zero. It returns a dict of metrics and a
small table, ready for `mlflow.log_metrics` and `mlflow.log_table`.

`data_diagnostics` reports, for the user's own data (no truth there), the fitted effect of each
actionable signal with its 80% interval: what the what-if numbers of this model rest on.

Pure: simulates in memory, never writes files or talks to MLflow itself.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from forecast.whatif.engine import CausalEngine, EngineSettings

SIGNAL, DISTRACTOR, TEAM_SET = "after_hours_ratio", "system_uptime", "most_after_hours"


def after_hours_effects(scale: float) -> Any:
    """The simulator's default effects with every after-hours path scaled (0 = no effect)."""
    from forecast.simulate import Effects

    d = Effects()
    return replace(d, after_hours_on_exit=d.after_hours_on_exit * scale,
                   after_hours_on_engagement=d.after_hours_on_engagement * scale,
                   cases_on_after_hours=d.cases_on_after_hours * scale)


def known_effect_org(
    seed: int, scale: float, n_teams: int, n_months: int
) -> tuple[Any, pd.DataFrame]:
    """A simulated organisation and its intervention truth for the most loaded teams at the
    last as-of month: (tables, truth rows)."""
    from forecast.data import contract
    from forecast.simulate import SimConfig, simulate

    cfg = SimConfig(n_teams=n_teams, n_months=n_months, seed=seed,
                    effects=after_hours_effects(scale), intervention_reps=100)
    sim = simulate(cfg, with_interventions=True)
    iv = sim.interventions
    iv = iv.loc[(iv["team_set"] == TEAM_SET) & (iv["as_of"] == iv["as_of"].max())]
    return contract.tables_from_frames(sim.frames, data_start=cfg.start), iv


def _one(engine: CausalEngine, tables: Any, truth: pd.DataFrame, signal: str) -> dict[str, float]:
    g = truth.loc[truth["signal"] == signal]
    res = engine.estimate(tables, None, list(g["team_id"]), signal, float(g["value"].iloc[0]),
                          g["as_of"].iloc[0]).set_index("team_id").loc[list(g["team_id"])]
    before = res["before_expected_leavers"].sum()
    true_ratio = g["intervened_expected_leavers"].sum() / g["baseline_expected_leavers"].sum()
    d_true = (g["intervened_csat_change"] - g["baseline_csat_change"]).to_numpy()
    d_est = (res["after_csat_change"] - res["before_csat_change"]).to_numpy()
    moved = np.abs(d_true) > 1e-9
    return {
        "true_ratio": float(true_ratio),
        "ratio": float(res["after_expected_leavers"].sum() / before),
        "ratio_p10": float(res["after_leavers_p10"].sum() / before),
        "ratio_p90": float(res["after_leavers_p90"].sum() / before),
        "csat_direction": float(np.mean(np.sign(d_true[moved]) == np.sign(d_est[moved])))
        if moved.any() else float("nan"),
    }


def validate_engine(
    seeds: tuple[int, ...] = (61, 62), scales: tuple[float, ...] = (0.0, 1.0),
    n_teams: int = 400, n_months: int = 36, settings: EngineSettings | None = None,
) -> tuple[dict[str, float], pd.DataFrame]:
    """(metrics, table): the engine's error against the intervention truth per organisation.

    The default seeds were never used to choose the engine's settings (those were 1-3).

    About 5-10 s per organisation at the defaults (2 CPUs).
    """
    rows = []
    for seed in seeds:
        for scale in scales:
            tables, iv = known_effect_org(seed, scale, n_teams, n_months)
            engine = CausalEngine(settings=settings or EngineSettings())
            for signal in (SIGNAL, DISTRACTOR):
                rows.append({"seed": seed, "after_hours_scale": scale, "signal": signal,
                             **_one(engine, tables, iv, signal)})
    table = pd.DataFrame(rows)
    table["error"] = table["ratio"] - table["true_ratio"]
    table["covered"] = (table["ratio_p10"] <= table["true_ratio"]) & (
        table["true_ratio"] <= table["ratio_p90"])
    return _metrics(table), table


def _metrics(table: pd.DataFrame) -> dict[str, float]:
    ah = table.loc[table["signal"] == SIGNAL]
    dis = table.loc[table["signal"] == DISTRACTOR]
    return {
        "whatif.ratio_mae": float(ah["error"].abs().mean()),
        "whatif.ratio_max_abs_error": float(ah["error"].abs().max()),
        "whatif.share_within_0.10": float((ah["error"].abs() <= 0.10).mean()),
        "whatif.interval_coverage": float(ah["covered"].mean()),
        "whatif.csat_direction": float(ah["csat_direction"].mean()),
        "whatif.distractor_max_abs_error": float(dis["error"].abs().max()),
        "whatif.orgs": float(len(ah)),
    }


def data_diagnostics(tables: Any, signals: list[str], horizon: int,
                     settings: EngineSettings | None = None) -> tuple[dict[str, float],
                                                                      pd.DataFrame]:
    """Fitted effect per signal on the user's data: theta (log hazard per unit) and interval."""
    engine = CausalEngine(settings=settings or EngineSettings(), horizon=horizon)
    rows = []
    for signal in signals:
        fit, _, month = engine.fit(tables, signal, None, horizon)
        rows.append({"signal": signal, "as_of": str(month), **fit.metrics()})
    table = pd.DataFrame(rows)
    metrics = {f"whatif.theta.{r['signal']}": float(r["theta"]) for r in rows}
    return metrics, table
