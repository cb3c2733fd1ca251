"""Organisations whose what-if effect is known: the simulator with every after-hours path
scaled (0 = no effect), with its intervention truth for the most loaded teams. Used to validate
the what-if engine (`forecast train --validate-what-if`, tests, benchmarks).
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from forecast.data import contract
from forecast.data.tables import Tables
from forecast.simulate.config import Effects, SimConfig
from forecast.simulate.organisation import simulate

TEAM_SET = "most_after_hours"


def after_hours_effects(scale: float) -> Effects:
    """The simulator's default effects with every after-hours path scaled (0 = no effect)."""
    d = Effects()
    return replace(
        d,
        after_hours_on_exit=d.after_hours_on_exit * scale,
        after_hours_on_engagement=d.after_hours_on_engagement * scale,
        cases_on_after_hours=d.cases_on_after_hours * scale,
    )


def known_effect_org(
    seed: int, scale: float, n_teams: int, n_months: int
) -> tuple[Tables, pd.DataFrame]:
    """A simulated organisation and its intervention truth for the most loaded teams at the
    last as-of month: (tables, truth rows)."""
    cfg = SimConfig(
        n_teams=n_teams,
        n_months=n_months,
        seed=seed,
        effects=after_hours_effects(scale),
        intervention_reps=100,
    )
    sim = simulate(cfg, with_interventions=True)
    iv = sim.interventions
    iv = iv.loc[(iv["team_set"] == TEAM_SET) & (iv["as_of"] == iv["as_of"].max())]
    return contract.tables_from_frames(sim.frames, data_start=cfg.start), iv


def known_effect_orgs(
    seeds: tuple[int, ...], scales: tuple[float, ...], n_teams: int, n_months: int
) -> list[tuple[int, float, Tables, pd.DataFrame]]:
    """(seed, scale, tables, truth rows) for every seed and effect scale."""
    return [
        (seed, scale, *known_effect_org(seed, scale, n_teams, n_months))
        for seed in seeds
        for scale in scales
    ]
