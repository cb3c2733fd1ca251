"""How a fitted effect becomes each team's before and after: scales, caps and intervals."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from forecast.data import contract
from forecast.features.specs import load_specs
from forecast.simulate import SimConfig, simulate
from forecast.whatif.engine import (
    MAX_SHARE,
    EngineSettings,
    effect_frame,
    fit_effect,
    team_effects,
    with_error_floor,
)
from forecast.whatif.signals import settable_signals

HORIZON = 3
SIGNAL = "after_hours_ratio"
FAST = {"bootstrap": 40, "repeats": 1, "trees": 10}


@pytest.fixture(scope="module")
def frame():
    cfg = SimConfig(n_teams=40, n_months=24, seed=11, compute_truth=False)
    tables = contract.tables_from_frames(simulate(cfg).frames, data_start=cfg.start)
    specs = load_specs()
    return effect_frame(tables, specs, settable_signals(tables, specs)[SIGNAL], HORIZON)


@pytest.fixture(scope="module")
def fit(frame):
    return fit_effect(frame, SIGNAL, HORIZON, EngineSettings(**FAST))


def _last_month(frame):
    return frame.loc[frame["as_of"] == frame["as_of"].max()].reset_index(drop=True)


def _no_effect(fit, boot: np.ndarray):
    """`fit` with every effect at zero and these bootstrap draws."""
    return dataclasses.replace(fit, theta=0.0, theta_risk=0.0, theta_csat_direct=0.0, boot=boot)


def test_a_forecast_above_the_hazard_cap_gets_no_effect_from_the_cap(frame, fit):
    """A team forecast to lose more than MAX_SHARE of its people (backfills leave too) sits at
    the cap of the hazard scale; the cap is not an effect of the signal. With no effect at all
    every team's leavers and CSAT effect must be exactly zero (before the fix, such a team
    read about -(forecast - 0.98 x headcount) leavers and a CSAT gain from them)."""
    none = _no_effect(fit, np.zeros_like(fit.boot))
    rows = _last_month(frame)
    hc = rows["headcount"].to_numpy(np.float64)
    before = 0.3 * hc
    before[0] = 1.3 * hc[0]  # over the cap
    out = team_effects(none, rows, 0.0, before_leavers=before, before_csat=np.zeros(len(rows)))
    assert before[0] / hc[0] > MAX_SHARE
    np.testing.assert_allclose(out["leavers_effect"], 0.0, atol=1e-9)
    np.testing.assert_allclose(out["csat_effect"], 0.0, atol=1e-9)
    # Before and after share the headcount scale: no effect reads as none there too.
    shown = np.minimum(before, hc)
    np.testing.assert_allclose(out["before_expected_leavers"], shown, rtol=1e-12)
    np.testing.assert_allclose(out["after_expected_leavers"], shown, rtol=1e-12)
    # A real effect moves a team over the cap as it moves the same team at the cap.
    at_cap = before.copy()
    at_cap[0] = MAX_SHARE * hc[0]
    effect = {
        name: team_effects(fit, rows, 0.0, before_leavers=b, before_csat=np.zeros(len(rows)))
        for name, b in (("over", before), ("at", at_cap))
    }
    assert effect["at"].loc[0, "leavers_effect"] != 0
    assert effect["over"].loc[0, "leavers_effect"] == pytest.approx(
        effect["at"].loc[0, "leavers_effect"]
    )
    # Every column agrees with what is shown: after - before is the effect, after / before the
    # ratio, on the headcount scale.
    for out in effect.values():
        shown = out["after_expected_leavers"] - out["before_expected_leavers"]
        np.testing.assert_allclose(shown, out["leavers_effect"], atol=1e-9)
        np.testing.assert_allclose(
            out["after_expected_leavers"] / out["before_expected_leavers"],
            out["leavers_ratio"],
            rtol=1e-9,
        )
        assert (out["after_expected_leavers"] <= hc + 1e-9).all()
        assert (out["after_leavers_p90"] <= hc + 1e-9).all()


def test_an_effect_that_raises_leaving_stops_at_the_headcount(frame, fit):
    """A team forecast to lose all its people can lose no more: with an effect that raises
    leaving, after stays at the headcount and the effect (and CSAT via leavers) is zero."""
    worse = dataclasses.replace(fit, theta=abs(fit.theta) + 1.0, theta_risk=0.0)
    rows = _last_month(frame)
    hc = rows["headcount"].to_numpy(np.float64)
    before = 0.3 * hc
    before[0] = hc[0]  # already at the headcount
    # Held far above where any team's after-hours would go (the natural path): more leaving.
    out = team_effects(worse, rows, 5.0, before_leavers=before, before_csat=np.zeros(len(rows)))
    assert (out["natural_value"] < 5.0).all()
    assert out.loc[0, "after_expected_leavers"] == pytest.approx(hc[0])
    assert out.loc[0, "leavers_effect"] == pytest.approx(0.0, abs=1e-9)
    assert out.loc[0, "csat_effect_via_leavers"] == pytest.approx(0.0, abs=1e-9)
    assert (out.loc[1:, "leavers_effect"] > 0).any()  # the others do lose more people


def test_the_error_floor_widens_the_effect_draws_by_its_size_and_nothing_else():
    boot = np.random.default_rng(0).normal(size=(400, 4)) * 0.01
    assert with_error_floor(boot, 0.5, EngineSettings(effect_floor=0.0, csat_floor=0.0)) is boot
    s = EngineSettings(effect_floor=0.025, csat_floor=0.15)
    floored = with_error_floor(boot, 0.5, s)
    np.testing.assert_array_equal(floored[:, 2:], boot[:, 2:])  # leavers' CSAT term, risk
    added = floored[:, :2] - boot[:, :2]
    # Per residual-dose sd: a dose spread of 0.5 doubles the per-unit error.
    np.testing.assert_allclose(added.std(axis=0), [0.05, 0.3], rtol=0.15)
    np.testing.assert_array_equal(with_error_floor(boot, 0.5, s), floored)  # seeded
    # No CSAT stage (too few CSAT rows): its zero is no estimate and gets no error.
    no_csat = with_error_floor(boot, 0.5, s, csat_fitted=False)
    np.testing.assert_array_equal(no_csat[:, 1], boot[:, 1])
    np.testing.assert_array_equal(no_csat[:, 0], floored[:, 0])


def test_with_no_effect_the_floor_gives_intervals_around_zero(frame, fit):
    """A zero estimate with its systematic error: every team's interval holds zero, and the
    teams with a gap to the held value get a non-empty one."""
    s = EngineSettings(**FAST)
    none = _no_effect(fit, with_error_floor(np.zeros_like(fit.boot), fit.dose_sd, s))
    rows = _last_month(frame)
    hc = rows["headcount"].to_numpy(np.float64)
    out = team_effects(none, rows, 0.0, before_leavers=0.3 * hc, before_csat=np.zeros(len(rows)))
    for col in ("leavers_effect", "csat_effect"):
        assert np.all(out[f"{col}_p10"] <= 0) and np.all(out[f"{col}_p90"] >= 0)
        assert np.all(out[f"{col}_p90"] - out[f"{col}_p10"] > 0)
