"""Recalibration by risk band: monotone, level-keeping, and learnt only from out-of-sample
predictions (the backtest's, each origin from the earlier ones)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.models.backtest import recalibrate_by_origin
from forecast.models.calibration import MAX_BANDS, Recalibration, fit_recalibration, pava
from forecast.models.fit import Fitted, Holdout
from forecast.models.pair import assemble_pair


def _miscalibrated(seed: int, n: int = 20_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predicted rates whose truth is steeper than predicted: low risk over-, high risk
    under-predicted (true rate = predicted^1.4, rescaled to the same total)."""
    rng = np.random.default_rng(seed)
    rate = np.exp(rng.normal(np.log(0.05), 0.6, n))
    hc = rng.integers(3, 30, n).astype(float)
    true = rate**1.4
    true *= (rate * hc).sum() / (true * hc).sum()
    return rate, hc, rng.poisson(true * hc).astype(float)


def _band_ratios(rate, hc, leavers, bands: int = 10) -> np.ndarray:
    order = np.array_split(np.argsort(rate), bands)
    return np.array([(rate[b] * hc[b]).sum() / leavers[b].sum() for b in order])


def test_pava_is_the_weighted_isotonic_fit() -> None:
    np.testing.assert_allclose(pava(np.array([1.0, 3.0, 2.0, 4.0]), np.ones(4)), [1, 2.5, 2.5, 4])
    np.testing.assert_allclose(pava(np.array([2.0, 1.0]), np.array([3.0, 1.0])), [1.75, 1.75])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_map_is_monotone_even_on_noise(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rate = np.exp(rng.normal(-3, 1, 3000))
    hc = rng.integers(1, 40, 3000).astype(float)
    leavers = rng.poisson(rng.uniform(0, 0.2, 3000) * hc).astype(float)  # unrelated to rate
    recal = fit_recalibration(rate, hc, leavers)
    assert not recal.is_identity
    grid = np.exp(np.linspace(-9, 1, 5000))
    assert np.all(np.diff(recal.apply(grid)) >= 0)


def test_it_corrects_the_bands_and_keeps_the_overall_level() -> None:
    rate, hc, leavers = _miscalibrated(0, n=100_000)
    recal = fit_recalibration(rate, hc, leavers)
    # Learnt on one sample, judged on another drawn the same way.
    rate2, hc2, leavers2 = _miscalibrated(1, n=100_000)
    before = np.abs(_band_ratios(rate2, hc2, leavers2) - 1).max()
    after = np.abs(_band_ratios(recal.apply(rate2), hc2, leavers2) - 1).max()
    assert before > 0.2 and after < 0.06
    np.testing.assert_allclose((recal.apply(rate) * hc).sum(), (rate * hc).sum(), rtol=0.02)


def test_an_origin_wide_shock_does_not_bend_the_map() -> None:
    """One origin whose whole forecast missed its level (a year of many resignations) must not
    read as a shape: the map is the same whatever that origin's level error was."""
    rate, hc, leavers = _miscalibrated(4, n=40_000)
    origin = np.repeat(["2023-03", "2023-06"], 20_000)
    # The second origin's forecasts sit higher (it lies mostly in the upper bands).
    rate = np.where(origin == "2023-06", rate * 1.5, rate)
    calm = fit_recalibration(rate, hc, leavers, origin)
    shocked_leavers = np.where(origin == "2023-06", leavers * 1.8, leavers)
    shocked = fit_recalibration(rate, hc, shocked_leavers, origin)
    # Enough leavers for the most bands either way (more leavers alone would add bands).
    assert len(calm.log_rate) == len(shocked.log_rate) == MAX_BANDS
    np.testing.assert_allclose(shocked.log_calibrated, calm.log_calibrated, atol=1e-9)
    np.testing.assert_allclose(shocked.log_rate, calm.log_rate)
    # Pooled without origins, the shock steepens the map's upper end.
    grid = np.quantile(rate, [0.1, 0.9])
    pooled_calm = fit_recalibration(rate, hc, leavers).log_factor(grid)
    pooled_shocked = fit_recalibration(rate, hc, shocked_leavers).log_factor(grid)
    assert np.diff(pooled_shocked)[0] > np.diff(pooled_calm)[0] + 0.1


def test_each_origin_is_recalibrated_only_on_origins_known_before_it() -> None:
    rate, hc, leavers = _miscalibrated(2, n=8000)
    pred = pd.DataFrame(
        {
            "origin": np.repeat(["2023-03", "2023-06", "2023-09", "2023-12"], 2000),
            "rate_model": rate,
            "headcount": hc,
            "leavers": leavers,
        }
    )
    out = recalibrate_by_origin(pred, horizon=3)
    first = out["origin"] == "2023-03"
    np.testing.assert_array_equal(out.loc[first, "rate_model"], rate[first.to_numpy()])
    assert not np.allclose(out.loc[~first, "rate_model"], rate[~first.to_numpy()])
    # Changing what happened at 2023-09 changes neither its own forecasts nor earlier ones.
    changed = pred.assign(leavers=np.where(pred["origin"] == "2023-09", 0.0, pred["leavers"]))
    again = recalibrate_by_origin(changed, horizon=3)
    upto = (pred["origin"] <= "2023-09").to_numpy()
    np.testing.assert_array_equal(again["rate_model"][upto], out["rate_model"][upto])
    assert not np.array_equal(again["rate_model"][~upto], out["rate_model"][~upto])
    # With a 6-month horizon, 2023-06's outcome is not known at 2023-09 yet.
    six = recalibrate_by_origin(pred, horizon=6)
    sept = (pred["origin"] == "2023-09").to_numpy()
    f = first.to_numpy()
    only_first = fit_recalibration(rate[f], hc[f], leavers[f], pred["origin"][f])
    np.testing.assert_allclose(six["rate_model"][sept], only_first.apply(rate[sept]))


def test_the_pair_takes_the_map_from_the_backtest_not_from_its_own_fit(modelled_org) -> None:
    org = modelled_org
    bt, pair = org.backtest, org.pair
    p = bt.predictions
    expected = fit_recalibration(p["rate_model_raw"], p["headcount"], p["leavers"], p["origin"])
    assert not expected.is_identity
    assert pair.recalibration == expected == bt.recalibration
    # Without a backtest there are no out-of-sample predictions to learn from: no map.
    fitted = Fitted(
        features=pair.features,
        attrition=pair.attrition_booster,
        csat=pair.csat_booster,
        attrition_rounds=pair.attrition_booster.current_iteration(),
        csat_rounds=0,
        trained_until=pair.trained_until,
        holdout=Holdout(
            pd.DataFrame(columns=["as_of", "headcount", "leavers", "rate"]),
            pd.DataFrame(columns=["as_of", "csat_change", "prediction"]),
        ),
        baseline=pair.baseline,
    )
    assert assemble_pair(fitted, org.config).recalibration.is_identity
    assert assemble_pair(fitted, org.config, backtest=bt).recalibration == expected


def test_identity_and_round_trip() -> None:
    assert Recalibration().is_identity
    np.testing.assert_array_equal(Recalibration().apply(np.array([0.1, 0.2])), [0.1, 0.2])
    recal = fit_recalibration(*_miscalibrated(3))
    assert Recalibration.from_dict(recal.to_dict()) == recal
