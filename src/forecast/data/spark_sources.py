"""Spark reads the contract tables where they are (`forecast score --engine spark`,
docs/spark.md): the driver never loads a table.

- A data directory: `spark.read` on each CSV or Parquet file. A CSV is read as text, RFC 4180
  quoting, one task per file (a quoted field may span lines); a Parquet file is split by row
  group across the executors.
- PostgreSQL with its JDBC driver on Spark's class path (Debian's `libpostgresql-jdbc-java`,
  which scripts/install-system-deps.sh installs and `scoring.spark.spark_session` finds): Spark
  runs, through JDBC on the executors, the very SELECT the local engine runs
  (`sources.table_statement`: the same WHERE clause as of a month).
- Any other database (SQLite, DuckDB, or PostgreSQL without the JDBC jar): the same SELECT
  is streamed in chunks into Parquet files in a staging folder, typed as the local engine types
  the whole column (`sources.column_kind`), and Spark reads those. The rows pass through the
  driver process a chunk at a time (CHUNK_ROWS), never all at once; on a cluster the staging
  folder (FORECAST_SPARK_STAGING) must be one the executors can read.

As of a month, the rows dated after its end are left out by the read itself (`known_filter`,
the rule `sources.known_rows` applies): pushed into the Parquet scan for date columns, applied
as each CSV row is parsed, in the database's WHERE clause for a database. Every row keeps its
position (`ROW`): a file's 0-based data row, a staged table's key order, so validation
(`data.spark_contract`) names the first offending row as the local engine does.

Never imported unless the Spark engine runs: pyspark (the optional `forecast[spark]` extra) is
imported inside the functions that use it. It never builds features and never writes outside
its staging folder.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from forecast.data.contract import find_table_files, read_meta
from forecast.data.months import month_str
from forecast.data.sources import (
    DATED_BY,
    ORDER_BY,
    Source,
    TableRef,
    column_kind,
    connected,
    present_refs,
    scrub,
    table_statement,
    typed_column,
)
from forecast.data.spark_parse import q
from forecast.errors import DataError

ROW = "_row"  # a row's 0-based position: its data row in a file, its place in key order
EXTRA = "_extra_field"  # a CSV field beyond the header's: the row has too many fields
CHUNK_ROWS = 50_000  # rows a staged database table passes through the driver at a time
STAGING_ENV = "FORECAST_SPARK_STAGING"  # where staged tables go (default: the temp folder)
JDBC_JAR_ENV = "FORECAST_JDBC_JAR"  # a PostgreSQL JDBC jar elsewhere than Debian puts it
JDBC_JARS = ("/usr/share/java/postgresql.jar",)  # Debian's libpostgresql-jdbc-java
JDBC_DRIVER = "org.postgresql.Driver"
JDBC_FETCH_ROWS = 10_000
_ARROW = {
    "null": pa.string(),
    "text": pa.string(),
    "bool": pa.bool_(),
    "int": pa.int64(),
    "float": pa.float64(),
    "date": pa.date32(),
}


@dataclass
class SparkRaw:
    """One contract table as Spark reads it: its columns as stored (a CSV's as text) plus
    ROW. `order`: the columns that put rows in the local engine's order (ROW, or a JDBC
    table's key columns, nulls last). `numbered`: rows are named by number and key (a
    file) or by key alone (a database)."""

    name: str
    file: str
    frame: Any  # pyspark.sql.DataFrame
    columns: list[str]
    numbered: bool
    order: list[str]  # SQL
    path: Path | None = None  # a CSV file, for the byte-level checks on the error path
    how: str = ""  # how it was read, for the manifest: csv, parquet, jdbc or staged
    whole: Any = None  # a file's frame before the as-of cut (the file-level checks read all)


@dataclass
class SparkRead:
    """The tables of one source as Spark frames, and what to clean up after the run."""

    raws: dict[str, SparkRaw]
    data_start: pd.Period | None
    staging: Path | None = None
    pushed: dict[str, str] = field(default_factory=dict)  # table -> the as-of rule, in words

    def close(self) -> None:
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None


def jdbc_jar() -> str | None:
    """A PostgreSQL JDBC jar on this machine (FORECAST_JDBC_JAR, else Debian's), or None."""
    named = os.environ.get(JDBC_JAR_ENV, "").strip()
    for path in ([named] if named else []) + list(JDBC_JARS):
        if path and Path(path).is_file():
            return path
    return None


def jdbc_ready(spark: Any) -> bool:
    """Whether this session can read PostgreSQL through JDBC: a PostgreSQL jar among its
    `spark.jars`, or FORECAST_JDBC_JAR set to `classpath` (the cluster provides the driver)."""
    if os.environ.get(JDBC_JAR_ENV, "").strip() == "classpath":
        return True
    jars = spark.sparkContext.getConf().get("spark.jars", "") or ""
    return any("postgresql" in Path(j).name for j in jars.split(",") if j)


# --------------------------------------------------------------------------- entry point


def read_tables(spark: Any, source: Source, as_of: pd.Period | None = None) -> SparkRead:
    """Every contract table of `source` as a Spark frame, as of a month when given."""
    if source.directory is not None:
        return _read_directory(spark, source.directory, as_of)
    backend = source.url.get_backend_name() if source.url is not None else ""
    if backend == "postgresql" and jdbc_ready(spark):
        return _read_jdbc(spark, source, as_of)
    return _read_staged(spark, source, as_of)


def rule_in_words(name: str, as_of: pd.Period) -> str:
    column, _ = DATED_BY[name]
    return f"{column} before {month_str(as_of + 1)}-01, or empty, or not a date"


# --------------------------------------------------------------------------- as of a month


def known_filter(frame: Any, column: str, shape: str, as_of: pd.Period) -> Any:
    """The rows known at the end of `as_of` (sources.known_rows' rule) as a Spark condition on
    `column`, by its type: a date or timestamp before the next month's first day, or a text
    that sorts before the next month's `YYYY-MM` or does not look like a date (kept so that
    validation names it), or empty. None when the column holds nothing comparable."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    dtype = frame.schema[column].dataType
    col = F.col(column)
    following = as_of + 1
    first = dt.date(following.year, following.month, 1)
    if isinstance(dtype, T.DateType):
        return (col < F.lit(first)) | col.isNull()
    if isinstance(dtype, T.TimestampType | T.TimestampNTZType):
        start = dt.datetime(following.year, following.month, 1)
        return (col < F.lit(start).cast(dtype)) | col.isNull()
    if isinstance(dtype, T.StringType):
        return (col < F.lit(month_str(following))) | col.isNull() | ~col.like(shape)
    return None


def _as_of(frame: Any, name: str, as_of: pd.Period | None) -> Any:
    column, shape = DATED_BY[name]
    if as_of is None or column not in frame.columns:
        return frame
    condition = known_filter(frame, column, shape, as_of)
    return frame if condition is None else frame.where(condition)


# --------------------------------------------------------------------------- a directory


def _read_directory(spark: Any, directory: Path, as_of: pd.Period | None) -> SparkRead:
    files = find_table_files(directory)
    raws = {}
    for name, path in files.items():
        raw = _read_csv(spark, path, name) if path.suffix == ".csv" else _read_parquet(spark, path)
        raw.whole = raw.frame
        raw.frame = _as_of(raw.frame, name, as_of)
        raws[name] = raw
    read = SparkRead(raws, read_meta(directory))
    if as_of is not None:
        read.pushed = {name: rule_in_words(name, as_of) for name in raws}
    return read


def _read_csv(spark: Any, path: Path, name: str) -> SparkRaw:
    """A CSV as text, every column a string (so `007` stays `007`), quoting as RFC 4180 (a
    doubled quote inside quotes), one partition so that ROW is the data row. A field beyond
    the header's goes to EXTRA (the local engine refuses such a file)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    options = {"header": "true", "multiLine": "true", "escape": '"', "encoding": "UTF-8"}
    names = _header(path)
    if not names:
        raise DataError("the file is empty.", file=path.name)
    positional = [f"_c{i}" for i in range(len(names))]
    schema = T.StructType(
        [T.StructField(c, T.StringType()) for c in positional]
        + [T.StructField(EXTRA, T.StringType())]
    )
    frame = (
        spark.read.options(**options, mode="PERMISSIVE", enforceSchema="true")
        .schema(schema)
        .csv(str(path))
        .coalesce(1)  # one file, one partition: monotonically_increasing_id is the row
    )
    frame = frame.select(
        *[F.col(p).alias(n) for p, n in zip(positional, names, strict=True)],
        F.col(EXTRA),
        F.monotonically_increasing_id().alias(ROW),
    )
    return SparkRaw(name, path.name, frame, names, True, [q(ROW)], path=path, how="csv")


def _header(path: Path) -> list[str]:
    """A CSV's column names (its first record, read on the driver: one line, not the file),
    stripped, a BOM dropped, as the local engine's reader names them."""
    if not path.is_file():
        raise DataError(
            "the file does not exist." if not path.exists() else "this is not a file.",
            file=str(path),
        )
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        for record in csv.reader(handle):
            if any(cell.strip() for cell in record):
                return [cell.strip() for cell in record]
    return []


def _read_parquet(spark: Any, path: Path) -> SparkRaw:
    """A Parquet file as stored. Spark cannot read nanosecond timestamps (pandas writes them):
    those columns are read as their integer nanoseconds and turned into timestamps here."""
    from pyspark.sql import functions as F

    try:
        nanos = [
            f.name
            for f in pq.read_schema(path)
            if pa.types.is_timestamp(f.type) and f.type.unit == "ns"
        ]
        if nanos:
            spark.conf.set("spark.sql.legacy.parquet.nanosAsLong", "true")
        frame = spark.read.parquet(str(path))
        columns = [str(c) for c in frame.columns]
    except Exception as exc:  # noqa: BLE001 - any reader failure is the user's unreadable file
        raise DataError(
            f"the file cannot be read as Parquet ({_first_line(exc)}).", file=path.name
        ) from None
    cells = [
        F.expr(f"timestamp_micros(CAST(floor({q(c)} / 1000) AS BIGINT))").alias(c)
        if c in nanos
        else F.col(q(c))
        for c in columns
    ]
    frame = frame.select(*cells, F.col("_metadata.row_index").alias(ROW))
    return SparkRaw(path.stem, path.name, frame, columns, True, [q(ROW)], how="parquet")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return " ".join(text.splitlines()[0].split()) if text else type(exc).__name__


def not_utf8(path: Path) -> str | None:
    """The local engine's message for a CSV that is not UTF-8 (where the first bad byte is),
    or None when it is. Read in blocks, on the error path only: when Spark met a replacement
    character (a file may also hold a real U+FFFD, which is valid UTF-8)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    newlines = 0  # before the current block (an incomplete sequence held over holds none)
    with path.open("rb") as handle:
        while True:
            block = handle.read(1 << 20)
            data = decoder.getstate()[0] + block  # what the decoder's error positions index
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                line = newlines + data[: exc.start].count(b"\n") + 1
                return (
                    f"the file is not UTF-8 (byte 0x{data[exc.start]:02x} on line {line}, "
                    f"data row {max(line - 1, 1)})."
                )
            if not block:
                return None
            newlines += block.count(b"\n")


def is_blank(path: Path) -> bool:
    """Whether a file holds nothing but white space (the local engine: "the file is empty")."""
    with path.open("rb") as handle:
        return all(not block.strip() for block in iter(lambda: handle.read(1 << 20), b""))


# --------------------------------------------------------------------------- a database


def _order_by_key(name: str, columns: list[str]) -> list[str]:
    """The key order the local engine reads a database table in (sources.ORDER_BY), as Spark
    sort keys with nulls last (as PostgreSQL's ORDER BY puts them); text compares by code
    point, as a database with the C collation does."""
    keys = []
    for c in ORDER_BY[name]:
        if c in columns:
            keys += [f"{q(c)} IS NULL", q(c)]
    return keys


def jdbc_url(source: Source) -> str:
    url = source.url
    assert url is not None
    host = url.host or "localhost"
    port = f":{url.port}" if url.port else ""
    return (
        f"jdbc:postgresql://{host}{port}/{url.database or ''}"
        "?connectTimeout=7&loginTimeout=7&ApplicationName=forecast"
    )


def _read_jdbc(spark: Any, source: Source, as_of: pd.Period | None) -> SparkRead:
    """PostgreSQL through Spark's JDBC source: the driver connects once to list the tables,
    learn each one's columns and how its date column is typed (sources.table_statement), then
    the executors run each SELECT, WHERE clause included."""
    url = source.url
    assert url is not None
    raws = {}
    with connected(source) as conn:
        for ref in present_refs(source, conn):
            name = ref.name
            statement, columns = table_statement(source, conn, ref, as_of, ordered=False)
            sql = str(
                statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
            )
            reader = (
                spark.read.format("jdbc")
                .option("url", jdbc_url(source))
                .option("driver", JDBC_DRIVER)
                .option("query", sql)
                .option("fetchsize", str(JDBC_FETCH_ROWS))
                .option("preferTimestampNTZ", "true")
                .option("user", url.username or "")
            )
            if url.password is not None:
                reader = reader.option("password", url.password)
            try:
                frame = reader.load()
            except Exception as exc:  # noqa: BLE001 - the driver's failure is the database's
                raise DataError(
                    f"Spark could not read it through JDBC: {scrub(source, _first_line(exc))}",
                    file=ref.label,
                ) from None
            from pyspark.sql import functions as F

            frame = frame.select(
                *[F.col(q(c)) for c in columns], F.lit(None).cast("long").alias(ROW)
            )
            raws[name] = SparkRaw(
                name, ref.label, frame, columns, False, _order_by_key(name, columns), how="jdbc"
            )
    read = SparkRead(raws, source.data_start)
    if as_of is not None:
        read.pushed = {n: "in the query's WHERE clause (JDBC)" for n in raws}
    return read


def _read_staged(spark: Any, source: Source, as_of: pd.Period | None) -> SparkRead:
    """Each table's SELECT streamed into a Parquet file a chunk at a time, typed as the local
    engine types the whole column, in key order (ROW is the row's place in it)."""
    from pyspark.sql import functions as F

    base = os.environ.get(STAGING_ENV) or None
    staging = Path(tempfile.mkdtemp(prefix="forecast-spark-", dir=base))
    raws = {}
    try:
        with connected(source) as conn:
            for ref in present_refs(source, conn):
                name = ref.name
                path = staging / f"{name}.parquet"
                columns = _stage_table(source, conn, ref, as_of, path)
                frame = spark.read.parquet(str(path)).select(
                    *[F.col(q(c)) for c in columns], F.col("_metadata.row_index").alias(ROW)
                )
                raws[name] = SparkRaw(
                    name, ref.label, frame, columns, False, [q(ROW)], how="staged"
                )
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    read = SparkRead(raws, source.data_start, staging=staging)
    if as_of is not None:
        read.pushed = {n: "in the query's WHERE clause (staged)" for n in raws}
    return read


def _stage_table(
    source: Source, conn: Any, ref: TableRef, as_of: pd.Period | None, path: Path
) -> list[str]:
    """Two streamed passes over the table's SELECT: the kinds of each column's values, then
    the rows, each chunk typed with the whole column's kind (sources.typed_column)."""
    import sqlalchemy as sa

    statement, columns = table_statement(source, conn, ref, as_of)
    kinds: list[set[type]] = [set() for _ in columns]
    try:
        result = conn.execution_options(stream_results=True, yield_per=CHUNK_ROWS).execute(
            statement
        )
        for chunk in result.partitions(CHUNK_ROWS):
            for i, values in enumerate(zip(*chunk, strict=True)):
                kinds[i].update(type(v) for v in values if v is not None)
        decided = [column_kind(k) for k in kinds]
        schema = pa.schema([(c, _ARROW[k]) for c, k in zip(columns, decided, strict=True)])
        with pq.ParquetWriter(str(path), schema) as writer:
            result = conn.execution_options(stream_results=True, yield_per=CHUNK_ROWS).execute(
                statement
            )
            wrote = False
            for chunk in result.partitions(CHUNK_ROWS):
                cells = list(zip(*chunk, strict=True))
                arrays = [
                    _arrow(list(values), kind) for values, kind in zip(cells, decided, strict=True)
                ]
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
                wrote = True
            if not wrote:
                writer.write_table(schema.empty_table())
    except sa.exc.DBAPIError as exc:
        raise DataError(
            f"the database could not read it: {scrub(source, _first_line(exc.orig))}",
            file=ref.label,
        ) from None
    return columns


def _arrow(values: list[Any], kind: str) -> pa.Array:
    series = typed_column(values, kind)
    if kind == "date":
        days = [v.date() if isinstance(v, dt.datetime) else v for v in series.tolist()]
        return pa.array(days, type=pa.date32())
    if kind == "null":
        return pa.nulls(len(values), type=pa.string())
    return pa.array(series, type=_ARROW[kind], from_pandas=True)


__all__ = [
    "EXTRA",
    "ROW",
    "SparkRaw",
    "SparkRead",
    "is_blank",
    "jdbc_jar",
    "jdbc_ready",
    "known_filter",
    "not_utf8",
    "read_tables",
]
