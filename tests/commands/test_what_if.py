"""What-if with the causal engine and the pair's stored fits: refuses what cannot be set, and
moves the forecasts the way the simulator's causes say it must."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecast.data.contract import load_tables
from forecast.errors import ConfigError
from forecast.features.specs import load_specs
from forecast.scoring.extras import report_whatifs
from forecast.whatif.engine import make_engine
from forecast.whatif.signals import as_json_records, check_signal, parse_assignment


@pytest.fixture(scope="module")
def org(trained_org):
    from forecast.mlops.registry import resolve_pair

    tables = load_tables(trained_org.data)
    resolved = resolve_pair("champion", trained_org.tracking_uri)
    return trained_org, tables, resolved


def current_teams(tables, as_of: pd.Period) -> list[str]:
    w = tables.workload
    return sorted(w.loc[w["month"] == as_of, "team_id"].astype(str).unique())


@pytest.fixture(scope="module")
def specs():
    return load_specs()


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "signal, why",
    [
        ("gender", "protected attribute"),
        ("birth_year", "protected attribute"),
        ("vol_leavers", "history"),
        ("tenure", "history"),
        ("csat", "history"),
        ("no_such_signal", "must name a workload or engagement signal"),
    ],
)
def test_refuses_signals_a_leader_cannot_set(org, specs, signal: str, why: str) -> None:
    _, tables, _ = org
    with pytest.raises(ConfigError, match=why) as info:
        check_signal(tables, specs, signal)
    assert "\n" not in str(info.value)


def test_refuses_an_unknown_team(org, specs) -> None:
    _, tables, resolved = org
    engine = make_engine(specs, stored=resolved.what_if_fits)
    with pytest.raises(ConfigError, match="`--team` must name a team"):
        engine.estimate(tables, resolved.pair, ["NOPE"], "after_hours_ratio", 0.05, None)


def test_parse_assignment_needs_signal_equals_number() -> None:
    assert parse_assignment("after_hours_ratio=0.05") == ("after_hours_ratio", 0.05)
    for bad in ("after_hours_ratio", "x=abc", "=1", "a=1=2"):
        with pytest.raises(ConfigError, match="SIGNAL=VALUE"):
            parse_assignment(bad)


# --------------------------------------------------------------------------- the intervention


def test_less_after_hours_work_means_fewer_leavers_and_a_smaller_csat_dip(org, specs) -> None:
    """The simulator's causes: after-hours load raises the voluntary hazard directly and lowers
    engagement (which raises it further, and lowers CSAT); leavers lower CSAT. Holding the most
    loaded teams' after-hours work at a low level must therefore lower expected leavers and
    raise the CSAT forecast, in aggregate."""
    trained, tables, resolved = org
    as_of = pd.Period(trained.latest, freq="M")
    w = tables.workload
    recent = w.loc[(w["month"] > as_of - 6) & (w["month"] <= as_of)]
    loaded = recent.groupby(recent["team_id"].astype(str))["after_hours_ratio"].mean()
    teams = loaded.nlargest(10).index.tolist()
    low = float(w["after_hours_ratio"].quantile(0.1))
    engine = make_engine(specs, stored=resolved.what_if_fits)
    res = engine.estimate(tables, resolved.pair, teams, "after_hours_ratio", low, as_of)
    assert len(res) == len(teams) and set(res["team_id"]) == set(teams)
    assert res["after_expected_leavers"].sum() < res["before_expected_leavers"].sum()
    cs = res.dropna(subset=["before_csat_change", "after_csat_change"])
    assert len(cs) >= 5
    assert cs["after_csat_change"].mean() > cs["before_csat_change"].mean()


def test_report_whatifs_move_each_teams_top_actionable_driver_to_the_median(org, specs) -> None:
    from forecast.scoring.batch import build_batch

    trained, tables, resolved = org
    as_of = pd.Period(trained.latest, freq="M")
    pair = resolved.pair
    batch = build_batch(tables, pair, specs, as_of=as_of, reference=(None, "none"))
    engine = make_engine(specs, stored=resolved.what_if_fits)
    res = report_whatifs(
        tables, pair, specs, batch.scores, batch.drivers, as_of, n_teams=8, engine=engine
    )
    assert set(res["team_id"]) <= set(batch.scores.loc[batch.scores["reportable"], "team_id"])
    assert (
        res["signal"]
        .isin(
            [
                "after_hours_ratio",
                "cases_per_head",
                "absence_rate",
                "system_uptime",
                "engagement",
                "manager_support",
                "canteen_rating",
            ]
        )
        .all()
    )
    assert np.isfinite(res["after_expected_leavers"]).all()


# --------------------------------------------------------------------------- the command


def test_what_if_json_is_one_list_with_before_and_after(org, tmp_path: Path) -> None:
    trained, tables, _ = org
    teams = current_teams(tables, pd.Period(trained.latest, freq="M"))[:2]
    args = [
        sys.executable,
        "-m",
        "forecast",
        "what-if",
        "--data",
        str(trained.data),
        "--set",
        "after_hours_ratio=0.05",
        "--json",
    ]
    for t in teams:
        args += ["--team", t]
    env = {**__import__("os").environ, "MLFLOW_TRACKING_URI": trained.tracking_uri}
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert isinstance(records, list) and [r["team_id"] for r in records] == teams
    for r in records:
        assert set(r) == {"team_id", "as_of", "signal", "value", "before", "after"}
        assert r["as_of"] == trained.latest and r["signal"] == "after_hours_ratio"
        assert r["value"] == 0.05
        for side in ("before", "after"):
            assert set(r[side]) == {"expected_leavers", "csat_change"}


def test_what_if_uses_the_fit_stored_with_the_pair(org, monkeypatch, capsys) -> None:
    """trained_org's pair carries a stored fit of after_hours_ratio: `forecast what-if` must
    answer from it without fitting, with the numbers a fresh fit gives."""
    import forecast.whatif.engine
    from forecast.cli import main

    trained, tables, resolved = org
    assert "after_hours_ratio" in resolved.what_if_fits
    teams = current_teams(tables, pd.Period(trained.latest, freq="M"))[:3]
    refit = make_engine().estimate(tables, resolved.pair, teams, "after_hours_ratio", 0.05, None)

    def no_fitting(*_args, **_kwargs):
        raise AssertionError("forecast what-if fitted the engine despite the stored fit")

    monkeypatch.setattr(forecast.whatif.engine, "fit_effect", no_fitting)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained.tracking_uri)
    args = ["what-if", "--data", str(trained.data), "--set", "after_hours_ratio=0.05", "--json"]
    for t in teams:
        args += ["--team", t]
    assert main(args) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out) == as_json_records(refit)


def test_what_if_with_a_pair_without_stored_fits_fits_the_engine(registry_org) -> None:
    from forecast.commands.what_if import run_what_if

    tables = load_tables(registry_org.data)
    teams = current_teams(tables, tables.workload["month"].max())[:2]
    res = run_what_if(
        registry_org.data, teams, "after_hours_ratio=0.05", tracking_uri=registry_org.tracking_uri
    )
    assert res["team_id"].tolist() == teams
    assert np.isfinite(res["after_expected_leavers"]).all()


def test_what_if_refuses_a_protected_attribute_in_one_line(org, tmp_path: Path) -> None:
    trained, _, _ = org
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "forecast",
            "what-if",
            "--data",
            str(trained.data),
            "--team",
            "007",
            "--set",
            "gender=1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "protected attribute" in lines[0]


def test_json_records_turn_nan_into_null() -> None:
    frame = pd.DataFrame(
        {
            "team_id": ["A"],
            "as_of": ["2024-01"],
            "signal": ["x"],
            "value": [1.0],
            "before_expected_leavers": [1.0],
            "after_expected_leavers": [0.5],
            "before_csat_change": [np.nan],
            "after_csat_change": [np.nan],
        }
    )
    [rec] = as_json_records(frame)
    assert rec["before"]["csat_change"] is None and json.dumps(rec)
