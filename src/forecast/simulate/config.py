"""The simulator's configuration: the causal coefficients (`Effects`) and the organisation's
size, seed and base rates (`SimConfig`), validated when built. Imports only `forecast.data`
and `forecast.errors`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field, fields

import numpy as np

from forecast.data.months import parse_month
from forecast.data.tables import MAX_HORIZON
from forecast.errors import check_param


@dataclass(frozen=True)
class Effects:
    """Effect sizes of the causal structure (see the module docstring for the equations).

    `Effects.none()` switches every causal link off: exits and CSAT then depend only on base
    rates, tenure-free hazards and person frailty, and workload ignores staffing.
    """

    engagement_on_exit: float = 0.35  # log-hazard per -1 unit of latent engagement
    after_hours_on_exit: float = 0.30  # log-hazard per +0.10 after-hours ratio (direct)
    cases_on_exit: float = 0.60  # log-hazard per unit log(cases_per_head / 300)
    new_joiner_6m: float = 0.70  # log-hazard, tenure < 6 months
    new_joiner_12m: float = 0.35  # log-hazard, tenure 6..11 months
    contagion: float = 2.0  # log-hazard per unit recent (3-month) voluntary leaver rate
    after_hours_on_engagement: float = 0.30  # engagement units per +0.10 after-hours ratio
    cases_on_engagement: float = 0.50  # engagement units per unit log(cases_per_head / 300)
    manager_on_engagement: float = 0.50  # engagement units per unit manager quality
    engagement_on_csat: float = 0.25  # CSAT logit per engagement unit
    inexperience_on_csat: float = 1.2  # CSAT logit per unit share of staff with tenure < 6
    cases_on_csat: float = 0.30  # CSAT logit per unit log(cases_per_head / 300)
    understaffing_on_cases: float = 1.0  # elasticity of cases per head to target / staff
    cases_on_after_hours: float = 1.0  # elasticity of after-hours to the team's load

    @classmethod
    def none(cls) -> Effects:
        return cls(**{f.name: 0.0 for f in fields(cls)})


@dataclass(frozen=True)
class SimConfig:
    n_teams: int = 60
    n_months: int = 36
    seed: int = 0
    start: str = "2022-01"  # first recorded month
    horizon: int = 3  # horizon of the truth tables
    effects: Effects = field(default_factory=Effects)
    burn_in: int = 12  # months simulated before `start` and not recorded (warm state)
    vol_rate: float = 0.016  # monthly voluntary hazard at reference conditions
    invol_rate: float = 0.003
    transfer_rate: float = 0.004
    quarterly_share: float = 0.6  # share of teams surveyed quarterly (others monthly)
    compute_truth: bool = True
    intervention_reps: int = 200  # replications per what-if continuation
    intervention_teams: int = 20  # size of each team set of the intervention truth
    # Share of last month's latent engagement that carries over: how slowly engagement
    # recovers once its causes ease (0.7: about half the gap closes in two months). A
    # structural knob, like the effects: what-if validation varies it (known_effects).
    engagement_persistence: float = 0.70

    # How error messages name the fields, e.g. CLI_OPTIONS when they came from the command
    # line (`--teams`, not n_teams); not part of the config.
    names: InitVar[Mapping[str, str] | None] = None

    def __post_init__(self, names: Mapping[str, str] | None) -> None:
        validate_config(self, names)


# The fields `forecast simulate` and `forecast demo` take as options.
CLI_OPTIONS = {"n_teams": "--teams", "n_months": "--months", "seed": "--seed"}


def _is_int(v: object) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def _is_rate(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 0.2


def validate_config(c: SimConfig, names: Mapping[str, str] | None = None) -> None:
    """Check every field; `names` maps a field to the name an error shows for it."""

    def check(name: str, value: object, ok: bool, expected: str) -> None:
        check_param((names or {}).get(name, name), value, ok, expected)

    check("n_teams", c.n_teams, _is_int(c.n_teams) and c.n_teams >= 1, "an integer >= 1")
    check("n_months", c.n_months, _is_int(c.n_months) and c.n_months >= 1, "an integer >= 1")
    check("seed", c.seed, _is_int(c.seed) and c.seed >= 0, "an integer >= 0")
    try:
        ok = parse_month(c.start).year >= 1971
    except ValueError:
        ok = False
    check("start", c.start, ok, "a month YYYY-MM after 1970")
    check(
        "horizon",
        c.horizon,
        _is_int(c.horizon) and 1 <= c.horizon <= MAX_HORIZON,
        f"an integer between 1 and {MAX_HORIZON}",
    )
    check("effects", c.effects, isinstance(c.effects, Effects), "an Effects instance")
    for f in fields(Effects):
        v = getattr(c.effects, f.name)
        ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        check(f"effects.{f.name}", v, ok, "a finite number")
    check(
        "burn_in",
        c.burn_in,
        _is_int(c.burn_in) and 0 <= c.burn_in <= 120,
        "an integer between 0 and 120",
    )
    check("vol_rate", c.vol_rate, _is_rate(c.vol_rate) and c.vol_rate > 0, "a number in (0, 0.2]")
    check("invol_rate", c.invol_rate, _is_rate(c.invol_rate), "a number in [0, 0.2]")
    check("transfer_rate", c.transfer_rate, _is_rate(c.transfer_rate), "a number in [0, 0.2]")
    qs = c.quarterly_share
    check(
        "quarterly_share",
        qs,
        isinstance(qs, int | float) and 0 <= qs <= 1,
        "a number between 0 and 1",
    )
    rho = c.engagement_persistence
    check(
        "engagement_persistence",
        rho,
        isinstance(rho, int | float) and not isinstance(rho, bool) and 0 <= rho < 1,
        "a number in [0, 1)",
    )
    check(
        "intervention_reps",
        c.intervention_reps,
        _is_int(c.intervention_reps) and c.intervention_reps >= 1,
        "an integer >= 1",
    )
    check(
        "intervention_teams",
        c.intervention_teams,
        _is_int(c.intervention_teams) and c.intervention_teams >= 1,
        "an integer >= 1",
    )
