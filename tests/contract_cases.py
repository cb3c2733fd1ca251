"""A small valid data directory and the contract's hard errors as edits of it: shared by the
contract's tests and the CLI's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

EMPLOYEES = """employee_id,team_id,hire_date,exit_date,exit_type,gender,exit_reason
007,T1,2020-01-05,,,F,
008,T1,2020-02-05,2021-03-01,Voluntary,M,new job
009,T2,2020-02-05,2021-03-01,transfer,M,moved
009,T1,2021-03-01,,,M,
010,T2,2020-03-10,2020-09-30,involuntary,F,
"""


ENGAGEMENT = """team_id,month,responses,engagement,manager_support
T1,2020-03,8,3.9,4.1
T2,2020-03,3,,
T1,2020-06,9,3.7,4.0
"""


WORKLOAD = """team_id,month,after_hours_ratio,cases_per_head,site_code
T1,2020-01,0.10,40,11
T1,2020-02,0.12,41,11
T2,2020-02,0.30,55,12
T1,2020-03,0.11,39,11
T2,2020-03,0.28,50,12
"""


CX = """team_id,month,csat,responses
T1,2020-01,80,10
T1,2020-02,81,
T2,2020-02,70,3
T1,2020-03,79,12
T2,2020-03,71,4
"""


GOOD = {"employees": EMPLOYEES, "engagement": ENGAGEMENT, "workload": WORKLOAD, "cx": CX}


def write_dir(tmp_path: Path, tables: dict[str, str], name: str = "data") -> Path:
    d = tmp_path / name
    d.mkdir()
    for stem, text in tables.items():
        (d / f"{stem}.csv").write_text(text, encoding="utf-8")
    return d


def replace_line(text: str, line_no: int, new: str) -> str:
    """Replace data row `line_no` (1-based, header not counted)."""
    lines = text.splitlines()
    lines[line_no] = new
    return "\n".join(lines) + "\n"


def edit(table: str, fn: Callable[[str], str]) -> dict[str, str]:
    tables = dict(GOOD)
    tables[table] = fn(tables[table])
    return tables


CASES = {
    "exit_before_hire": (
        edit(
            "employees", lambda s: replace_line(s, 2, "008,T1,2021-05-14,2021-03-01,voluntary,M,")
        ),
        "employees.csv",
        "exit_date",
        "row 2 (employee_id=008, team_id=T1)",
        "before hire date 2021-05-14",
    ),
    "bad_hire_date": (
        edit("employees", lambda s: replace_line(s, 3, "009,T2,05/02/2020,2021-03-01,transfer,M,")),
        "employees.csv",
        "hire_date",
        "row 3",
        "not a date",
    ),
    "bad_exit_date": (
        edit(
            "employees", lambda s: replace_line(s, 2, "008,T1,2020-02-05,2021-13-45,voluntary,M,")
        ),
        "employees.csv",
        "exit_date",
        "row 2",
        "not a date",
    ),
    "empty_employee_id": (
        edit("employees", lambda s: replace_line(s, 2, ",T1,2020-02-05,,,M,")),
        "employees.csv",
        "employee_id",
        "row 2",
        "is empty",
    ),
    "empty_team_id": (
        edit("employees", lambda s: replace_line(s, 1, "007,,2020-01-05,,,F,")),
        "employees.csv",
        "team_id",
        "row 1",
        "is empty",
    ),
    "bad_exit_type": (
        edit("employees", lambda s: replace_line(s, 2, "008,T1,2020-02-05,2021-03-01,quit,M,")),
        "employees.csv",
        "exit_type",
        "row 2",
        "'quit' is not one of",
    ),
    "exit_type_without_date": (
        edit("employees", lambda s: replace_line(s, 2, "008,T1,2020-02-05,,voluntary,M,")),
        "employees.csv",
        "exit_date",
        "row 2",
        "has no exit_date",
    ),
    "exit_date_without_type": (
        edit("employees", lambda s: replace_line(s, 2, "008,T1,2020-02-05,2021-03-01,,M,")),
        "employees.csv",
        "exit_type",
        "row 2",
        "has no exit_type",
    ),
    "overlapping_spells": (
        edit("employees", lambda s: replace_line(s, 4, "009,T1,2021-02-01,,,M,")),
        "employees.csv",
        "hire_date",
        "row 4 (employee_id=009",
        "overlaps the spell on row 3",
    ),
    "missing_employee_column": (
        edit("employees", lambda s: s.replace("exit_type", "leave_type", 1)),
        "employees.csv",
        "exit_type",
        None,
        "required column exit_type is missing",
    ),
    "missing_cx_column": (
        edit("cx", lambda s: s.replace("csat", "score", 1)),
        "cx.csv",
        "csat",
        None,
        "required column csat is missing",
    ),
    "missing_month_column": (
        edit("workload", lambda s: s.replace("month", "period", 1)),
        "workload.csv",
        "month",
        None,
        "required column month is missing",
    ),
    "bad_month": (
        edit("workload", lambda s: replace_line(s, 2, "T1,2020-2,0.12,41,11")),
        "workload.csv",
        "month",
        "row 2 (team_id=T1",
        "not a month",
    ),
    "month_13": (
        edit("cx", lambda s: replace_line(s, 3, "T2,2020-13,70,3")),
        "cx.csv",
        "month",
        "row 3",
        "not a month",
    ),
    "duplicate_team_month": (
        edit("workload", lambda s: replace_line(s, 3, "T1,2020-02,0.3,55,12")),
        "workload.csv",
        "month",
        "row 3 (team_id=T1, month=2020-02)",
        "duplicate row",
    ),
    "csat_out_of_range": (
        edit("cx", lambda s: replace_line(s, 4, "T1,2020-03,179,12")),
        "cx.csv",
        "csat",
        "row 4 (team_id=T1, month=2020-03)",
        "outside 0..100",
    ),
    "csat_not_a_number": (
        edit("cx", lambda s: replace_line(s, 1, "T1,2020-01,good,10")),
        "cx.csv",
        "csat",
        "row 1",
        "not a number",
    ),
    "negative_responses": (
        edit("engagement", lambda s: replace_line(s, 3, "T1,2020-06,-9,3.7,4.0")),
        "engagement.csv",
        "responses",
        "row 3",
        "negative",
    ),
    "empty_signal_column": (
        edit(
            "workload",
            lambda s: (
                s.replace("0.10", "")
                .replace("0.12", "")
                .replace("0.30", "")
                .replace("0.11", "")
                .replace("0.28", "")
            ),
        ),
        "workload.csv",
        "after_hours_ratio",
        None,
        "no value at all",
    ),
    "empty_team_in_monthly": (
        edit("cx", lambda s: replace_line(s, 2, ",2020-02,81,")),
        "cx.csv",
        "team_id",
        "row 2",
        "is empty",
    ),
}
