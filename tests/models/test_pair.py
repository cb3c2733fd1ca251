"""The attrition and CSAT models on a simulated organisation with known causes.

The organisation is modelled once per session (`modelled_org` in conftest.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from forecast.data.tables import PROTECTED
from forecast.errors import ConfigError
from forecast.features.names import BASELINE_TERM, CALIBRATION_TERM
from forecast.models import explain
from forecast.models.calibration import Recalibration
from forecast.models.config import load_model_config
from forecast.models.fit import RATE_FEATURE, design_matrix, join_targets, oof_attrition
from forecast.models.pair import ModelPair, train_pair

REAL_DRIVERS = ("after_hours_ratio", "cases_per_head", "engagement", "tenure", "vol_leavers")
DISTRACTORS = ("system_uptime", "canteen_rating", "email_share")


def _signal_importance(pair: ModelPair, panel: pd.DataFrame) -> pd.Series:
    """Mean |SHAP| on the attrition model, per signal (its strongest transform)."""
    X = design_matrix(panel, pair.features)
    contrib = pair.attrition_booster.predict(X, pred_contrib=True)[:, :-1]
    per_feature = pd.Series(np.abs(contrib).mean(axis=0), index=pair.features)
    return per_feature.groupby(lambda f: f.split("__")[1]).max().sort_values(ascending=False)


def _latest(panel: pd.DataFrame) -> pd.DataFrame:
    return panel[panel["as_of"] == panel["as_of"].max()].reset_index(drop=True)


# --------------------------------------------------------------------------- configuration


def test_repository_model_yaml_loads_and_validates():
    config = load_model_config()
    assert config.horizon == 3
    assert config.attrition["objective"] == "poisson"
    assert config.early_stopping_rounds >= 1


def test_horizon_zero_is_rejected_in_the_house_format():
    with pytest.raises(
        ConfigError,
        match=r"`horizon` must be an integer between 1 and 24\. "
        r"Got 0 instead\.",
    ):
        load_model_config(horizon=0)


def test_unknown_or_reserved_keys_are_rejected(tmp_path):
    bad = tmp_path / "model.yaml"
    bad.write_text("horizon: 3\nnum_boost_rounds: 10\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown key `num_boost_rounds`"):
        load_model_config(bad)
    bad.write_text("attrition: {objective: regression}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"attrition\.objective"):
        load_model_config(bad)
    bad.write_text("attrition: {num_threads: 8}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="set by the code"):
        load_model_config(bad)


def test_what_if_section_defaults_to_report_and_is_validated(tmp_path):
    assert load_model_config().what_if == {"signals": "report"}
    good = tmp_path / "model.yaml"
    good.write_text("what_if: {signals: [after_hours_ratio]}\n", encoding="utf-8")
    assert load_model_config(good).what_if == {"signals": ["after_hours_ratio"]}
    for bad, words in (
        ("what_if: {signals: 5}", "`what_if.signals` must be"),
        ("what_if: {signal: auto}", "`what_if.signal` must be"),
        ("what_if: auto", "`what_if` must be a mapping"),
    ):
        good.write_text(bad + "\n", encoding="utf-8")
        with pytest.raises(ConfigError, match=words):
            load_model_config(good)


def test_config_hash_is_stable_and_follows_the_parameters():
    a, b = load_model_config(), load_model_config()
    assert a.hash() == b.hash()
    assert a.replace(horizon=6).hash() != a.hash()


# --------------------------------------------------------------------------- design matrix


def test_design_matrix_casts_text_to_categories_and_fills_absent_features():
    panel = pd.DataFrame({"a__x__current": [1, 2], "b__role__mode": ["x", None]})
    X = design_matrix(panel, ["a__x__current", "b__role__mode", "c__gone__current"])
    assert list(X.columns) == ["a__x__current", "b__role__mode", "c__gone__current"]
    assert X["a__x__current"].dtype == "float64"
    assert isinstance(X["b__role__mode"].dtype, pd.CategoricalDtype)
    assert X["c__gone__current"].isna().all()


# --------------------------------------------------------------------------- the pair


def test_predictions_have_the_contract_columns_and_are_consistent(modelled_org):
    pred = modelled_org.pair.predict(_latest(modelled_org.panel))
    assert list(pred.columns) == [
        "team_id",
        "as_of",
        "headcount",
        "expected_leavers",
        "attrition_rate",
        "csat_change",
        "leavers_p10",
        "leavers_p90",
        "csat_change_p10",
        "csat_change_p90",
        "risk_band",
        "expected_attrition_rate",
    ]
    np.testing.assert_allclose(pred["expected_leavers"], pred["attrition_rate"] * pred["headcount"])
    # Counts: for a tiny team P(0 leavers) can exceed 90%, so p90 may sit below the mean.
    assert (pred["leavers_p10"] <= pred["expected_leavers"]).all()
    assert (pred["leavers_p10"] <= pred["leavers_p90"]).all()
    assert (pred["leavers_p90"] == np.floor(pred["leavers_p90"])).all()
    assert set(pred["risk_band"]) <= {"low", "medium", "high"}


def test_attrition_raw_is_the_log_rate_and_shap_adds_up_to_it(modelled_org):
    pair, panel = modelled_org.pair, _latest(modelled_org.panel)
    raw = pair.attrition_raw(panel)
    np.testing.assert_allclose(np.exp(raw), pair.predict(panel)["attrition_rate"], rtol=1e-12)
    pred = pair.predict(panel)
    X = design_matrix(panel, pair.features)
    e = explain.explain_target("attrition", pair.attrition_booster, X, panel["team_id"])
    e = explain.with_terms(e, *pair.driver_terms(panel, pred["expected_attrition_rate"]))
    np.testing.assert_allclose(e.raw, raw, atol=1e-6)


def test_the_baseline_is_a_named_driver_and_the_terms_add_up_to_the_forecast(modelled_org):
    """The forecast blends the trees with the team's own long-run rate and is recalibrated:
    TreeSHAP of the trees (scaled by their share) + the baseline's term + the recalibration's
    term + the base value is the served log rate, team by team."""
    org, panel = modelled_org, _latest(modelled_org.panel)
    recal = Recalibration((-3.5, -2.5), (-3.4, -2.55))  # log rate -> calibrated log rate
    pair = dataclasses.replace(
        org.pair, baseline=org.pair.baseline.with_weight(0.4), recalibration=recal, _texts={}
    )
    pred = pair.predict(panel)
    X = design_matrix(panel, pair.features)
    e = explain.explain_target("attrition", pair.attrition_booster, X, panel["team_id"])
    e = explain.with_terms(e, *pair.driver_terms(panel, pred["expected_attrition_rate"]))
    assert e.features[-2:] == [BASELINE_TERM, CALIBRATION_TERM]
    np.testing.assert_allclose(e.raw, np.log(pred["attrition_rate"]), atol=1e-9)
    base = pair.baseline.rate(panel)
    term = e.contrib[:, e.features.index(BASELINE_TERM)]
    np.testing.assert_allclose(term, 0.4 * (np.log(base) - pair.baseline.log_reference))
    assert np.corrcoef(term, np.log(base))[0, 1] > 0.999  # the team's own rate, named
    trees = pair.attrition_booster.predict(X, pred_contrib=True)
    np.testing.assert_allclose(e.contrib[:, : len(pair.features)], 0.6 * trees[:, :-1])
    # Without the blend and the recalibration, the terms vanish and the trees explain it all.
    plain = dataclasses.replace(pair, baseline=None, recalibration=Recalibration(), _texts={})
    names, *_ = plain.driver_terms(panel, pred["expected_attrition_rate"])
    assert names == []


def test_prediction_is_deterministic(modelled_org):
    panel = _latest(modelled_org.panel)
    pair = modelled_org.pair
    pd.testing.assert_frame_equal(pair.predict(panel), pair.predict(panel))


def test_saved_pair_round_trips_byte_for_byte(modelled_org, tmp_path):
    pair = modelled_org.pair
    pair.to_dir(tmp_path / "a")
    loaded = ModelPair.from_dir(tmp_path / "a")
    loaded.to_dir(tmp_path / "b")
    for name in ("attrition.txt", "csat.txt", "meta.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    panel = _latest(modelled_org.panel)
    pd.testing.assert_frame_equal(pair.predict(panel), loaded.predict(panel))


def test_same_input_gives_byte_identical_models(modelled_org, tmp_path):
    org = modelled_org
    cheap = org.config.replace(num_boost_round=15, early_stopping_rounds=5)
    for name in ("a", "b"):
        train_pair(org.panel, org.targets, cheap, backtest=org.backtest).to_dir(tmp_path / name)
    for name in ("attrition.txt", "csat.txt", "meta.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_org_total_interval_is_narrower_than_the_sum_of_team_bounds(modelled_org):
    pred = modelled_org.pair.predict(_latest(modelled_org.panel))
    org = modelled_org.pair.org_total_interval(pred)
    assert org["expected"] == pytest.approx(pred["expected_leavers"].sum())
    assert pred["leavers_p10"].sum() < org["p10"] <= org["expected"] <= org["p90"]
    assert org["p90"] < pred["leavers_p90"].sum()


# --------------------------------------------------------------------------- known causes


def test_top_drivers_are_real_causes_and_never_protected(modelled_org):
    importance = _signal_importance(modelled_org.pair, modelled_org.panel)
    # Engagement is surveyed quarterly with noise, so its symptoms (absence, CSAT) may outrank
    # the survey itself; all three families must still be near the top.
    top = set(importance.index[:8])
    assert {"after_hours_ratio", "cases_per_head"} & top  # workload
    assert "engagement" in top or "manager_support" in top
    assert {"tenure", "vol_leavers", "hires"} & top  # tenure / people flow
    features = modelled_org.pair.features
    assert not [f for f in features if f.split("__")[1].lower() in PROTECTED]


def test_distractors_rank_below_every_real_driver(modelled_org):
    importance = _signal_importance(modelled_org.pair, modelled_org.panel)
    weakest_driver = importance[list(REAL_DRIVERS)].min()
    present = [d for d in DISTRACTORS if d in importance.index]
    assert present, "the simulator's distractor signals should reach the panel"
    assert (importance[present] < weakest_driver).all(), importance


def test_a_team_whose_after_hours_load_doubles_gets_more_expected_leavers(modelled_org):
    pair, panel = modelled_org.pair, _latest(modelled_org.panel)
    heavier = panel.copy()
    level = [
        c
        for c in panel.columns
        if c.startswith("workload__after_hours_ratio__")
        and c.rsplit("__", 1)[1] in ("current", "mean_3m", "mean_6m")
    ]
    heavier[level] = heavier[level] * 2
    before = pair.predict(panel)["expected_leavers"]
    after = pair.predict(heavier)["expected_leavers"]
    assert after.sum() > 1.1 * before.sum()
    assert (after >= before - 1e-9).mean() > 0.9


def test_csat_model_takes_the_expected_attrition_rate(modelled_org):
    pair = modelled_org.pair
    assert pair.csat_features == [*pair.features, RATE_FEATURE]
    assert pair.csat_booster.feature_name() == pair.csat_features


def test_out_of_fold_rates_ignore_the_labels_of_their_own_block(modelled_org):
    """Changing the outcomes of a block's rows (and of rows whose window touches it) must not
    change that block's out-of-fold rates: the model that made them never saw those rows."""

    org = modelled_org
    cfg = org.config.replace(oof_blocks=3)
    frame = join_targets(org.panel, org.targets, cfg.horizon)
    rows = frame[frame["labelled"]].reset_index(drop=True)
    months = rows["as_of"].array.asi8
    blocks = np.array_split(np.unique(months), 3)
    start, end = blocks[1][0], blocks[1][-1]
    changed = rows.copy()
    touched = (months > start - cfg.horizon) & (months <= end + cfg.horizon)
    changed.loc[touched, "leavers"] = changed.loc[touched, "leavers"] * 3 + 1
    in_block = (months >= start) & (months <= end)
    for a, b in zip(
        oof_attrition(rows, rows, org.pair.features, cfg, 20),
        oof_attrition(rows, changed, org.pair.features, cfg, 20),
        strict=True,
    ):  # the trees' log rates, then the fold baselines'
        np.testing.assert_array_equal(a[in_block], b[in_block])
        assert not np.allclose(a[~in_block], b[~in_block])  # the perturbation does reach others


def test_without_cx_there_is_no_csat_model(modelled_org):
    org = modelled_org
    targets = org.targets.assign(csat_change=np.nan)
    cheap = org.config.replace(num_boost_round=10, early_stopping_rounds=3)
    pair = train_pair(org.panel, targets, cheap, backtest=org.backtest)
    assert pair.csat_booster is None
    assert pair.predict(_latest(org.panel))["csat_change"].isna().all()


def test_team_without_csat_in_the_before_window_gets_null_csat_change(modelled_org):
    # Older CSAT still fills the long-run and trend features; the change is undefined anyway.
    org = modelled_org
    latest = _latest(org.panel)
    assert "cx__csat__mean_3m" in org.pair.features
    latest.loc[0, "cx__csat__mean_3m"] = np.nan
    assert latest.loc[0, "cx__csat__longrun_mean"] == latest.loc[0, "cx__csat__longrun_mean"]
    pred = org.pair.predict(latest)
    assert np.isnan(pred["csat_change"].iloc[0])
    assert pred["csat_change"].iloc[1:].notna().all()


def test_with_a_backtest_the_final_models_grow_its_newest_origins_trees(modelled_org):
    org = modelled_org
    last = org.backtest.folds[-1]
    assert org.pair.attrition_booster.current_iteration() == last.attrition_rounds
    assert org.pair.csat_booster.current_iteration() == last.csat_rounds
