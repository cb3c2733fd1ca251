"""Contract loading and validation: every hard error of the contract gets its own message that
names the file, the column and the first offending row; warnings do not stop a run."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from forecast.data.contract import latest_complete_month, load_tables, tables_from_frames
from forecast.errors import DataError
from tests.contract_cases import (
    CASES,
    CX,
    EMPLOYEES,
    ENGAGEMENT,
    GOOD,
    WORKLOAD,
    write_dir,
)


@pytest.fixture
def good_dir(tmp_path: Path) -> Path:
    return write_dir(tmp_path, GOOD)


def test_good_directory_loads_with_typed_columns(good_dir: Path) -> None:
    t = load_tables(good_dir)
    assert list(t.employees["employee_id"].iloc[:3]) == ["007", "008", "009"]
    assert t.employees["exit_type"].iloc[1] == "voluntary"  # case-insensitive
    assert str(t.workload["month"].dtype) == "period[M]"
    assert t.signals["workload"] == ["after_hours_ratio", "cases_per_head"]  # site_code is an id
    assert t.signals["engagement"] == ["engagement", "manager_support"]  # responses is a weight
    assert t.protected == ["gender"]
    assert all("exit_reason" not in cols for cols in t.signals.values())


def test_csv_and_parquet_round_trip_to_the_same_tables(good_dir: Path, tmp_path: Path) -> None:
    from_csv = load_tables(good_dir)
    pq = tmp_path / "pq"
    pq.mkdir()
    for stem in GOOD:
        pd.read_csv(good_dir / f"{stem}.csv", dtype=str).to_parquet(pq / f"{stem}.parquet")
    from_parquet = load_tables(pq)
    for name in GOOD:
        pd.testing.assert_frame_equal(
            from_csv.table(name), from_parquet.table(name), check_dtype=False
        )
    assert from_csv.signals == from_parquet.signals


def test_parquet_with_typed_columns_is_read(good_dir: Path, tmp_path: Path) -> None:
    pq = tmp_path / "typed"
    pq.mkdir()
    emp = pd.read_csv(good_dir / "employees.csv", dtype={"employee_id": str})
    emp["hire_date"] = pd.to_datetime(emp["hire_date"])
    emp.to_parquet(pq / "employees.parquet")
    cx = pd.read_csv(good_dir / "cx.csv")  # team_id text, csat numeric
    cx.to_parquet(pq / "cx.parquet")
    t = load_tables(pq)
    assert t.employees["hire_date"].iloc[0] == pd.Timestamp("2020-01-05")
    assert t.cx["csat"].dtype == "float64"


def test_frames_path_equals_files_path(good_dir: Path) -> None:
    frames = {k: pd.read_csv(good_dir / f"{k}.csv", dtype=str) for k in GOOD}
    a, b = load_tables(good_dir), tables_from_frames(frames)
    pd.testing.assert_frame_equal(a.employees, b.employees, check_dtype=False)


def test_identifiers_stay_strings(good_dir: Path) -> None:
    t = load_tables(good_dir)
    assert "007" in set(t.employees["employee_id"])


def test_latest_complete_month_ignores_engagement(good_dir: Path) -> None:
    assert str(latest_complete_month(load_tables(good_dir))) == "2020-03"


def test_latest_complete_month_with_employees_only(tmp_path: Path) -> None:
    d = write_dir(tmp_path, {"employees": EMPLOYEES})
    assert str(latest_complete_month(load_tables(d))) == "2021-03"


def test_data_start_is_read_from_meta(good_dir: Path) -> None:
    (good_dir / "meta.json").write_text(json.dumps({"data_start": "2020-02"}))
    assert str(load_tables(good_dir).data_start) == "2020-02"


# --------------------------------------------------------------------------- hard errors


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_hard_error_names_file_column_and_row(tmp_path: Path, case: str) -> None:
    tables, file, column, row, text = CASES[case]
    d = write_dir(tmp_path, tables)
    with pytest.raises(DataError) as info:
        load_tables(d)
    message = str(info.value)
    assert message.startswith(file), message
    assert f"column {column}" in message, message
    if row:
        assert row in message, message
    assert text in message, message
    assert "\n" not in message


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_tables(tmp_path / "nope")


def test_missing_employees_table(tmp_path: Path) -> None:
    d = write_dir(tmp_path, {"cx": CX})
    with pytest.raises(DataError, match="required table employees"):
        load_tables(d)


def test_empty_file(tmp_path: Path) -> None:
    d = write_dir(tmp_path, {**GOOD, "workload": ""})
    with pytest.raises(DataError, match=r"^workload.csv: the file is empty"):
        load_tables(d)


def test_header_without_rows(tmp_path: Path) -> None:
    d = write_dir(tmp_path, {**GOOD, "cx": "team_id,month,csat,responses\n"})
    with pytest.raises(DataError, match=r"^cx.csv: the header has no data rows"):
        load_tables(d)


def test_not_utf8(tmp_path: Path) -> None:
    d = write_dir(tmp_path, GOOD)
    (d / "employees.csv").write_bytes(EMPLOYEES.replace("M,new job", "M,caf\xe9").encode("latin-1"))
    with pytest.raises(DataError, match=r"^employees.csv: the file is not UTF-8.*line 3"):
        load_tables(d)


def test_both_csv_and_parquet(tmp_path: Path) -> None:
    d = write_dir(tmp_path, GOOD)
    pd.read_csv(d / "cx.csv").to_parquet(d / "cx.parquet")
    with pytest.raises(DataError, match=r"both cx\.csv and cx\.parquet"):
        load_tables(d)


def test_unreadable_parquet(tmp_path: Path) -> None:
    d = write_dir(tmp_path, {k: v for k, v in GOOD.items() if k != "workload"})
    (d / "workload.parquet").write_bytes(b"not a parquet file at all")
    with pytest.raises(DataError, match=r"^workload.parquet: the file cannot be read as Parquet"):
        load_tables(d)


def test_bad_data_start(good_dir: Path) -> None:
    (good_dir / "meta.json").write_text(json.dumps({"data_start": "2020/02"}))
    with pytest.raises(DataError, match=r"^meta.json, column data_start: data_start must be"):
        load_tables(good_dir)


def test_impossible_data_start_month_is_a_data_error(good_dir: Path) -> None:
    (good_dir / "meta.json").write_text(json.dumps({"data_start": "2020-13"}))
    with pytest.raises(DataError, match=r"^meta.json, column data_start: .*'2020-13'"):
        load_tables(good_dir)


# --------------------------------------------------------------------------- warnings


def test_warnings_do_not_stop_loading(good_dir: Path) -> None:
    t = load_tables(good_dir)
    text = " | ".join(t.warnings)
    assert "engagement.csv, column engagement: 1 suppressed" in text
    assert "surveyed less than monthly" in text  # T1 surveyed in March and June


def test_team_without_cx_rows_warns(tmp_path: Path) -> None:
    cx = "\n".join(line for line in CX.splitlines() if not line.startswith("T2")) + "\n"
    t = load_tables(write_dir(tmp_path, {**GOOD, "cx": cx}))
    assert any("1 team(s) have no CX rows" in w for w in t.warnings)


def test_months_outside_employee_span_warn(tmp_path: Path) -> None:
    wl = WORKLOAD.replace("2020-0", "2010-0")  # a span in the past: future months are checked
    t = load_tables(write_dir(tmp_path, {**GOOD, "workload": wl}))
    assert any("do not overlap the employees' span" in w for w in t.warnings)


def test_text_column_in_monthly_table_is_not_a_signal(tmp_path: Path) -> None:
    wl = WORKLOAD.replace("site_code", "site").replace(",11\n", ",north\n")
    t = load_tables(write_dir(tmp_path, {**GOOD, "workload": wl}))
    assert "site" not in t.signals["workload"]
    assert any("column site: non-numeric" in w for w in t.warnings)


def test_protected_numeric_column_is_never_a_signal(tmp_path: Path) -> None:
    eng = ENGAGEMENT.replace("manager_support", "age")
    t = load_tables(write_dir(tmp_path, {**GOOD, "engagement": eng}))
    assert "age" not in t.signals["engagement"]
