"""Drift: PSI against training bins, missing-share jumps, and teams new since training."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecast.models import drift


def _panel(values: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {"team_id": [f"T{i}" for i in range(len(values))], "workload__x__mean_3m": values}
    )


def test_same_distribution_has_small_psi_and_a_shift_has_large() -> None:
    rng = np.random.default_rng(0)
    ref = drift.drift_reference(_panel(rng.normal(0, 1, 2000)), ["workload__x__mean_3m"])
    same = drift.feature_drift(_panel(rng.normal(0, 1, 2000)), ref)
    moved = drift.feature_drift(_panel(rng.normal(1, 1, 2000)), ref)
    assert same["psi"].iloc[0] < 0.05 and not same["drifted"].iloc[0]
    assert moved["psi"].iloc[0] > drift.PSI_WARN and moved["drifted"].iloc[0]
    assert moved["family"].iloc[0] == "workload"


def test_psi_matches_its_formula() -> None:
    e, a = np.array([0.5, 0.5]), np.array([0.8, 0.2])
    assert np.isclose(drift.psi(e, a), 0.3 * np.log(1.6) - 0.3 * np.log(0.4))


def test_missing_share_jump_is_flagged() -> None:
    rng = np.random.default_rng(1)
    ref = drift.drift_reference(_panel(rng.normal(0, 1, 500)), ["workload__x__mean_3m"])
    values = rng.normal(0, 1, 500)
    values[:300] = np.nan
    out = drift.feature_drift(_panel(values), ref)
    assert out["missing_share_train"].iloc[0] == 0 and out["missing_share_now"].iloc[0] == 0.6
    summary = drift.summarize(out, 0, 500, "model")
    assert summary["missing_jumps"] == ["workload__x__mean_3m"]
    assert any("missing" in w for w in drift.warnings_for(summary))


def test_small_samples_get_fewer_bins_so_noise_is_not_drift() -> None:
    rng = np.random.default_rng(2)
    ref = drift.drift_reference(_panel(rng.normal(0, 1, 40)), ["workload__x__mean_3m"])
    assert (ref["bin"] >= 0).sum() == 2


def test_teams_first_staffed_after_training_are_new() -> None:
    first = pd.Series({"A": pd.Period("2023-01", "M"), "B": pd.Period("2024-05", "M")})
    assert drift.new_teams(pd.Series(["A", "B"]), first, pd.Period("2024-03", "M")) == ["B"]
