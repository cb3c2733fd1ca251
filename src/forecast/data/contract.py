"""Reading and validating a contract data directory (docs/data-contract.md).

This module is the input edge: it finds each table by stem (CSV or Parquet), reads identifiers
as strings, parses dates and months, discovers signal columns by type, and checks every hard
error the contract lists, raising `DataError` that names the file, the column and the first
offending row (1-based data row, header not counted) with its key values. A table read from a
database (`forecast.data.sources`) goes through the same checks; its rows have no number, so
they are named by their key values alone. It never builds features and never writes anything.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from forecast.data.months import MONTH_DTYPE, current_month, from_ordinal, month_str
from forecast.data.months import today as run_date
from forecast.data.tables import (
    EXIT_TYPES,
    MISSING_TOKENS,
    MONTHLY_TABLES,
    NON_SIGNAL,
    TABLE_NAMES,
    Tables,
    is_identifier_like,
    is_protected,
)
from forecast.errors import DataError

if TYPE_CHECKING:
    import pandera.pandas as pa

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "employees": ("employee_id", "team_id", "hire_date", "exit_date", "exit_type"),
    "engagement": ("team_id", "month"),
    "workload": ("team_id", "month"),
    "cx": ("team_id", "month", "csat"),
}
KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "employees": ("employee_id", "team_id"),
    "engagement": ("team_id", "month"),
    "workload": ("team_id", "month"),
    "cx": ("team_id", "month"),
}
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MONTH_RE = re.compile(r"^\d{4}-\d{2}$")
# Free-text columns of employees that never become features (and are never shown).
TEXT_COLUMNS = ("exit_reason",)
# Dates outside these bounds are typos (0001-01-01, 2300-01-01); the bounds also keep every
# date inside what a nanosecond timestamp can hold (1677..2262).
EARLIEST_DATE = np.datetime64("1900-01-01", "D")
LATEST_DATE = np.datetime64("2199-12-31", "D")
# How many HRIS exports write "no end date": with an empty exit_type it means still employed.
OPEN_END_DATE = np.datetime64("9999-12-31", "D")
# A date or month further ahead than this is a typo, not a signed offer or a notice period.
FUTURE_YEARS = 2
# A column is numeric when at least this share of its non-missing cells are numbers.
NUMERIC_SHARE = 0.5
_MISSING = frozenset(t.casefold() for t in MISSING_TOKENS)
_NAT = np.datetime64("NaT", "D")


@dataclass
class RawTable:
    """One table as read: every column as text (CSV) or as stored (Parquet, a database), plus
    where it came from (a file name, or a database table) for messages. `numbered`: rows are
    named by their 1-based data row number and key values (a file); a database's rows have no
    order of their own, so they are named by their key values only. `rows`: the file's row
    numbers when some rows were left out (read as of a month), else None (row i is number
    i + 1)."""

    name: str
    file: str
    frame: pd.DataFrame
    numbered: bool = True
    rows: np.ndarray | None = None

    def row_number(self, idx: int) -> int:
        return int(self.rows[idx]) if self.rows is not None else int(idx) + 1


@dataclass
class Summary:
    """What `forecast validate` prints on success."""

    source: str
    tables: dict[str, int] = field(default_factory=dict)  # rows per table
    teams: int = 0
    employees: int = 0
    months: dict[str, tuple[str, str]] = field(default_factory=dict)  # first, last per table
    signals: dict[str, list[str]] = field(default_factory=dict)
    protected: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    latest_complete_month: str | None = None
    data_start: str | None = None


# --------------------------------------------------------------------------- file discovery


def find_table_files(directory: Path) -> dict[str, Path]:
    """Map each contract table stem to its file; both `x.csv` and `x.parquet` is an error."""
    if not directory.exists():
        raise DataError(f"data directory {directory} does not exist.")
    if not directory.is_dir():
        raise DataError(f"{directory} is not a directory.")
    found: dict[str, Path] = {}
    for name in TABLE_NAMES:
        csv, parquet = directory / f"{name}.csv", directory / f"{name}.parquet"
        if csv.exists() and parquet.exists():
            raise DataError(
                f"both {csv.name} and {parquet.name} are present; keep one table per stem.",
                file=str(directory),
            )
        if csv.exists():
            found[name] = csv
        elif parquet.exists():
            found[name] = parquet
    if "employees" not in found:
        raise DataError(
            "required table employees (employees.csv or employees.parquet) is missing.",
            file=str(directory),
        )
    return found


def read_csv_text(path: Path, *, name: str | None = None) -> pd.DataFrame:
    """A CSV with every column as text (so `007` stays `007`); BOM and CRLF handled. Raises
    DataError for a missing, empty, non-UTF-8 or unparseable file, or a header with no rows."""
    name = name or path.name
    if not path.is_file():
        raise DataError(
            "the file does not exist." if not path.exists() else "this is not a file.",
            file=str(path),
        )
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError("the file is empty.", file=name)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"the file is not UTF-8 (byte 0x{raw[exc.start]:02x} on line {line}, "
            f"data row {max(line - 1, 1)}).",
            file=name,
        ) from None
    try:
        frame = pd.read_csv(
            path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig"
        )
    except pd.errors.EmptyDataError:
        raise DataError("the file is empty.", file=name) from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"the file cannot be read as CSV ({exc}).", file=name) from None
    if len(frame) == 0:
        raise DataError("the header has no data rows.", file=name)
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure is the user's unreadable file
        raise DataError(f"the file cannot be read as Parquet ({exc}).", file=path.name) from None
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    return frame


def read_raw_tables(directory: Path) -> dict[str, RawTable]:
    files = find_table_files(directory)
    out: dict[str, RawTable] = {}
    for name, path in files.items():
        frame = read_csv_text(path) if path.suffix == ".csv" else _read_parquet(path)
        if len(frame) == 0:
            raise DataError("the header has no data rows.", file=path.name)
        out[name] = RawTable(name, path.name, frame)
    return out


def read_meta(directory: Path) -> pd.Period | None:
    path = directory / "meta.json"
    if not path.exists():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"not valid JSON ({exc}).", file="meta.json") from None
    start = meta.get("data_start") if isinstance(meta, dict) else None
    if start is None:
        return None
    try:
        # The pattern alone lets an impossible month such as 2022-13 through.
        if isinstance(start, str) and MONTH_RE.match(start):
            return pd.Period(start, freq="M")
    except ValueError:
        pass
    raise DataError(
        f"data_start must be a month YYYY-MM. Got {start!r} instead.",
        file="meta.json",
        column="data_start",
    )


# --------------------------------------------------------------------------- parsing helpers


def _key_text(frame: pd.DataFrame, idx: int, keys: tuple[str, ...]) -> str:
    parts = []
    for k in keys:
        if k in frame.columns:
            v = frame[k].iloc[idx]
            if k == "month" and isinstance(v, dt.date):  # a database's DATE month
                v = f"{v.year:04d}-{v.month:02d}"
            parts.append(f"{k}={'' if pd.isna(v) else v}")
    return ", ".join(parts)


def _fail(raw: RawTable, column: str, idx: int, message: str) -> DataError:
    return DataError(
        message,
        file=raw.file,
        column=column,
        row=raw.row_number(idx) if raw.numbered else None,
        key=_key_text(raw.frame, int(idx), KEY_COLUMNS[raw.name]) or None,
    )


def _row_ref(raw: RawTable, idx: int) -> str:
    """A row for a message: `row 17` in a file, `row team_id=T1, month=2020-02` in a database."""
    if raw.numbered:
        return f"row {raw.row_number(idx)}"
    return f"row {_key_text(raw.frame, int(idx), KEY_COLUMNS[raw.name])}"


def _first(mask: np.ndarray | pd.Series) -> int | None:
    hits = np.flatnonzero(np.asarray(mask, dtype=bool))
    return int(hits[0]) if hits.size else None


def _as_text(series: pd.Series) -> pd.Series:
    """Identifiers as strings: `007` stays `007`; a Parquet integer becomes its decimal text."""
    if pd.api.types.is_float_dtype(series):
        # Parquet floats of whole numbers (from an integer column with nulls) print without .0
        as_int = series.dropna()
        if (as_int == np.floor(as_int)).all():
            return series.map(lambda v: pd.NA if pd.isna(v) else str(int(v))).astype("string")
    out = series.astype("string").str.strip()
    return out.mask(out == "", pd.NA)


def _clean_text(series: pd.Series) -> pd.Series:
    """Stripped text with the MISSING_TOKENS read as <NA> (numbers, dates, months, exit_type)."""
    text = series.astype("string").str.strip()
    # Arrow lowercases a column at once, Python casefolds it cell by cell (a tenth of reading
    # the data, issue 17); the two differ only on text that is not ASCII, casefolded here.
    folded = text.str.lower()
    other = ~text.str.isascii().fillna(True).to_numpy(dtype=bool)
    if other.any():
        folded[other] = text[other].str.casefold()
    return text.mask(folded.isin(_MISSING).fillna(True), pd.NA)


def _date_text(series: pd.Series) -> pd.Series:
    if series.dtype == object:
        # Parquet `date` columns arrive as datetime.date objects; spell them out ourselves, as
        # str() of year 1 is not zero-padded everywhere.
        series = series.map(
            lambda v: f"{v.year:04d}-{v.month:02d}-{v.day:02d}" if isinstance(v, dt.date) else v
        )
    return _clean_text(series)


def _date_days(raw: RawTable, column: str, *, allow_empty: bool) -> tuple[np.ndarray, pd.Series]:
    """Each cell as a day (numpy datetime64[D], NaT when empty) and as text for messages.

    Days, not pandas nanosecond timestamps: 0001-01-01 or 9999-12-31 cannot overflow here, and
    the range check runs before anything converts to nanoseconds.
    """
    s = raw.frame[column]
    if pd.api.types.is_datetime64_any_dtype(s):
        if isinstance(s.dtype, pd.DatetimeTZDtype):
            s = s.dt.tz_localize(None)
        days = s.to_numpy().astype("datetime64[D]")
        shown = pd.Series(np.datetime_as_string(days, unit="D"), index=s.index, dtype="string")
        text = shown.mask(np.isnat(days), pd.NA)
        bad = np.isnat(days) & (not allow_empty)
    else:
        text = _date_text(s)
        shaped = text.str.fullmatch(DATE_RE.pattern).fillna(False).to_numpy(dtype=bool)

        def part(a: int, b: int) -> np.ndarray:
            return _digits(text.str.slice(a, b).where(shaped)).to_numpy(
                dtype="float64", na_value=np.nan
            )

        year, month, day = part(0, 4), part(5, 7), part(8, 10)
        ok = shaped & (month >= 1) & (month <= 12)
        first = np.where(ok, (year - 1970) * 12 + month - 1, 0).astype("int64")
        start = first.astype("datetime64[M]").astype("datetime64[D]")
        length = ((first + 1).astype("datetime64[M]").astype("datetime64[D]") - start).astype(int)
        ok &= (day >= 1) & (day <= length)
        offset = np.where(ok, day - 1, 0).astype("int64").astype("timedelta64[D]")
        days = np.where(ok, start + offset, _NAT)
        empty = text.isna().to_numpy(dtype=bool)
        bad = ~ok & ~(empty & allow_empty)
    idx = _first(bad)
    if idx is not None:
        value = text.iloc[idx]
        what = "is empty" if pd.isna(value) else f"{value!r} is not a date YYYY-MM-DD"
        raise _fail(raw, column, idx, f"{column} {what}.")
    return days, text


def _check_date_range(raw: RawTable, column: str, days: np.ndarray, text: pd.Series) -> None:
    early, late = days < EARLIEST_DATE, days > LATEST_DATE
    idx = _first(early | late)
    if idx is not None:
        bound = f"before {EARLIEST_DATE}" if early[idx] else f"after {LATEST_DATE}"
        if column == "exit_date" and days[idx] == OPEN_END_DATE:
            bound += f" ({OPEN_END_DATE} reads as no end date only with an empty exit_type)"
        raise _fail(raw, column, idx, f"{column} {text.iloc[idx]} is {bound}.")


def _future_limit(now: dt.date) -> np.datetime64:
    try:
        limit = now.replace(year=now.year + FUTURE_YEARS)
    except ValueError:  # 29 February
        limit = now.replace(year=now.year + FUTURE_YEARS, day=28)
    return np.datetime64(limit, "D")


def _digits(text: pd.Series) -> pd.Series:
    """Text of digits (a slice the date or month pattern matched) or missing, as float64 (NaN
    for missing). Arrow's cast, not `pd.to_numeric`, which took a third of reading the data
    (issue 17); anything the cast cannot read goes to `pd.to_numeric`, as before."""
    try:
        values = text.astype("float64[pyarrow]").to_numpy("float64", na_value=np.nan)
    except (TypeError, ValueError, ImportError):  # pyarrow's ArrowInvalid is a ValueError
        return pd.to_numeric(text, errors="coerce")
    return pd.Series(values, index=text.index)


def _parse_months(raw: RawTable) -> pd.Series:
    s = raw.frame["month"]
    if isinstance(s.dtype, pd.PeriodDtype):
        return s.astype(MONTH_DTYPE)
    if pd.api.types.is_datetime64_any_dtype(s):
        if isinstance(s.dtype, pd.DatetimeTZDtype):
            s = s.dt.tz_localize(None)
        # Through numpy months: a far-off datetime must not overflow a nanosecond timestamp.
        ordinals = s.to_numpy().astype("datetime64[M]").astype("int64")
        idx = _first(np.isnat(s.to_numpy()))
        if idx is not None:
            raise _fail(raw, "month", idx, "month is empty.")
        return pd.Series(from_ordinal(ordinals), index=s.index)
    if s.dtype == object:
        # A DATE column (a database's, or Parquet's) holding months: each date's month.
        s = s.map(lambda v: f"{v.year:04d}-{v.month:02d}" if isinstance(v, dt.date) else v)
    text = _date_text(s)
    shaped = text.str.match(MONTH_RE.pattern).fillna(False).astype(bool)
    year = _digits(text.str.slice(0, 4).where(shaped))
    month_num = _digits(text.str.slice(5, 7).where(shaped))
    bad = ~month_num.between(1, 12).fillna(False).astype(bool)
    idx = _first(bad)
    if idx is not None:
        value = text.iloc[idx]
        what = "is empty" if pd.isna(value) else f"{value!r} is not a month YYYY-MM"
        raise _fail(raw, "month", idx, f"month {what}.")
    # Build Period ordinals arithmetically: much faster than parsing strings one by one.
    ordinals = (year.to_numpy("int64") - 1970) * 12 + month_num.to_numpy("int64") - 1
    months = pd.Series(from_ordinal(ordinals), index=text.index)
    return months


def _require_columns(raw: RawTable) -> None:
    missing = [c for c in REQUIRED_COLUMNS[raw.name] if c not in raw.frame.columns]
    if missing:
        raise DataError(
            f"required column {missing[0]} is missing (found: {', '.join(raw.frame.columns)}).",
            file=raw.file,
            column=missing[0],
        )


def _require_ids(raw: RawTable, columns: tuple[str, ...]) -> dict[str, pd.Series]:
    out = {}
    for col in columns:
        ids = _as_text(raw.frame[col])
        idx = _first(ids.isna())
        if idx is not None:
            raise _fail(raw, col, idx, f"{col} is empty.")
        out[col] = ids
    return out


@dataclass
class _Numbers:
    """A column read as numbers: float64 values (NaN for a missing cell, +-inf kept for the
    caller to reject) and the positions of the non-missing cells that are not numbers."""

    values: pd.Series
    text_rows: np.ndarray
    present: int  # non-missing cells

    def mostly_numeric(self) -> bool:
        return self.present - len(self.text_rows) >= NUMERIC_SHARE * self.present


def _numeric(series: pd.Series) -> _Numbers:
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        values = series.astype("float64")
        return _Numbers(values, np.array([], dtype=np.int64), int(values.notna().sum()))
    text = _clean_text(series)
    num = pd.to_numeric(text, errors="coerce").astype("float64")
    text_rows = np.flatnonzero(text.notna().to_numpy(dtype=bool) & num.isna().to_numpy())
    return _Numbers(num, text_rows, int(text.notna().sum()))


def _require_finite(raw: RawTable, column: str, values: pd.Series) -> None:
    idx = _first(np.isinf(values.to_numpy(dtype="float64")))
    if idx is not None:
        cell = raw.frame[column].iloc[idx]
        raise _fail(raw, column, idx, f"{column} {str(cell).strip()!r} is not a finite number.")


# --------------------------------------------------------------------------- tables


def _check_ranges(
    raw: RawTable, frame: pd.DataFrame, ranges: dict[str, tuple[float, float | None]], why: dict
) -> None:
    """Each column within its (lowest, highest or None) range, empty cells allowed. pandera
    names the first offending row, and is imported only when a value is out of range: its
    import (with pyspark's, which it pulls in) took 0.7 CPU-seconds of every command that
    reads data (issue 17), for what is two comparisons."""
    outside = False
    for column, (lo, hi) in ranges.items():
        values = frame[column].to_numpy(dtype="float64")
        with np.errstate(invalid="ignore"):
            outside |= bool(((values < lo) | ((values > hi) if hi is not None else False)).any())
    if not outside:
        return
    import pandera.pandas as pa

    checks = {
        column: pa.Column(
            float, pa.Check.in_range(lo, hi) if hi is not None else pa.Check.ge(lo), nullable=True
        )
        for column, (lo, hi) in ranges.items()
    }
    _check_schema(raw, frame, pa.DataFrameSchema(checks), why)


def _check_schema(
    raw: RawTable, frame: pd.DataFrame, schema: pa.DataFrameSchema, why: dict
) -> None:
    """Run a pandera schema; turn its first failure into our one-line DataError."""
    import pandera.pandas as pa

    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases.dropna(subset=["index"]).sort_values("index")
        if cases.empty:
            raise DataError(str(exc).splitlines()[0], file=raw.file) from None
        first = cases.iloc[0]
        column = str(first["column"])
        raise _fail(
            raw, column, int(first["index"]), why[column].format(value=first["failure_case"])
        ) from None


def _parse_employees(
    raw: RawTable, warnings: list[str], now: dt.date
) -> tuple[pd.DataFrame, list[str]]:
    _require_columns(raw)
    f = raw.frame
    ids = _require_ids(raw, ("employee_id", "team_id"))
    hire_d, hire_text = _date_days(raw, "hire_date", allow_empty=False)
    exit_d, exit_text = _date_days(raw, "exit_date", allow_empty=True)
    etype = _clean_text(f["exit_type"]).str.lower()

    idx = _first(etype.notna() & ~etype.isin(EXIT_TYPES).fillna(False))
    if idx is not None:
        raise _fail(
            raw,
            "exit_type",
            idx,
            f"exit_type {f['exit_type'].iloc[idx]!r} is not one of "
            f"{', '.join(EXIT_TYPES)} (or empty while employed).",
        )
    open_end = (exit_d == OPEN_END_DATE) & etype.isna().to_numpy(dtype=bool)
    if open_end.any():
        exit_d = np.where(open_end, _NAT, exit_d)
        exit_text = exit_text.mask(open_end, pd.NA)
        warnings.append(
            f"{raw.file}, column exit_date: {int(open_end.sum())} exit_date(s) of "
            f"{OPEN_END_DATE} with an empty exit_type read as still employed (no end date)."
        )
    _check_date_range(raw, "hire_date", hire_d, hire_text)
    _check_date_range(raw, "exit_date", exit_d, exit_text)
    _check_future_dates(raw, warnings, now, hire_d, exit_d)
    # Inside 1900..2199 now, so nanosecond timestamps cannot overflow.
    hire = pd.Series(hire_d.astype("datetime64[ns]"), index=f.index)
    exit_ = pd.Series(exit_d.astype("datetime64[ns]"), index=f.index)

    idx = _first(etype.notna() & exit_.isna())
    if idx is not None:
        raise _fail(raw, "exit_date", idx, f"exit_type {etype.iloc[idx]} has no exit_date.")
    idx = _first(etype.isna() & exit_.notna())
    if idx is not None:
        raise _fail(
            raw,
            "exit_type",
            idx,
            f"exit_date {exit_.iloc[idx]:%Y-%m-%d} has no exit_type "
            f"(voluntary, involuntary or transfer).",
        )
    idx = _first((exit_ < hire).fillna(False))
    if idx is not None:
        raise _fail(
            raw,
            "exit_date",
            idx,
            f"exit date {exit_.iloc[idx]:%Y-%m-%d} is before hire date {hire.iloc[idx]:%Y-%m-%d}.",
        )

    out = f.copy()
    out["employee_id"], out["team_id"] = ids["employee_id"], ids["team_id"]
    out["hire_date"], out["exit_date"], out["exit_type"] = hire, exit_, etype
    for col in out.columns:
        if col not in REQUIRED_COLUMNS["employees"] and is_identifier_like(col):
            out[col] = _as_text(out[col])
    _check_overlaps(raw, out)
    protected = [c for c in out.columns if is_protected(c)]
    return out, protected


def _check_future_dates(
    raw: RawTable, warnings: list[str], now: dt.date, hire: np.ndarray, exit_: np.ndarray
) -> None:
    """Signed offers and notice periods put real events after today: they are kept (the
    point-in-time views drop them) and counted; more than FUTURE_YEARS ahead is a typo."""
    limit = _future_limit(now)
    late_hire, late_exit = hire > limit, exit_ > limit
    idx = _first(late_hire | late_exit)
    if idx is not None:
        column, day = ("hire_date", hire[idx]) if late_hire[idx] else ("exit_date", exit_[idx])
        raise _fail(
            raw,
            column,
            idx,
            f"{column} {day} is more than {FUTURE_YEARS} years after today ({now.isoformat()}).",
        )
    day = np.datetime64(now, "D")
    ahead = (hire > day) | (exit_ > day)
    if ahead.any():
        warnings.append(
            f"{raw.file}: {int(ahead.sum())} row(s) hold a hire or exit date after today "
            f"({now.isoformat()}), first at {_row_ref(raw, _first(ahead))}; they are events that "
            f"have not happened yet and never move the latest complete month."
        )


def _check_overlaps(raw: RawTable, emp: pd.DataFrame) -> None:
    """Spells of one employee must not overlap: the next may start on the previous exit date."""
    order = np.lexsort((emp["hire_date"].to_numpy(), emp["employee_id"].to_numpy(dtype=str)))
    e = emp.iloc[order]
    same = e["employee_id"].to_numpy(dtype=str)[1:] == e["employee_id"].to_numpy(dtype=str)[:-1]
    prev_exit = e["exit_date"].to_numpy()[:-1]
    next_hire = e["hire_date"].to_numpy()[1:]
    # An open spell (no exit) overlaps anything after it.
    overlap = same & (np.isnat(prev_exit) | (next_hire < prev_exit))
    hits = np.flatnonzero(overlap)
    if hits.size:
        # Report the later-starting spell of the first offending pair, in file order.
        rows = np.minimum(order[hits], order[hits + 1])
        later = order[hits + 1]
        k = int(np.argmin(rows))
        idx = int(later[k])
        other = int(order[hits[k]])
        raise _fail(
            raw,
            "hire_date",
            idx,
            f"this spell overlaps the spell on {_row_ref(raw, other)} of the same employee "
            f"(a spell may start only on or after the previous one's exit date).",
        )


def _parse_monthly(
    raw: RawTable, warnings: list[str], now: dt.date
) -> tuple[pd.DataFrame, list[str]]:
    _require_columns(raw)
    f = raw.frame
    ids = _require_ids(raw, ("team_id",))
    months = _parse_months(raw)
    _check_months(raw, warnings, months, current_month(now))
    out = pd.DataFrame({"team_id": ids["team_id"], "month": months}, index=f.index)

    dup = pd.DataFrame({"t": out["team_id"], "m": months.array.asi8}).duplicated()
    idx = _first(dup)
    if idx is not None:
        raise _fail(
            raw,
            "month",
            idx,
            f"duplicate row for team_id {out['team_id'].iloc[idx]} and month "
            f"{month_str(months.iloc[idx])}; one row per team per month.",
        )

    signals: list[str] = []
    numeric_checks: dict[str, tuple[float, float | None]] = {}  # column: (lowest, highest)
    why: dict[str, str] = {}
    for col in f.columns:
        if col in ("team_id", "month"):
            continue
        if is_identifier_like(col) or is_protected(col):
            out[col] = _as_text(f[col]) if is_identifier_like(col) else f[col]
            continue
        nums = _numeric(f[col])
        values = nums.values
        always_numeric = col == "responses" or (col == "csat" and raw.name == "cx")
        if not always_numeric and not nums.mostly_numeric():
            # A text column is kept for reference but is never a signal.
            warnings.append(
                f"{raw.file}, column {col}: non-numeric values (first at "
                f"{_row_ref(raw, nums.text_rows[0])}); treated as text, not a signal."
            )
            out[col] = f[col]
            continue
        if len(nums.text_rows):
            bad = int(nums.text_rows[0])
            cell = str(f[col].iloc[bad]).strip()
            numbers = nums.present - len(nums.text_rows)
            context = f" ({numbers} of the column's {nums.present} values are numbers)"
            context = "" if always_numeric else context
            if re.fullmatch(r"-?\d+,\d+", cell):
                context += "; write decimals with a point"
            raise _fail(raw, col, bad, f"{col} {cell!r} is not a number{context}.")
        _require_finite(raw, col, values)
        out[col] = values
        if col == "csat" and raw.name == "cx":
            numeric_checks["csat"] = (0, 100)
            why["csat"] = "csat {value} is outside 0..100."
            signals.append(col)  # past CSAT is a feature (the CX family); the target is future
            continue
        if col == "responses":
            numeric_checks["responses"] = (0, None)
            why["responses"] = "responses {value} is negative."
            continue
        if values.isna().all():
            raise DataError(
                "this signal column has no value at all; drop it or fill it.",
                file=raw.file,
                column=col,
            )
        signals.append(col)
        n_missing = int(values.isna().sum())
        if n_missing:
            warnings.append(
                f"{raw.file}, column {col}: {n_missing} suppressed (empty) value(s); "
                f"features carry the last observed value forward."
            )
    if numeric_checks:
        _check_ranges(raw, out, numeric_checks, why)
    return out.reset_index(drop=True), [s for s in signals if s not in NON_SIGNAL]


def _check_months(
    raw: RawTable, warnings: list[str], months: pd.Series, current: pd.Period
) -> None:
    """Months before 1900 are typos (and would stretch the panel over centuries); the current
    month and later are not complete yet: kept, counted, never the latest complete month."""
    ords = months.array.asi8
    earliest = pd.Period(str(EARLIEST_DATE)[:7], freq="M").ordinal
    limit = current.ordinal + 12 * FUTURE_YEARS
    idx = _first((ords < earliest) | (ords > limit))
    if idx is not None:
        m = month_str(months.iloc[idx])
        what = f"is more than {FUTURE_YEARS} years after the current month {month_str(current)}"
        what = f"is before {str(EARLIEST_DATE)[:7]}" if ords[idx] < earliest else what
        raise _fail(raw, "month", idx, f"month {m} {what}.")
    ahead = ords >= current.ordinal
    if ahead.any():
        warnings.append(
            f"{raw.file}: {int(ahead.sum())} row(s) are for the current month "
            f"{month_str(current)} or later (first at {_row_ref(raw, _first(ahead))}); a month "
            f"counts only once it has ended, so they never move the latest complete month."
        )


def _team_key_check(
    raw: RawTable, employees_file: str, frame: pd.DataFrame, known: set[str]
) -> list[str]:
    """Teams of a monthly table that never appear in employees feed nothing (a typo, or `7`
    against `007`): a few is a warning, more than half of the table's teams an error."""
    unmatched = ~frame["team_id"].isin(known).to_numpy(dtype=bool)
    if not unmatched.any():
        return []
    teams = frame["team_id"].to_numpy(dtype=object)
    missing = list(dict.fromkeys(teams[unmatched]))  # in file order
    total = len(set(teams))
    loose = {_loose_key(k): k for k in known}

    def show(team: str) -> str:
        near = loose.get(_loose_key(team))
        return f"{team} (employees has {near})" if near else str(team)

    examples = ", ".join(show(t) for t in missing[:3])
    if 2 * len(missing) > total:
        raise _fail(
            raw,
            "team_id",
            _first(unmatched),
            f"{len(missing)} of {total} teams never appear in {employees_file} "
            f"(e.g. {examples}); team_id must match employees' team_id exactly.",
        )
    return [
        f"{raw.file}, column team_id: {len(missing)} of {total} team(s) never appear in "
        f"{employees_file} (e.g. {examples}); their rows feed nothing."
    ]


def _loose_key(team: str) -> str:
    """A key without leading zeros and letter case, so `7` and `t3` find `007` and `T0003`."""
    return re.sub(r"\d+", lambda m: str(int(m.group())), str(team).strip().casefold())


def _cadence_warnings(name: str, file: str, frame: pd.DataFrame) -> list[str]:
    """Warn when most teams are surveyed less than monthly (quarterly cadence is normal)."""
    # Each team's median gap between surveyed months (1 for a team surveyed once), grouped
    # in one pass rather than a Python call per team.
    rows = pd.DataFrame({"team": frame["team_id"].to_numpy(), "month": frame["month"].array.asi8})
    rows = rows.sort_values(["team", "month"], kind="stable")
    gaps = rows.groupby("team")["month"].diff().groupby(rows["team"]).median().fillna(1.0)
    sparse = int((gaps > 1.5).sum())
    if sparse:
        return [
            f"{file}: {sparse} of {len(gaps)} teams are surveyed less than monthly "
            f"(e.g. quarterly); features carry the last survey forward with its age."
        ]
    return []


# --------------------------------------------------------------------------- entry points


def tables_from_raw(
    raws: dict[str, RawTable], data_start: pd.Period | None = None, *, now: dt.date | None = None
) -> Tables:
    """Parse and validate raw tables into a `Tables` (the one path for files and frames).
    `now` is the date that separates events that happened from those still ahead (default:
    `months.today()`)."""
    now = run_date() if now is None else now
    warnings: list[str] = []
    employees, protected = _parse_employees(raws["employees"], warnings, now)
    known = set(employees["team_id"].unique())
    parsed: dict[str, pd.DataFrame] = {}
    signals: dict[str, list[str]] = {}
    for name in MONTHLY_TABLES:
        if name in raws:
            parsed[name], signals[name] = _parse_monthly(raws[name], warnings, now)
            warnings += _team_key_check(raws[name], raws["employees"].file, parsed[name], known)
    if "cx" in parsed:
        no_cx = sorted(set(employees["team_id"].unique()) - set(parsed["cx"]["team_id"].unique()))
        if no_cx:
            warnings.append(
                f"{raws['cx'].file}: {len(no_cx)} team(s) have no CX rows "
                f"(e.g. {', '.join(map(str, no_cx[:3]))}); their CSAT change is left empty."
            )
    else:
        warnings.append("no cx table: the CSAT model cannot be trained or scored.")
    if "engagement" in parsed:
        warnings += _cadence_warnings("engagement", raws["engagement"].file, parsed["engagement"])
    warnings += _span_warnings(raws, employees, parsed)
    return Tables(
        employees=employees,
        engagement=parsed.get("engagement"),
        workload=parsed.get("workload"),
        cx=parsed.get("cx"),
        data_start=data_start,
        signals=signals,
        protected=protected,
        warnings=warnings,
    )


def _span_warnings(raws: dict, employees: pd.DataFrame, parsed: dict) -> list[str]:
    first = employees["hire_date"].min().to_period("M")
    last_event = pd.concat([employees["hire_date"], employees["exit_date"]]).max()
    last = last_event.to_period("M")
    out = []
    for name, frame in parsed.items():
        lo, hi = frame["month"].min(), frame["month"].max()
        if hi < first or lo > last:
            out.append(
                f"{raws[name].file}: its months ({month_str(lo)}..{month_str(hi)}) do not overlap "
                f"the employees' span ({month_str(first)}..{month_str(last)})."
            )
    return out


def tables_from_frames(
    frames: dict[str, pd.DataFrame],
    *,
    data_start: str | pd.Period | None = None,
    suffix: str = ".csv",
    now: dt.date | None = None,
) -> Tables:
    """Validate in-memory contract-format frames (e.g. from the simulator) like files."""
    raws = {}
    for name in TABLE_NAMES:
        if name in frames and frames[name] is not None:
            frame = frames[name].reset_index(drop=True)
            if suffix == ".csv":
                # Mimic a CSV read: text everywhere, so identifiers and dates go the same path.
                frame = frame.astype("string")
            raws[name] = RawTable(name, f"{name}{suffix}", frame)
    if "employees" not in raws:
        raise DataError("required table employees is missing.", file="<memory>")
    start = pd.Period(data_start, freq="M") if isinstance(data_start, str) else data_start
    return tables_from_raw(raws, start, now=now)


def load_tables(directory: Path | str, progress: Callable[[str], None] | None = None) -> Tables:
    """Read, parse and validate a data directory. Raises DataError on the first hard error."""
    directory = Path(directory)
    raws = read_raw_tables(directory)
    if progress:
        progress("read")
    return tables_from_raw(raws, read_meta(directory))


def latest_common_month(months: list[set[int]]) -> pd.Period | None:
    """The latest month (ordinal) every non-empty set holds; with none in common, the earliest
    of their last months (the honest answer); None when every set is empty."""
    sets = [s for s in months if s]
    if not sets:
        return None
    common = set.intersection(*sets)
    return pd.Period(ordinal=max(common) if common else min(max(s) for s in sets), freq="M")


def latest_complete_month(tables: Tables, today: dt.date | None = None) -> pd.Period:
    """The latest month present in every monthly table present, ignoring engagement (surveys
    may be quarterly); with employees alone, the month of the latest hire or exit date.

    Never later than the month before `today` (default `months.today()`): the current month is
    not over, and rows dated later are events that have not happened yet.
    """
    now = run_date() if today is None else today
    cap = current_month(now).ordinal - 1
    ordinals = [t["month"].array.asi8 for t in (tables.workload, tables.cx) if t is not None]
    common = latest_common_month([set(np.unique(o[o <= cap]).tolist()) for o in ordinals])
    if common is not None:
        return common
    emp = tables.employees
    events = pd.concat([emp["hire_date"], emp["exit_date"]])
    past = events.loc[events <= pd.Timestamp(now)]
    last = (past if len(past) else events).max()
    return pd.Period(ordinal=min(last.to_period("M").ordinal, cap), freq="M")


def summarize(tables: Tables, source: str) -> Summary:
    emp = tables.employees
    s = Summary(source=source)
    s.tables["employees"] = len(emp)
    s.employees = int(emp["employee_id"].nunique())
    s.teams = int(emp["team_id"].nunique())
    first = emp["hire_date"].min().to_period("M")
    s.months["employees"] = (
        month_str(first),
        month_str(latest_complete_month(Tables(employees=emp))),
    )
    for name in MONTHLY_TABLES:
        t = tables.table(name)
        if t is not None:
            s.tables[name] = len(t)
            s.months[name] = (month_str(t["month"].min()), month_str(t["month"].max()))
    s.signals = dict(tables.signals)
    s.protected = list(tables.protected)
    s.warnings = list(tables.warnings)
    s.latest_complete_month = month_str(latest_complete_month(tables))
    s.data_start = month_str(tables.data_start) if tables.data_start is not None else None
    return s
