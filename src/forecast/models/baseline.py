"""The attrition forecast's fallback: the team's own long-run voluntary rate, shrunk toward the
organisation's recent rate, and how much weight it gets against the trees.

Per row, the baseline's per-head rate over the horizon is

    rate_h = scale * (leavers so far + prior * org rate) / (person-months so far + prior)

with the organisation's rate over its last 12 months. `prior` (person-months of
organisation-wide evidence a team starts from) and `scale` (months of exposure per head over the
horizon, net of the other ways out of a team) are chosen on the training window's most recent
labelled months (the scale on all of them): each row's baseline uses only data up to its own
as-of month, so this is a backtest of the baseline itself, and it costs no model fit.

The forecast's log rate is `(1 - weight) * trees + weight * log(baseline)`: `weight` is chosen
on out-of-fold rates over every labelled month (`forecast.models.fit.oof_attrition`: each time
block's trees and baseline fitted without it) by the one-standard-error rule (`choose_weight`),
so where the features add nothing the forecast falls back to the baseline instead of below it,
and where they add much it stays the trees'.
Measured against LightGBM `init_score` (trees learning the deviation from the baseline):
init_score did as well or better on the MFG data but cost a simulated organisation 2% of
deviance (the regularised trees cannot undo a baseline that the current signals explain
better); see README, Accuracy.

Pure: frames and arrays in, numbers out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from forecast.features.names import BASELINE_COLUMNS

# Shrinkage strengths tried, in person-months (a 12-person team works about 150 a year).
PRIOR_GRID = tuple(float(v) for v in np.geomspace(10.0, 30_000.0, 15))
# Blend weights tried (the baseline's share of the log rate).
WEIGHT_GRID = np.round(np.linspace(0.0, 1.0, 101), 2)
# Floor of a baseline rate: log(0) would be minus infinity.
MIN_RATE = 1e-6


@dataclass(frozen=True)
class Baseline:
    """`prior` in person-months, `scale` in months, `fallback` a per-person-month rate for
    rows whose organisation rate is unknown (the first month of the data), `log_reference` the
    headcount-weighted mean log baseline of the training rows (the drivers' base value takes
    it, so the baseline's driver term is the team's own rate against the average), `weight`
    the baseline's share of the forecast's log rate."""

    prior: float
    scale: float
    fallback: float
    log_reference: float
    weight: float = 0.0

    def rate(self, panel: pd.DataFrame) -> np.ndarray:
        """Per-head rate over the horizon of every row of `panel` (a feature panel)."""
        leavers, exposure, org = _inputs(panel)
        org = np.where(np.isfinite(org), org, self.fallback)
        monthly = (leavers + self.prior * org) / (exposure + self.prior)
        return np.maximum(self.scale * monthly, MIN_RATE)

    def log_rate(self, panel: pd.DataFrame) -> np.ndarray:
        return np.log(self.rate(panel))

    def blend(self, trees: np.ndarray, panel: pd.DataFrame) -> np.ndarray:
        """The forecast's log rate from the trees' raw score (a log rate) on `panel`."""
        return (1.0 - self.weight) * np.asarray(trees) + self.weight * self.log_rate(panel)

    def with_weight(self, weight: float) -> Baseline:
        return replace(self, weight=float(weight))

    def to_dict(self) -> dict[str, float]:
        return {
            "prior": self.prior,
            "scale": self.scale,
            "fallback": self.fallback,
            "log_reference": self.log_reference,
            "weight": self.weight,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> Baseline | None:
        if not raw:
            return None
        keys = ("prior", "scale", "fallback", "log_reference", "weight")
        return cls(*(float(raw[k]) for k in keys))


def _inputs(panel: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    missing = [c for c in BASELINE_COLUMNS if c not in panel.columns]
    if missing:
        raise KeyError(f"the panel lacks {missing[0]} (built by features.panel.build_panel)")
    leavers, exposure, org = (
        panel[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in BASELINE_COLUMNS
    )
    return leavers, exposure, org


def poisson_deviance_terms(y: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Each row's Poisson deviance (y log(y/mu) taken as 0 when y == 0)."""
    mu = np.clip(np.asarray(mu, dtype=np.float64), 1e-12, None)
    y = np.asarray(y, dtype=np.float64)
    term = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / mu), 0.0)
    return 2.0 * (term - (y - mu))


def poisson_deviance_sum(y: np.ndarray, mu: np.ndarray) -> float:
    return float(np.sum(poisson_deviance_terms(y, mu)))


def choose_baseline(
    rows: pd.DataFrame, months: np.ndarray, horizon: int, recent_months: int
) -> Baseline:
    """The prior that forecasts the most recent `recent_months` as-of months of the labelled
    attrition `rows` best (Poisson deviance), each prior with the scale that matches all the
    rows' leavers in total (the Poisson maximum likelihood scale). Weight 0."""
    leavers, exposure, org = _inputs(rows)
    y = rows["leavers"].to_numpy(dtype=np.float64)
    hc = rows["headcount"].to_numpy(dtype=np.float64)
    # The organisation's own rate over the training rows: for the first month, where the
    # trailing organisation rate is undefined.
    fallback = float(np.sum(y) / max(float(np.sum(hc)) * horizon, 1.0))
    org = np.where(np.isfinite(org), org, fallback)
    uniq = np.unique(months)
    recent = months >= uniq[-min(recent_months, uniq.size)] if uniq.size else months > 0
    best: tuple[float, float, float] | None = None
    for prior in PRIOR_GRID:
        monthly = (leavers + prior * org) / (exposure + prior)
        # The scale over every row: a spike in the latest months must not set it (the
        # organisation's trailing rate already follows the level).
        scale = float(y.sum() / max(float(np.sum(hc * monthly)), 1e-12))
        scale = scale if scale > 0 else float(horizon)
        dev = poisson_deviance_sum(y[recent], scale * hc[recent] * monthly[recent])
        if best is None or dev < best[0] - 1e-12:
            best = (dev, prior, scale)
    assert best is not None
    _, prior, scale = best
    chosen = Baseline(prior, scale, fallback, 0.0)
    log_rate = chosen.log_rate(rows)
    ref = float(np.sum(hc * log_rate) / max(float(hc.sum()), 1e-12))
    return replace(chosen, log_reference=ref)


def choose_weight(
    leavers: np.ndarray, headcount: np.ndarray, trees: np.ndarray, base: np.ndarray
) -> float:
    """The baseline's share of the log rate for these out-of-sample rows (`trees` and `base`
    the two forecasts' log rates): the largest weight of `WEIGHT_GRID` whose Poisson deviance
    is within one standard error of the best weight's. Breiman's one-standard-error rule,
    toward the simpler forecast: where these rows cannot tell the trees' gain from noise, the
    forecast leans on the team's own long-run rate; where the trees clearly win, the weight
    stays near the best. The standard error is that of the rows' paired deviance differences
    from the best weight, taken as independent; a team's overlapping horizons are not, so this
    is the milder end of the rule (a team-clustered one would lean further on the baseline; no
    other strength was tried). Measured (README, Accuracy): MFG deviance 1.441 -> 1.431 with
    retirements and 1.374 -> 1.324 without; the simulated organisations within 0.001."""
    y = np.asarray(leavers, dtype=np.float64)
    hc = np.asarray(headcount, dtype=np.float64)
    t, b = np.asarray(trees, dtype=np.float64), np.asarray(base, dtype=np.float64)
    if y.size == 0:
        return float(WEIGHT_GRID[-1])  # no evidence for the trees

    def terms(w: float) -> np.ndarray:
        return poisson_deviance_terms(y, hc * np.exp((1 - w) * t + w * b))

    total = np.array([terms(w).sum() for w in WEIGHT_GRID])
    best = int(np.argmin(total))
    at_best = terms(WEIGHT_GRID[best])
    # One weight at a time: rows x weights would not fit in memory at 20,000 teams.
    for i in range(len(WEIGHT_GRID) - 1, best, -1):
        diff = terms(WEIGHT_GRID[i]) - at_best
        if diff.sum() <= np.sqrt(diff.size) * diff.std():
            return float(WEIGHT_GRID[i])
    return float(WEIGHT_GRID[best])
