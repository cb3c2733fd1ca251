"""The simulator's structural knobs (how the organisation is wired), used to check that the
what-if engine carries to organisations it was not tuned on (known_effects.STRUCTURES)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecast.errors import ConfigError
from forecast.simulate import SimConfig, simulate, write_simulation
from forecast.simulate.known_effects import STRUCTURES, after_hours_effects, known_effect_org

# sha256 of the four tables (CSV) the simulator wrote for SimConfig(n_teams=25, n_months=16,
# seed=11) before the structural knobs existed: their defaults must not change a byte.
TABLES_BEFORE_KNOBS = "6981e966272daebd0a9cba961c6591b72f0174d65204684004250b94578a76c4"


def test_default_knobs_leave_the_simulated_tables_byte_identical(tmp_path: Path) -> None:
    res = simulate(SimConfig(n_teams=25, n_months=16, seed=11), with_interventions=True)
    write_simulation(res, tmp_path, fmt="csv")
    digest = hashlib.sha256()
    for name in ("employees", "engagement", "workload", "cx"):
        digest.update((tmp_path / f"{name}.csv").read_bytes())
    assert digest.hexdigest() == TABLES_BEFORE_KNOBS


def test_the_default_structure_is_the_scaled_after_hours_organisation() -> None:
    cfg = STRUCTURES["default"].config(seed=3, scale=0.5, n_teams=30, n_months=20)
    assert cfg == SimConfig(
        n_teams=30, n_months=20, seed=3, effects=after_hours_effects(0.5), intervention_reps=100
    )


@pytest.mark.parametrize("bad", [1.0, -0.1, float("nan"), True])
def test_engagement_persistence_outside_0_1_is_refused_by_name(bad: object) -> None:
    with pytest.raises(ConfigError, match="`engagement_persistence` must be a number in"):
        SimConfig(engagement_persistence=bad)


def _after_hours_truth(structure: str) -> pd.DataFrame:
    _, iv = known_effect_org(8, 1.0, 80, 24, structure)
    return iv.loc[iv["signal"] == "after_hours_ratio"]


def _csat_gain(structure: str) -> float:
    t = _after_hours_truth(structure)
    return float((t["intervened_csat_change"] - t["baseline_csat_change"]).mean())


def test_engagement_that_recovers_slowly_gives_back_less_csat_within_the_horizon() -> None:
    # Same organisation and cut: only how much of last month's engagement carries over differs.
    assert _csat_gain("fast-recovery") > 2 * _csat_gain("slow-recovery") > 0


def test_a_proxy_after_hours_has_no_effect_of_its_own() -> None:
    truth = _after_hours_truth("proxy")
    np.testing.assert_array_equal(
        truth["intervened_expected_leavers"], truth["baseline_expected_leavers"]
    )
    np.testing.assert_array_equal(truth["intervened_csat_change"], truth["baseline_csat_change"])


def test_a_proxy_after_hours_still_goes_with_leaving_in_the_data() -> None:
    """The proxy follows the load, which does drive leaving: the trap a what-if must avoid."""
    tables, _ = known_effect_org(8, 1.0, 300, 24, "proxy")
    w = tables.workload.groupby("team_id")["after_hours_ratio"].mean()
    e = tables.employees
    vol = e.loc[e["exit_type"] == "voluntary"].groupby("team_id").size()
    spells = e.groupby("team_id").size()
    rate = (vol.reindex(spells.index, fill_value=0) / spells).reindex(w.index)
    top, bottom = w >= w.quantile(2 / 3), w <= w.quantile(1 / 3)
    assert rate[top].mean() > 1.3 * rate[bottom].mean()


def test_engagement_driven_csat_gains_more_from_the_same_cut_than_leaver_driven_csat() -> None:
    assert _csat_gain("csat-via-engagement") > 1.5 * _csat_gain("csat-via-leavers") > 0
