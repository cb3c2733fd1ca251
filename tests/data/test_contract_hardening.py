"""Hardening the data reader (issue #15, items 1-4): open-ended and out-of-range dates, dates in
the future, infinities and stray cells in numeric columns, and team keys that do not meet.

Each case copies one simulated directory (40 teams x 36 months, 2022-01..2024-12), breaks one
thing and runs `forecast validate` through the CLI: an error is exit 2 and one line naming the
file, the column and the row; a warning is exit 0 with the warning and the latest complete
month. "Today" is pinned with FORECAST_TODAY so the future is the same on every run.
"""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from forecast.cli import main
from forecast.data.contract import latest_complete_month, load_tables
from forecast.data.months import today
from forecast.errors import ConfigError
from forecast.features.panel import build_panel
from forecast.features.specs import load_specs
from forecast.features.targets import build_targets

# The simulated data end in 2024-12; "today" is a few weeks later.
TODAY = "2025-02-10"
LATEST = "2024-12"

Rows = list[list[str]]


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from forecast.simulate import SimConfig, simulate, write_simulation

    d = tmp_path_factory.mktemp("hardening") / "D"
    write_simulation(simulate(SimConfig(n_teams=40, n_months=36, seed=5, compute_truth=False)), d)
    return d


@pytest.fixture(autouse=True)
def pinned_today(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORECAST_TODAY", TODAY)


@pytest.fixture
def data(sim_dir: Path, tmp_path: Path) -> Path:
    d = tmp_path / "data"
    shutil.copytree(sim_dir, d)
    return d


def read_rows(path: Path) -> Rows:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def write_rows(path: Path, rows: Rows) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)


def edit(d: Path, table: str, fn: Callable[[Rows], None]) -> None:
    """Mutate a table's rows in place; rows[0] is the header, rows[n] data row n."""
    rows = read_rows(d / f"{table}.csv")
    fn(rows)
    write_rows(d / f"{table}.csv", rows)


def set_cell(d: Path, table: str, row: int, column: str, value: str) -> None:
    def fn(rows: Rows) -> None:
        rows[row][rows[0].index(column)] = value

    edit(d, table, fn)


def validate(d: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["validate", str(d)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(
    code: int, err: str, file: str, column: str, row: int | None, text: str
) -> None:
    assert code == 2, err
    assert "Traceback" not in err and "internal error" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, err
    message = errors[0]
    assert message.startswith(f"error: {file}, column {column}"), message
    if row is not None:
        assert f"row {row} (" in message, message
    assert text in message, message


def assert_latest(out: str, month: str) -> None:
    assert f"latest complete month {month}" in out, out


def open_spell_rows(d: Path, n: int) -> list[int]:
    """Data rows of spells still open, whose employee has no later spell."""
    emp = pd.read_csv(d / "employees.csv", dtype=str, keep_default_na=False)
    once = emp["employee_id"].map(emp["employee_id"].value_counts()) == 1
    rows = np.flatnonzero(((emp["exit_date"] == "") & once).to_numpy())
    return [int(r) + 1 for r in rows[:n]]


# --------------------------------------------------------------------------- 1. date range


def test_open_ended_exit_date_reads_as_still_employed(data: Path, capsys) -> None:
    rows = open_spell_rows(data, 2)
    for row in rows:
        set_cell(data, "employees", row, "exit_date", "9999-12-31")
    code, out, err = validate(data, capsys)
    assert code == 0, err
    assert "employees.csv, column exit_date: 2 exit_date(s) of 9999-12-31" in err
    assert "still employed" in err
    assert_latest(out, LATEST)
    emp = load_tables(data).employees
    assert emp["exit_date"].iloc[[r - 1 for r in rows]].isna().all()


@pytest.mark.parametrize(
    ("column", "value", "exit_type", "text"),
    [
        ("hire_date", "0001-01-01", None, "hire_date 0001-01-01 is before 1900-01-01"),
        ("hire_date", "1600-01-01", None, "hire_date 1600-01-01 is before 1900-01-01"),
        ("exit_date", "2300-01-01", "voluntary", "exit_date 2300-01-01 is after 2199-12-31"),
        ("exit_date", "9999-12-31", "voluntary", "exit_date 9999-12-31 is after 2199-12-31"),
    ],
)
def test_out_of_range_dates_are_errors(
    data: Path, capsys, column: str, value: str, exit_type: str | None, text: str
) -> None:
    set_cell(data, "employees", 17, column, value)
    if exit_type:
        set_cell(data, "employees", 17, "exit_type", exit_type)
    code, _, err = validate(data, capsys)
    assert_one_line_error(code, err, "employees.csv", column, 17, text)


def _employees_parquet(
    d: Path, kind: str, column: str, row: int, value: dt.date, exit_type: str | None = "voluntary"
) -> None:
    """Rewrite employees as Parquet with typed date columns (`date32` or `timestamp[kind]`)."""
    emp = pd.read_csv(d / "employees.csv", dtype=str, keep_default_na=False)
    (d / "employees.csv").unlink()
    if exit_type is not None:
        emp.loc[row - 1, "exit_type"] = exit_type
    table = pa.Table.from_pandas(emp, preserve_index=False).replace_schema_metadata(None)
    for col in ("hire_date", "exit_date"):
        days = [dt.date.fromisoformat(v) if v else None for v in emp[col]]
        if col == column:
            days[row - 1] = value
        if kind == "date":
            arr = pa.array(days, pa.date32())
        else:
            arr = pa.array(
                [dt.datetime(v.year, v.month, v.day) if v else None for v in days],
                pa.timestamp(kind),
            )
        table = table.set_column(table.schema.get_field_index(col), col, arr)
    pq.write_table(table, d / "employees.parquet")


@pytest.mark.parametrize("kind", ["date", "s", "ms", "us"])
@pytest.mark.parametrize(
    ("column", "value", "text"),
    [
        ("hire_date", dt.date(1, 1, 1), "hire_date 0001-01-01 is before 1900-01-01"),
        ("exit_date", dt.date(2300, 1, 1), "exit_date 2300-01-01 is after 2199-12-31"),
    ],
)
def test_out_of_range_parquet_dates_are_errors(
    data: Path, capsys, kind: str, column: str, value: dt.date, text: str
) -> None:
    _employees_parquet(data, kind, column, 17, value)
    code, _, err = validate(data, capsys)
    assert_one_line_error(code, err, "employees.parquet", column, 17, text)


@pytest.mark.parametrize("kind", ["date", "us"])
def test_open_ended_parquet_exit_date_reads_as_still_employed(
    data: Path, capsys, kind: str
) -> None:
    row = open_spell_rows(data, 1)[0]
    _employees_parquet(data, kind, "exit_date", row, dt.date(9999, 12, 31), exit_type=None)
    code, out, err = validate(data, capsys)
    assert code == 0, err
    assert "1 exit_date(s) of 9999-12-31" in err
    assert_latest(out, LATEST)


# --------------------------------------------------------------------------- 2. the future


def test_future_employee_dates_warn_and_never_move_latest_month(data: Path, capsys) -> None:
    for name in ("engagement", "workload", "cx"):
        (data / f"{name}.csv").unlink()
    resign = open_spell_rows(data, 1)[0]
    set_cell(data, "employees", resign, "exit_date", "2025-03-31")
    set_cell(data, "employees", resign, "exit_type", "voluntary")

    def hire(rows: Rows) -> None:
        new = list(rows[1])
        header = rows[0]
        new[header.index("employee_id")] = "E9999999"
        new[header.index("hire_date")] = "2025-04-01"
        new[header.index("exit_date")] = new[header.index("exit_type")] = ""
        rows.append(new)

    edit(data, "employees", hire)
    code, out, err = validate(data, capsys)
    assert code == 0, err
    assert "employees.csv: 2 row(s) hold a hire or exit date after today (2025-02-10)" in err
    assert_latest(out, LATEST)


def test_latest_month_is_before_the_current_month(data: Path, capsys, monkeypatch) -> None:
    # Data up to 2024-12 but "today" in 2024-12: that month is not over yet.
    monkeypatch.setenv("FORECAST_TODAY", "2024-12-15")
    code, out, err = validate(data, capsys)
    assert code == 0, err
    assert_latest(out, "2024-11")


def add_current_month(rows: Rows) -> None:
    """A row for every team in TODAY's month (2025-02)."""
    teams = sorted({r[0] for r in rows[1:]})
    rows += [[t, TODAY[:7]] + ["50"] * (len(rows[0]) - 2) for t in teams]


def test_future_rows_do_not_change_features_as_of_latest_month(data: Path) -> None:
    specs = load_specs()
    before = load_tables(data)
    resign = open_spell_rows(data, 1)[0]
    set_cell(data, "employees", resign, "exit_date", "2025-03-31")
    set_cell(data, "employees", resign, "exit_type", "voluntary")

    def hire(rows: Rows) -> None:
        new = list(rows[resign])  # a new colleague in the same team
        new[rows[0].index("employee_id")] = "E9999999"
        new[rows[0].index("hire_date")] = "2025-03-01"
        rows.append(new)

    edit(data, "employees", hire)
    for table in ("workload", "cx"):  # and rows for the current month, which is not over
        edit(data, table, add_current_month)
    after = load_tables(data)
    assert any("after today" in w for w in after.warnings)
    assert str(latest_complete_month(after)) == str(latest_complete_month(before)) == LATEST
    pd.testing.assert_frame_equal(
        build_panel(before, specs, as_of=LATEST), build_panel(after, specs, as_of=LATEST)
    )
    pd.testing.assert_frame_equal(build_panel(before, specs), build_panel(after, specs))
    pd.testing.assert_frame_equal(build_targets(before, 3), build_targets(after, 3))


@pytest.mark.parametrize("column", ["hire_date", "exit_date"])
def test_date_more_than_two_years_ahead_is_an_error(data: Path, capsys, column: str) -> None:
    set_cell(data, "employees", 17, column, "2099-01-01")
    set_cell(data, "employees", 17, "exit_type", "voluntary")
    code, _, err = validate(data, capsys)
    assert_one_line_error(code, err, "employees.csv", column, 17, "more than 2 years after today")


def test_monthly_rows_for_the_current_month_do_not_complete_it(data: Path, capsys) -> None:
    edit(data, "workload", add_current_month)
    edit(data, "cx", add_current_month)
    code, out, err = validate(data, capsys)
    assert code == 0, err
    assert "workload.csv: 40 row(s) are for the current month 2025-02 or later" in err
    assert "cx.csv: 40 row(s) are for the current month 2025-02 or later" in err
    assert_latest(out, LATEST)


def test_month_more_than_two_years_ahead_is_an_error(data: Path, capsys) -> None:
    set_cell(data, "cx", 5, "month", "2099-01")
    code, _, err = validate(data, capsys)
    assert_one_line_error(code, err, "cx.csv", "month", 5, "month 2099-01 is more than 2 years")


def test_forecast_today_must_be_a_date(monkeypatch) -> None:
    monkeypatch.setenv("FORECAST_TODAY", "2025-02-30")
    with pytest.raises(ConfigError, match="FORECAST_TODAY"):
        today()


# --------------------------------------------------------------------------- 3. numbers


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        ("workload", "after_hours_ratio", "inf"),
        ("workload", "after_hours_ratio", "-Infinity"),
        ("engagement", "engagement", "1e400"),
        ("cx", "responses", "inf"),
        ("cx", "csat", "-Infinity"),
    ],
)
def test_infinities_are_errors(data: Path, capsys, table: str, column: str, value: str) -> None:
    set_cell(data, table, 9, column, value)
    code, _, err = validate(data, capsys)
    assert_one_line_error(code, err, f"{table}.csv", column, 9, f"{value!r} is not a finite number")


def test_infinity_in_parquet_is_an_error(data: Path, capsys) -> None:
    wl = pd.read_csv(data / "workload.csv", dtype={"team_id": str})
    wl.loc[8, "after_hours_ratio"] = np.inf
    (data / "workload.csv").unlink()
    wl.to_parquet(data / "workload.parquet")
    code, _, err = validate(data, capsys)
    assert_one_line_error(
        code, err, "workload.parquet", "after_hours_ratio", 9, "'inf' is not a finite number"
    )


@pytest.mark.parametrize("token", ["NA", "N/A", "n/a", "NaN", "null", "NULL", "-", ""])
def test_missing_value_tokens_read_as_missing(data: Path, capsys, token: str) -> None:
    set_cell(data, "workload", 9, "after_hours_ratio", token)
    set_cell(data, "cx", 9, "responses", token)
    code, _, err = validate(data, capsys)
    assert code == 0, err
    assert "workload.csv, column after_hours_ratio: 1 suppressed (empty) value(s)" in err
    t = load_tables(data)
    assert "after_hours_ratio" in t.signals["workload"]
    assert np.isnan(t.workload["after_hours_ratio"].iloc[8])
    assert np.isnan(t.cx["responses"].iloc[8])


def test_missing_value_tokens_leave_ids_and_dates_as_text_or_empty(data: Path) -> None:
    row = open_spell_rows(data, 1)[0]
    set_cell(data, "employees", row, "exit_date", "NULL")
    set_cell(data, "employees", row, "exit_type", "NA")
    set_cell(data, "employees", row, "employee_id", "007")
    emp = load_tables(data).employees
    assert emp["employee_id"].iloc[row - 1] == "007"
    assert pd.isna(emp["exit_date"].iloc[row - 1]) and pd.isna(emp["exit_type"].iloc[row - 1])


@pytest.mark.parametrize("value", ["0,03", "high"])
def test_stray_text_in_a_numeric_column_is_an_error(data: Path, capsys, value: str) -> None:
    set_cell(data, "workload", 9, "after_hours_ratio", value)
    code, _, err = validate(data, capsys)
    assert_one_line_error(
        code, err, "workload.csv", "after_hours_ratio", 9, f"{value!r} is not a number"
    )


def test_mostly_text_column_stays_a_text_attribute(data: Path, capsys) -> None:
    def texty(rows: Rows) -> None:
        j = rows[0].index("system_uptime")
        for i, r in enumerate(rows[1:]):
            if i % 3:  # two in three cells are words
                r[j] = "high"

    edit(data, "workload", texty)
    code, _, err = validate(data, capsys)
    assert code == 0, err
    assert "workload.csv, column system_uptime: non-numeric values (first at row 2)" in err
    assert "system_uptime" not in load_tables(data).signals["workload"]


# --------------------------------------------------------------------------- 4. team keys


def test_a_few_unmatched_team_keys_warn_with_examples(data: Path, capsys) -> None:
    def typo(rows: Rows) -> None:
        for r in rows[1:]:
            r[0] = {"T0003": "T3", "T0004": "T0O04"}.get(r[0], r[0])

    edit(data, "workload", typo)
    code, out, err = validate(data, capsys)
    assert code == 0, err
    lines = [line for line in err.splitlines() if "never appear in employees.csv" in line]
    assert len(lines) == 1, err
    assert "workload.csv, column team_id: 2 of 40 team(s)" in lines[0]
    assert "T3 (employees has T0003)" in lines[0] and "T0O04" in lines[0]
    assert_latest(out, LATEST)


def test_mostly_unmatched_team_keys_are_an_error(data: Path, capsys) -> None:
    def strip_letters(rows: Rows) -> None:
        for r in rows[1:]:
            r[0] = str(int(r[0][1:]))  # T0007 -> 7

    edit(data, "cx", strip_letters)
    code, _, err = validate(data, capsys)
    assert_one_line_error(
        code, err, "cx.csv", "team_id", 1, "40 of 40 teams never appear in employees.csv"
    )
    assert "(team_id=0, month=2022-01)" in err
