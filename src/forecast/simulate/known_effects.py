"""Organisations whose what-if effect is known: the simulator with every after-hours path
scaled (0 = no effect), with its intervention truth for the most loaded teams. Used to validate
the what-if engine (`forecast train --validate-what-if`, tests, benchmarks).

A `Structure` varies how the organisation is wired, not only its seed or effect sizes: how
strongly CSAT depends on engagement against leavers (through inexperienced backfills and
understaffing), how quickly engagement recovers, and whether after-hours is a cause or only
a proxy of one (it follows the load, which is what drives leaving; holding it changes
nothing). An engine whose settings fit one wiring is caught by the others
(benchmarks/whatif_variants.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pandas as pd

from forecast.data import contract
from forecast.data.tables import Tables
from forecast.simulate.config import Effects, SimConfig
from forecast.simulate.organisation import simulate

TEAM_SET = "most_after_hours"
AFTER_HOURS_LINKS = ("after_hours_on_exit", "after_hours_on_engagement", "cases_on_after_hours")


@dataclass(frozen=True)
class Structure:
    """How a known-effect organisation is wired (defaults: the simulator as it is).

    `effects`: effect sizes that differ from `Effects()`; `engagement_persistence`: the share
    of last month's engagement that carries over (high = slow recovery); `after_hours`:
    "cause" (the scale multiplies every after-hours link) or "proxy" (after-hours has no
    effect of its own, so the true effect of holding it is zero, and the scale multiplies how
    closely it follows the load, which does drive leaving and engagement).
    """

    effects: dict[str, float] = field(default_factory=dict)
    engagement_persistence: float = 0.70
    after_hours: str = "cause"

    def effects_at(self, scale: float) -> Effects:
        e = replace(Effects(), **self.effects)
        if self.after_hours == "proxy":
            return replace(
                e,
                after_hours_on_exit=0.0,
                after_hours_on_engagement=0.0,
                cases_on_after_hours=e.cases_on_after_hours * scale,
            )
        return replace(e, **{k: getattr(e, k) * scale for k in AFTER_HOURS_LINKS})

    def config(
        self, seed: int, scale: float, n_teams: int, n_months: int, reps: int = 100
    ) -> SimConfig:
        return SimConfig(
            n_teams=n_teams,
            n_months=n_months,
            seed=seed,
            effects=self.effects_at(scale),
            engagement_persistence=self.engagement_persistence,
            intervention_reps=reps,
        )


# CSAT mostly through leavers (inexperienced backfills, understaffing's extra cases) or mostly
# through engagement; defaults: engagement 0.25, inexperience 1.2, cases 0.3 (CSAT logit).
_CSAT_VIA_LEAVERS = {"engagement_on_csat": 0.08, "inexperience_on_csat": 3.0, "cases_on_csat": 0.8}
_CSAT_VIA_ENGAGEMENT = {
    "engagement_on_csat": 0.6,
    "inexperience_on_csat": 0.4,
    "cases_on_csat": 0.1,
}
# After-hours only follows the load (twice as elastic as by default); the load drives leaving
# and engagement twice as hard as by default.
_PROXY = {"cases_on_after_hours": 2.0, "cases_on_exit": 1.2, "cases_on_engagement": 1.0}

# Fixed before their first run (benchmarks/whatif_variants.py says which were used to develop
# the engine and which were held out).
STRUCTURES: dict[str, Structure] = {
    "default": Structure(),
    "csat-via-leavers": Structure(effects=_CSAT_VIA_LEAVERS),
    "csat-via-engagement": Structure(effects=_CSAT_VIA_ENGAGEMENT),
    "fast-recovery": Structure(engagement_persistence=0.3),
    "slow-recovery": Structure(engagement_persistence=0.9),
    "proxy": Structure(effects=_PROXY, after_hours="proxy"),
    # Combinations, held out while the engine was developed:
    "leavers-slow": Structure(effects=_CSAT_VIA_LEAVERS, engagement_persistence=0.9),
    "engagement-fast-load": Structure(
        effects={**_CSAT_VIA_ENGAGEMENT, "cases_on_exit": 1.0, "understaffing_on_cases": 1.5},
        engagement_persistence=0.3,
    ),
    "proxy-slow": Structure(
        effects={**_PROXY, **_CSAT_VIA_LEAVERS},
        engagement_persistence=0.9,
        after_hours="proxy",
    ),
}


def after_hours_effects(scale: float) -> Effects:
    """The simulator's default effects with every after-hours path scaled (0 = no effect)."""
    return STRUCTURES["default"].effects_at(scale)


def known_effect_org(
    seed: int,
    scale: float,
    n_teams: int,
    n_months: int,
    structure: str | Structure = "default",
) -> tuple[Tables, pd.DataFrame]:
    """A simulated organisation and its intervention truth for the most loaded teams at the
    last as-of month: (tables, truth rows)."""
    s = STRUCTURES[structure] if isinstance(structure, str) else structure
    cfg = s.config(seed, scale, n_teams, n_months)
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
