"""Where `--data` points: a contract data directory, a database named by a SQLAlchemy URL, or a
source file (YAML) naming a database and its tables (docs/data-contract.md, "Data in a
database").

Every source ends as the contract's `RawTable` frames and goes through the one validation path
(`contract.tables_from_raw`), so a database gets the same checks, errors and outputs as files.
Point in time is pushed down: read as of month t, a database returns only the rows dated on or
before the end of t (the WHERE clause is in the query), and a directory's rows are cut by the
same rule right after reading, so both give the validation the same rows.

It never writes, never builds features, and never lets a password into a message, a log or a
lineage record: `Source.label` and `Source.describe()` carry the URL without its password. The
only SQL written here is the queries themselves (SQLAlchemy Core: SELECT, WHERE, ORDER BY); the
dialects come with SQLAlchemy, psycopg and duckdb-engine.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

from forecast.data.contract import (
    MONTH_RE,
    RawTable,
    find_table_files,
    read_meta,
    read_raw_tables,
    tables_from_raw,
)
from forecast.data.lineage import data_hash, rows_hash
from forecast.data.months import month_str
from forecast.data.tables import TABLE_NAMES, Tables
from forecast.errors import ConfigError, DataError

if TYPE_CHECKING:
    # Imported by the functions that reach a database: a data directory needs no SQLAlchemy
    # (a quarter of a CPU-second of every command's start; issue 17).
    import sqlalchemy as sa

# The environment variable that holds the database password (a source file may name another).
PASSWORD_ENV = "FORECAST_DB_PASSWORD"
# connect_timeout, per address tried: a host that never answers fails in 7 s (14 s for a name
# with an IPv4 and an IPv6 address), inside the contract's 15 s.
CONNECT_TIMEOUT_S = 7
SOURCE_SUFFIXES = (".yaml", ".yml")
FILE_BACKENDS = ("sqlite", "duckdb")  # databases in a file: no host, no password
SOURCE_KEYS = ("url", "schema", "password_env", "data_start", "tables")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
# `postgresql://` alone means psycopg2 to SQLAlchemy; the package brings psycopg 3.
_DRIVER_ALIASES = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}
# Rows are read in key order, so "the first offending row" is the same on every run.
ORDER_BY: dict[str, tuple[str, ...]] = {
    "employees": ("employee_id", "hire_date", "team_id"),
    "engagement": ("team_id", "month"),
    "workload": ("team_id", "month"),
    "cx": ("team_id", "month"),
}
# The column that dates a row, and the shape (SQL LIKE) a text value must have to be compared
# as a date: a text that does not look like one is read, so that validation names it.
DATED_BY: dict[str, tuple[str, str]] = {
    "employees": ("hire_date", "____-__-__%"),
    "engagement": ("month", "____-__%"),
    "workload": ("month", "____-__%"),
    "cx": ("month", "____-__%"),
}


@dataclass(frozen=True)
class TableRef:
    """One contract table in a database: a table (or view) name, or a query."""

    name: str  # the contract's table
    table: str | None = None
    query: str | None = None
    explicit: bool = False  # named by a source file: must exist even when optional

    @property
    def label(self) -> str:
        """The table as messages name it: `employees`, `employees (table people)`, `cx (query)`."""
        if self.query is not None:
            return f"{self.name} (query)"
        return self.name if self.table == self.name else f"{self.name} (table {self.table})"

    def describe(self) -> dict[str, str]:
        if self.query is not None:
            return {"query_sha256": hashlib.sha256(self.query.encode("utf-8")).hexdigest()}
        return {"table": str(self.table)}


@dataclass
class Source:
    """Where the data are. A directory (`directory`) or a database (`url`, which holds the
    password and is never shown: use `label`, `describe()` or `location`)."""

    directory: Path | None = None
    url: sa.URL | None = None
    schema: str | None = None
    tables: dict[str, TableRef] = field(default_factory=dict)
    source_file: Path | None = None
    data_start: pd.Period | None = None
    password_env: str = PASSWORD_ENV
    # sha256 of the rows the last read returned (a database), and the as-of month it used.
    read_hash: str | None = None
    read_as_of: str | None = None

    @property
    def is_database(self) -> bool:
        return self.url is not None

    @property
    def safe_url(self) -> str:
        """The URL without its password."""
        if self.url is None:
            return ""
        return _without_password(self.url).render_as_string(hide_password=False)

    @property
    def location(self) -> Path | str:
        """What reads the same data again (recorded with a trained model): the directory, the
        source file, or the URL without its password (the password comes from the
        environment)."""
        if self.directory is not None:
            return self.directory.resolve()
        if self.source_file is not None:
            return self.source_file.resolve()
        return self.safe_url

    @property
    def label(self) -> str:
        """The source for a person: the directory, or the URL without its password."""
        if self.directory is not None:
            return str(self.directory)
        if self.source_file is not None:
            return f"{self.source_file} ({self.safe_url})"
        return self.safe_url

    def describe(self) -> dict[str, Any]:
        """The source for a manifest or an MLflow run: never a password."""
        if self.directory is not None:
            return {"path": str(Path(os.path.abspath(self.directory)))}
        out: dict[str, Any] = {"source": self.safe_url}
        if self.source_file is not None:
            out["source_file"] = str(self.source_file.resolve())
        if self.schema:
            out["schema"] = self.schema
        out["tables"] = {name: ref.describe() for name, ref in self.tables.items()}
        if self.read_as_of:
            out["as_of"] = self.read_as_of
        return out

    def hash(self) -> str:
        """sha256 of the data: a directory's files, or the rows read from a database (read
        now if this source has not been read yet)."""
        if self.directory is not None:
            return data_hash(self.directory)
        if self.read_hash is None:
            read_database(self)
        return str(self.read_hash)


# --------------------------------------------------------------------------- opening


def is_database_url(text: str) -> bool:
    return bool(_URL.match(text.strip()))


def open_source(data: str | Path | Source) -> Source:
    """What `--data` names, parsed and checked without connecting: a URL (`scheme://...`), a
    source file (`.yaml`), or else a data directory."""
    if isinstance(data, Source):
        return data
    text = str(data).strip()
    if is_database_url(text):
        return Source(url=_parse_url(text), tables=_default_tables())
    path = Path(text)
    if path.suffix.lower() in SOURCE_SUFFIXES:
        return _read_source_file(path)
    return Source(directory=path)


def check_source(data: str | Path | Source) -> Source:
    """Open the source and check it can be read: a directory holds `employees`; a database
    answers and has its `employees` table. Commands call it before they open anything else,
    so a mistyped `--data` fails first."""
    source = open_source(data)
    if source.directory is not None:
        find_table_files(source.directory)
        return source
    with connected(source) as conn:
        present_tables(source, conn)
    return source


def _without_password(url: sa.URL) -> sa.URL:
    import sqlalchemy as sa

    # URL.set(password=None) would keep the password: None there means "unchanged".
    return sa.URL.create(
        url.drivername,
        username=url.username,
        host=url.host,
        port=url.port,
        database=url.database,
        query={k: v for k, v in url.query.items() if k.lower() != "password"},
    )


def _redact(text: str) -> str:
    """A URL-like text with anything between `user:` and `@` removed (for a message about a
    URL SQLAlchemy cannot parse)."""
    return re.sub(r"(://[^/@:]*):[^@/]*@", r"\1@", text)


def _parse_url(text: str, *, password_env: str = PASSWORD_ENV, base: Path | None = None) -> sa.URL:
    import sqlalchemy as sa

    try:
        url = sa.make_url(text.strip())
    except sa.exc.ArgumentError:
        raise DataError(
            f"`--data` {_redact(text)!r} is not a database URL SQLAlchemy can read "
            f"(e.g. postgresql+psycopg://USER@HOST:5432/DB, sqlite:///hr.db, duckdb:///lake.duckdb)."
        ) from None
    if url.drivername in _DRIVER_ALIASES:
        url = url.set(drivername=_DRIVER_ALIASES[url.drivername])
    backend = url.get_backend_name()
    # A file database has no password; a server's comes from the URL or else the environment.
    if backend not in FILE_BACKENDS and url.password is None and os.environ.get(password_env):
        url = url.set(password=os.environ[password_env])
    if backend in FILE_BACKENDS and url.database not in (None, "", ":memory:"):
        path = Path(url.database)
        if base is not None and not path.is_absolute():
            path = base / path
            url = url.set(database=str(path))
        # Both would create an empty database where none exists; reading must not.
        if not path.is_file():
            raise DataError(f"database file {path} does not exist.")
    return url


def _default_tables() -> dict[str, TableRef]:
    return {name: TableRef(name, table=name) for name in TABLE_NAMES}


def _read_source_file(path: Path) -> Source:
    """A source file: `url`, optional `schema`, `password_env`, `data_start`, and `tables`
    mapping each contract table to a table name, `{table: NAME}`, `{query: SELECT ...}` or
    null (not read). Tables it does not list are read under their own names when present."""
    if not path.is_file():
        raise DataError(
            "the source file does not exist." if not path.exists() else "this is not a file.",
            file=str(path),
        )
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a valid YAML source file ({_one_line(exc)}).") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: a source file is a mapping with `url:` and `tables:`.")
    unknown = [str(k) for k in doc if k not in SOURCE_KEYS]
    if unknown:
        raise ConfigError(
            f"{path}: unknown key {unknown[0]!r} (expected {', '.join(SOURCE_KEYS)})."
        )
    url_text = doc.get("url")
    if not isinstance(url_text, str) or not is_database_url(url_text):
        raise ConfigError(
            f"{path}: `url` must be a database URL such as "
            f"postgresql+psycopg://USER@HOST:5432/DB. Got {_redact(str(url_text))!r} instead."
        )
    password_env = doc.get("password_env") or PASSWORD_ENV
    if not isinstance(password_env, str) or not re.fullmatch(r"[A-Za-z_]\w*", password_env):
        raise ConfigError(
            f"{path}: `password_env` must name an environment variable. "
            f"Got {password_env!r} instead."
        )
    schema = doc.get("schema")
    if schema is not None and not isinstance(schema, str):
        raise ConfigError(f"{path}: `schema` must be a name. Got {schema!r} instead.")
    start = doc.get("data_start")
    data_start = None
    if start is not None:
        if not (isinstance(start, str) and MONTH_RE.match(start)):
            raise ConfigError(f"{path}: `data_start` must be a month YYYY-MM. Got {start!r}.")
        data_start = pd.Period(start, freq="M")
    tables = _default_tables()
    mapping = doc.get("tables") or {}
    if not isinstance(mapping, dict):
        raise ConfigError(f"{path}: `tables` maps contract tables to table names or queries.")
    for name, value in mapping.items():
        if name not in TABLE_NAMES:
            raise ConfigError(
                f"{path}: `tables` has {name!r}, not a contract table ({', '.join(TABLE_NAMES)})."
            )
        ref = _table_ref(path, str(name), value)
        if ref is None:
            tables.pop(str(name))
        else:
            tables[str(name)] = ref
    if "employees" not in tables:
        raise ConfigError(f"{path}: `tables` cannot leave out employees, the required table.")
    url = _parse_url(url_text, password_env=password_env, base=path.parent)
    return Source(
        url=url,
        schema=schema,
        tables=tables,
        source_file=path,
        data_start=data_start,
        password_env=password_env,
    )


def _table_ref(path: Path, name: str, value: object) -> TableRef | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip():
        return TableRef(name, table=value.strip(), explicit=True)
    if isinstance(value, dict) and len(value) == 1:
        key, text = next(iter(value.items()))
        if key in ("table", "query") and isinstance(text, str) and text.strip():
            if key == "table":
                return TableRef(name, table=text.strip(), explicit=True)
            # A trailing semicolon would end the statement this query is wrapped in.
            return TableRef(name, query=text.strip().rstrip(";").strip(), explicit=True)
    raise ConfigError(
        f"{path}: `tables.{name}` must be a table name, {{table: NAME}} or "
        f'{{query: "SELECT ..."}}. Got {value!r} instead.'
    )


# --------------------------------------------------------------------------- connecting


def _where(source: Source) -> str:
    url = source.url
    assert url is not None
    if url.get_backend_name() in FILE_BACKENDS:
        return f"the database file {url.database or ':memory:'}"
    host = url.host or "localhost"
    return f"the database at {host}" + (f":{url.port}" if url.port else "")


def scrub(source: Source, text: str) -> str:
    """`text` on one line, with the source's password (if any) replaced by ***."""
    password = source.url.password if source.url is not None else None
    text = _one_line(text)
    return text.replace(str(password), "***") if password else text


def _one_line(exc: object) -> str:
    return " ".join(str(exc).split())


def _reason(source: Source, exc: sa.exc.DBAPIError) -> str:
    """The driver's own first line (it says refused, timed out, or which authentication
    failed), without the password and without SQLAlchemy's background link."""
    first = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc).__name__
    # psycopg repeats the host and port the message already names.
    first = re.sub(
        r'^connection failed: connection to server at "[^"]*", port \d+ failed: ', "", first
    )
    return scrub(source, first)


def _engine(source: Source) -> sa.Engine:
    import sqlalchemy as sa

    url = source.url
    assert url is not None
    backend = url.get_backend_name()
    connect_args: dict[str, Any] = {}
    if backend == "postgresql":
        connect_args = {"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "forecast"}
    elif backend == "duckdb" and url.database not in (None, "", ":memory:"):
        connect_args = {"read_only": True}
    try:
        return sa.create_engine(url, connect_args=connect_args, poolclass=sa.pool.NullPool)
    except (sa.exc.NoSuchModuleError, ImportError) as exc:
        raise DataError(
            f"no database driver for {url.drivername} ({scrub(source, str(exc))}); the "
            f"package brings postgresql+psycopg, sqlite and duckdb."
        ) from None


@contextmanager
def connected(source: Source) -> Iterator[sa.Connection]:
    """A connection, or a DataError naming the host and saying it could not connect."""
    import sqlalchemy as sa

    engine = _engine(source)
    try:
        try:
            conn = engine.connect()
        except sa.exc.DBAPIError as exc:
            hint = (
                f" (the password comes from {source.password_env})"
                if "password" in str(exc.orig).lower()
                else ""
            )
            raise DataError(
                f"could not connect to {_where(source)}: {_reason(source, exc)}{hint}"
            ) from None
        with conn:
            yield conn
    finally:
        engine.dispose()


def present_tables(source: Source, conn: sa.Connection) -> set[str]:
    """Tables and views of the schema; a DataError when `employees` (or a table the source file
    names) is not there."""
    import sqlalchemy as sa

    inspector = sa.inspect(conn)
    try:
        names = set(inspector.get_table_names(schema=source.schema))
        names |= set(inspector.get_view_names(schema=source.schema))
    except sa.exc.DBAPIError as exc:
        raise DataError(
            f"{source.safe_url}: cannot list the tables of schema "
            f"{source.schema or 'default'}: {_reason(source, exc)}"
        ) from None
    for ref in source.tables.values():
        if ref.table is None or ref.table in names:
            continue
        if ref.name == "employees" or ref.explicit:
            where = f"schema {source.schema}" if source.schema else "the default schema"
            found = ", ".join(sorted(names)[:12]) or "no tables"
            raise DataError(
                f"required table {ref.label} is missing from {where} (found: {found}).",
                file=source.safe_url,
            )
    return names


# --------------------------------------------------------------------------- reading


def present_refs(source: Source, conn: sa.Connection) -> list[TableRef]:
    """The contract tables the database has, in contract order: each named table that is there
    and each query."""
    present = present_tables(source, conn)
    refs = (source.tables.get(name) for name in TABLE_NAMES)
    return [r for r in refs if r is not None and (r.table is None or r.table in present)]


def read_database(source: Source, as_of: pd.Period | None = None) -> dict[str, RawTable]:
    """Every contract table the database has, as RawTables (rows named by their keys). As of
    a month, only the rows dated on or before its end are read (pushed into the query)."""
    raws: dict[str, RawTable] = {}
    with connected(source) as conn:
        for ref in present_refs(source, conn):
            raws[ref.name] = _read_table(source, conn, ref, as_of)
    extra = f"data_start={source.data_start}".encode() if source.data_start is not None else b""
    source.read_hash = rows_hash({n: r.frame for n, r in raws.items()}, extra)
    source.read_as_of = month_str(as_of) if as_of is not None else None
    return raws


def _read_table(
    source: Source, conn: sa.Connection, ref: TableRef, as_of: pd.Period | None
) -> RawTable:
    import sqlalchemy as sa

    try:
        statement, _ = table_statement(source, conn, ref, as_of)
        result = conn.execute(statement)
        names = [str(c) for c in result.keys()]  # noqa: SIM118 - a Result, not a dict
        rows = result.fetchall()
    except sa.exc.DBAPIError as exc:
        raise DataError(
            f"the database could not read it: {_reason(source, exc)}", file=ref.label
        ) from None
    return RawTable(ref.name, ref.label, _frame(names, rows), numbered=False)


def table_statement(
    source: Source,
    conn: sa.Connection,
    ref: TableRef,
    as_of: pd.Period | None,
    *,
    ordered: bool = True,
) -> tuple[sa.Select[Any], list[str]]:
    """The SELECT that reads one table (as of a month: only the rows known at its end, in the
    WHERE clause) in key order, and the table's columns. The Spark engine runs the same
    statement through JDBC (forecast.data.spark_sources), so both read the same rows."""
    import sqlalchemy as sa

    base: Any = (
        sa.table(ref.table, schema=source.schema)
        if ref.table is not None
        else sa.text(f"({ref.query}) AS q")
    )
    everything = sa.select(sa.text("*")).select_from(base)
    columns = [str(c) for c in conn.execute(everything.limit(0)).keys()]  # noqa: SIM118
    statement = everything
    dated, shape = DATED_BY[ref.name]
    if as_of is not None and dated in columns:
        statement = statement.where(_known_by(conn, base, dated, shape, as_of))
    order = [sa.column(c) for c in ORDER_BY[ref.name] if c in columns]
    if order and ordered:
        statement = statement.order_by(*order)
    return statement, columns


def _without_empty(
    raws: dict[str, RawTable], as_of: pd.Period | None
) -> tuple[dict[str, RawTable], list[str]]:
    """A table with no rows is an error, as an empty file is; but as of a month before a
    monthly table begins (a survey started later) that table is simply not there yet."""
    out, warnings = {}, []
    for name, raw in raws.items():
        if len(raw.frame):
            out[name] = raw
            continue
        if as_of is None:
            raise DataError("the table has no rows.", file=raw.file)
        column = DATED_BY[name][0]
        why = f"no row has a {column} on or before the end of {month_str(as_of)}"
        if name == "employees":
            raise DataError(f"{why} (`--as-of`).", file=raw.file)
        warnings.append(f"{raw.file}: {why}; read as absent as of that month.")
    return out, warnings


def _known_by(
    conn: sa.Connection, base: Any, column: str, shape: str, as_of: pd.Period
) -> sa.ColumnElement[bool]:
    """The rows known at the end of `as_of`, as a WHERE clause: dated before the first day of
    the next month, or with no date that can be compared (kept, so that validation sees them).
    A DATE or TIMESTAMP column is compared with a date, a text column (ISO text sorts as
    dates do) with the next month's `YYYY-MM`; what the column holds is read from one value."""
    import sqlalchemy as sa

    col = sa.column(column)
    probe = conn.execute(sa.select(col).select_from(base).where(col.is_not(None)).limit(1))
    value = probe.scalar()
    following = as_of + 1
    if isinstance(value, dt.date):  # a datetime is a date too
        cut = sa.bindparam("known_by", dt.date(following.year, following.month, 1), sa.Date)
        return sa.or_(col < cut, col.is_(None))
    if isinstance(value, str):
        return sa.or_(col < month_str(following), col.is_(None), col.not_like(shape))
    return sa.true()  # nothing to compare (no row, or another type): validation decides


def _frame(names: list[str], rows: list[Any]) -> pd.DataFrame:
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    return pd.DataFrame(
        {name: _column(list(values)) for name, values in zip(names, columns, strict=True)}
    )


def _column(values: list[Any]) -> pd.Series:
    """One database column as the contract reads a file's: text as text (identifiers keep
    their leading zeros), whole numbers as nullable integers (an integer id prints without
    `.0`), other numbers as float64, dates and timestamps as Python dates (the contract spells
    them out itself), and a column of mixed kinds (SQLite allows it) as text."""
    return typed_column(values, column_kind({type(v) for v in values if v is not None}))


def column_kind(kinds: set[type]) -> str:
    """What a database column holding values of these Python types is read as: `null` (no
    value), `text`, `bool`, `int`, `float`, `date` or, for mixed kinds, `text`."""
    if not kinds:
        return "null"
    if kinds <= {str}:
        return "text"
    if kinds <= {bool}:
        return "bool"
    if kinds <= {int}:
        return "int"
    if all(issubclass(k, int | float | Decimal) and k is not bool for k in kinds):
        return "float"
    if all(issubclass(k, dt.date) for k in kinds):
        return "date"
    return "text"


def typed_column(values: list[Any], kind: str) -> pd.Series:
    """`values` read as `kind` (column_kind): the Spark engine stages a table in chunks with
    the kind of the whole column, so every chunk reads as the whole column would."""
    if kind == "null":
        return pd.Series(values, dtype=object)
    if kind == "bool":
        return pd.Series(pd.array(values, dtype="boolean"))
    if kind == "int":
        return pd.Series(pd.array(values, dtype="Int64"))
    if kind == "float":
        return pd.Series([np.nan if v is None else float(v) for v in values], dtype="float64")
    if kind == "date":
        return pd.Series(values, dtype=object)
    if all(v is None or isinstance(v, str) for v in values):
        return pd.Series(values, dtype="str")
    return pd.Series([None if v is None else _text(v) for v in values], dtype="str")


def _text(value: Any) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


# --------------------------------------------------------------------------- as of a month


def known_rows(raws: dict[str, RawTable], as_of: pd.Period) -> dict[str, RawTable]:
    """A directory's tables cut as a database query cuts them (`_known_by`): the rows dated
    on or before the end of `as_of`, or with a date that cannot be compared. Row numbers stay
    those of the file."""
    out = {}
    for name, raw in raws.items():
        column, shape = DATED_BY[name]
        if column not in raw.frame.columns:
            out[name] = raw
            continue
        keep = _known_mask(raw.frame[column], shape, as_of)
        numbers = (raw.rows if raw.rows is not None else np.arange(1, len(keep) + 1))[keep]
        frame = raw.frame.loc[keep].reset_index(drop=True)
        out[name] = RawTable(raw.name, raw.file, frame, raw.numbered, rows=numbers)
    return out


def _known_mask(series: pd.Series, shape: str, as_of: pd.Period) -> np.ndarray:
    following = as_of + 1
    if isinstance(series.dtype, pd.PeriodDtype):
        return (series.isna() | (series <= as_of)).to_numpy(dtype=bool)
    if pd.api.types.is_datetime64_any_dtype(series):
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            series = series.dt.tz_localize(None)
        cut = pd.Timestamp(following.year, following.month, 1)
        return (series.isna() | (series < cut)).to_numpy(dtype=bool)
    cut_day, cut_text = dt.date(following.year, following.month, 1), month_str(following)
    like = re.compile("(?s)^" + shape.replace("_", ".").replace("%", ".*") + "$")

    def keep(value: Any) -> bool:
        if isinstance(value, dt.datetime):
            return value.date() < cut_day
        if isinstance(value, dt.date):
            return value < cut_day
        if isinstance(value, str):
            return not like.match(value) or value < cut_text
        return True  # empty, or nothing to compare

    return np.fromiter((keep(v) for v in series.to_numpy(dtype=object)), bool, len(series))


# --------------------------------------------------------------------------- the entry point


def load_tables(
    data: str | Path | Source,
    *,
    as_of: pd.Period | None = None,
    progress: Callable[[str], None] | None = None,
) -> Tables:
    """Read, parse and validate the data wherever they are (a directory, a database URL or a
    source file). As of a month: only the rows known at its end (a database filters in the
    query). Raises DataError on the first hard error."""
    source = open_source(data)
    if source.directory is not None:
        raws = read_raw_tables(source.directory)
        data_start = read_meta(source.directory)
        if as_of is not None:
            raws = known_rows(raws, as_of)
    else:
        raws = read_database(source, as_of)
        data_start = source.data_start
    raws, absent = _without_empty(raws, as_of)
    if progress:
        progress("read")
    tables = tables_from_raw(raws, data_start)
    tables.warnings.extend(absent)
    return tables


__all__ = [
    "PASSWORD_ENV",
    "Source",
    "TableRef",
    "check_source",
    "column_kind",
    "connected",
    "is_database_url",
    "known_rows",
    "load_tables",
    "open_source",
    "present_refs",
    "present_tables",
    "read_database",
    "scrub",
    "table_statement",
    "typed_column",
]
