"""The engine's optional controls: the other workload signals in each horizon month, and the
CSAT stage's history controls (both off by default; docs/what-if.md has their measurements)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.data import contract
from forecast.features.specs import load_specs
from forecast.simulate import SimConfig, simulate
from forecast.whatif.engine import (
    FUTURE,
    EngineSettings,
    dose_frame,
    effect_frame,
    fit_effect,
    is_future,
)
from forecast.whatif.signals import settable_signals

HORIZON = 3
SIGNAL = "after_hours_ratio"


@pytest.fixture(scope="module")
def tables():
    cfg = SimConfig(n_teams=40, n_months=24, seed=7, compute_truth=False)
    return contract.tables_from_frames(simulate(cfg).frames, data_start=cfg.start)


def _monthly_table(tables, column: str) -> pd.DataFrame:
    w = tables.workload.assign(month=pd.PeriodIndex(tables.workload["month"], freq="M"))
    return w.set_index(["team_id", "month"])[column]


def test_each_horizon_month_holds_that_months_value_of_the_other_signals(tables):
    setting = settable_signals(tables, load_specs())[SIGNAL]
    frame = dose_frame(tables, setting, HORIZON, months=True)
    other = next(c for c in tables.signals["workload"] if c != SIGNAL)
    values = _monthly_table(tables, other)
    row = frame.dropna(subset=[f"{FUTURE}{other}"]).iloc[len(frame) // 3]
    as_of = pd.Period(row["as_of"], freq="M")
    for k in range(1, HORIZON + 1):
        expected = values.get((row["team_id"], as_of + k), np.nan)
        assert np.isclose(row[f"future_m{k}__{other}"], expected, equal_nan=True)
    months = [row[f"future_m{k}__{other}"] for k in range(1, HORIZON + 1)]
    assert np.isclose(np.nanmean(months), row[f"{FUTURE}{other}"])
    # The held signal's own future is the dose, never a control.
    assert not [c for c in frame.columns if c.endswith(f"__{SIGNAL}") and is_future(c)]


def test_monthly_values_are_built_only_when_asked(tables):
    setting = settable_signals(tables, load_specs())[SIGNAL]
    means = [c for c in dose_frame(tables, setting, HORIZON).columns if is_future(c)]
    assert means and all(c.startswith(FUTURE) for c in means)


def test_a_window_past_the_data_has_no_future_values(tables):
    setting = settable_signals(tables, load_specs())[SIGNAL]
    frame = dose_frame(tables, setting, HORIZON, months=True)
    last = frame["as_of"].max()
    tail = frame.loc[frame["as_of"] == last, [c for c in frame.columns if is_future(c)]]
    assert tail.isna().all().all()


FAST = {"bootstrap": 5, "repeats": 1, "trees": 10}


@pytest.fixture(scope="module")
def frame(tables):
    specs = load_specs()
    setting = settable_signals(tables, specs)[SIGNAL]
    return effect_frame(tables, specs, setting, HORIZON, months=True)


def test_monthly_controls_reach_the_attrition_stage_but_never_a_forecast(tables, frame):
    on = fit_effect(frame, SIGNAL, HORIZON, EngineSettings(concurrent_months=True, **FAST))
    off = fit_effect(frame, SIGNAL, HORIZON, EngineSettings(**FAST))
    monthly = [c for c in on.controls if is_future(c) and not c.startswith(FUTURE)]
    assert len(monthly) == HORIZON * (len(tables.signals["workload"]) - 1)
    assert not [c for c in off.controls if c in monthly]
    # The CSAT stage keeps the horizon means as co-treatments only (measured: docs/what-if.md).
    assert not [c for c in on.csat_controls if c in monthly]
    for fit in (on, off):
        assert not [c for c in fit.baseline_features if is_future(c)]
        assert not [c for c in fit.baseline_csat_features if is_future(c)]


@pytest.mark.parametrize("which", ["all", "state+people_flow"])
def test_history_controls_widen_only_the_csat_stage(frame, which: str):
    state = fit_effect(frame, SIGNAL, HORIZON, EngineSettings(**FAST))
    history = fit_effect(frame, SIGNAL, HORIZON, EngineSettings(csat_controls=which, **FAST))
    added = set(history.csat_controls) - set(state.csat_controls)
    assert "people_flow__vol_leavers__longrun_rate_shrunk" in added
    assert "people_flow__vol_leavers__sum_12m" in added
    if which == "state+people_flow":
        assert all(c.startswith("people_flow__") for c in added), sorted(added)
    else:
        assert any(c.startswith("workload__") for c in added)
    assert set(state.csat_controls) <= set(history.csat_controls)
    assert history.controls == state.controls  # the attrition stage is untouched
    assert not [c for c in added if SIGNAL in c or is_future(c)]
    assert not [c for c in history.baseline_csat_features if is_future(c)]
