"""Reading and validating a contract data directory (docs/data-contract.md).

This module is the input edge: it finds each table by stem (CSV or Parquet), reads identifiers
as strings, parses dates and months, discovers signal columns by type, and checks every hard
error the contract lists, raising `DataError` that names the file, the column and the first
offending row (1-based data row, header not counted) with its key values. It never builds
features and never writes anything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa

from forecast.data.months import MONTH_DTYPE, from_ordinal, month_str
from forecast.data.tables import (
    EXIT_TYPES,
    MONTHLY_TABLES,
    NON_SIGNAL,
    TABLE_NAMES,
    Tables,
    is_identifier_like,
    is_protected,
)
from forecast.errors import DataError

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


@dataclass
class RawTable:
    """One table as read: every column as text (CSV) or as stored (Parquet), plus its file name."""

    name: str
    file: str
    frame: pd.DataFrame


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
        raise DataError("the file does not exist." if not path.exists() else "this is not a file.",
                        file=str(path))
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
            parts.append(f"{k}={'' if pd.isna(v) else v}")
    return ", ".join(parts)


def _fail(raw: RawTable, column: str, idx: int, message: str) -> DataError:
    return DataError(
        message,
        file=raw.file,
        column=column,
        row=int(idx) + 1,
        key=_key_text(raw.frame, int(idx), KEY_COLUMNS[raw.name]) or None,
    )


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


def _parse_dates(raw: RawTable, column: str, *, allow_empty: bool) -> pd.Series:
    s = raw.frame[column]
    if pd.api.types.is_datetime64_any_dtype(s):
        return pd.to_datetime(s).dt.tz_localize(None).astype("datetime64[ns]")
    text = s.astype("string").str.strip()
    text = text.mask(text == "", pd.NA)
    ok = text.isna() if allow_empty else pd.Series(False, index=text.index)
    parsed = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
    shaped = text.str.match(DATE_RE.pattern).fillna(False).astype(bool)
    bad = ~ok & (text.isna() | ~shaped | parsed.isna())
    idx = _first(bad)
    if idx is not None:
        value = text.iloc[idx]
        what = "is empty" if pd.isna(value) else f"{value!r} is not a date YYYY-MM-DD"
        raise _fail(raw, column, idx, f"{column} {what}.")
    return parsed.astype("datetime64[ns]")


def _parse_months(raw: RawTable) -> pd.Series:
    s = raw.frame["month"]
    if isinstance(s.dtype, pd.PeriodDtype):
        return s.astype(MONTH_DTYPE)
    if pd.api.types.is_datetime64_any_dtype(s):
        return pd.to_datetime(s).dt.to_period("M")
    text = s.astype("string").str.strip()
    shaped = text.str.match(MONTH_RE.pattern).fillna(False).astype(bool)
    year = pd.to_numeric(text.str.slice(0, 4).where(shaped), errors="coerce")
    month_num = pd.to_numeric(text.str.slice(5, 7).where(shaped), errors="coerce")
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


def _numeric(series: pd.Series) -> tuple[pd.Series, int | None]:
    """Column as float; also the first row holding a non-numeric text value (None if none)."""
    if pd.api.types.is_bool_dtype(series):
        return series.astype("float64"), None
    if pd.api.types.is_numeric_dtype(series):
        return series.astype("float64"), None
    text = series.astype("string").str.strip()
    text = text.mask(text == "", pd.NA)
    num = pd.to_numeric(text, errors="coerce")
    return num.astype("float64"), _first(text.notna() & num.isna())


# --------------------------------------------------------------------------- tables


def _check_schema(
    raw: RawTable, frame: pd.DataFrame, schema: pa.DataFrameSchema, why: dict
) -> None:
    """Run a pandera schema; turn its first failure into our one-line DataError."""
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


def _parse_employees(raw: RawTable) -> tuple[pd.DataFrame, list[str]]:
    _require_columns(raw)
    f = raw.frame
    ids = _require_ids(raw, ("employee_id", "team_id"))
    hire = _parse_dates(raw, "hire_date", allow_empty=False)
    exit_ = _parse_dates(raw, "exit_date", allow_empty=True)
    etype = f["exit_type"].astype("string").str.strip().str.lower()
    etype = etype.mask(etype == "", pd.NA)

    idx = _first(etype.notna() & ~etype.isin(EXIT_TYPES).fillna(False))
    if idx is not None:
        raise _fail(
            raw,
            "exit_type",
            idx,
            f"exit_type {f['exit_type'].iloc[idx]!r} is not one of "
            f"{', '.join(EXIT_TYPES)} (or empty while employed).",
        )
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
            f"this spell overlaps the spell on row {other + 1} of the same employee "
            f"(a spell may start only on or after the previous one's exit date).",
        )


def _parse_monthly(raw: RawTable, warnings: list[str]) -> tuple[pd.DataFrame, list[str]]:
    _require_columns(raw)
    f = raw.frame
    ids = _require_ids(raw, ("team_id",))
    months = _parse_months(raw)
    out = pd.DataFrame({"team_id": ids["team_id"], "month": months}, index=f.index)

    dup = pd.DataFrame({"t": out["team_id"], "m": months.astype("string")}).duplicated()
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
    numeric_checks: dict[str, pa.Column] = {}
    why: dict[str, str] = {}
    for col in f.columns:
        if col in ("team_id", "month"):
            continue
        values, bad_text = _numeric(f[col])
        if col == "csat" and raw.name == "cx":
            if bad_text is not None:
                raise _fail(
                    raw, "csat", bad_text, f"csat {f[col].iloc[bad_text]!r} is not a number."
                )
            numeric_checks["csat"] = pa.Column(float, pa.Check.in_range(0, 100), nullable=True)
            why["csat"] = "csat {value} is outside 0..100."
            out[col] = values
            signals.append(col)  # past CSAT is a feature (the CX family); the target is future
            continue
        if col == "responses":
            if bad_text is not None:
                raise _fail(
                    raw,
                    "responses",
                    bad_text,
                    f"responses {f[col].iloc[bad_text]!r} is not a number.",
                )
            numeric_checks["responses"] = pa.Column(float, pa.Check.ge(0), nullable=True)
            why["responses"] = "responses {value} is negative."
            out[col] = values
            continue
        if is_identifier_like(col) or is_protected(col):
            out[col] = _as_text(f[col]) if is_identifier_like(col) else f[col]
            continue
        if bad_text is not None:
            # A text column is kept for reference but is never a signal.
            warnings.append(
                f"{raw.file}, column {col}: non-numeric values (first at row {bad_text + 1}); "
                f"treated as text, not a signal."
            )
            out[col] = f[col]
            continue
        if values.isna().all():
            raise DataError(
                "this signal column has no value at all; drop it or fill it.",
                file=raw.file,
                column=col,
            )
        out[col] = values
        signals.append(col)
        n_missing = int(values.isna().sum())
        if n_missing:
            warnings.append(
                f"{raw.file}, column {col}: {n_missing} suppressed (empty) value(s); "
                f"features carry the last observed value forward."
            )
    if numeric_checks:
        _check_schema(raw, out, pa.DataFrameSchema(numeric_checks), why)
    return out.reset_index(drop=True), [s for s in signals if s not in NON_SIGNAL]


def _cadence_warnings(name: str, file: str, frame: pd.DataFrame) -> list[str]:
    """Warn when most teams are surveyed less than monthly (quarterly cadence is normal)."""
    ords = frame["month"].array.asi8
    gaps = (
        pd.Series(ords)
        .groupby(frame["team_id"].to_numpy())
        .agg(lambda s: np.median(np.diff(np.sort(s.to_numpy()))) if len(s) > 1 else 1.0)
    )
    sparse = int((gaps > 1.5).sum())
    if sparse:
        return [
            f"{file}: {sparse} of {len(gaps)} teams are surveyed less than monthly "
            f"(e.g. quarterly); features carry the last survey forward with its age."
        ]
    return []


# --------------------------------------------------------------------------- entry points


def tables_from_raw(raws: dict[str, RawTable], data_start: pd.Period | None = None) -> Tables:
    """Parse and validate raw tables into a `Tables` (the one path for files and frames)."""
    warnings: list[str] = []
    employees, protected = _parse_employees(raws["employees"])
    parsed: dict[str, pd.DataFrame] = {}
    signals: dict[str, list[str]] = {}
    for name in MONTHLY_TABLES:
        if name in raws:
            parsed[name], signals[name] = _parse_monthly(raws[name], warnings)
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
    return tables_from_raw(raws, start)


def load_tables(directory: Path | str, progress: Callable[[str], None] | None = None) -> Tables:
    """Read, parse and validate a data directory. Raises DataError on the first hard error."""
    directory = Path(directory)
    raws = read_raw_tables(directory)
    if progress:
        progress("read")
    return tables_from_raw(raws, read_meta(directory))


def latest_complete_month(tables: Tables) -> pd.Period:
    """The latest month present in every monthly table present, ignoring engagement (surveys
    may be quarterly); with employees alone, the month of the latest hire or exit date."""
    sets = [
        set(t["month"].array.asi8.tolist())
        for t in (tables.workload, tables.cx)
        if t is not None and len(t)
    ]
    if sets:
        common = set.intersection(*sets)
        if common:
            return pd.Period(ordinal=max(common), freq="M")
        # No common month: the earliest of the tables' last months is the honest answer.
        return pd.Period(ordinal=min(max(s) for s in sets), freq="M")
    emp = tables.employees
    last = pd.concat([emp["hire_date"], emp["exit_date"]]).max()
    return last.to_period("M")


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
