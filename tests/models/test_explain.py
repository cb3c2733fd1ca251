"""SHAP drivers: exact, additive, and reshaped to long form without losing a value."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from forecast.models import explain


@pytest.fixture(scope="module")
def poisson_model() -> tuple[lgb.Booster, pd.DataFrame, np.ndarray]:
    """A small Poisson model with log(headcount) as init_score, like the attrition model."""
    rng = np.random.default_rng(5)
    n = 400
    X = pd.DataFrame(
        {
            "workload__overtime__mean_3m": rng.normal(0.1, 0.05, n),
            "engagement__engagement__last": rng.normal(3.5, 0.5, n),
            "tenure__tenure__median": rng.gamma(3, 10, n),
        }
    )
    X.loc[rng.random(n) < 0.1, "engagement__engagement__last"] = np.nan
    hc = rng.integers(3, 30, n).astype(float)
    rate = np.exp(
        -3 + 4 * X["workload__overtime__mean_3m"] - 0.2 * X["tenure__tenure__median"] / 30
    )
    y = rng.poisson(rate * hc)
    data = lgb.Dataset(X, y, init_score=np.log(hc), free_raw_data=False)
    params = {
        "objective": "poisson",
        "num_leaves": 7,
        "min_data_in_leaf": 10,
        "verbose": -1,
        "seed": 1,
        "deterministic": True,
        "num_threads": 1,
    }
    return lgb.train(params, data, num_boost_round=20), X, hc


def test_attrition_shap_adds_up_to_log_per_head_rate(poisson_model) -> None:
    booster, X, hc = poisson_model
    e = explain.explain_target("attrition", booster, X, np.arange(len(X)).astype(str))
    # The init_score offset is not in the trees: the raw score is the log per-head rate.
    expected_leavers = np.exp(booster.predict(X, raw_score=True)) * hc
    assert explain.additivity_error(e, np.log(expected_leavers / hc)) < 1e-6


def test_contributions_equal_shap_tree_explainer(poisson_model) -> None:
    import shap

    booster, X, _ = poisson_model
    ours = explain.contributions(booster, X)
    reference = shap.TreeExplainer(booster).shap_values(X)
    np.testing.assert_allclose(ours[:, :-1], reference, atol=1e-9)


def test_long_form_matches_a_slow_loop(poisson_model) -> None:
    booster, X, _ = poisson_model
    teams = np.array([f"{i:03d}" for i in range(len(X))], dtype=object)
    e = explain.explain_target("attrition", booster, X.iloc[:5], teams[:5])
    long = explain.long_form([e], "2024-04", None)
    rows = []
    for i in range(5):
        for j, name in enumerate(X.columns):
            rows.append((teams[i], name, X.iloc[i, j], e.contrib[i, j], e.contrib[i, -1]))
    slow = pd.DataFrame(
        rows, columns=["team_id", "feature", "feature_value", "shap_value", "base_value"]
    )
    got = long[["team_id", "feature", "feature_value", "shap_value", "base_value"]].astype(
        {"team_id": object, "feature": object}
    )
    pd.testing.assert_frame_equal(
        got, slow.astype({"team_id": object, "feature": object}), check_dtype=False
    )
    assert set(long["family"]) == {"workload", "engagement", "tenure"}
    assert (long["target"] == "attrition").all() and (long["as_of"] == "2024-04").all()


def test_family_sums_keep_additivity(poisson_model) -> None:
    booster, X, _ = poisson_model
    e = explain.explain_target("attrition", booster, X.iloc[:7], np.arange(7).astype(str))
    fam = explain.by_family([e], "2024-04", None)
    total = fam.groupby("team_id", sort=False)["shap_value"].sum().to_numpy()
    base = fam.groupby("team_id", sort=False)["base_value"].first().to_numpy()
    np.testing.assert_allclose(base + total, e.raw, atol=1e-9)


def test_expected_attrition_is_labelled_for_leaders() -> None:
    families, labels = explain.feature_labels(["expected_attrition_rate"], None)
    assert families == ["attrition"] and labels == ["expected attrition (people risk)"]
