"""Adapters: public HR exports become contract data directories that load and count right.

The public files are read from /work/shared/data/real at test time and never copied into the
repository (HRDataset_v14 is CC BY-NC-ND); tests that need one skip when it is absent.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from forecast.cli import main
from forecast.data.contract import load_tables
from forecast.data.importers import (
    convert_hrdataset,
    convert_mfg,
    headcount_at,
    import_source,
    read_source_csv,
)
from forecast.errors import ConfigError, DataError, OutputError

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
MFG = REAL / "MFG10YearTerminationData.csv"
HRD = REAL / "HRDataset_v14.csv"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"public data file {path} is absent (kept outside the repository)")
    return path


@pytest.fixture(scope="module")
def mfg_source() -> pd.DataFrame:
    return read_source_csv(_need(MFG))


@pytest.fixture(scope="module")
def mfg_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mfg") / "data"
    import_source("mfg", _need(MFG), out)
    return out


@pytest.fixture(scope="module")
def hrd_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hrd") / "data"
    import_source("hrdataset", _need(HRD), out)
    return out


def _mfg_rows(rows: list[dict[str, str]]) -> pd.DataFrame:
    """A tiny MFG-shaped frame: each row overrides the defaults of one snapshot."""
    base = {
        "EmployeeID": "1",
        "recorddate_key": "12/31/2006 0:00",
        "birthdate_key": "1/3/1970",
        "orighiredate_key": "8/28/2000",
        "terminationdate_key": "1/1/1900",
        "age": "36",
        "length_of_service": "6",
        "city_name": "Vancouver",
        "department_name": "Dairy",
        "job_title": "Dairy Person",
        "store_name": "35",
        "gender_short": "F",
        "gender_full": "Female",
        "termreason_desc": "Not Applicable",
        "termtype_desc": "Not Applicable",
        "STATUS_YEAR": "2006",
        "STATUS": "ACTIVE",
        "BUSINESS_UNIT": "STORES",
    }
    return pd.DataFrame([{**base, **r} for r in rows], dtype="string")


# --------------------------------------------------------------------------- mfg: pure mapping


def test_exit_is_taken_only_from_the_terminated_row() -> None:
    # The ACTIVE 2006 snapshot already carries the 2007 termination date (the look-ahead trap);
    # an employee whose only rows are ACTIVE with a filled date must stay employed.
    frame = _mfg_rows(
        [
            {"EmployeeID": "1", "terminationdate_key": "3/15/2007"},
            {
                "EmployeeID": "1",
                "terminationdate_key": "3/15/2007",
                "STATUS": "TERMINATED",
                "STATUS_YEAR": "2007",
                "recorddate_key": "3/1/2007 0:00",
                "termreason_desc": "Resignaton",
                "termtype_desc": "Voluntary",
            },
            {"EmployeeID": "2", "terminationdate_key": "6/30/2016"},
        ]
    )
    emp = convert_mfg(frame).frames["employees"].set_index("employee_id")
    assert emp.loc["1", "exit_date"] == pd.Timestamp("2007-03-15")
    assert emp.loc["1", "exit_type"] == "voluntary"
    assert emp.loc["1", "exit_reason"] == "resignation"  # source misspelling normalised
    assert pd.isna(emp.loc["2", "exit_date"]) and pd.isna(emp.loc["2", "exit_type"])


def test_retirement_as_involuntary_keeps_retirees_out_of_voluntary_leavers() -> None:
    frame = _mfg_rows(
        [
            {
                "EmployeeID": "1",
                "STATUS": "TERMINATED",
                "terminationdate_key": "5/1/2006",
                "termreason_desc": "Retirement",
                "termtype_desc": "Voluntary",
            },
            {
                "EmployeeID": "2",
                "STATUS": "TERMINATED",
                "terminationdate_key": "5/1/2006",
                "termreason_desc": "Resignaton",
                "termtype_desc": "Voluntary",
            },
        ]
    )
    default = convert_mfg(frame).frames["employees"].set_index("employee_id")["exit_type"]
    moved = convert_mfg(frame, retirement_as="involuntary").frames["employees"]
    moved = moved.set_index("employee_id")["exit_type"]
    assert default.to_dict() == {"1": "voluntary", "2": "voluntary"}
    assert moved.to_dict() == {"1": "involuntary", "2": "voluntary"}


def test_store_department_teams_combine_store_and_department() -> None:
    frame = _mfg_rows([{"EmployeeID": "1"}, {"EmployeeID": "2", "department_name": "Meats"}])
    emp = convert_mfg(frame, team_by="store-department").frames["employees"]
    assert sorted(emp["team_id"]) == ["35/Dairy", "35/Meats"]


def test_bad_mfg_date_names_file_column_row_and_employee() -> None:
    frame = _mfg_rows([{"EmployeeID": "1"}, {"EmployeeID": "77", "orighiredate_key": "2001-13-01"}])
    with pytest.raises(DataError) as exc:
        convert_mfg(frame, file="x.csv")
    assert str(exc.value).startswith("x.csv, column orighiredate_key, row 2 (EmployeeID=77)")


def test_missing_mfg_column_names_it() -> None:
    frame = _mfg_rows([{"EmployeeID": "1"}]).drop(columns=["STATUS"])
    with pytest.raises(DataError, match=r"x\.csv, column STATUS: required column STATUS"):
        convert_mfg(frame, file="x.csv")


def test_unknown_team_grouping_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--team-by"):
        convert_mfg(_mfg_rows([{}]), team_by="city")


# --------------------------------------------------------------------------- mfg: the real file


def test_mfg_converts_to_one_valid_spell_per_employee(mfg_dir: Path) -> None:
    tables = load_tables(mfg_dir)
    emp = tables.employees
    assert len(emp) == emp["employee_id"].nunique() == 6284
    assert emp["team_id"].nunique() == 46
    assert (emp["exit_type"] == "voluntary").sum() == 1270
    assert (emp["exit_type"] == "involuntary").sum() == 215
    assert emp["exit_reason"].value_counts().to_dict() == {
        "retirement": 885,
        "resignation": 385,
        "layoff": 215,
    }
    assert {"gender", "birth_year"} <= set(tables.protected)
    assert {"city", "business_unit", "store_id"} <= set(emp.columns)


def test_mfg_writes_data_start_and_iso_dates(mfg_dir: Path) -> None:
    meta = json.loads((mfg_dir / "meta.json").read_text())
    assert meta["data_start"] == "2006-01"
    assert load_tables(mfg_dir).data_start == pd.Period("2006-01", freq="M")
    raw = pd.read_csv(mfg_dir / "employees.csv", dtype=str, keep_default_na=False)
    iso = re.compile(r"^\d{4}-\d{2}-\d{2}$")
    assert raw["hire_date"].str.match(iso).all()
    assert raw["exit_date"].loc[raw["exit_date"] != ""].str.match(iso).all()


def test_mfg_retirement_option_moves_885_exits(tmp_path: Path) -> None:
    out = tmp_path / "data"
    result = import_source("mfg", _need(MFG), out, retirement_as="involuntary")
    emp = load_tables(out).employees
    assert (emp["exit_type"] == "voluntary").sum() == 385
    assert (emp["exit_type"] == "involuntary").sum() == 215 + 885
    assert json.loads((out / "meta.json").read_text())["source"]["retirement_as"] == "involuntary"
    assert result.stats["retirements"] == 885


def test_store_headcount_at_2010_12_matches_source_active_snapshot(
    mfg_dir: Path, mfg_source: pd.DataFrame
) -> None:
    emp = load_tables(mfg_dir).employees
    ours = headcount_at(emp, pd.Period("2010-12", freq="M"))
    src = mfg_source
    snap = src.loc[(src["STATUS"] == "ACTIVE") & (src["STATUS_YEAR"] == "2010")]
    theirs = snap.groupby("store_name")["EmployeeID"].nunique()
    assert ours.sort_index().to_dict() == theirs.sort_index().to_dict()


def _slow_headcount(emp: pd.DataFrame, year: int) -> int:
    """Obviously right loop: hired by the end of December and not gone by then."""
    end = pd.Timestamp(f"{year}-12-31")
    next_year = pd.Timestamp(f"{year + 1}-01-01")
    n = 0
    for hire, exit_ in zip(emp["hire_date"], emp["exit_date"], strict=True):
        # Whole months: a December exit means not employed at the end of December.
        if hire <= end and (pd.isna(exit_) or exit_ >= next_year):
            n += 1
    return n


def test_yearly_differences_are_exactly_the_31_december_leavers(
    mfg_dir: Path, mfg_source: pd.DataFrame
) -> None:
    emp = load_tables(mfg_dir).employees
    src = mfg_source
    active = src.loc[src["STATUS"] == "ACTIVE"]
    term = src.loc[src["STATUS"] == "TERMINATED"]
    for year in range(2006, 2016):
        theirs = active.loc[active["STATUS_YEAR"] == str(year), "EmployeeID"].nunique()
        # People leaving on 12/31 have an ACTIVE 12/31 snapshot too (the 5 duplicated pairs);
        # the contract's whole months count them as gone by the end of December.
        dec31 = term.loc[term["terminationdate_key"] == f"12/31/{year}", "EmployeeID"]
        both = active.loc[(active["STATUS_YEAR"] == str(year)) & active["EmployeeID"].isin(dec31)]
        assert _slow_headcount(emp, year) == theirs - len(both), year


def test_duplicated_employee_years_collapse_into_one_spell(mfg_source: pd.DataFrame) -> None:
    dup = mfg_source.duplicated(["EmployeeID", "STATUS_YEAR"], keep=False)
    ids = set(mfg_source.loc[dup, "EmployeeID"])
    assert len(ids) == 5
    emp = convert_mfg(mfg_source).frames["employees"]
    rows = emp.loc[emp["employee_id"].isin(ids)]
    assert len(rows) == 5
    assert rows["exit_date"].notna().all()


def test_employees_only_directory_feeds_the_panel_at_annual_as_of(mfg_dir: Path) -> None:
    features = pytest.importorskip("forecast.features.panel")
    specs = pytest.importorskip("forecast.features.specs")
    targets = pytest.importorskip("forecast.features.targets")
    tables = load_tables(mfg_dir)
    panel = features.build_panel(tables, specs.load_specs(), as_of="2010-12")
    hc = panel.set_index("team_id")["headcount"]
    assert hc.sum() == 4840 and len(hc) == 46
    # A 12-month horizon from December: leavers are 2011's voluntary exits of that cohort.
    tg = targets.build_targets(tables, horizon=12)
    row = tg.loc[tg["as_of"] == pd.Period("2010-12", freq="M")]
    emp = tables.employees
    cohort = (emp["hire_date"] <= "2010-12-31") & ~(emp["exit_date"] < "2011-01-01")
    left = cohort & (emp["exit_type"] == "voluntary") & emp["exit_date"].dt.year.eq(2011)
    assert row["leavers"].sum() == left.sum()


# --------------------------------------------------------------------------- hrdataset


def test_hrdataset_converts_with_stripped_departments(hrd_dir: Path) -> None:
    tables = load_tables(hrd_dir)
    emp = tables.employees
    assert len(emp) == 311
    assert sorted(emp["team_id"].unique()) == [
        "Admin Offices",
        "Executive Office",
        "IT/IS",
        "Production",
        "Sales",
        "Software Engineering",
    ]
    assert (emp["exit_type"] == "voluntary").sum() == 88
    assert (emp["exit_type"] == "involuntary").sum() == 16
    assert emp["exit_reason"].isna().sum() == 207  # reasons only for leavers


def test_hrdataset_birth_years_use_the_right_century(hrd_dir: Path) -> None:
    emp = load_tables(hrd_dir).employees
    years = pd.to_numeric(emp["birth_year"])
    # DOB has 2-digit years 51..92; %y alone would put 51..68 in the 2000s.
    assert years.between(1950, 1993).all()
    assert years.min() == 1951


def test_hrdataset_engagement_suppresses_cells_under_five(hrd_dir: Path) -> None:
    tables = load_tables(hrd_dir)
    eng = tables.engagement
    assert eng is not None
    assert set(tables.signals["engagement"]) == {"engagement", "satisfaction"}
    small = eng["responses"] < 5
    assert small.any() and (~small).any()
    assert eng.loc[small, ["engagement", "satisfaction"]].isna().all().all()
    assert eng.loc[~small, ["engagement", "satisfaction"]].notna().all().all()
    # Every employee answers once, less the answers dated outside their employment.
    assert eng["responses"].sum() == 311 - 3


def test_hrdataset_engagement_cell_is_the_mean_of_its_answers(hrd_dir: Path) -> None:
    src = read_source_csv(_need(HRD))
    month = pd.to_datetime(src["LastPerformanceReview_Date"], format="%m/%d/%Y")
    it = src.loc[
        (src["Department"].str.strip() == "IT/IS") & (month.dt.strftime("%Y-%m") == "2019-01")
    ]
    eng = load_tables(hrd_dir).engagement
    cell = eng.loc[(eng["team_id"] == "IT/IS") & (eng["month"] == pd.Period("2019-01", freq="M"))]
    assert cell["responses"].item() == len(it)
    assert cell["engagement"].item() == pytest.approx(
        it["EngagementSurvey"].astype(float).mean(), abs=1e-3
    )


def test_hrdataset_by_manager_fills_blank_ids_from_the_same_manager(tmp_path: Path) -> None:
    src = read_source_csv(_need(HRD))
    blank = src["ManagerID"].isna()
    assert blank.sum() == 8
    conv = convert_hrdataset(src, team_by="manager")
    emp = conv.frames["employees"].set_index("employee_id")
    assert (emp.loc[src.loc[blank, "EmpID"], "team_id"] == "39").all()
    out = tmp_path / "data"
    import_source("hrdataset", HRD, out, team_by="manager")
    assert load_tables(out).employees["team_id"].notna().all()


def test_hrdataset_terminated_without_date_names_the_row() -> None:
    src = read_source_csv(_need(HRD))
    i = int((src["EmploymentStatus"] == "Voluntarily Terminated").to_numpy().argmax())
    src.loc[i, "DateofTermination"] = None
    with pytest.raises(DataError, match=rf"column DateofTermination, row {i + 1} \(EmpID="):
        convert_hrdataset(src)


# --------------------------------------------------------------------------- edge and CLI


def test_non_empty_out_dir_is_refused_without_force(tmp_path: Path) -> None:
    out = tmp_path / "data"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not empty"):
        import_source("hrdataset", _need(HRD), out)
    with pytest.raises(OutputError, match="refusing"):
        import_source("hrdataset", HRD, out, force=True)
    assert (out / "notes.txt").read_text() == "mine"


def test_force_replaces_an_earlier_data_directory(tmp_path: Path) -> None:
    out = tmp_path / "data"
    import_source("hrdataset", _need(HRD), out)
    import_source("hrdataset", HRD, out, team_by="manager", force=True)
    assert load_tables(out).employees["team_id"].nunique() > 6


def test_cli_import_exits_2_with_one_line_for_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["import", "mfg", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert "nope.csv" in err and "does not exist" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_cli_import_wrong_export_names_the_missing_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["import", "mfg", str(_need(HRD)), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "HRDataset_v14.csv, column EmployeeID" in capsys.readouterr().err


def test_cli_import_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["import", "hrdataset", str(_need(HRD)), "--out", str(tmp_path / "o")])
    assert code == 0
    assert "6 teams, 311 employees" in capsys.readouterr().out
