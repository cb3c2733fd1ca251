"""Targets exactly as the contract defines them: hand-built tiny cases, then the fast code
against the slow reference on random data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.data.contract import latest_complete_month, tables_from_frames
from forecast.errors import ConfigError
from forecast.features.panel import build_panel
from forecast.features.specs import load_specs
from forecast.features.targets import build_targets
from tests.reference import random_frames, reference_targets

T = pd.Period("2024-03", freq="M")
ANCHOR = ("A0", "2023-01-10", "", "")  # an open spell that keeps the team in the panel


def tiny(
    *spells: tuple[str, str, str, str],
    cx: list[tuple[str, str, str]] | None = None,
    months: int = 12,
    data_start: str | None = None,
):
    """One team T1, monthly workload for 2024-01 .. 2024-12 (the latest complete month)."""
    rows = [ANCHOR, *spells]
    employees = pd.DataFrame(
        rows, columns=["employee_id", "hire_date", "exit_date", "exit_type"]
    ).assign(team_id="T1")
    frames = {
        "employees": employees,
        "workload": pd.DataFrame(
            {"team_id": "T1", "load": "1", "month": [f"2024-{m:02d}" for m in range(1, months + 1)]}
        ),
    }
    if cx is not None:
        frames["cx"] = pd.DataFrame(cx, columns=["month", "csat", "responses"]).assign(team_id="T1")
    return tables_from_frames(frames, data_start=data_start)


def at(targets: pd.DataFrame, month: pd.Period | str) -> pd.Series:
    return targets.set_index("as_of").loc[pd.Period(month, freq="M")]


def test_voluntary_leaver_in_month_t_plus_1_counts():
    row = at(build_targets(tiny(("E1", "2023-05-01", "2024-04-02", "voluntary")), 3), T)
    assert row["headcount"] == 2 and row["leavers"] == 1


def test_voluntary_leaver_in_month_t_plus_h_counts_and_t_plus_h_plus_1_does_not():
    tables = tiny(
        ("E1", "2023-05-01", "2024-06-30", "voluntary"),
        ("E2", "2023-05-01", "2024-07-01", "voluntary"),
    )
    assert at(build_targets(tables, 3), T)["leavers"] == 1


def test_involuntary_exit_is_not_a_leaver():
    row = at(build_targets(tiny(("E1", "2023-05-01", "2024-04-02", "involuntary")), 3), T)
    assert row["headcount"] == 2 and row["leavers"] == 0


def test_transfer_is_not_a_leaver():
    tables = tiny(("E1", "2023-05-01", "2024-04-02", "transfer"))
    assert at(build_targets(tables, 3), T)["leavers"] == 0


def test_hire_after_t_is_not_in_the_cohort():
    row = at(build_targets(tiny(("E1", "2024-04-01", "2024-05-20", "voluntary")), 3), T)
    assert row["headcount"] == 1 and row["leavers"] == 0


def test_leaver_in_month_t_is_not_in_the_cohort_of_t():
    row = at(build_targets(tiny(("E1", "2023-05-01", "2024-03-31", "voluntary")), 3), T)
    assert row["headcount"] == 1 and row["leavers"] == 0


def test_same_month_hire_and_exit_is_never_in_a_headcount():
    targets = build_targets(tiny(("E1", "2024-03-01", "2024-03-20", "voluntary")), 3)
    assert (targets["headcount"] == 1).all()


def test_rows_whose_horizon_runs_past_the_data_are_unlabelled_not_zero():
    targets = build_targets(tiny(("E1", "2023-05-01", "2025-01-15", "voluntary")), 3)
    assert latest_complete_month(tiny()) == pd.Period("2024-12", freq="M")
    labelled = targets.set_index("as_of")["labelled"]
    assert labelled[pd.Period("2024-09", freq="M")]
    assert not labelled[pd.Period("2024-10", freq="M")]
    late = targets[~targets["labelled"]]
    assert late["leavers"].isna().all() and late["csat_change"].isna().all()
    assert late["csat_weight"].isna().all()


def test_csat_change_is_response_weighted_and_rows_without_responses_weigh_one():
    cx = [
        ("2024-01", "80", "10"),
        ("2024-02", "70", "30"),
        ("2024-03", "90", ""),  # before
        ("2024-04", "60", "1"),
        ("2024-05", "", "50"),
        ("2024-06", "75", "3"),
    ]  # after
    row = at(build_targets(tiny(cx=cx), 3), T)
    before = (80 * 10 + 70 * 30 + 90 * 1) / 41
    after = (60 * 1 + 75 * 3) / 4
    assert row["csat_change"] == pytest.approx(after - before)
    assert row["csat_weight"] == 4


def test_csat_change_is_undefined_when_a_window_has_no_csat():
    cx = [("2024-01", "80", "10"), ("2024-07", "70", "5")]
    targets = build_targets(tiny(cx=cx), 3)
    assert np.isnan(at(targets, T)["csat_change"])  # after window 2024-04..06 is empty
    assert at(targets, T)["csat_weight"] == 0
    assert np.isnan(at(targets, "2024-04")["csat_change"])  # before window 2024-02..04 empty


def test_data_start_feeds_no_target_or_headcount():
    tables = tiny(
        ("E1", "2023-05-01", "2024-02-10", "voluntary"),
        ("E2", "2023-05-01", "2024-05-10", "voluntary"),
        cx=[
            ("2024-01", "10", "5"),
            ("2024-03", "80", "5"),
            ("2024-04", "70", "5"),
            ("2024-05", "", ""),
            ("2024-06", "", ""),
        ],
        data_start="2024-03",
    )
    targets = build_targets(tables, 3)
    assert targets["as_of"].min() == pd.Period("2024-03", freq="M")
    row = at(targets, T)
    assert row["leavers"] == 1 and row["headcount"] == 2
    assert row["csat_change"] == pytest.approx(70 - 80)  # January's 10 is before data_start


def test_targets_match_reference_on_random_data():
    tables = tables_from_frames(random_frames(n_teams=6, n_months=22, seed=5))
    for horizon in (1, 3):
        pd.testing.assert_frame_equal(
            build_targets(tables, horizon),
            reference_targets(tables, horizon),
            check_exact=False,
            rtol=1e-9,
            atol=1e-9,
        )


def test_targets_match_reference_on_simulated_organisation():
    from forecast.simulate import SimConfig, simulate

    sim = simulate(SimConfig(n_teams=6, n_months=18, seed=8, compute_truth=False))
    tables = tables_from_frames(sim.frames, data_start=sim.config.start)
    pd.testing.assert_frame_equal(
        build_targets(tables, 3),
        reference_targets(tables, 3),
        check_exact=False,
        rtol=1e-9,
        atol=1e-9,
    )


def test_targets_share_the_panel_rows():
    tables = tables_from_frames(random_frames(n_teams=5, n_months=18, seed=2))
    panel = build_panel(tables, load_specs())
    targets = build_targets(tables, 3)
    pd.testing.assert_frame_equal(
        panel[["team_id", "as_of", "headcount"]], targets[["team_id", "as_of", "headcount"]]
    )


@pytest.mark.parametrize("horizon", [0, 25, 2.5])
def test_horizon_must_be_an_integer_between_1_and_24(horizon):
    with pytest.raises(ConfigError, match="`horizon` must be an integer between 1 and 24"):
        build_targets(tiny(), horizon)
