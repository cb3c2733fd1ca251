"""Prediction intervals and their calibration from backtest residuals.

Three intervals, all at one nominal level (default 80%):
- a team's leavers: negative binomial around the predicted mean, with a dispersion estimated
  from out-of-sample residuals (team counts vary more than Poisson: shocks, model error);
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
    means: np.ndarray, dispersion: float, model_sd: float, level: float
) -> dict[str, float]:
    """Interval for the organisation's total leavers.

    Variance = sum of team NB variances + (model_sd x total)^2; the total is then treated as one
    negative binomial with that mean and variance, which stays sensible for small organisations
    (a normal approximation would give negative lower bounds).
    """
    mu = np.asarray(means, float)
    mu = mu[np.isfinite(mu)]
    total = float(mu.sum())
    if total <= 0:
        return {"expected": total, "p10": 0.0, "p90": 0.0, "sd": 0.0}
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
