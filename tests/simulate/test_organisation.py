"""The simulator: determinism, the data contract, and its documented causes.

Effect tests read only the written-format frames (as a model would), so they check the
data, not the simulator's internals. Thresholds sit several standard errors from both the
effect and the null for the fixed seed; see docs/simulator.md for the effect sizes.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecast.errors import ConfigError, OutputError
from forecast.simulate import Effects, SimConfig, SimResult, simulate, write_simulation

SEED = 7
TABLES = ("employees", "engagement", "workload", "cx")


@pytest.fixture(scope="module")
def config() -> SimConfig:
    return SimConfig(n_teams=80, n_months=30, seed=SEED)


@pytest.fixture(scope="module")
def result(config: SimConfig) -> SimResult:
    return simulate(config, with_interventions=True)


@pytest.fixture(scope="module")
def big() -> SimResult:
    """A larger org for effect tests: teams differ a lot (frailty, manager, engagement), so
    null effects need ~1000 teams to sit within +-10% of no difference."""
    return simulate(SimConfig(n_teams=1000, n_months=30, seed=SEED))


def _month_index(dates: pd.Series, start: str) -> np.ndarray:
    """Month index relative to `start` (NEVER for empty dates)."""
    d = pd.to_datetime(dates.replace("", None))
    p0 = pd.Period(start, "M")
    idx = (d.dt.year - p0.year) * 12 + d.dt.month - p0.month
    return idx.fillna(10**6).to_numpy(dtype=np.int64)


def _person_months(res: SimResult) -> pd.DataFrame:
    """One row per spell and month at risk (employed at the end of m-1), with the outcome."""
    e = res.frames["employees"]
    start, n_m = res.config.start, res.config.n_months
    hire = _month_index(e["hire_date"], start)
    exit_ = _month_index(e["exit_date"], start)
    first = np.maximum(hire + 1, 0)
    last = np.minimum(exit_, n_m - 1)
    n = np.maximum(last - first + 1, 0)
    row = np.repeat(np.arange(len(e)), n)
    month = first[row] + (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n))
    vol = (e["exit_type"].to_numpy() == "voluntary")[row] & (exit_[row] == month)
    return pd.DataFrame(
        {
            "team_id": e["team_id"].to_numpy()[row],
            "m": month,
            "tenure": month - hire[row],
            "gender": e["gender"].to_numpy()[row],
            "vol": vol,
        }
    )


def _team_month_rates(res: SimResult, signal: str) -> pd.DataFrame:
    """Voluntary exits and people at risk per team-month, with the month's workload signal."""
    pm = _person_months(res)
    tm = pm.groupby(["team_id", "m"], as_index=False).agg(
        at_risk=("vol", "size"), vol=("vol", "sum")
    )
    w = res.frames["workload"].copy()
    w["m"] = _month_index(w["month"] + "-01", res.config.start)
    return tm.merge(w[["team_id", "m", signal]], on=["team_id", "m"])


def _tercile_ratio(res: SimResult, signal: str) -> float:
    """Voluntary exit rate in the top tercile of `signal` over that in the bottom tercile."""
    tm = _team_month_rates(res, signal)
    lo, hi = tm[signal].quantile([1 / 3, 2 / 3])
    top, bottom = tm[tm[signal] >= hi], tm[tm[signal] <= lo]
    return (top.vol.sum() / top.at_risk.sum()) / (bottom.vol.sum() / bottom.at_risk.sum())


# ----------------------------------------------------------------------------- determinism


def _written_bytes(res: SimResult, folder: Path) -> dict[str, bytes]:
    paths = write_simulation(res, folder, truth=True)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in paths}


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    cfg = SimConfig(n_teams=30, n_months=20, seed=SEED)
    a = _written_bytes(simulate(cfg, with_interventions=True), tmp_path / "a")
    b = _written_bytes(simulate(cfg, with_interventions=True), tmp_path / "b")
    assert a.keys() == b.keys()
    assert "truth/interventions.parquet" in a
    assert all(a[k] == b[k] for k in a)


def test_written_files_are_readable_by_others(result: SimResult, tmp_path: Path) -> None:
    paths = write_simulation(result, tmp_path / "d")
    assert paths and all(p.stat().st_mode & 0o044 == 0o044 for p in paths)


def test_different_seeds_give_different_data(result: SimResult, config: SimConfig) -> None:
    other = simulate(replace(config, seed=SEED + 1))
    for name in TABLES:
        assert not result.frames[name].equals(other.frames[name]), name


def test_interventions_do_not_change_the_data(result: SimResult, config: SimConfig) -> None:
    plain = simulate(config)
    for name in TABLES:
        pd.testing.assert_frame_equal(result.frames[name], plain.frames[name])


# ----------------------------------------------------------------------------- contract


def test_tables_have_the_contract_columns_and_string_ids(result: SimResult) -> None:
    f = result.frames
    assert {
        "employee_id",
        "team_id",
        "hire_date",
        "exit_date",
        "exit_type",
        "exit_reason",
        "gender",
        "birth_year",
        "role",
        "department",
        "site",
        "manager_id",
    } <= set(f["employees"].columns)
    assert {"team_id", "month", "responses", "engagement", "manager_support"} <= set(
        f["engagement"].columns
    )
    assert {
        "team_id",
        "month",
        "cases_per_head",
        "after_hours_ratio",
        "absence_rate",
        "system_uptime",
    } <= set(f["workload"].columns)
    assert {"team_id", "month", "csat", "responses"} <= set(f["cx"].columns)
    assert f["employees"]["employee_id"].str.fullmatch(r"E\d{7}").all()
    assert f["employees"]["hire_date"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    for name in ("engagement", "workload", "cx"):
        assert f[name]["month"].str.fullmatch(r"\d{4}-\d{2}").all()
        assert f[name]["team_id"].str.fullmatch(r"T\d{4}").all()


def test_spells_of_one_employee_never_overlap(result: SimResult) -> None:
    e = result.frames["employees"].sort_values(["employee_id", "hire_date"])
    nxt = e.groupby("employee_id")["hire_date"].shift(-1)
    has_next = nxt.notna()
    assert (e.loc[has_next, "exit_date"] != "").all()
    assert (e.loc[has_next, "exit_date"] <= nxt[has_next]).all()
    assert has_next.sum() > 0


def test_a_transfer_spell_is_followed_by_a_spell_in_another_team(result: SimResult) -> None:
    e = result.frames["employees"].sort_values(["employee_id", "hire_date"])
    g = e.groupby("employee_id")
    nxt_team, nxt_hire = g["team_id"].shift(-1), g["hire_date"].shift(-1)
    tr = e["exit_type"] == "transfer"
    assert tr.sum() >= 10
    assert nxt_team[tr].notna().all()
    assert (nxt_team[tr] != e.loc[tr, "team_id"]).all()
    assert (nxt_hire[tr] >= e.loc[tr, "exit_date"]).all()
    assert (e.loc[~tr & nxt_team.notna(), "exit_type"] == "transfer").all()


def test_exit_type_and_exit_date_are_consistent(result: SimResult) -> None:
    e = result.frames["employees"]
    has_date, has_type = e["exit_date"] != "", e["exit_type"] != ""
    assert (has_date == has_type).all()
    assert set(e.loc[has_type, "exit_type"]) == {"voluntary", "involuntary", "transfer"}
    assert (e.loc[has_date, "exit_date"] >= e.loc[has_date, "hire_date"]).all()
    assert ((e["exit_reason"] != "") == has_type).all()


def test_monthly_tables_have_unique_team_months(result: SimResult) -> None:
    for name in ("engagement", "workload", "cx"):
        assert not result.frames[name].duplicated(["team_id", "month"]).any(), name


def test_csat_is_within_0_and_100_and_some_months_have_none(result: SimResult) -> None:
    cx = result.frames["cx"]
    csat = cx["csat"].dropna()
    assert csat.between(0, 100).all()
    assert cx["csat"].isna().sum() >= 1
    assert (cx["responses"] >= 0).all()
    assert len(cx) < len(result.frames["workload"])  # some outages leave no row


def test_engagement_values_are_suppressed_below_5_responses(result: SimResult) -> None:
    eng = result.frames["engagement"]
    low = eng["responses"] < 5
    signals = ["engagement", "manager_support", "canteen_rating"]
    assert low.sum() > 0
    assert eng.loc[low, signals].isna().all().all()
    assert eng.loc[~low, signals].notna().all().all()


def test_some_teams_are_surveyed_quarterly_and_others_monthly(result: SimResult) -> None:
    per_team = result.frames["engagement"].groupby("team_id").size()
    n_months = result.config.n_months
    assert (per_team <= n_months // 3 + 1).sum() >= 10
    assert (per_team >= n_months - 2).sum() >= 10


def test_teams_without_staff_have_no_monthly_rows(result: SimResult) -> None:
    truth_like = _headcounts(result)
    empty = truth_like[truth_like.headcount == 0][["team_id", "m"]]
    assert len(empty) > 0  # a few teams open or close during the span
    for name in ("engagement", "workload", "cx"):
        t = result.frames[name].copy()
        t["m"] = _month_index(t["month"] + "-01", result.config.start)
        assert len(empty.merge(t, on=["team_id", "m"])) == 0, name


def _headcounts(res: SimResult) -> pd.DataFrame:
    """Contract headcount (employed at the end of m) of every team and month."""
    e = res.frames["employees"]
    hire = _month_index(e["hire_date"], res.config.start)
    exit_ = _month_index(e["exit_date"], res.config.start)
    teams = np.sort(e["team_id"].unique())
    rows = []
    for m in range(res.config.n_months):
        employed = (hire <= m) & (exit_ > m)
        hc = e.loc[employed, "team_id"].value_counts().reindex(teams, fill_value=0)
        rows.append(pd.DataFrame({"team_id": teams, "m": m, "headcount": hc.to_numpy()}))
    return pd.concat(rows, ignore_index=True)


def test_team_sizes_vary_and_a_few_are_below_5(result: SimResult) -> None:
    hc = _headcounts(result)
    first = hc[hc.m == 0].headcount
    assert ((first >= 1) & (first < 5)).sum() >= 2
    assert first.max() >= 30


def test_invalid_config_names_the_parameter() -> None:
    with pytest.raises(ConfigError, match=r"^`n_teams` must be an integer >= 1\. Got 0 instead\.$"):
        SimConfig(n_teams=0)
    with pytest.raises(ConfigError, match="`start`"):
        SimConfig(start="2022-13")
    with pytest.raises(ConfigError, match=r"`effects\.contagion`"):
        SimConfig(effects=replace(Effects(), contagion=float("nan")))


def test_writing_csv_beside_parquet_is_refused(result: SimResult, tmp_path: Path) -> None:
    (tmp_path / "cx.parquet").write_bytes(b"")
    with pytest.raises(OutputError, match=r"cx\.parquet"):
        write_simulation(result, tmp_path)


# ----------------------------------------------------------------------------- causes


def test_teams_with_more_after_hours_lose_more_people(big: SimResult) -> None:
    assert _tercile_ratio(big, "after_hours_ratio") > 1.4


def test_without_after_hours_effects_the_gradient_disappears() -> None:
    # after_hours also follows the caseload (a cause of exits), so that link goes too.
    eff = replace(
        Effects(), after_hours_on_exit=0.0, after_hours_on_engagement=0.0, cases_on_after_hours=0.0
    )
    res = simulate(
        SimConfig(n_teams=1000, n_months=30, seed=SEED, effects=eff, compute_truth=False)
    )
    assert 0.85 < _tercile_ratio(res, "after_hours_ratio") < 1.15


def test_new_joiners_leave_more(big: SimResult) -> None:
    pm = _person_months(big)
    new, settled = pm[pm.tenure < 6], pm[pm.tenure >= 12]
    assert new.vol.mean() > 1.5 * settled.vol.mean()


def test_exits_do_not_depend_on_gender(big: SimResult) -> None:
    pm = _person_months(big)
    rate = pm.groupby("gender").vol.mean()
    assert 0.92 < rate["F"] / rate["M"] < 1.08


def test_birth_year_is_unrelated_to_leaving(big: SimResult) -> None:
    e = big.frames["employees"]
    vol = e["exit_type"] == "voluntary"
    corr = np.corrcoef(e["birth_year"], vol)[0, 1]
    assert abs(corr) < 0.02


def test_system_uptime_is_unrelated_to_exits(big: SimResult) -> None:
    assert 0.9 < _tercile_ratio(big, "system_uptime") < 1.1


def test_more_inexperienced_staff_means_lower_csat(big: SimResult) -> None:
    truth = big.truth
    # A team's expected leavers raise its future share of new hires, so CSAT dips.
    top = truth.true_attrition_rate >= truth.true_attrition_rate.quantile(0.9)
    assert truth.loc[top, "true_csat_change"].mean() < truth.true_csat_change.mean() - 0.5


def test_all_effects_off_still_gives_valid_data() -> None:
    res = simulate(SimConfig(n_teams=40, n_months=12, seed=SEED, effects=Effects.none()))
    assert (res.frames["employees"]["exit_type"] == "voluntary").sum() > 0
    assert res.frames["cx"]["csat"].dropna().between(0, 100).all()


# ----------------------------------------------------------------------------- truth


def test_truth_headcount_matches_the_contract_headcount(result: SimResult) -> None:
    hc = _headcounts(result)
    hc["as_of"] = (pd.Period(result.config.start, "M") + hc["m"]).astype(str)
    merged = result.truth.merge(hc, on=["team_id", "as_of"], suffixes=("", "_contract"))
    assert len(merged) == len(result.truth)
    assert (merged.headcount == merged.headcount_contract).all()


def test_true_expected_leavers_match_realised_leavers_on_average(big: SimResult) -> None:
    e = big.frames["employees"]
    vol = e["exit_type"] == "voluntary"
    hire = _month_index(e.loc[vol, "hire_date"], big.config.start)
    exit_ = _month_index(e.loc[vol, "exit_date"], big.config.start)
    h, last_as_of = big.config.horizon, big.config.n_months - 1 - big.config.horizon
    # Each voluntary exit counts once for every as-of month t with hire <= t < exit <= t+h.
    lo, hi = np.maximum(hire, exit_ - h), np.minimum(exit_ - 1, last_as_of)
    realised = np.maximum(hi - np.maximum(lo, 0) + 1, 0).sum()
    expected = big.truth.true_expected_leavers.sum()
    # Slightly above 1 on average (~1%): see "Truth" in docs/simulator.md.
    assert abs(expected / realised - 1) < 0.05


def test_truth_rates_are_expected_leavers_per_head(result: SimResult) -> None:
    t = result.truth
    assert (t.headcount >= 1).all()
    np.testing.assert_allclose(t.true_attrition_rate, t.true_expected_leavers / t.headcount)


def test_holding_after_hours_at_the_median_cuts_leavers_of_the_most_loaded(
    result: SimResult,
) -> None:
    iv = result.interventions
    sel = iv[(iv.team_set == "most_after_hours") & (iv.signal == "after_hours_ratio")]
    ratio = sel.intervened_expected_leavers.sum() / sel.baseline_expected_leavers.sum()
    assert 0.45 < ratio < 0.9
    assert (sel.intervened_csat_change >= sel.baseline_csat_change - 1e-9).mean() > 0.9


def test_the_distractor_intervention_changes_nothing(result: SimResult) -> None:
    iv = result.interventions
    sel = iv[iv.signal == "system_uptime"]
    assert len(sel) > 0
    np.testing.assert_allclose(sel.intervened_expected_leavers, sel.baseline_expected_leavers)
    np.testing.assert_allclose(sel.intervened_csat_change, sel.baseline_csat_change)
