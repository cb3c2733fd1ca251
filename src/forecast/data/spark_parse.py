"""The contract's parsing rules (data.contract) as Spark SQL expressions: identifiers as text,
missing-value tokens, ISO dates, `YYYY-MM` months and numbers, each giving what the local
engine gives for the same cell (the same strip, the same tokens, the same accepted number
forms; Java and pandas both parse a decimal to the nearest double).

Expressions are SQL text, not Column objects: a table's whole parse or aggregation is then one
call to Spark instead of thousands. Every expression is safe under ANSI mode: a cell that does
not parse gives NULL and a flag, never an exception. pyspark's types are imported lazily.
"""

from __future__ import annotations

from typing import Any

from forecast.data.contract import EARLIEST_DATE, LATEST_DATE
from forecast.data.tables import MISSING_TOKENS

# Python's str.strip() (and pyarrow's) white space: Unicode White_Space plus \x1c-\x1f.
EDGES = r"(?U)^[\s\x1c-\x1f]+|[\s\x1c-\x1f]+$"
# What pandas.to_numeric reads as a number (after the strip): decimal forms and infinities.
NUMBER = r"(?i)^[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)(e[+-]?[0-9]+)?|inf|infinity)$"
DATE_SHAPE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
MONTH_SHAPE = r"^[0-9]{4}-[0-9]{2}$"
MISSING = tuple(sorted({t.casefold() for t in MISSING_TOKENS}))
EARLIEST, LATEST = str(EARLIEST_DATE), str(LATEST_DATE)


def q(name: str) -> str:
    """A column name as SQL (it may hold dots, spaces or back quotes)."""
    return "`" + name.replace("`", "``") + "`"


def lit(text: str) -> str:
    """A SQL string literal (backslashes and quotes escaped)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _types() -> Any:
    from pyspark.sql import types as T

    return T


def is_float(dtype: Any) -> bool:
    T = _types()
    return isinstance(dtype, T.FloatType | T.DoubleType)


def is_numeric(dtype: Any) -> bool:
    """pandas' is_numeric_dtype or is_bool_dtype of the column the local engine reads."""
    T = _types()
    return isinstance(dtype, T.NumericType | T.BooleanType)


def is_temporal(dtype: Any) -> bool:
    T = _types()
    return isinstance(dtype, T.TimestampType | T.TimestampNTZType)


def is_date(dtype: Any) -> bool:
    return isinstance(dtype, _types().DateType)


def is_text(dtype: Any) -> bool:
    return isinstance(dtype, _types().StringType)


def stripped(x: str) -> str:
    return f"regexp_replace({x}, {lit(EDGES)}, '')"


def as_string(x: str, dtype: Any) -> str:
    """The cell as pandas' `astype("string")` spells it (a date as YYYY-MM-DD, a boolean as
    True or False)."""
    T = _types()
    if isinstance(dtype, T.StringType):
        return x
    if isinstance(dtype, T.BooleanType):
        return f"CASE WHEN {x} IS NULL THEN NULL WHEN {x} THEN 'True' ELSE 'False' END"
    if isinstance(dtype, T.DateType):
        return f"date_format({x}, 'yyyy-MM-dd')"
    if is_float(dtype):
        return f"CASE WHEN isnan({x}) THEN NULL ELSE CAST({x} AS STRING) END"
    return f"CAST({x} AS STRING)"


def as_text(x: str, dtype: Any, *, whole: bool = False) -> str:
    """contract._as_text: an identifier as text, stripped, empty as NULL. A float column
    whose values are all whole numbers (`whole`) spells them as integers."""
    if is_float(dtype) and whole:
        whole_text = f"CAST(CAST({x} AS BIGINT) AS STRING)"
        return f"CASE WHEN {x} IS NULL OR isnan({x}) THEN NULL ELSE {whole_text} END"
    return f"nullif({stripped(as_string(x, dtype))}, '')"


def clean_text(x: str, dtype: Any) -> str:
    """contract._clean_text: stripped text with the missing-value tokens (any case) as NULL."""
    text = stripped(as_string(x, dtype))
    tokens = ", ".join(lit(t) for t in MISSING)
    return f"CASE WHEN lower({text}) IN ({tokens}) THEN NULL ELSE {text} END"


def date_text(x: str, dtype: Any) -> str:
    """contract._date_days' text of a cell (for its messages): ISO for a timestamp."""
    if is_temporal(dtype):
        return f"date_format({x}, 'yyyy-MM-dd')"
    return clean_text(x, dtype)


def iso_date(text: str) -> str:
    """The cleaned text (date_text) when it is a valid date YYYY-MM-DD, else NULL. Range checks
    compare this ISO text (it sorts as dates do), so a year 0001 or 9999 is named, never
    converted."""
    year, month, day = (
        f"try_cast(substring({text}, {a}, {n}) AS INT)" for a, n in ((1, 4), (6, 2), (9, 2))
    )
    leap = f"({year} % 4 = 0 AND ({year} % 100 <> 0 OR {year} % 400 = 0))"
    last = (
        f"CASE WHEN {month} = 2 THEN (CASE WHEN {leap} THEN 29 ELSE 28 END) "
        f"WHEN {month} IN (4, 6, 9, 11) THEN 30 ELSE 31 END"
    )
    ok = (
        f"{text} RLIKE {lit(DATE_SHAPE)} AND {month} BETWEEN 1 AND 12 "
        f"AND {day} >= 1 AND {day} <= {last}"
    )
    return f"CASE WHEN {ok} THEN {text} END"


def to_date(iso: str) -> str:
    """A valid ISO date text inside the contract's range as a Spark DATE."""
    inside = f"{iso} BETWEEN {lit(EARLIEST)} AND {lit(LATEST)}"
    return f"CASE WHEN {inside} THEN try_to_date({iso}, 'yyyy-MM-dd') END"


def month_text(x: str, dtype: Any) -> str:
    """contract._parse_months' text of a cell: a date's or timestamp's YYYY-MM, else the
    cleaned text."""
    if is_temporal(dtype) or is_date(dtype):
        return f"date_format({x}, 'yyyy-MM')"
    return clean_text(x, dtype)


def month_ordinal(text: str) -> str:
    """The month ordinal `(year - 1970) * 12 + month - 1` of a month text, or NULL when it is
    not a month YYYY-MM."""
    year = f"try_cast(substring({text}, 1, 4) AS BIGINT)"
    month = f"try_cast(substring({text}, 6, 2) AS BIGINT)"
    return (
        f"CASE WHEN {text} RLIKE {lit(MONTH_SHAPE)} AND {month} BETWEEN 1 AND 12 "
        f"THEN ({year} - 1970) * 12 + {month} - 1 END"
    )


def number(x: str, dtype: Any, text: str) -> str:
    """contract._numeric's value of one cell as a DOUBLE, NULL when missing (NaN is missing,
    as in pandas) or not a number. `text`: the cell's cleaned text (clean_text)."""
    if is_numeric(dtype):
        return f"nanvl(CAST({x} AS DOUBLE), CAST(NULL AS DOUBLE))"
    return f"CASE WHEN {text} RLIKE {lit(NUMBER)} THEN try_cast({text} AS DOUBLE) END"


def infinite(value: str) -> str:
    return f"({value} IN (double('inf'), double('-inf')))"
