"""The survey's sampling noise: read off the data, and taken out of CSAT's dependence on it."""

from __future__ import annotations

import numpy as np
import pytest

from forecast.whatif.survey import answer_variance, eiv_ls, window_survey


def _surveys(seed: int, teams: int = 300, months: int = 24, sigma: float = 12.0):
    """Monthly team surveys: a latent AR(1) engagement read by `responses` answers each."""
    rng = np.random.default_rng(seed)
    true = np.zeros((teams, months))
    true[:, 0] = rng.normal(0, 3, teams)
    for m in range(1, months):
        true[:, m] = 0.7 * true[:, m - 1] + rng.normal(0, 1.5, teams)
    responses = rng.integers(5, 30, (teams, months)).astype(np.float64)
    values = 70 + true + sigma * rng.standard_normal((teams, months)) / np.sqrt(responses)
    return true, values, responses


def test_answer_variance_recovers_the_per_answer_spread():
    _, values, responses = _surveys(1)
    assert abs(answer_variance(values, responses) - 144.0) < 15.0


def test_answer_variance_is_near_zero_for_exact_readings():
    _, values, responses = _surveys(2, sigma=0.0)
    assert answer_variance(values, responses) < 2.0


def test_window_survey_averages_only_the_readings_in_the_window():
    values = np.array([[1.0, np.nan, 3.0, 5.0, 7.0]])
    responses = np.array([[10.0, 0.0, 10.0, 20.0, 10.0]])
    full = np.array([True, True, False, False, False])
    mean, noise, cover = window_survey(values, responses, 1, 2, full, 100.0)
    assert mean[0, 0] == 3.0 and cover[0, 0] == 0.5 and noise[0, 0] == 100.0 / 10.0
    assert mean[0, 1] == 4.0 and cover[0, 1] == 1.0
    assert np.isclose(noise[0, 1], 100.0 * (1 / 10 + 1 / 20) / 4)
    assert np.isnan(mean[0, 2:]).all()  # the window runs past the data


def test_eiv_least_squares_undoes_the_dilution_naive_least_squares_suffers():
    true, values, responses = _surveys(3)
    rng = np.random.default_rng(4)
    x_true, x = true.ravel(), (values - 70).ravel()
    y = 0.8 * x_true + rng.normal(0, 2, x.size)
    D, w = x[:, None], np.ones(x.size)
    naive = np.linalg.lstsq(D, y, rcond=None)[0][0]
    noise = 144.0 / responses.ravel()
    fixed = eiv_ls(y, D, w, noise, 0, 1e-6)[0]
    assert naive < 0.6  # diluted by the readings' noise
    assert abs(fixed - 0.8) < 0.1


@pytest.mark.slow
def test_the_engine_routes_csat_through_the_survey_when_asked():
    """Wiring (docs/what-if.md has the measured accuracy): on an organisation whose CSAT
    follows engagement strongly, the survey route finds a CSAT effect of the true sign, and the
    option changes the engine's settings (a stored fit made without it is not used with it)."""
    from forecast.simulate.known_effects import known_effect_org
    from forecast.whatif.engine import CausalEngine, EngineSettings, settings_dict

    tables, iv = known_effect_org(61, 2.0, 200, 36, "csat-via-engagement")
    truth = iv.loc[iv["signal"] == "after_hours_ratio"]
    s = EngineSettings(bootstrap=40, csat_survey="engagement")
    res = CausalEngine(settings=s).estimate(
        tables,
        None,
        list(truth["team_id"]),
        "after_hours_ratio",
        float(truth["value"].iloc[0]),
        truth["as_of"].iloc[0],
    )
    true_csat = float((truth["intervened_csat_change"] - truth["baseline_csat_change"]).mean())
    assert true_csat > 0 and res["csat_effect"].mean() > 0, (true_csat, res["csat_effect"].mean())
    assert settings_dict(s) != settings_dict(EngineSettings(bootstrap=40))
