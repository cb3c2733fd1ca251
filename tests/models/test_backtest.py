"""The rolling-origin backtest: no leakage past the origin, and the model against baselines on a
simulated organisation with known truth (`modelled_org` in conftest.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.data.months import to_ordinal
from forecast.models.backtest import calibration_plot, poisson_deviance, run_backtest
from forecast.models.fit import join_targets


def test_backtest_never_trains_on_a_row_whose_horizon_passes_the_origin(modelled_org):
    org = modelled_org
    frame = join_targets(org.panel, org.targets, org.config.horizon).reset_index(drop=True)
    months = to_ordinal(frame["as_of"])
    assert len(org.backtest.folds) >= 2
    for fold in org.backtest.folds:
        origin = to_ordinal(pd.PeriodIndex([fold.origin], freq="M"))[0]
        assert (months[fold.train_rows] + org.config.horizon <= origin).all()
        assert (months[fold.test_rows] == origin).all()
        assert not set(fold.train_rows) & set(fold.test_rows)


def test_outcomes_after_the_origin_do_not_change_its_forecasts(modelled_org):
    org = modelled_org
    cheap = org.config.replace(num_boost_round=20, early_stopping_rounds=5)
    first = run_backtest(org.panel, org.targets, cheap, n_origins=1)
    origin = to_ordinal(pd.PeriodIndex(first.origins, freq="M"))[0]
    late = to_ordinal(org.targets["as_of"]) + cheap.horizon > origin
    changed = org.targets.copy()
    changed.loc[late, "leavers"] = changed.loc[late, "leavers"] * 2 + 1
    changed.loc[late, "csat_change"] = -changed.loc[late, "csat_change"]
    second = run_backtest(org.panel, changed, cheap, n_origins=1)
    for col in ("pred_model", "csat_pred_model", "pred_long_run", "pred_trailing_12"):
        np.testing.assert_array_equal(first.predictions[col], second.predictions[col])


def test_origins_are_horizon_apart_and_skip_last_moves_them_earlier(modelled_org):
    bt = modelled_org.backtest
    months = to_ordinal(pd.PeriodIndex(bt.origins, freq="M"))
    assert (np.diff(months) == modelled_org.config.horizon).all()
    labelled = modelled_org.targets.loc[modelled_org.targets["labelled"], "as_of"].max()
    assert bt.origins[-1] == str(labelled)


def test_metrics_table_has_the_model_and_every_baseline(modelled_org):
    m = modelled_org.backtest.metrics
    assert set(m.loc[m["target"] == "attrition", "model"]) == {
        "lightgbm",
        "lightgbm_raw",
        "org_rate",
        "trailing_12",
        "long_run_shrunk",
        "long_run_tuned",
    }
    assert set(m.loc[m["target"] == "csat", "model"]) == {"lightgbm", "zero_change", "team_mean"}
    assert modelled_org.backtest.metric("org_rate", "d2_vs_null") == 0.0


def test_model_beats_the_trailing_12_baseline_in_deviance(modelled_org):
    bt = modelled_org.backtest
    assert bt.metric("lightgbm", "deviance") < bt.metric("trailing_12", "deviance")
    assert bt.metric("lightgbm", "deviance") < bt.metric("long_run_shrunk", "deviance")
    pred = bt.predictions
    direct = poisson_deviance(pred["leavers"], pred["pred_model"])
    assert bt.metric("lightgbm", "deviance") == pytest.approx(direct)


def test_model_tracks_the_true_expected_leavers_better_than_trailing_12(modelled_org):
    bt = modelled_org.backtest
    for column in ("corr_true_leavers", "corr_true_rate"):
        assert bt.metric("lightgbm", column) > bt.metric("trailing_12", column)
    assert bt.metric("lightgbm", "corr_true_leavers") > 0.8


def test_model_is_calibrated_within_ten_percent(modelled_org):
    assert abs(modelled_org.backtest.metric("lightgbm", "calibration") - 1) < 0.10


def test_csat_model_beats_zero_change(modelled_org):
    bt = modelled_org.backtest
    assert bt.metric("lightgbm", "mae", "csat") < bt.metric("zero_change", "mae", "csat")
    assert bt.metric("lightgbm", "corr_true_csat", "csat") > 0.3


def test_interval_coverage_is_near_nominal(modelled_org):
    cov = modelled_org.backtest.coverage
    assert 0.65 <= cov["leavers"] <= 0.95
    assert 0.65 <= cov["csat_change"] <= 0.95
    assert cov["org_total_origins"] >= 2


def test_risk_cuts_split_the_backtest_rates_at_the_configured_quantiles(modelled_org):
    bt, cfg = modelled_org.backtest, modelled_org.config
    # The served forecast: the raw rates through the recalibration learnt from all origins.
    rates = pd.Series(bt.recalibration.apply(bt.predictions["rate_model_raw"].to_numpy()))
    assert bt.risk_cuts[0] < bt.risk_cuts[1]
    assert (rates < bt.risk_cuts[0]).mean() == pytest.approx(cfg.risk_quantiles[0], abs=0.02)


def test_report_table_and_calibration_plot(modelled_org, tmp_path):
    text = modelled_org.backtest.format_table()
    for word in ("lightgbm", "long_run_shrunk", "Calibration by decile", "coverage"):
        assert word in text
    png = calibration_plot(modelled_org.backtest, tmp_path / "calibration.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_origins_fitted_in_a_worker_process_give_the_same_backtest(modelled_org):
    org = modelled_org
    cheap = org.config.replace(num_boost_round=20, early_stopping_rounds=5)
    here = run_backtest(org.panel, org.targets, cheap, n_origins=3)
    pooled = run_backtest(org.panel, org.targets, cheap, n_origins=3, workers=2)
    assert pooled.origins == here.origins
    pd.testing.assert_frame_equal(pooled.predictions, here.predictions)
    pd.testing.assert_frame_equal(pooled.metrics, here.metrics)
