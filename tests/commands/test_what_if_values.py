"""Issue #15, items 7-8: `forecast what-if` refuses values the data never saw, keeps its answers
on their scales (leavers in [0, headcount], CSAT within 0..100), and option errors name the
command-line option."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from forecast.cli import main
from forecast.data.contract import load_tables

SIGNAL = "after_hours_ratio"


@pytest.fixture(scope="module")
def org(trained_org):
    tables = load_tables(trained_org.data)
    as_of = pd.Period(trained_org.latest, freq="M")
    w = tables.workload
    seen = w.loc[w["month"] <= as_of, SIGNAL].dropna()
    teams = sorted(w.loc[w["month"] == as_of, "team_id"].astype(str).unique())
    return trained_org, tables, as_of, float(seen.min()), float(seen.max()), teams


def run(monkeypatch, capsys, trained, *args: str) -> tuple[int, list[str], str]:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained.tracking_uri)
    code = main(list(args))
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    return code, lines, captured.out


def what_if(monkeypatch, capsys, org, value: str) -> tuple[int, list[str], str]:
    trained, _, _, _, _, teams = org
    return run(
        monkeypatch,
        capsys,
        trained,
        "what-if",
        "--data",
        str(trained.data),
        "--team",
        teams[0],
        "--set",
        f"{SIGNAL}={value}",
        "--json",
    )


def shown_range(line: str) -> tuple[float, float]:
    m = re.search(r"\((-?[\d.]+) to (-?[\d.]+)", line)
    assert m, line
    return float(m.group(1)), float(m.group(2))


def assert_names_signal_and_range(lines: list[str], lo: float, hi: float) -> str:
    assert len(lines) == 1, lines
    line = lines[0]
    assert SIGNAL in line and "--set" in line and "Traceback" not in line
    shown_lo, shown_hi = shown_range(line)
    # The data's range, rounded outward for display only.
    assert shown_lo <= lo and shown_hi >= hi
    assert shown_hi - shown_lo <= 1.05 * (hi - lo)
    return line


# --------------------------------------------------------------------------- item 7: values


def test_what_if_refuses_a_value_above_the_range_the_data_have_seen(org, monkeypatch, capsys):
    code, lines, out = what_if(monkeypatch, capsys, org, "50")
    assert code == 2 and out == ""
    line = assert_names_signal_and_range(lines, org[3], org[4])
    assert f"`--set {SIGNAL}=50` is outside the range the data have seen" in line


def test_what_if_refuses_a_negative_value_below_the_range(org, monkeypatch, capsys):
    code, lines, out = what_if(monkeypatch, capsys, org, "-5")
    assert code == 2 and out == ""
    line = assert_names_signal_and_range(lines, org[3], org[4])
    assert f"`--set {SIGNAL}=-5` is outside the range" in line


def test_what_if_refuses_a_value_that_is_not_a_number(org, monkeypatch, capsys):
    code, lines, out = what_if(monkeypatch, capsys, org, "high")
    assert code == 2 and out == ""
    line = assert_names_signal_and_range(lines, org[3], org[4])
    assert f"`--set` value for {SIGNAL} must be a number" in line and "'high'" in line


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_what_if_refuses_nan_and_inf(org, monkeypatch, capsys, value: str):
    code, lines, out = what_if(monkeypatch, capsys, org, value)
    assert code == 2 and out == ""
    line = assert_names_signal_and_range(lines, org[3], org[4])
    assert "must be a number" in line and repr(value) in line


def test_the_range_is_the_one_known_at_the_as_of_month(org):
    """A value first seen after the as-of month is outside that what-if's range."""
    from forecast.errors import ConfigError
    from forecast.features.specs import load_specs
    from forecast.whatif.engine import check_what_if_signal
    from forecast.whatif.signals import check_value

    _, tables, _, _, hi, _ = org
    w = tables.workload
    first_max = w.loc[w[SIGNAL] == hi, "month"].min()
    earlier = w.loc[w["month"] < first_max, SIGNAL].max()
    assert hi > 1.05 * earlier  # the data make this a real check
    setting = check_what_if_signal(tables, load_specs(), SIGNAL)
    assert check_value(tables, setting, repr(hi), first_max) == hi
    with pytest.raises(ConfigError, match="outside the range"):
        check_value(tables, setting, repr(hi), first_max - 1)


def test_a_value_copied_from_the_message_is_accepted(org, monkeypatch, capsys):
    from forecast.features.specs import load_specs
    from forecast.whatif.engine import check_what_if_signal
    from forecast.whatif.signals import check_value

    _, tables, as_of, _, _, _ = org
    _, lines, _ = what_if(monkeypatch, capsys, org, "50")
    shown_lo, shown_hi = shown_range(lines[0])
    setting = check_what_if_signal(tables, load_specs(), SIGNAL)
    assert check_value(tables, setting, str(shown_lo), as_of) == shown_lo
    assert check_value(tables, setting, str(shown_hi), as_of) == shown_hi


def recent_csat_loop(tables, team: str, as_of: pd.Period) -> float:
    """The CSAT level the change is measured from (targets.py), the slow, obvious way."""
    num = den = 0.0
    for _, r in tables.cx.iterrows():
        mine = str(r["team_id"]) == team and as_of - 2 <= r["month"] <= as_of
        if mine and r["csat"] == r["csat"]:
            w = 1.0 if r["responses"] != r["responses"] else float(r["responses"])
            num, den = num + w * float(r["csat"]), den + w
    return num / den if den > 0 else float("nan")


def assert_on_scale(res: pd.DataFrame, tables, as_of: pd.Period, headcount: pd.Series) -> None:
    hc = res["team_id"].map(headcount).to_numpy(float)
    for col in (
        "before_expected_leavers",
        "before_leavers_p10",
        "before_leavers_p90",
        "after_expected_leavers",
        "after_leavers_p10",
        "after_leavers_p90",
    ):
        if col in res:
            v = res[col].to_numpy(float)
            assert (v >= 0).all() and (v <= hc + 1e-9).all(), col
    level = np.array([recent_csat_loop(tables, t, as_of) for t in res["team_id"]])
    assert np.isfinite(level).sum() >= len(res) // 2
    for col in (
        "before_csat_change",
        "after_csat_change",
        "after_csat_change_p10",
        "after_csat_change_p90",
    ):
        if col in res:
            v = level + res[col].to_numpy(float)
            ok = np.isfinite(v)
            assert ok.any() and (v[ok] >= -1e-9).all() and (v[ok] <= 100 + 1e-9).all(), col


@pytest.mark.parametrize("edge", ["min", "max"])
def test_a_value_at_the_edge_of_the_range_stays_on_the_scales(org, edge: str):
    from forecast.commands.what_if import run_what_if

    trained, tables, as_of, lo, hi, teams = org
    value = lo if edge == "min" else hi
    res = run_what_if(trained.data, teams, f"{SIGNAL}={value!r}", tracking_uri=trained.tracking_uri)
    assert len(res) == len(teams) and (res["value"] == value).all()
    assert_on_scale(res, tables, as_of, res.set_index("team_id")["headcount"])


class _OffScalePair:
    """Forecasts far off both scales (as a model fed an unseen value can give): the what-if
    must not pass them on."""

    class config:
        horizon = 3

    def __init__(self, pair) -> None:
        self.features = pair.features

    def predict(self, rows: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "team_id": rows["team_id"].astype(str).to_numpy(),
                "expected_leavers": 3.0 * rows["headcount"].to_numpy(float),
                "csat_change": -500.0,
            }
        )


def test_off_scale_forecasts_are_bounded_by_the_causal_engine(org):
    from forecast.mlops.registry import resolve_pair
    from forecast.whatif.engine import make_engine

    trained, tables, as_of, lo, _, teams = org
    resolved = resolve_pair("champion", trained.tracking_uri)
    res = make_engine(stored=resolved.what_if_fits).estimate(
        tables, _OffScalePair(resolved.pair), teams, SIGNAL, lo, as_of
    )
    assert_on_scale(res, tables, as_of, res.set_index("team_id")["headcount"])
    assert (res["after_csat_change"].dropna() > -100).all()


def test_the_reports_what_ifs_use_values_in_range(org):
    from forecast.features.specs import load_specs
    from forecast.mlops.registry import resolve_pair
    from forecast.scoring.batch import build_batch
    from forecast.scoring.extras import report_whatifs
    from forecast.whatif.engine import check_what_if_signal, make_engine
    from forecast.whatif.signals import check_value

    trained, tables, as_of, _, _, _ = org
    specs = load_specs()
    resolved = resolve_pair("champion", trained.tracking_uri)
    pair = resolved.pair
    batch = build_batch(tables, pair, specs, as_of=as_of, reference=(None, "none"))
    engine = make_engine(specs, stored=resolved.what_if_fits)
    res = report_whatifs(
        tables, pair, specs, batch.scores, batch.drivers, as_of, n_teams=8, engine=engine
    )
    assert len(res)
    for signal, value in zip(res["signal"], res["value"], strict=True):
        setting = check_what_if_signal(tables, specs, signal)
        assert check_value(tables, setting, value, as_of) == value


# --------------------------------------------------------------------------- item 8: options


@pytest.mark.parametrize(
    "option, value, field",
    [
        ("--teams", "-5", "n_teams"),
        ("--months", "0", "n_months"),
        ("--seed", "-1", "seed"),
    ],
)
def test_simulate_names_the_option_not_the_field(tmp_path, capsys, option, value, field):
    code = main(["simulate", "--out", str(tmp_path / "sim"), option, value])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, lines
    assert f"`{option}` must be" in lines[0] and f"`{field}`" not in lines[0]
    assert not (tmp_path / "sim").exists()


def test_demo_names_the_option_not_the_field(tmp_path, capsys):
    code = main(["demo", "--out", str(tmp_path / "demo"), "--teams", "0"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "`--teams` must be" in lines[0], lines


def test_simconfig_from_python_still_names_its_fields():
    from forecast.errors import ConfigError
    from forecast.simulate import SimConfig

    with pytest.raises(ConfigError, match="`n_teams` must be"):
        SimConfig(n_teams=-5)


def test_simulate_truth_with_too_few_months_names_the_option(tmp_path, capsys):
    code = main(
        ["simulate", "--out", str(tmp_path / "sim"), "--teams", "2", "--months", "5", "--truth"]
    )
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "`--months` must be at least 6" in lines[0], lines


def test_individual_refuses_a_negative_seed_by_its_option(tmp_path, capsys):
    code = main(["individual", "--data", str(tmp_path / "ibm.csv"), "--seed", "-1"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "`--seed` must be" in lines[0], lines
