"""`forecast what-if` keeps what it read for a month (a `WhatIfMonth`) in the user's cache: asked
again on the same files it reads none of the tables, and answers and refuses exactly as the long
way does; any change to the files is a miss (issue 17)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

import forecast.commands.what_if as command
from forecast.data.cache import cache_root
from forecast.data.contract import load_tables
from forecast.errors import ConfigError
from forecast.features.specs import load_specs
from forecast.whatif.engine import make_engine
from forecast.whatif.month import WhatIfMonth, what_if_month

SIGNAL = "after_hours_ratio"


@pytest.fixture
def own_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FORECAST_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def counted_reads(monkeypatch) -> list[str]:
    """Every `load_tables` call of the command, by its argument."""
    calls: list[str] = []
    real = command.load_tables

    def counting(data, **kwargs):
        calls.append(str(data))
        return real(data, **kwargs)

    monkeypatch.setattr(command, "load_tables", counting)
    return calls


@pytest.fixture(scope="module")
def org(trained_org):
    tables = load_tables(trained_org.data)
    latest = pd.Period(trained_org.latest, freq="M")
    w = tables.workload
    teams = sorted(w.loc[w["month"] == latest, "team_id"].astype(str).unique())[:3]
    return trained_org, tables, teams


def ask(trained, teams: list[str], value: str = "0.05", **kwargs) -> pd.DataFrame:
    return command.run_what_if(
        trained.data,
        teams,
        f"{SIGNAL}={value}",
        tracking_uri=trained.tracking_uri,
        **kwargs,
    )


def entries(root: Path) -> list[Path]:
    return sorted(root.rglob("*.arrow"))


def test_a_second_what_if_reads_no_table_and_answers_the_same(
    org, own_cache, counted_reads, monkeypatch
) -> None:
    trained, _, teams = org
    first = ask(trained, teams)
    assert counted_reads == [str(trained.data)] and len(entries(own_cache)) == 1
    again = ask(trained, teams)
    other = ask(trained, teams[:1], value="0.04")  # another team and value, same month
    assert counted_reads == [str(trained.data)]  # both answered from the cache
    pd.testing.assert_frame_equal(again, first, check_exact=True)
    assert other["team_id"].tolist() == teams[:1]

    # With the cache turned off, the long way (the engine on the tables) gives the same frame.
    monkeypatch.setenv("FORECAST_CACHE_DIR", "off")
    fresh = ask(trained, teams[:1], value="0.04")
    pd.testing.assert_frame_equal(other, fresh, check_exact=True)
    assert counted_reads == [str(trained.data)] * 2


def test_any_change_to_the_files_is_a_miss(org, own_cache, counted_reads, tmp_path) -> None:
    trained, _, teams = org
    data = tmp_path / "data"
    shutil.copytree(trained.data, data)
    copy = type(trained)(**{**trained.__dict__, "data": data})
    ask(copy, teams)
    ask(copy, teams)
    assert len(counted_reads) == 1
    cx = next(data.glob("cx.*"))
    cx.write_bytes(cx.read_bytes() + b"\n")  # a blank line: the same rows, other bytes
    ask(copy, teams)
    assert len(counted_reads) == 2 and len(entries(own_cache)) == 2


def test_refusals_are_the_long_ways_word_for_word(
    org, own_cache, counted_reads, monkeypatch
) -> None:
    trained, _, teams = org
    ask(trained, teams)  # fills the cache
    asked = [
        (teams, f"{SIGNAL}=50"),  # out of range: refused from the cache
        (teams, f"{SIGNAL}=lots"),  # not a number: refused from the cache
        (["no-such-team"], f"{SIGNAL}=0.05"),  # no such team: refused from the cache
        (teams, "gender=1"),  # not settable: the long way
        (teams, "vol_leavers=0"),  # history: the long way
    ]

    def messages() -> list[str]:
        out = []
        for who, assignment in asked:
            with pytest.raises(ConfigError) as refused:
                command.run_what_if(
                    trained.data, who, assignment, tracking_uri=trained.tracking_uri
                )
            out.append(str(refused.value))
        return out

    with_cache = messages()
    assert counted_reads == [str(trained.data)] * 3  # the first ask and the last two refusals
    monkeypatch.setenv("FORECAST_CACHE_DIR", "off")
    assert messages() == with_cache
    assert len(counted_reads) == 3 + len(asked)
    assert "not in the data" in with_cache[2]


def test_turned_off_it_writes_nothing(org, monkeypatch, counted_reads, tmp_path) -> None:
    trained, _, teams = org
    monkeypatch.setenv("FORECAST_CACHE_DIR", "off")
    assert cache_root() is None
    ask(trained, teams)
    ask(trained, teams)
    assert len(counted_reads) == 2


def test_the_month_round_trips_and_the_engine_answers_alike(org) -> None:
    """Through Arrow and back, the month's inputs are the same to the bit, and the engine's
    answer from them is the one it gives from the tables."""
    from forecast.mlops.registry import resolve_pair

    trained, tables, teams = org
    specs = load_specs()
    view = what_if_month(tables, specs, None)
    back = WhatIfMonth.from_arrow(view.to_arrow())
    assert back is not None
    pd.testing.assert_frame_equal(back.rows, view.rows, check_exact=True)
    assert (back.month, back.settable, back.history) == (view.month, view.settable, view.history)
    assert back.ranges == view.ranges and back.csat_level == view.csat_level

    resolved = resolve_pair("champion", trained.tracking_uri)
    engine = make_engine(specs, stored=resolved.what_if_fits)
    from_view = engine.estimate_at(back, resolved.pair, teams, SIGNAL, 0.05)
    from_tables = engine.estimate(tables, resolved.pair, teams, SIGNAL, 0.05, None)
    assert from_view is not None
    pd.testing.assert_frame_equal(from_view, from_tables, check_exact=True)
    # A signal without a stored fit needs the tables: the view cannot answer it.
    other = next(s for s in view.ranges if s not in (resolved.what_if_fits or {}))
    assert engine.estimate_at(back, resolved.pair, teams, other, view.ranges[other][0]) is None


def test_scoring_keeps_the_month_for_the_first_what_if(
    org, own_cache, counted_reads, tmp_path
) -> None:
    """`forecast score` (the data read whole) keeps the scored month's inputs: the first
    what-if after it reads no table, and answers as the long way does."""
    from forecast.commands.score import run_score

    trained, _, teams = org
    run_score(trained.data, tmp_path / "out", tracking_uri=trained.tracking_uri)
    assert len(entries(own_cache)) == 2  # the month by name, and as the latest
    after_scoring = ask(trained, teams)
    named = ask(trained, teams, as_of=trained.latest)
    assert counted_reads == []
    pd.testing.assert_frame_equal(named, after_scoring, check_exact=True)
    shutil.rmtree(own_cache)
    pd.testing.assert_frame_equal(ask(trained, teams), after_scoring, check_exact=True)
    assert counted_reads == [str(trained.data)]

    # Scored as of a month (its rows cut at that month), nothing is kept.
    shutil.rmtree(own_cache)
    run_score(
        trained.data, tmp_path / "out2", tracking_uri=trained.tracking_uri, as_of=trained.latest
    )
    assert entries(own_cache) == []
