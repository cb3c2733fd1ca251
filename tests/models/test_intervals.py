"""Team leaver intervals on simulated counts with known rates: whole-number bounds at the
nominal quantiles over-cover small counts; at the level fitted to out-of-sample counts they
cover what they say."""

from __future__ import annotations

import numpy as np
import pytest

from forecast.models import intervals

ALPHA = 0.3  # the counts' true NB2 dispersion


def _counts(seed: int, n: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    """Known means (small teams, a few months: mostly 0 to 2 leavers) and NB counts."""
    rng = np.random.default_rng(seed)
    mean = np.exp(rng.normal(np.log(0.6), 0.8, n))
    size = 1 / ALPHA
    return mean, rng.negative_binomial(size, size / (size + mean)).astype(float)


def _cover(mean: np.ndarray, y: np.ndarray, dispersion: float, level: float) -> float:
    lo, hi = intervals.nb_interval(mean, dispersion, level)
    return float(((y >= lo) & (y <= hi)).mean())


def test_dispersion_is_recovered_from_counts_with_known_means() -> None:
    mean, y = _counts(0)
    assert intervals.estimate_dispersion(y, mean) == pytest.approx(ALPHA, abs=0.05)


def test_whole_number_bounds_at_the_nominal_quantiles_over_cover() -> None:
    mean, y = _counts(1)
    assert _cover(mean, y, ALPHA, 0.8) > 0.88


def test_the_fitted_level_covers_the_nominal_share_of_new_counts() -> None:
    mean, y = _counts(2)
    inner = intervals.fit_count_level(y, mean, intervals.estimate_dispersion(y, mean), 0.8)
    assert inner < 0.8  # narrower quantiles: whole numbers widen them
    fresh_mean, fresh_y = _counts(3)
    assert _cover(fresh_mean, fresh_y, ALPHA, inner) == pytest.approx(0.8, abs=0.02)


def test_coverage_from_cdf_values_matches_the_bounds() -> None:
    mean, y = _counts(4, n=3000)
    below, upto = intervals.nb_cdf_pair(y, mean, ALPHA)
    for level in (0.5, 0.7, 0.8, 0.9):
        assert intervals.count_coverage(below, upto, level) == _cover(mean, y, ALPHA, level)
