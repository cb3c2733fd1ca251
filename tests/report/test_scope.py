"""One scope rule for `forecast report OUT --scope` and `forecast serve` (report.scope): which
teams a reader may see, and a whole output folder cut down to them."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecast.cli import main
from forecast.errors import ConfigError
from forecast.report import words
from forecast.report.render import load_outputs, write_report, write_scoped_report
from forecast.report.scope import parse_scope, scope_inputs, teams_in_scope
from tests.report_outputs import make_outputs, synthetic_employees


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scope")
    stub = pd.DataFrame(
        {
            "team_id": [f"T{i:03d}" for i in range(40)],
            "headcount": np.random.default_rng(0).integers(6, 40, 40),
        }
    )
    emp = synthetic_employees(stub, 0)
    make_outputs(root / "2024-05", seed=1, as_of="2024-05", employees=emp)
    folder = make_outputs(root / "2024-06", seed=0, employees=emp)
    write_report(folder, n_detail=5)
    return folder


def test_parse_scope_sorts_and_refuses_what_is_not_a_pair() -> None:
    assert parse_scope(["site=Leeds", "department=Sales", "site=Leeds"]) == (
        ("department", "Sales"),
        ("site", "Leeds"),
    )
    for bad in ("department", "=Sales", "department=", "dep-t=Sales", "gender=F"):
        with pytest.raises(ConfigError):
            parse_scope([bad])


def test_a_team_is_in_scope_when_any_pair_matches() -> None:
    attrs = pd.DataFrame(
        {
            "team_id": ["A", "B", "C", "D"],
            "department": ["Sales", "Billing", "Sales", None],
            "site": ["Leeds", "Leeds", "Porto", "Porto"],
        }
    )
    assert teams_in_scope(attrs, (("department", "Sales"),)) == {"A", "C"}
    assert teams_in_scope(attrs, (("department", "Billing"), ("site", "Porto"))) == {"B", "C", "D"}
    # An attribute the folder lacks never widens a scope; no scope sees nothing.
    assert teams_in_scope(attrs, (("region", "North"),)) == set()
    assert teams_in_scope(attrs, ()) == set()
    assert teams_in_scope(None, (("department", "Sales"),)) == set()


def test_scope_inputs_drops_what_describes_every_team(out) -> None:
    inputs = load_outputs(out)
    teams = teams_in_scope(inputs.team_attributes, (("department", "Sales"),))
    scoped = scope_inputs(inputs, teams, "department=Sales")
    assert set(scoped.scores["team_id"]) == teams
    assert set(scoped.drivers["team_id"]) <= teams and set(scoped.history["team_id"]) <= teams
    assert set(scoped.previous.scores["team_id"]) <= teams
    assert "organisation" not in scoped.manifest and scoped.fairness is None
    assert scoped.previous.org_total is None and scoped.scope == "department=Sales"


def test_a_scoped_report_holds_only_the_scopes_teams(out) -> None:
    before = (out / "report.html").read_bytes()
    path, n = write_scoped_report(out, (("department", "Sales"),))
    html = path.read_text(encoding="utf-8")
    inputs = load_outputs(out)
    sales = teams_in_scope(inputs.team_attributes, (("department", "Sales"),))
    others = set(inputs.scores["team_id"]) - sales
    assert n == len(sales) and path.name == "report-department-Sales.html"
    assert not {t for t in others if re.search(rf"(?<![\w.]){t}(?![\w.])", html)}
    s = inputs.scores.loc[inputs.scores["team_id"].isin(sales)]
    assert f">{words.fmt_count(float(s['expected_leavers'].sum()))}<" in html
    assert "Limited to the teams where department=Sales" in html
    assert (out / "report.html").read_bytes() == before  # the full report is left alone


def test_report_scope_from_the_command_line(out, tmp_path, capsys) -> None:
    target = tmp_path / "sales.html"
    assert main(["report", str(out), "--scope", "department=Sales", "--output", str(target)]) == 0
    assert target.exists() and "department=Sales" in capsys.readouterr().out
    assert main(["report", str(out), "--scope", "region=North"]) == 2
    err = capsys.readouterr().err
    assert "no team attribute 'region'" in err and err.count("\n") == 1


def test_a_scope_too_small_for_totals_gets_no_report(out, tmp_path) -> None:
    import shutil

    folder = tmp_path / "2024-06"
    shutil.copytree(out, folder)
    attrs = pd.read_parquet(folder / "team_attributes.parquet")
    attrs["unit"] = np.where(attrs["team_id"] == "T003", "Tiny", "Large")  # T003 has 2 people
    attrs.to_parquet(folder / "team_attributes.parquet")
    with pytest.raises(ConfigError, match="fewer than the minimum group size"):
        write_scoped_report(folder, (("unit", "Tiny"),))
    path, n = write_scoped_report(folder, (("unit", "Large"),))
    assert n == 39 and path.exists()


def test_a_manager_label_names_only_teams_in_scope() -> None:
    from forecast.report.scope import relabel_for_scope

    attrs = pd.DataFrame(
        {
            "team_id": ["A", "B", "C"],
            "manager": ["manager of A, B", "manager of A, B", "manager of 2 small teams"],
            "department": ["Sales", "Billing", "Sales"],
        }
    )
    mine = relabel_for_scope(attrs.loc[attrs["department"] == "Sales"], {"A", "C"})
    assert mine["manager"].tolist() == ["manager of A", "manager of 1 small team"]
    assert mine["department"].tolist() == ["Sales", "Sales"]
