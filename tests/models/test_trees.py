"""LightGBM's trees evaluated from the model text with numpy (`forecast.models.trees`) give
LightGBM's own raw scores, bit for bit; what they cannot evaluate is left to LightGBM."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from forecast.models.pair import TREES_MAX_ROWS, ModelPair
from forecast.models.trees import ZERO_THRESHOLD, parse

PARAMS = {"num_leaves": 7, "min_data_in_leaf": 5, "seed": 3, "num_threads": 1, "verbosity": -1}


def awkward_rows(n: int, features: int, seed: int) -> np.ndarray:
    """Values a split must place the way LightGBM does: missing, zero, within 1e-35 of zero
    (LightGBM reads those as zero), negative zero, infinities, repeated values on thresholds."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, features)).round(1)
    X[rng.random(X.shape) < 0.15] = np.nan
    X[rng.random(X.shape) < 0.10] = 0.0
    X[rng.random(X.shape) < 0.05] = ZERO_THRESHOLD / 10
    X[rng.random(X.shape) < 0.03] = -0.0
    X[rng.random(X.shape) < 0.02] = np.inf
    X[rng.random(X.shape) < 0.02] = -np.inf
    return X


def booster(objective: str, X: np.ndarray, y: np.ndarray, rounds: int = 25, **params):
    data = lgb.Dataset(X, label=y, params={**PARAMS, **params})
    return lgb.train({**PARAMS, "objective": objective, **params}, data, num_boost_round=rounds)


@pytest.mark.parametrize(
    "objective, params",
    [
        ("regression", {}),  # NaN is the missing value
        ("regression", {"zero_as_missing": True}),  # zero is
        ("regression", {"use_missing": False}),  # nothing is
        ("poisson", {}),
        ("regression", {"min_data_in_leaf": 10_000}),  # one-leaf trees only
    ],
)
def test_trees_give_lightgbm_raw_scores_bit_for_bit(objective: str, params: dict) -> None:
    rng = np.random.default_rng(1)
    train = rng.normal(size=(400, 6))
    train[rng.random(train.shape) < 0.2] = np.nan
    train[rng.random(train.shape) < 0.2] = 0.0
    y = np.exp(np.nan_to_num(train[:, 0]) - np.nan_to_num(train[:, 1]) + rng.normal(size=400) / 3)
    model = booster(objective, train, y, **params)
    X = np.vstack([awkward_rows(500, 6, seed=2), train[:50]])
    trees = parse(model.model_to_string())
    assert trees is not None
    got, want = trees.predict(X), model.predict(X, raw_score=True)
    assert got.tobytes() == want.tobytes()


def test_a_value_within_1e_35_of_zero_is_read_as_zero() -> None:
    """LightGBM's C API drops such a cell from the row, so it reads as 0: with a threshold
    between 0 and the value (thresholds moved there by hand), 0 goes left, the value right."""
    rng = np.random.default_rng(7)
    model = booster("regression", rng.normal(size=(300, 2)), rng.normal(size=300), rounds=3)
    lines = []
    for line in model.model_to_string().splitlines():
        if line.startswith("threshold="):
            line = "threshold=" + " ".join(["1e-37"] * len(line.split()))
        if not line.startswith("tree_sizes="):  # byte offsets of the trees, now moved
            lines.append(line)
    text = "\n".join(lines)
    moved = lgb.Booster(model_str=text)
    X = np.array([[1e-36, 1e-36], [-1e-36, 1e-36], [1e-34, 2e-37], [0.0, 0.0]])
    assert parse(text).predict(X).tobytes() == moved.predict(X, raw_score=True).tobytes()
    assert moved.predict(X[:1], raw_score=True) == moved.predict(X[3:], raw_score=True)


def test_trees_refuse_an_array_of_the_wrong_width() -> None:
    rng = np.random.default_rng(4)
    trees = parse(
        booster("regression", rng.normal(size=(200, 3)), rng.normal(size=200)).model_to_string()
    )
    with pytest.raises(ValueError, match="3 features"):
        trees.predict(np.zeros((2, 4)))


def test_a_model_with_categorical_splits_is_left_to_lightgbm() -> None:
    rng = np.random.default_rng(5)
    X = np.column_stack([rng.integers(0, 6, 300), rng.normal(size=300)]).astype(float)
    y = (X[:, 0] == 3) * 2.0 + rng.normal(size=300) / 5
    data = lgb.Dataset(X, label=y, categorical_feature=[0], params=PARAMS)
    model = lgb.train({**PARAMS, "objective": "regression"}, data, num_boost_round=10)
    assert "num_cat=1" in model.model_to_string()
    assert parse(model.model_to_string()) is None


def test_a_model_of_pandas_categories_is_left_to_lightgbm() -> None:
    rng = np.random.default_rng(6)
    X = pd.DataFrame(
        {"site": pd.Categorical(rng.choice(["a", "b", "c"], 300)), "x": rng.normal(size=300)}
    )
    y = (X["site"] == "b") * 2.0 + rng.normal(size=300) / 5
    model = lgb.train(
        {**PARAMS, "objective": "regression"}, lgb.Dataset(X, label=y), num_boost_round=5
    )
    assert parse(model.model_to_string()) is None


def test_a_loaded_pair_predicts_a_few_rows_as_its_lightgbm_boosters_do(modelled_org, tmp_path):
    panel = modelled_org.panel
    rows = panel.loc[panel["as_of"] == panel["as_of"].max()].head(TREES_MAX_ROWS)
    modelled_org.pair.to_dir(tmp_path / "pair")
    loaded = ModelPair.from_dir(tmp_path / "pair")
    from_text = loaded.predict(rows)
    # Scored from the texts: neither booster was made.
    assert loaded._model("attrition")._booster is None and loaded._model("csat")._booster is None
    built = ModelPair.from_dir(tmp_path / "pair")
    assert built.attrition_booster is not None and built.csat_booster is not None  # builds them
    pd.testing.assert_frame_equal(from_text, built.predict(rows), check_exact=True)
    pd.testing.assert_frame_equal(from_text, modelled_org.pair.predict(rows), check_exact=True)
