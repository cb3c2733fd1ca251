"""The engagement survey as the CSAT stage's mediator, with its sampling noise corrected.

A team's survey score is a mean over the people who answered: its noise shrinks with the
response count. Regressing the CSAT change on that noisy reading understates CSAT's dependence
on engagement (regression dilution); with the noise variance of each reading known, the
errors-in-variables least squares removes it: b = (D'WD - sum_i w_i V_i)^-1 D'WY, V_i the
noise (co)variance of row i's regressors (only the survey's entry is noisy).

The per-answer spread (sigma^2 in noise variance = sigma^2 / responses) is read off the data:
the squared change between a team's consecutive readings is the true change's variance plus
sigma^2 * (1/n_1 + 1/n_2), so regressing it on (1/n_1 + 1/n_2) (and the months between the
readings) gives sigma^2 as the slope.

Pure: arrays in, arrays out.
"""

from __future__ import annotations

import numpy as np

from forecast.features.targets import _window

SURVEY_MEAN = "svyh_mean"  # the survey's mean over the horizon months t+1..t+h
SURVEY_NOISE = "svyh_noise"  # the sampling-noise variance of that mean
PAST_MEAN = "svyp_mean"  # the survey's mean over t-2..t (the CSAT change's own past window)
PAST_NOISE = "svyp_noise"
SURVEY_COVER, PAST_COVER = "svyh_cover", "svyp_cover"  # share of the window's months read
# CSAT's dependence on the survey is learnt from rows whose both windows are read every month
# (a quarterly reading is one month's engagement, not the window's), when there are this many.
MIN_WHOLE_ROWS = 1000


def answer_variance(values: np.ndarray, responses: np.ndarray) -> float:
    """sigma^2: the per-answer variance of the survey (team x month grids, NaN = no reading)."""
    d2, inv, gap = [], [], []
    for v, n in zip(values, responses, strict=True):
        idx = np.flatnonzero(~np.isnan(v) & (n > 0))
        if len(idx) < 2:
            continue
        a, b = idx[:-1], idx[1:]
        d2.append((v[b] - v[a]) ** 2)
        inv.append(1.0 / n[a] + 1.0 / n[b])
        gap.append((b - a).astype(np.float64))
    if not d2:
        return float("nan")
    y, x, g = np.concatenate(d2), np.concatenate(inv), np.concatenate(gap)
    Z = np.column_stack([np.ones(len(y)), np.minimum(g, 6.0), x])
    coef, *_ = np.linalg.lstsq(Z, y, rcond=None)
    return float(max(coef[2], 0.0))


def window_survey(
    values: np.ndarray,
    responses: np.ndarray,
    lo: int,
    hi: int,
    full: np.ndarray,
    sigma2: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, noise variance, share of the window's months with a reading) of the survey
    readings in t+lo..t+hi, per team x month cell (NaN where none falls in the window or,
    `full` False, the window runs past the data)."""
    ok = ~np.isnan(values) & (np.nan_to_num(responses) > 0)
    k = _window(ok.astype(np.float64), lo, hi)
    total = _window(np.where(ok, values, 0.0), lo, hi)
    inv = _window(np.where(ok, 1.0 / np.where(ok, responses, 1.0), 0.0), lo, hi)
    good = (k > 0) & full[None, :] & np.isfinite(sigma2)
    mean = np.full(values.shape, np.nan)
    noise = np.full(values.shape, np.nan)
    np.divide(total, k, out=mean, where=good)
    np.divide(sigma2 * inv, k**2, out=noise, where=good)
    return mean, noise, np.where(good, k / (hi - lo + 1), np.nan)


def eiv_ls(
    y: np.ndarray, D: np.ndarray, w: np.ndarray, noise: np.ndarray, col: int, ridge: float
) -> np.ndarray:
    """Weighted least squares of y on D with column `col` read with noise of variance `noise`
    (per row): the noise's contribution to D'WD is taken out before solving."""
    A = (D * w[:, None]).T @ D + ridge * np.eye(D.shape[1])
    A[col, col] -= float(np.sum(w * noise))
    # Guard: a noise estimate as large as the reading's whole variance leaves nothing to learn.
    A[col, col] = max(A[col, col], 0.05 * float(np.sum(w * D[:, col] ** 2)))
    return np.linalg.solve(A, (D * w[:, None]).T @ y)
