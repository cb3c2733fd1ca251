"""The report's extras as scoring writes them: team attributes by one grouping (against the
per-team `value_counts` loop it replaced, tests/scoring/reference.py), and what-ifs that
never fit the engine during `forecast score`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecast.data.contract import latest_complete_month, load_tables
from forecast.features.specs import load_specs
from forecast.models.pair import ModelPair
from forecast.scoring.batch import build_batch
from forecast.scoring.extras import score_extras, team_attributes
from forecast.whatif import engine as engine_mod
from tests.scoring.reference import team_attributes as slow_team_attributes

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "scoring_golden"


def awkward_employees(seed: int) -> pd.DataFrame:
    """Teams whose values tie (two departments equally often), with missing values, one-person
    teams, manager ids that are employee ids, a numeric code and a name column."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(30):
        size = int(rng.choice([1, 2, 4, 6]))
        for k in range(size):
            n = len(rows)
            rows.append(
                {
                    "employee_id": f"E{n:05d}",
                    "team_id": f"T{t:02d}",
                    "hire_date": pd.Timestamp("2020-01-15"),
                    "exit_date": pd.Timestamp("2024-02-10") if rng.random() < 0.1 else pd.NaT,
                    "exit_type": None,
                    # The first person of a team always has one: the reference stops on a
                    # team of several whose values are all missing (see the test below).
                    "department": rng.choice(["Billing", "Support", None])
                    if t % 3 == 0 and k > 0
                    else ["Billing", "Sales"][(k + t) % 2]
                    if t % 5 == 0
                    else ["Billing", "Sales", "Support"][t % 3],
                    "site": rng.choice(["Leeds", "Porto"]) if t % 7 == 0 else "Leeds",
                    "manager_id": f"E{(t * 7) % 40:05d}",
                    "cost_code": int(t % 4) if rng.random() > 0.05 else None,
                    "first_name": f"Name{n}",
                }
            )
    emp = pd.DataFrame(rows)
    emp.loc[emp["exit_date"].notna(), "exit_type"] = "voluntary"
    return emp


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("as_of", ["2024-01", "2024-06"])
def test_team_attributes_match_the_per_team_reference(seed: int, as_of: str) -> None:
    emp = awkward_employees(seed)
    for constancy in (0.5, 0.8):
        pd.testing.assert_frame_equal(
            team_attributes(emp, as_of, min_constancy=constancy),
            slow_team_attributes(emp, as_of, min_constancy=constancy),
        )


def test_a_team_whose_people_all_lack_a_value_keeps_the_column_for_the_others() -> None:
    emp = awkward_employees(0)
    emp["region"] = "North"
    emp.loc[emp["team_id"] == "T03", "region"] = None  # a team of several, all missing
    assert (emp["team_id"] == "T03").sum() >= 2
    attrs = team_attributes(emp, "2024-01").set_index("team_id")
    assert attrs.loc["T03", "region"] is pd.NA or pd.isna(attrs.loc["T03", "region"])
    assert (attrs.drop(index="T03")["region"] == "North").all()


def test_score_never_fits_the_what_if_engine_and_says_which_teams_have_no_what_if(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tables = load_tables(GOLDEN / "data")
    pair = ModelPair.from_dir(GOLDEN / "pair")  # a pair stored without what-if fits
    specs = load_specs()
    month = latest_complete_month(tables)
    batch = build_batch(tables, pair, specs, as_of=month, reference=(None, "none"))

    def no_fit(*_args, **_kwargs):
        raise AssertionError("`forecast score` fitted the what-if engine")

    monkeypatch.setattr(engine_mod, "fit_effect", no_fit)
    said: list[str] = []
    extras = score_extras(
        tables, pair, specs, batch.scores, batch.drivers, month, what_if_fits=None, warn=said.append
    )
    assert "whatif.parquet" not in extras
    assert "team_attributes.parquet" in extras
    assert len(said) == 1 and "no fit stored with the model" in said[0]
