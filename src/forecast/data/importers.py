"""Adapters: turn public HR exports into a contract data directory (docs/adapters.md).

Two layers, on purpose:
- pure converters (`convert_mfg`, `convert_hrdataset`) take the source as a frame of text and
  return contract-format frames plus `meta.json` content, counts and caveats. They never open a
  file, so every mapping rule is testable on a few hand-written rows;
- one edge function (`import_source`) reads the source file, converts it, writes the directory
  through a temporary sibling, validates it with `forecast.contract.load_tables` (the same checks
  `forecast validate` runs) and only then moves it into place.

This module must never invent signals the source does not hold (no simulated monthly tables),
never carry names, and never copy a source file into the repository.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecast.data.atomic import check_writable_parent, json_text
from forecast.data.contract import load_tables, read_csv_text
from forecast.data.lineage import file_sha256
from forecast.data.months import parse_month
from forecast.data.tables import TABLE_NAMES
from forecast.errors import ConfigError, DataError, OutputError, check_param

SOURCES = ("mfg", "hrdataset")
TEAM_BY: dict[str, tuple[str, ...]] = {
    "mfg": ("store", "store-department"),
    "hrdataset": ("department", "manager"),
}
RETIREMENT_AS = ("voluntary", "involuntary")
MFG_NOT_TERMINATED = "1/1/1900"  # the export's placeholder for "still employed"
SOURCE_DATE_FORMAT = "%m/%d/%Y"

MFG_COLUMNS = (
    "EmployeeID",
    "recorddate_key",
    "birthdate_key",
    "orighiredate_key",
    "terminationdate_key",
    "city_name",
    "department_name",
    "job_title",
    "store_name",
    "gender_short",
    "termreason_desc",
    "termtype_desc",
    "STATUS_YEAR",
    "STATUS",
    "BUSINESS_UNIT",
)
# The source misspells "Resignaton"; the reason is normalised so reports read cleanly.
MFG_REASONS = {
    "resignaton": "resignation",
    "resignation": "resignation",
    "retirement": "retirement",
    "layoff": "layoff",
}
MFG_TYPES = {"voluntary": "voluntary", "involuntary": "involuntary"}

HRD_COLUMNS = (
    "EmpID",
    "DateofHire",
    "DateofTermination",
    "EmploymentStatus",
    "TermReason",
    "Department",
    "ManagerName",
    "ManagerID",
    "Position",
    "Sex",
    "DOB",
    "EngagementSurvey",
    "EmpSatisfaction",
    "LastPerformanceReview_Date",
)
HRD_STATUS = {
    "active": None,
    "voluntarily terminated": "voluntary",
    "terminated for cause": "involuntary",
}
# The files this adapter writes; with --force only a directory holding nothing else is replaced.
OWN_FILES = (*(f"{t}.{ext}" for t in TABLE_NAMES for ext in ("csv", "parquet")), "meta.json")


@dataclass
class Converted:
    """A converted source: contract frames, meta.json content, figures and caveats."""

    source: str
    frames: dict[str, pd.DataFrame]
    meta: dict[str, Any]
    stats: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class ImportResult:
    """What `forecast import` prints: the converted figures plus the validation outcome."""

    source: str
    input_file: str
    out_dir: Path
    rows_in: int
    tables: dict[str, int]
    teams: int
    employees: int
    stats: dict[str, Any]
    notes: list[str]
    warnings: list[str]
    data_start: str | None


# --------------------------------------------------------------------------- shared helpers


def _require_columns(frame: pd.DataFrame, columns: tuple[str, ...], file: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"required column {missing[0]} is missing; is this the right export? "
            f"(expected {', '.join(columns)}).",
            file=file,
            column=missing[0],
        )


def _text(series: pd.Series) -> pd.Series:
    """Trimmed text with empty cells as <NA> (source exports pad values with spaces)."""
    out = series.astype("string").str.strip()
    return out.mask(out == "", pd.NA)


def _parse_source_dates(
    frame: pd.DataFrame, column: str, *, file: str, key: str, allow_empty: bool = False
) -> pd.Series:
    """Parse M/D/YYYY (optionally followed by a time, as in `12/31/2006 0:00`) strictly.

    A bad value raises DataError with the 1-based data row and the key, like the contract does,
    so a user can find it in the source file rather than in our output.
    """
    text = _text(frame[column]).str.split(" ").str[0]
    parsed = pd.to_datetime(text, format=SOURCE_DATE_FORMAT, errors="coerce")
    bad = parsed.isna() & (text.notna() if allow_empty else True)
    hits = np.flatnonzero(bad.to_numpy(dtype=bool))
    if hits.size:
        i = int(hits[0])
        value = frame[column].iloc[i]
        what = "is empty" if pd.isna(text.iloc[i]) else f"{value!r} is not a date M/D/YYYY"
        raise DataError(
            f"{column} {what}.",
            file=file,
            column=column,
            row=i + 1,
            key=f"{key}={frame[key].iloc[i]}",
        )
    return parsed.astype("datetime64[ns]")


def _row_error(
    frame: pd.DataFrame, i: int, column: str, key: str, message: str, file: str
) -> DataError:
    return DataError(
        message, file=file, column=column, row=int(i) + 1, key=f"{key}={frame[key].iloc[int(i)]}"
    )


def _first(mask: pd.Series | np.ndarray) -> int | None:
    hits = np.flatnonzero(np.asarray(mask, dtype=bool))
    return int(hits[0]) if hits.size else None


# --------------------------------------------------------------------------- mfg


def _required_ids(f: pd.DataFrame, key: str, file: str) -> pd.Series:
    """The employee id column as text; an empty id is an error naming its row."""
    ids = _text(f[key])
    idx = _first(ids.isna())
    if idx is not None:
        raise _row_error(f, idx, key, key, f"{key} is empty.", file)
    return ids


def convert_mfg(
    frame: pd.DataFrame,
    *,
    file: str = "MFG10YearTerminationData.csv",
    team_by: str = "store",
    retirement_as: str = "voluntary",
) -> Converted:
    """Yearly employee snapshots (one row per employee per STATUS_YEAR) -> one spell each.

    The exit comes only from the employee's TERMINATED row: the export also writes the
    termination date onto the same person's earlier ACTIVE snapshots, which would leak the
    future into any as-of view built from those rows.
    """
    check_param("--team-by", team_by, team_by in TEAM_BY["mfg"], "one of store, store-department")
    check_param(
        "--retirement-as",
        retirement_as,
        retirement_as in RETIREMENT_AS,
        "one of voluntary, involuntary",
    )
    _require_columns(frame, MFG_COLUMNS, file)
    f = frame.reset_index(drop=True)
    key = "EmployeeID"
    ids = _required_ids(f, key, file)
    status = _text(f["STATUS"]).str.upper()
    idx = _first(~status.isin(["ACTIVE", "TERMINATED"]).fillna(False))
    if idx is not None:
        raise _row_error(
            f,
            idx,
            "STATUS",
            key,
            f"STATUS {f['STATUS'].iloc[idx]!r} is not ACTIVE or TERMINATED.",
            file,
        )
    years = pd.to_numeric(_text(f["STATUS_YEAR"]), errors="coerce")
    idx = _first(years.isna())
    if idx is not None:
        raise _row_error(
            f,
            idx,
            "STATUS_YEAR",
            key,
            f"STATUS_YEAR {f['STATUS_YEAR'].iloc[idx]!r} is not a year.",
            file,
        )
    hire = _parse_source_dates(f, "orighiredate_key", file=file, key=key)
    birth = _parse_source_dates(f, "birthdate_key", file=file, key=key)
    store = _text(f["store_name"])
    idx = _first(store.isna())
    if idx is not None:
        raise _row_error(f, idx, "store_name", key, "store_name is empty.", file)

    # One spell per employee needs one hire date per employee across the snapshots.
    n_hire = hire.groupby(ids.to_numpy()).transform("nunique")
    idx = _first(n_hire > 1)
    if idx is not None:
        raise _row_error(
            f,
            idx,
            "orighiredate_key",
            key,
            "this employee has different hire dates in different snapshots.",
            file,
        )

    terminated = (status == "TERMINATED").to_numpy()
    term_rows = f.loc[terminated]
    dup_term = ids[terminated].duplicated()
    idx = _first(dup_term)
    if idx is not None:
        i = int(np.flatnonzero(terminated)[idx])
        raise _row_error(f, i, "STATUS", key, "this employee has a second TERMINATED row.", file)
    term_pos = np.flatnonzero(terminated)
    exit_date = _parse_source_dates(
        term_rows.reset_index(drop=True), "terminationdate_key", file=file, key=key
    )
    ttype = _text(term_rows["termtype_desc"]).str.lower().map(MFG_TYPES)
    idx = _first(ttype.isna())
    if idx is not None:
        i = int(term_pos[idx])
        raise _row_error(
            f,
            i,
            "termtype_desc",
            key,
            f"termtype_desc {f['termtype_desc'].iloc[i]!r} on a TERMINATED row is "
            f"not Voluntary or Involuntary.",
            file,
        )
    reason_raw = _text(term_rows["termreason_desc"]).str.lower()
    reason = reason_raw.map(MFG_REASONS).fillna(reason_raw)
    exits = pd.DataFrame(
        {
            "employee_id": ids[terminated].to_numpy(),
            "exit_date": exit_date.to_numpy(),
            "exit_type": ttype.to_numpy(),
            "exit_reason": reason.to_numpy(),
        }
    )
    retire = exits["exit_reason"] == "retirement"
    # Retirement is voluntary in the source, but 70% of its voluntary exits are retirements at
    # exactly 60 or 65; `involuntary` keeps them out of the voluntary leavers (they still leave
    # the headcount), so a backtest can be reported with and without them.
    exits.loc[retire, "exit_type"] = retirement_as

    # Attributes are constant per employee in this export; the latest snapshot is taken so a
    # changed value would be the current one.
    order = np.lexsort((terminated.astype(int), years.to_numpy(), ids.to_numpy(dtype=str)))
    last = f.iloc[order].assign(_id=ids.iloc[order].to_numpy()).drop_duplicates("_id", keep="last")
    dept = _text(last["department_name"])
    store_last = _text(last["store_name"])
    team = store_last if team_by == "store" else store_last + "/" + dept.fillna("")
    emp = pd.DataFrame(
        {
            "employee_id": last["_id"].to_numpy(),
            "team_id": team.to_numpy(),
            "hire_date": hire.loc[last.index].to_numpy(),
        }
    )
    emp = emp.merge(exits, on="employee_id", how="left")
    emp["store_id"] = store_last.to_numpy()
    emp["city"] = _text(last["city_name"]).to_numpy()
    emp["business_unit"] = _text(last["BUSINESS_UNIT"]).to_numpy()
    emp["department"] = dept.to_numpy()
    emp["job_title"] = _text(last["job_title"]).to_numpy()
    # Protected: carried for fairness audits only; the contract keeps them out of features.
    emp["gender"] = _text(last["gender_short"]).to_numpy()
    emp["birth_year"] = birth.loc[last.index].dt.year.to_numpy()
    emp = emp.sort_values(["team_id", "employee_id"], kind="stable").reset_index(drop=True)

    first_year = int(years.min())
    dup_pairs = pd.DataFrame({"id": ids, "y": years}).duplicated().sum()
    active = ~terminated
    lookahead = int(
        (
            active
            & (_text(f["terminationdate_key"]) != MFG_NOT_TERMINATED).fillna(False).to_numpy()
        ).sum()
    )
    stats: dict[str, Any] = {
        "source_rows": len(f),
        "snapshot_years": f"{first_year}..{int(years.max())}",
        "employees": len(emp),
        "teams": int(emp["team_id"].nunique()),
        "hire_dates": f"{emp['hire_date'].min():%Y-%m-%d}..{emp['hire_date'].max():%Y-%m-%d}",
        "leavers_voluntary": int((emp["exit_type"] == "voluntary").sum()),
        "leavers_involuntary": int((emp["exit_type"] == "involuntary").sum()),
        "retirements": int(retire.sum()),
        "retirement_as": retirement_as,
        "duplicate_employee_years": int(dup_pairs),
        "active_rows_with_future_exit_ignored": lookahead,
        "snapshot_check": snapshot_check(f, emp),
    }
    notes = [
        f"{lookahead} ACTIVE snapshot rows carry a termination date; ignored (look-ahead); "
        f"exits come from TERMINATED rows only.",
        f"{int(dup_pairs)} duplicated employee-year pairs (an ACTIVE 12/31 snapshot beside the "
        f"TERMINATED row of a 12/31 leaver) collapse into one spell each.",
        f"{int(retire.sum())} retirements counted as {retirement_as} "
        f"(exit_reason 'retirement'; use --retirement-as to change).",
        f"data_start {first_year}-01: the export holds only people employed in {first_year} or "
        f"later (hires go back to {emp['hire_date'].min():%Y}), so earlier months lack leavers.",
        "yearly source: tenure and headcount are monthly from the dates; there are no "
        "engagement, workload or CX tables.",
    ]
    meta = {"data_start": f"{first_year}-01"}
    return Converted("mfg", {"employees": emp}, meta, stats, notes)


def headcount_at(employees: pd.DataFrame, month: pd.Period, by: str = "team_id") -> pd.Series:
    """Contract headcount at the end of `month`: hired in or before it and not exited by then."""
    hire_m = pd.to_datetime(employees["hire_date"]).dt.to_period("M")
    exit_m = pd.to_datetime(employees["exit_date"]).dt.to_period("M")
    on = (hire_m <= month) & ~(exit_m <= month).fillna(False)
    return employees.loc[on.to_numpy(dtype=bool)].groupby(by).size()


def snapshot_check(source: pd.DataFrame, employees: pd.DataFrame) -> list[dict[str, int]]:
    """Per snapshot year: our December headcount vs the source's ACTIVE rows for that year.

    The two should agree except for people who leave on 12/31: they also have an ACTIVE 12/31
    snapshot, while the contract (whole months) counts them as gone by the end of December.
    """
    status = _text(source["STATUS"]).str.upper()
    years = pd.to_numeric(_text(source["STATUS_YEAR"]), errors="coerce")
    out = []
    for year in sorted(years.dropna().astype(int).unique()):
        ours = int(headcount_at(employees, pd.Period(f"{year}-12", freq="M")).sum())
        src = int(_text(source.loc[(status == "ACTIVE") & (years == year), "EmployeeID"]).nunique())
        out.append({"year": int(year), "ours": ours, "source_active": src, "diff": ours - src})
    return out


# --------------------------------------------------------------------------- hrdataset


def _birth_year(dob: pd.Series, hire: pd.Series) -> pd.Series:
    """Four-digit birth year from a 2-digit-year DOB (`07/10/83`).

    strptime's %y puts 00-68 in the 2000s, which would make a 1951 birth a 2051 one; instead
    the century is the latest that still makes the person at least 14 at hire.
    """
    yy = pd.to_numeric(dob.str.split("/").str[-1], errors="coerce")
    candidate = 2000 + yy
    return candidate.where(candidate <= hire.dt.year - 14, 1900 + yy).astype("Int64")


def convert_hrdataset(
    frame: pd.DataFrame,
    *,
    file: str = "HRDataset_v14.csv",
    team_by: str = "department",
    min_group: int = 5,
) -> Converted:
    """Huebner & Patalano HR data set v14: one row per employee -> employees + engagement.

    The engagement table is a single snapshot per person, placed in the month of their last
    performance review; a department-month cell with fewer than `min_group` answers keeps its
    response count but has its signals emptied, as a survey vendor would.
    """
    check_param("--team-by", team_by, team_by in TEAM_BY["hrdataset"], "one of department, manager")
    check_param("--min-group", min_group, min_group >= 1, "an integer of at least 1")
    _require_columns(frame, HRD_COLUMNS, file)
    f = frame.reset_index(drop=True)
    key = "EmpID"
    ids = _required_ids(f, key, file)
    idx = _first(ids.duplicated())
    if idx is not None:
        raise _row_error(f, idx, key, key, "EmpID appears twice; one row per employee.", file)
    hire = _parse_source_dates(f, "DateofHire", file=file, key=key)
    exit_ = _parse_source_dates(f, "DateofTermination", file=file, key=key, allow_empty=True)
    review = _parse_source_dates(
        f, "LastPerformanceReview_Date", file=file, key=key, allow_empty=True
    )
    status = _text(f["EmploymentStatus"]).str.lower()
    etype = status.map(HRD_STATUS)
    idx = _first(~status.isin(list(HRD_STATUS)).fillna(True))
    if idx is not None:
        raise _row_error(
            f,
            idx,
            "EmploymentStatus",
            key,
            f"EmploymentStatus {f['EmploymentStatus'].iloc[idx]!r} is not Active, "
            f"Voluntarily Terminated or Terminated for Cause.",
            file,
        )
    idx = _first(etype.notna() & exit_.isna())
    if idx is not None:
        raise _row_error(
            f,
            idx,
            "DateofTermination",
            key,
            "a terminated employee has no DateofTermination.",
            file,
        )
    idx = _first(etype.isna() & exit_.notna())
    if idx is not None:
        raise _row_error(
            f, idx, "EmploymentStatus", key, "an Active employee has a DateofTermination.", file
        )

    dept = _text(f["Department"])  # values carry trailing spaces in the source
    idx = _first(dept.isna())
    if idx is not None:
        raise _row_error(f, idx, "Department", key, "Department is empty.", file)
    manager = _fill_manager_ids(f, file)
    team = dept if team_by == "department" else manager
    emp = pd.DataFrame(
        {
            "employee_id": ids,
            "team_id": team,
            "hire_date": hire,
            "exit_date": exit_,
            "exit_type": etype.astype("string"),
            "exit_reason": _text(f["TermReason"]).where(etype.notna()),
            "department": dept,
            "manager_id": manager,
            "position": _text(f["Position"]),
            # Protected: carried for fairness audits only, never features. Name, race, marital
            # status, citizenship, ethnicity, state and zip are deliberately not carried.
            "gender": _text(f["Sex"]),
            "birth_year": _birth_year(_text(f["DOB"]), hire),
        }
    )
    idx = _first(emp["birth_year"].isna())
    if idx is not None:
        raise _row_error(f, idx, "DOB", key, f"DOB {f['DOB'].iloc[idx]!r} is not M/D/YY.", file)

    engagement, eng_stats, eng_notes = _hrd_engagement(
        f, team, hire, exit_, review, min_group, file
    )
    frames = {"employees": emp.sort_values(["team_id", "employee_id"]).reset_index(drop=True)}
    if engagement is not None:
        frames["engagement"] = engagement
    stats: dict[str, Any] = {
        "source_rows": len(f),
        "employees": len(emp),
        "teams": int(emp["team_id"].nunique()),
        "hire_dates": f"{hire.min():%Y-%m-%d}..{hire.max():%Y-%m-%d}",
        "exit_dates": f"{exit_.min():%Y-%m-%d}..{exit_.max():%Y-%m-%d}",
        "leavers_voluntary": int((emp["exit_type"] == "voluntary").sum()),
        "leavers_involuntary": int((emp["exit_type"] == "involuntary").sum()),
        **eng_stats,
    }
    notes = [
        f"teams by {team_by}; Department values trimmed of trailing spaces.",
        f"leavers appear from {exit_.min():%Y-%m} although hires go back to {hire.min():%Y-%m}: "
        f"a teaching set, not an HRIS history (set --data-start to exclude the early months).",
        *eng_notes,
    ]
    return Converted("hrdataset", frames, {}, stats, notes)


def _fill_manager_ids(f: pd.DataFrame, file: str) -> pd.Series:
    """ManagerID with blanks filled from the same ManagerName's only other ID.

    The source leaves ManagerID empty on a few rows of one manager who has an ID elsewhere;
    when a name maps to no ID or to several, guessing would misplace people, so it is an error.
    """
    ids = _text(f["ManagerID"])
    names = _text(f["ManagerName"])
    known = pd.DataFrame({"n": names, "i": ids}).dropna().drop_duplicates()
    unique = known.groupby("n")["i"].agg(lambda s: s.iloc[0] if len(s) == 1 else pd.NA)
    filled = ids.fillna(names.map(unique))
    idx = _first(filled.isna())
    if idx is not None:
        raise _row_error(
            f,
            idx,
            "ManagerID",
            "EmpID",
            f"ManagerID is empty and ManagerName {names.iloc[idx]!r} has no single "
            f"ID elsewhere in the file to fill it from.",
            file,
        )
    return filled.astype("string")


def _hrd_engagement(
    f: pd.DataFrame,
    team: pd.Series,
    hire: pd.Series,
    exit_: pd.Series,
    review: pd.Series,
    min_group: int,
    file: str,
) -> tuple[pd.DataFrame | None, dict[str, Any], list[str]]:
    values = {}
    for src, name in (("EngagementSurvey", "engagement"), ("EmpSatisfaction", "satisfaction")):
        text = _text(f[src])
        num = pd.to_numeric(text, errors="coerce")
        idx = _first(text.notna() & num.isna())
        if idx is not None:
            raise _row_error(
                f, idx, src, "EmpID", f"{src} {f[src].iloc[idx]!r} is not a number.", file
            )
        values[name] = num
    # A survey answer dated outside the person's employment cannot have been given to the
    # vendor as an employee of that team; the source has a few such rows.
    employed = (review >= hire) & ~(review > exit_).fillna(False)
    usable = review.notna() & employed
    answers = pd.DataFrame(
        {
            "team_id": team,
            "month": review.dt.to_period("M"),
            **values,
        }
    ).loc[usable.to_numpy(dtype=bool)]
    cells = (
        answers.groupby(["team_id", "month"], sort=True)
        .agg(
            responses=("engagement", "size"),
            engagement=("engagement", "mean"),
            satisfaction=("satisfaction", "mean"),
        )
        .reset_index()
    )
    small = cells["responses"] < min_group
    cells.loc[small, ["engagement", "satisfaction"]] = np.nan
    cells[["engagement", "satisfaction"]] = cells[["engagement", "satisfaction"]].round(3)
    cells["month"] = cells["month"].dt.strftime("%Y-%m")
    cells["responses"] = cells["responses"].astype(int)
    stats = {
        "engagement_cells": len(cells),
        "engagement_cells_suppressed": int(small.sum()),
        "survey_answers_outside_employment_dropped": int((review.notna() & ~employed).sum()),
    }
    notes = [
        f"engagement: one snapshot per person in the month of LastPerformanceReview_Date; "
        f"{int(small.sum())} of {len(cells)} team-month cells have under {min_group} answers "
        f"and are suppressed (signals empty, responses kept).",
    ]
    if stats["survey_answers_outside_employment_dropped"]:
        notes.append(
            f"{stats['survey_answers_outside_employment_dropped']} survey answer(s) dated before "
            f"hire or after exit were dropped."
        )
    if cells[["engagement", "satisfaction"]].isna().all().any():
        notes.append(
            f"every engagement cell is under {min_group} answers: no engagement table written."
        )
        return None, stats, notes
    return cells, stats, notes


# --------------------------------------------------------------------------- edge: files


def read_source_csv(path: Path) -> pd.DataFrame:
    """Every column as text (so `01960` and `007` survive); BOM and CRLF handled."""
    return read_csv_text(path)


def convert(
    source: str,
    frame: pd.DataFrame,
    *,
    file: str,
    team_by: str | None = None,
    retirement_as: str = "voluntary",
    min_group: int = 5,
) -> Converted:
    """Dispatch to the source's converter (pure: frame in, frames out)."""
    check_param("SOURCE", source, source in SOURCES, f"one of {', '.join(SOURCES)}")
    if source == "mfg":
        return convert_mfg(
            frame, file=file, team_by=team_by or "store", retirement_as=retirement_as
        )
    if retirement_as != "voluntary":
        raise ConfigError("`--retirement-as` applies to the mfg source only.")
    return convert_hrdataset(frame, file=file, team_by=team_by or "department", min_group=min_group)


def _write_frames(converted: Converted, directory: Path, fmt: str) -> None:
    for name, frame in converted.frames.items():
        out = frame.copy()
        for col in ("hire_date", "exit_date"):
            if col in out.columns:
                # ISO dates; an empty cell while employed, as the contract asks.
                out[col] = pd.to_datetime(out[col]).dt.strftime("%Y-%m-%d")
        if fmt == "csv":
            out.to_csv(directory / f"{name}.csv", index=False, lineterminator="\n")
        else:
            out.to_parquet(directory / f"{name}.parquet", index=False)
    if converted.meta:
        (directory / "meta.json").write_text(json_text(converted.meta), encoding="utf-8")


def _check_out_dir(out_dir: Path, force: bool) -> None:
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise OutputError(f"{out_dir} exists and is not a directory.")
    present = sorted(p.name for p in out_dir.iterdir())
    if not present:
        return
    foreign = [n for n in present if n not in OWN_FILES]
    if not force:
        raise OutputError(
            f"{out_dir} is not empty ({', '.join(present[:4])}); pass --force to replace a data "
            f"directory, or choose an empty one."
        )
    if foreign:
        # --force replaces a data directory, never a folder that holds anything else.
        raise OutputError(
            f"{out_dir} holds files that are not part of a data directory "
            f"({', '.join(foreign[:4])}); refusing to replace it even with --force."
        )


def import_source(
    source: str,
    path: Path | str,
    out_dir: Path | str,
    *,
    team_by: str | None = None,
    retirement_as: str = "voluntary",
    min_group: int = 5,
    data_start: str | None = None,
    fmt: str = "csv",
    force: bool = False,
) -> ImportResult:
    """Read a public export, convert it, write and validate a contract data directory.

    The directory is built beside OUT and validated before it replaces anything, so a failed
    import leaves an earlier OUT as it was.
    """
    check_param("SOURCE", source, source in SOURCES, f"one of {', '.join(SOURCES)}")
    check_param("--format", fmt, fmt in ("csv", "parquet"), "one of csv, parquet")
    if data_start is not None:
        try:
            parse_month(data_start)
        except ValueError:
            check_param("--data-start", data_start, False, "a month YYYY-MM")
    path, out_dir = Path(path), Path(out_dir)
    _check_out_dir(out_dir, force)
    check_writable_parent(out_dir, "--out")
    frame = read_source_csv(path)
    converted = convert(
        source,
        frame,
        file=path.name,
        team_by=team_by,
        retirement_as=retirement_as,
        min_group=min_group,
    )
    if data_start is not None:
        converted.meta["data_start"] = data_start
    if converted.meta:
        converted.meta["source"] = {
            "adapter": source,
            "file": path.name,
            "sha256": file_sha256(path),
            "team_by": team_by or TEAM_BY[source][0],
            **({"retirement_as": retirement_as} if source == "mfg" else {}),
        }

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.import-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        _write_frames(converted, staging, fmt)
        try:
            tables = load_tables(staging)
        except DataError as exc:
            raise DataError(
                f"the converted {source} data fail the contract, please report it: {exc}"
            ) from None
        if out_dir.exists():
            for name in OWN_FILES:
                (out_dir / name).unlink(missing_ok=True)
        out_dir.mkdir(parents=True, exist_ok=True)
        for item in staging.iterdir():
            item.replace(out_dir / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    emp = tables.employees
    return ImportResult(
        source=source,
        input_file=str(path),
        out_dir=out_dir,
        rows_in=len(frame),
        tables={n: len(tables.table(n)) for n in tables.present()},
        teams=int(emp["team_id"].nunique()),
        employees=int(emp["employee_id"].nunique()),
        stats=converted.stats,
        notes=converted.notes,
        warnings=list(tables.warnings),
        data_start=str(converted.meta.get("data_start"))
        if converted.meta.get("data_start")
        else None,
    )
