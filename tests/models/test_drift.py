"""Drift: PSI against training bins, missing-share jumps, and teams new since training."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.data.contract import tables_from_frames
from forecast.features.panel import build_panel
from forecast.features.specs import load_specs
from forecast.models import drift
from forecast.models.fit import feature_columns


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


# --------------------------------------------------------------------------- like with like


@pytest.fixture(scope="module")
def org() -> tuple[dict[str, pd.DataFrame], pd.DataFrame, str]:
    from forecast.simulate import SimConfig, simulate

    sim = simulate(SimConfig(n_teams=400, n_months=30, seed=5, compute_truth=False))
    tables = tables_from_frames(sim.frames, data_start=sim.config.start)
    return sim.frames, build_panel(tables, load_specs()), sim.config.start


def _reference(panel: pd.DataFrame) -> tuple[pd.DataFrame, pd.Period, pd.Period]:
    latest = panel["as_of"].max()
    trained_until = latest - 3  # the last month with a known 3-month outcome
    return (
        drift.month_reference(panel, feature_columns(panel), trained_until),
        trained_until,
        latest,
    )


def test_scoring_the_last_training_month_warns_about_nothing(org) -> None:
    _, panel, _ = org
    ref, trained_until, latest = _reference(panel)
    for month in (trained_until, latest):
        out = drift.feature_drift(panel[panel["as_of"] == month], ref)
        assert drift.warnings_for(drift.summarize(out, 0, len(out), "model")) == [], month
    # The pooled reference (every training month) warned here: long-run and survey-age
    # features move from month to month by design.
    pooled = drift.drift_reference(panel[panel["as_of"] <= trained_until], feature_columns(panel))
    assert drift.feature_drift(panel[panel["as_of"] == latest], pooled)["drifted"].any()


def test_a_signal_shifted_by_a_real_change_warns_by_name(org) -> None:
    frames, panel, start = org
    ref, _, latest = _reference(panel)
    changed = {name: frame.copy() for name, frame in frames.items()}
    workload = changed["workload"]
    now = workload["month"].astype(str) == str(latest)
    workload.loc[now, "after_hours_ratio"] = workload.loc[now, "after_hours_ratio"] * 1.5
    shifted = build_panel(tables_from_frames(changed, data_start=start), load_specs(), as_of=latest)
    out = drift.feature_drift(shifted, ref)
    warned = set(out.loc[out["drifted"], "feature"])
    assert "workload__after_hours_ratio__current" in warned
    assert {f.split("__")[1] for f in warned} == {"after_hours_ratio"}
    (text,) = drift.warnings_for(drift.summarize(out, 0, len(out), "model"))
    assert "workload__after_hours_ratio__current" in text


def test_a_feature_that_moves_by_season_gets_a_threshold_from_its_own_movement() -> None:
    rng = np.random.default_rng(3)
    months = pd.period_range("2023-01", "2024-12", freq="M")
    rows = [
        pd.DataFrame(
            {
                "as_of": m,
                "workload__x__mean_3m": rng.normal(np.sin(m.month / 12 * 2 * np.pi), 0.3, 300),
            }
        )
        for m in months
    ]
    panel = pd.concat(rows, ignore_index=True)
    ref = drift.month_reference(panel, ["workload__x__mean_3m"], months[-1])
    threshold = float(ref["threshold"].iloc[0])
    assert threshold > 2 * drift.PSI_WARN  # a year of seasons moves it far
    # The far season, a year before the months the threshold was taken from.
    same_season = panel[panel["as_of"] == months[-19]].assign(as_of=months[-1] + 6)
    assert not drift.feature_drift(same_season, ref)["drifted"].iloc[0]
    beyond = same_season.assign(**{"workload__x__mean_3m": same_season["workload__x__mean_3m"] + 3})
    assert drift.feature_drift(beyond, ref)["drifted"].iloc[0]
