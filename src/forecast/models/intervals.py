"""Prediction intervals and their calibration from backtest residuals.

Three intervals, all at one nominal level (default 80%):
- a team's leavers: negative binomial around the predicted mean, with a dispersion estimated
  from out-of-sample residuals (team counts vary more than Poisson: shocks, model error), and
  its quantiles taken at the level that makes the whole-number bounds cover the nominal share
  of out-of-sample team forecasts (`fit_count_level`: on small counts the bounds at the
  nominal quantiles cover far more, e.g. 94% for 80%);
- a team's CSAT change: split-conformal, the prediction plus or minus the level-quantile of
  out-of-sample absolute residuals;
- the organisation's total leavers: negative binomial with the summed NB variance plus a model
  variance learnt from the backtest's org-level errors (team errors share causes, so the total is
  NOT the sum of team bounds).

Pure functions of arrays: nothing here trains a model, reads a file or prints.
"""

from __future__ import annotations

import numpy as np

# A dispersion this small is a Poisson for every practical count.
MIN_DISPERSION = 1e-6


def estimate_dispersion(realised: np.ndarray, mean: np.ndarray) -> float:
    """NB2 dispersion `alpha` (Var = mu + alpha mu^2) by the method of moments.

    Moment-based rather than maximum likelihood: it is cheap, has no convergence failures on
    tiny backtests, and weights teams by their expected count (big teams dominate, as they
    should for an organisation-level forecast).
    """
    y, mu = np.asarray(realised, float), np.asarray(mean, float)
    ok = np.isfinite(y) & np.isfinite(mu) & (mu > 0)
    if not ok.any():
        return MIN_DISPERSION
    y, mu = y[ok], mu[ok]
    alpha = float(np.sum((y - mu) ** 2 - mu) / np.sum(mu**2))
    return max(alpha, MIN_DISPERSION)


def nb_quantiles(mean: np.ndarray, dispersion: float, probs: tuple[float, ...]) -> list[np.ndarray]:
    """Quantiles of a negative binomial with the given means and NB2 dispersion."""
    mu = np.clip(np.asarray(mean, float), 1e-12, None)
    size = 1.0 / max(dispersion, MIN_DISPERSION)
    prob = size / (size + mu)
    from scipy import stats  # here: importing SciPy's distributions takes about a second

    return [np.asarray(stats.nbinom.ppf(q, size, prob), float) for q in probs]


def nb_interval(mean: np.ndarray, dispersion: float, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Central `level` interval of leavers for each team (integers: leavers are counts)."""
    lo, hi = nb_quantiles(mean, dispersion, _tails(level))
    return lo, hi


# The quantile levels `fit_count_level` tries, from a 30% to a 99.8% central interval.
COUNT_LEVELS = np.round(np.arange(0.30, 0.9985, 0.002), 4)


def nb_cdf_pair(
    realised: np.ndarray, mean: np.ndarray, dispersion: float
) -> tuple[np.ndarray, np.ndarray]:
    """(F(y - 1), F(y)) of each realised count under its negative binomial."""
    y = np.asarray(realised, float)
    mu = np.clip(np.asarray(mean, float), 1e-12, None)
    size = 1.0 / max(dispersion, MIN_DISPERSION)
    prob = size / (size + mu)
    from scipy import stats

    return stats.nbinom.cdf(y - 1, size, prob), stats.nbinom.cdf(y, size, prob)


def count_coverage(below: np.ndarray, upto: np.ndarray, inner: float) -> float:
    """Share of counts inside their whole-number central `inner` interval [Q(a), Q(1 - a)],
    from their CDF values: y >= Q(a) iff F(y) >= a, and y <= Q(1 - a) iff F(y - 1) < 1 - a."""
    a = (1.0 - inner) / 2.0
    return float(np.mean((upto >= a) & (below < 1.0 - a))) if len(upto) else float("nan")


def fit_count_level(
    realised: np.ndarray, mean: np.ndarray, dispersion: float, level: float
) -> float:
    """The central level whose whole-number negative-binomial bounds cover `level` of these
    out-of-sample counts (conformal calibration of the count interval): the closest of
    `COUNT_LEVELS`, the larger one on a tie. `level` itself when there are no counts."""
    y, mu = np.asarray(realised, float), np.asarray(mean, float)
    ok = np.isfinite(y) & np.isfinite(mu)
    if not ok.any():
        return float(level)
    below, upto = nb_cdf_pair(y[ok], mu[ok], dispersion)
    a = (1.0 - COUNT_LEVELS[:, None]) / 2.0
    cover = ((upto[None, :] >= a) & (below[None, :] < 1.0 - a)).mean(axis=1)
    gap = np.abs(cover - level)
    best = np.flatnonzero(gap <= gap.min() + 1e-12)[-1]
    return float(COUNT_LEVELS[best])


def conformal_halfwidth(residuals: np.ndarray, level: float) -> float:
    """Split-conformal half-width: the finite-sample-corrected `level` quantile of |residual|."""
    r = np.abs(np.asarray(residuals, float))
    r = np.sort(r[np.isfinite(r)])
    if r.size == 0:
        return float("nan")
    # ceil((n + 1) level)-th smallest: the standard split-conformal guarantee.
    k = min(int(np.ceil((r.size + 1) * level)), r.size)
    return float(r[k - 1])


def org_model_sd(
    totals_pred: np.ndarray, totals_real: np.ndarray, nb_variances: np.ndarray
) -> float:
    """Relative model sd of the org total: error variance beyond NB noise, as a fraction of the
    expected total (relative, so it carries over to an organisation that grew or shrank)."""
    t = np.asarray(totals_pred, float)
    r = np.asarray(totals_real, float)
    v = np.asarray(nb_variances, float)
    ok = np.isfinite(t) & np.isfinite(r) & (t > 0)
    if not ok.any():
        return 0.0
    excess = ((r[ok] - t[ok]) ** 2 - v[ok]) / t[ok] ** 2
    return float(np.sqrt(max(float(np.mean(excess)), 0.0)))


def org_total_interval(
    means: np.ndarray,
    dispersion: float,
    model_sd: float,
    level: float,
    model_sd_origins: int | None = None,
) -> dict[str, float]:
    """Interval for the organisation's total leavers.

    Variance = sum of team NB variances + (model_sd x total)^2; the total is then treated as one
    negative binomial with that mean and variance, which stays sensible for small organisations
    (a normal approximation would give negative lower bounds). `model_sd_origins`: how many
    backtest origins `model_sd` was estimated from. A variance estimated from a handful of
    errors is itself uncertain, so the model part is widened as a Student-t predictive
    interval widens a normal one (t quantile with that many degrees of freedom over the normal
    quantile: x1.28 from 3 origins, x1.15 from 5); None: not widened (pairs before issue 18).
    """
    mu = np.asarray(means, float)
    mu = mu[np.isfinite(mu)]
    total = float(mu.sum())
    if total <= 0:
        return {"expected": total, "p10": 0.0, "p90": 0.0, "sd": 0.0}
    if model_sd_origins is not None and model_sd_origins >= 1:
        from scipy import stats

        q = _tails(level)[1]
        model_sd = model_sd * float(stats.t.ppf(q, model_sd_origins) / stats.norm.ppf(q))
    var = float(np.sum(mu + dispersion * mu**2)) + (model_sd * total) ** 2
    alpha = max((var - total) / total**2, MIN_DISPERSION)
    lo, hi = nb_quantiles(np.array([total]), alpha, _tails(level))
    return {"expected": total, "p10": float(lo[0]), "p90": float(hi[0]), "sd": float(np.sqrt(var))}


def nb_variance(mean: np.ndarray, dispersion: float) -> np.ndarray:
    mu = np.asarray(mean, float)
    return mu + dispersion * mu**2


def _tails(level: float) -> tuple[float, float]:
    a = (1.0 - level) / 2.0
    return a, 1.0 - a
