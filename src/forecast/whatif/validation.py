"""Validation of the what-if engine against known effects, in a form MLflow can log.

`validate_engine` takes a few small organisations with known after-hours effects (including
none; `forecast.simulate.known_effects` makes them), holds after-hours at the organisation
median for the 20 most loaded teams with the engine, and compares with the simulator's
intervention truth (the aggregate leavers ratio, and the team set's mean CSAT effect in points
with its 80% interval); it also runs the distractor `system_uptime`, whose true effect is zero.
It returns a dict of metrics and a small table, ready for `mlflow.log_metrics` and
`mlflow.log_table`. Organisations wired differently (known_effects.STRUCTURES) are compared in
benchmarks/whatif_variants.py.

Pure: never writes files or talks to MLflow itself.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecast.data.tables import Tables
from forecast.whatif.engine import CausalEngine, EngineSettings

SIGNAL, DISTRACTOR = "after_hours_ratio", "system_uptime"
# Seeds of the organisations `forecast train --validate-what-if` checks: never used to choose
# the engine's settings (those were 1-3). About 5-10 s per organisation (2 CPUs).
VALIDATION_SEEDS, VALIDATION_SCALES = (61, 62), (0.0, 1.0)
VALIDATION_TEAMS, VALIDATION_MONTHS = 400, 36


def _one(
    engine: CausalEngine, tables: Tables, truth: pd.DataFrame, signal: str
) -> dict[str, float]:
    g = truth.loc[truth["signal"] == signal]
    res = (
        engine.estimate(
            tables, None, list(g["team_id"]), signal, float(g["value"].iloc[0]), g["as_of"].iloc[0]
        )
        .set_index("team_id")
        .loc[list(g["team_id"])]
    )
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
        "true_csat_effect": float(np.mean(d_true)),
        "csat_effect": float(res["csat_effect"].mean()),
        "csat_effect_p10": float(res["csat_effect_p10"].mean()),
        "csat_effect_p90": float(res["csat_effect_p90"].mean()),
        "csat_direction": float(np.mean(np.sign(d_true[moved]) == np.sign(d_est[moved])))
        if moved.any()
        else float("nan"),
    }


def validate_engine(
    orgs: list[tuple[int, float, Tables, pd.DataFrame]],
    settings: EngineSettings | None = None,
) -> tuple[dict[str, float], pd.DataFrame]:
    """(metrics, table): the engine's error against the intervention truth per organisation,
    given as (seed, effect scale, tables, intervention truth rows)."""
    rows = []
    for seed, scale, tables, iv in orgs:
        engine = CausalEngine(settings=settings or EngineSettings())
        for signal in (SIGNAL, DISTRACTOR):
            rows.append(
                {
                    "seed": seed,
                    "after_hours_scale": scale,
                    "signal": signal,
                    **_one(engine, tables, iv, signal),
                }
            )
    table = pd.DataFrame(rows)
    table["error"] = table["ratio"] - table["true_ratio"]
    table["covered"] = (table["ratio_p10"] <= table["true_ratio"]) & (
        table["true_ratio"] <= table["ratio_p90"]
    )
    table["csat_error"] = table["csat_effect"] - table["true_csat_effect"]
    table["csat_covered"] = (table["csat_effect_p10"] <= table["true_csat_effect"]) & (
        table["true_csat_effect"] <= table["csat_effect_p90"]
    )
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
        # The mean CSAT effect of the team set against the truth's, in CSAT points.
        "whatif.csat_effect_mae": float(ah["csat_error"].abs().mean()),
        "whatif.csat_interval_coverage": float(ah["csat_covered"].mean()),
        "whatif.distractor_max_abs_error": float(dis["error"].abs().max()),
        "whatif.orgs": float(len(ah)),
    }
