"""The causal what-if engine against the simulator's intervention truth (known effects)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from forecast.errors import ConfigError
from forecast.simulate.known_effects import known_effect_org
from forecast.whatif.engine import CausalEngine, EngineSettings, check_what_if_signal, make_engine

# The shipped settings with a short bootstrap. Orgs of 400 teams keep the estimate's
# noise well inside the 0.10 tolerance.
FAST = EngineSettings(bootstrap=60)
TEAMS, MONTHS = 400, 36


@dataclass
class Org:
    tables: object
    truth: pd.DataFrame  # intervention truth of the most loaded teams, last as-of month
    engine: CausalEngine


_ORGS: dict[tuple[int, float], Org] = {}


def org(seed: int, scale: float) -> Org:
    if (seed, scale) not in _ORGS:
        tables, iv = known_effect_org(seed, scale, TEAMS, MONTHS)
        _ORGS[(seed, scale)] = Org(tables, iv, CausalEngine(settings=FAST))
    return _ORGS[(seed, scale)]


def _what_if(o: Org, signal: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    truth = o.truth.loc[o.truth["signal"] == signal]
    res = o.engine.estimate(
        o.tables,
        None,
        list(truth["team_id"]),
        signal,
        float(truth["value"].iloc[0]),
        truth["as_of"].iloc[0],
    )
    return truth.set_index("team_id"), res.set_index("team_id").loc[truth["team_id"]]


def _ratio(after: pd.Series, before: pd.Series) -> float:
    return float(after.sum() / before.sum())


# Organisations never used to choose the engine's settings (those were chosen on seeds 1-3 in
# benchmarks/whatif.py; these seeds were fixed before the engine was first run on them).
# At 400 teams one organisation's estimate has a spread of about 0.07, so the bar is on the
# set: the 0.10 on average and for most organisations, and never far off.
FRESH = [(51, 0.5), (52, 1.0), (53, 2.0), (54, 0.5), (55, 1.0), (56, 2.0)]
MAIN = FRESH[1]  # the default effect sizes


def _errors_and_directions() -> pd.DataFrame:
    rows = []
    for seed, scale in FRESH:
        truth, est = _what_if(org(seed, scale), "after_hours_ratio")
        true_ratio = _ratio(
            truth["intervened_expected_leavers"], truth["baseline_expected_leavers"]
        )
        ratio = _ratio(est["after_expected_leavers"], est["before_expected_leavers"])
        d_true = truth["intervened_csat_change"] - truth["baseline_csat_change"]
        d_est = est["after_csat_change"] - est["before_csat_change"]
        rows.append(
            {
                "seed": seed,
                "scale": scale,
                "error": ratio - true_ratio,
                "csat_direction": float(np.mean(np.sign(d_true) == np.sign(d_est))),
            }
        )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def fresh_results() -> pd.DataFrame:
    return _errors_and_directions()


def test_leavers_ratio_matches_the_truth_on_fresh_organisations(fresh_results: pd.DataFrame):
    err = fresh_results["error"].abs()
    assert err.mean() <= 0.10, fresh_results
    assert (err <= 0.10).sum() >= 4, fresh_results
    assert err.max() <= 0.25, fresh_results


def test_csat_moves_in_the_true_direction_for_most_teams(fresh_results: pd.DataFrame):
    assert (fresh_results["csat_direction"] >= 0.8).all(), fresh_results


def test_distractor_what_if_is_within_noise_of_zero():
    _, est = _what_if(org(*MAIN), "system_uptime")
    ratio = _ratio(est["after_expected_leavers"], est["before_expected_leavers"])
    assert abs(ratio - 1) < 0.03
    # The 80% interval of the aggregate is what says "no effect": it must include none.
    lo = _ratio(est["after_leavers_p10"], est["before_expected_leavers"])
    hi = _ratio(est["after_leavers_p90"], est["before_expected_leavers"])
    assert lo - 0.01 <= 1.0 <= hi + 0.01


def test_intervals_bracket_each_estimate():
    _, est = _what_if(org(*MAIN), "after_hours_ratio")
    assert (est["after_leavers_p10"] <= est["after_expected_leavers"] + 1e-9).all()
    assert (est["after_expected_leavers"] <= est["after_leavers_p90"] + 1e-9).all()
    assert (est["after_csat_change_p10"] <= est["after_csat_change_p90"] + 1e-9).all()


def test_loaded_teams_lose_fewer_people_when_after_hours_falls():
    _, est = _what_if(org(*MAIN), "after_hours_ratio")
    assert (est["after_expected_leavers"] < est["before_expected_leavers"]).mean() >= 0.9


@pytest.mark.parametrize(
    "signal, words",
    [
        ("birth_year", "is a protected attribute"),
        ("gender", "is a protected attribute"),
        ("vol_leavers", "(history) signal"),
        ("people_flow__vol_leavers__longrun_rate_shrunk", "(history) signal"),
        ("tenure", "(history) signal"),
        ("no_such_signal", "is not a signal in these data"),
    ],
)
def test_protected_or_history_signal_is_refused_with_one_line(signal: str, words: str):
    from forecast.features.specs import load_specs

    with pytest.raises(ConfigError) as err:
        check_what_if_signal(org(*MAIN).tables, load_specs(), signal)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"`--set` signal {signal} ")
    assert words in message
    assert "(e.g. after_hours_ratio)" in message


def test_engine_refuses_before_fitting():
    with pytest.raises(ConfigError, match="protected attribute"):
        make_engine(settings=FAST).estimate(
            org(*MAIN).tables, None, ["T0001"], "birth_year", 1980.0, None
        )


class _StubPair:
    """A pair whose forecasts are known numbers, to check before values come from it."""

    class config:
        horizon = 3

    def predict(self, rows: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "team_id": rows["team_id"].astype(str).to_numpy(),
                "expected_leavers": 2.0,
                "csat_change": -1.0,
            }
        )


def test_estimate_keeps_the_pairs_forecast_as_before():
    o = org(*MAIN)
    truth = o.truth.loc[o.truth["signal"] == "after_hours_ratio"]
    teams = list(truth["team_id"])[:5]
    res = o.engine.estimate(
        o.tables, _StubPair(), teams, "after_hours_ratio", 0.08, truth["as_of"].iloc[0]
    )
    assert list(res.columns[:8]) == [
        "team_id",
        "as_of",
        "signal",
        "value",
        "before_expected_leavers",
        "after_expected_leavers",
        "before_csat_change",
        "after_csat_change",
    ]
    assert (res["before_expected_leavers"] == 2.0).all()
    assert (res["before_csat_change"] == -1.0).all()
    assert res["team_id"].tolist() == teams


# Organisations wired differently (issue 18): seeds fixed before the engine first ran on them.
PROXY_SEED, SMALL_SEED = 57, 58


def _aggregate(o: Org, signal: str) -> dict[str, float]:
    truth, est = _what_if(o, signal)
    before = est["before_expected_leavers"]
    return {
        "true_ratio": _ratio(
            truth["intervened_expected_leavers"], truth["baseline_expected_leavers"]
        ),
        "ratio": _ratio(est["after_expected_leavers"], before),
        "ratio_p10": _ratio(est["after_leavers_p10"], before),
        "ratio_p90": _ratio(est["after_leavers_p90"], before),
        "true_csat": float(
            (truth["intervened_csat_change"] - truth["baseline_csat_change"]).mean()
        ),
        "csat": float(est["csat_effect"].mean()),
        "csat_p10": float(est["csat_effect_p10"].mean()),
        "csat_p90": float(est["csat_effect_p90"].mean()),
    }


_PROXY: dict[str, float] = {}


def _proxy() -> dict[str, float]:
    """After-hours that only follows the load (which drives leaving and CSAT): no effect of
    its own (the simulator's truth says so exactly)."""
    if not _PROXY:
        tables, iv = known_effect_org(PROXY_SEED, 1.0, TEAMS, MONTHS, "proxy")
        _PROXY.update(_aggregate(Org(tables, iv, CausalEngine(settings=FAST)), "after_hours_ratio"))
        assert _PROXY["true_ratio"] == 1.0 and _PROXY["true_csat"] == 0.0
    return _PROXY


def test_a_proxy_of_the_load_gets_a_csat_interval_that_covers_no_effect():
    a = _proxy()
    assert a["csat_p10"] <= 0.0 <= a["csat_p90"], a


def test_a_proxy_of_the_load_moves_leavers_by_less_than_0_10():
    a = _proxy()
    assert abs(a["ratio"] - 1.0) < 0.10, a


@pytest.mark.xfail(
    strict=True,
    reason="known weakness (docs/what-if.md): on this organisation the attrition stage reads "
    "0.90 of baseline leavers, 80% interval 0.80-0.97 with the error floor (0.83-0.94 "
    "without), for a signal with no effect",
)
def test_a_proxy_of_the_load_gets_a_leavers_interval_that_covers_no_effect():
    a = _proxy()
    assert a["ratio_p10"] <= 1.0 <= a["ratio_p90"], a


def test_effect_has_the_true_sign_and_rough_size_on_a_small_organisation():
    tables, iv = known_effect_org(SMALL_SEED, 1.0, 300, MONTHS)
    a = _aggregate(Org(tables, iv, CausalEngine(settings=FAST)), "after_hours_ratio")
    assert a["ratio"] < 1.0 and abs(a["ratio"] - a["true_ratio"]) <= 0.15, a
    assert a["true_csat"] > 0 and 0.5 <= a["csat"] / a["true_csat"] <= 2.0, a
