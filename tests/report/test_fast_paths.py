"""The report's grouped fast paths against their slow references (tests/report/reference.py:
the per-team, per-row loops the report used before issue 17). Same sections, same roll-ups,
same HTML bytes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecast.report import render as fast
from tests.report import reference as slow
from tests.report_outputs import AS_OF, make_outputs

NOW = datetime(2024, 7, 2, 8, 0, tzinfo=UTC)


def same(a: object, b: object) -> bool:
    """Equal, with NaN equal to NaN: `repr` writes every float exactly (shortest round trip)."""
    return repr(a) == repr(b)


def _html(out: Path, n_detail: int) -> str:
    return fast.render(fast.build_context(fast.load_outputs(out), n_detail=n_detail, now=NOW))


@pytest.fixture
def no_beeswarm(monkeypatch: pytest.MonkeyPatch) -> None:
    # The beeswarm is drawn by shap the same way on both paths; leaving it out keeps this fast.
    monkeypatch.setattr(fast, "beeswarm_png", lambda *_a, **_k: None)


@pytest.mark.parametrize("n_teams, n_detail", [(60, 15), (12, 50)])
def test_the_report_has_the_bytes_of_the_slow_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_beeswarm, n_teams: int, n_detail: int
) -> None:
    out = make_outputs(tmp_path / AS_OF, n_teams=n_teams, seed=3)
    quick = _html(out, n_detail)
    monkeypatch.setattr(fast, "team_sections", slow.team_sections)
    monkeypatch.setattr(fast, "team_table", slow.team_table)
    monkeypatch.setattr(fast, "rollups", slow.rollups)
    reference = _html(out, n_detail)
    assert quick == reference
    assert "team-T0" in quick  # the comparison covered detailed sections


# --------------------------------------------------------------------------- the hard cases


def awkward_frames(seed: int = 0) -> tuple[pd.DataFrame, ...]:
    """Scores, drivers, history and attributes with what a per-row loop handles without
    thinking: |SHAP| ties of both signs, missing values, labels and families, a team without
    CSAT drivers, a reportable team without drivers, unsorted history with a month twice."""
    rng = np.random.default_rng(seed)
    teams = [f"T{i:02d}" for i in range(14)]
    hc = rng.integers(3, 30, len(teams))
    rate = rng.uniform(0.01, 0.2, len(teams))
    scores = pd.DataFrame(
        {
            "team_id": teams,
            "headcount": hc,
            "expected_leavers": np.round(rate * hc, 1),  # rounded: ties in the ranking
            "attrition_rate": rate,
            "csat_change": np.where(rng.random(len(teams)) < 0.2, np.nan, rng.normal(0, 2, 14)),
            "leavers_p10": rate * hc * 0.5,
            "leavers_p90": rate * hc * 1.6,
            "risk_band": rng.choice(["high", "medium", "low", None], len(teams)),
            "reportable": hc >= 5,
        }
    )
    feats = [
        ("workload__after_hours_ratio__mean_3m", "workload", "after-hours work, 3-month average"),
        ("workload__cases_per_head__trend_12m", "workload", None),
        ("engagement__engagement__last", None, "engagement, latest survey"),
        ("engagement__manager_support__change", "engagement", "manager support, change"),
        ("people_flow__vol_leavers__sum_6m", "people_flow", None),
        ("tenure__tenure__median", "tenure", "tenure, median (months)"),
        ("cx__csat__vs_longrun", "cx", "CSAT, vs. own long-run level"),
    ]
    rows = []
    for i, team in enumerate(teams[:-1]):  # the last team has no drivers at all
        for target in ("attrition", "csat") if i % 4 else ("attrition",):
            shap = rng.choice([-0.2, 0.2, 0.1, -0.1, 0.05, 0.0], len(feats))
            for (feat, fam, label), s in zip(feats, shap, strict=True):
                value = np.nan if rng.random() < 0.15 else float(rng.normal(0.2, 0.1))
                rows.append((team, target, feat, value, s, -2.5, fam, label))
            if target == "csat":
                rows.append(
                    (team, target, "expected_attrition_rate", rate[i], -0.3, -0.4, None, None)
                )
    drivers = pd.DataFrame(
        rows,
        columns=[
            "team_id",
            "target",
            "feature",
            "feature_value",
            "shap_value",
            "base_value",
            "family",
            "feature_label",
        ],
    )
    drivers = drivers.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    for col in ("team_id", "target", "feature", "family", "feature_label"):
        drivers[col] = drivers[col].astype("string")
    months = [str(p) for p in pd.period_range(end=AS_OF, periods=14, freq="M")]
    history = pd.DataFrame(
        [
            (t, m, float(rng.poisson(0.5)), np.nan if rng.random() < 0.2 else 80.0)
            for t in teams[2:]
            for m in months
        ]
        + [(teams[5], months[-1], 2.0, 75.0), (None, months[-1], 1.0, 70.0)],
        columns=["team_id", "month", "vol_leavers", "csat"],
    ).sample(frac=1.0, random_state=seed)
    history["team_id"] = history["team_id"].astype("string")
    attributes = pd.DataFrame(
        {
            "team_id": teams,
            "department": rng.choice(["Billing", "Support", None], len(teams)),
            "site": ["Leeds"] * 3 + ["Porto"] * 11,
            "gender": "majority women",  # a protected column: never rolled up
            "manager": [f"manager of T{i // 2:02d}" for i in range(len(teams))],
        }
    ).astype("string")
    return scores, drivers, history, attributes


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_team_sections_match_the_per_row_reference(seed: int) -> None:
    scores, drivers, _, _ = awkward_frames(seed)
    for n_detail in (0, 4, 50):
        assert same(
            fast.team_sections(scores, drivers, None, n_detail),
            slow.team_sections(scores, drivers, None, n_detail),
        )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_team_table_matches_the_per_team_history_filter(seed: int) -> None:
    scores, _, history, _ = awkward_frames(seed)
    assert same(fast.team_table(scores, history), slow.team_table(scores, history))
    assert same(fast.team_table(scores, None), slow.team_table(scores, None))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("min_group", [1, 5, 40])
def test_rollups_match_the_per_group_reference(seed: int, min_group: int) -> None:
    scores, _, _, attributes = awkward_frames(seed)
    assert same(
        fast.rollups(scores, attributes, min_group), slow.rollups(scores, attributes, min_group)
    )
