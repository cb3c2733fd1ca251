"""Each contract table's parse and row-level rules for Spark (data.spark_contract runs them):
the parsed columns (SQL, in stages), one aggregation that counts every rule's offending rows
and keeps the first one in file or key order, and the rules in data.contract's order with
their messages, word for word.

A rule is a condition on a parsed row, the values its message needs and the message: the
table's aggregation counts the rows where each condition holds (cheap, and small for Spark to
compile); only a rule that has offending rows is asked, in a second job, for its first one
(`first`: its position, key values and values, as a struct), which the message turns into
(column, text). Warnings that name a row (`lookups`) work the same way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pandas as pd

from forecast.data.contract import (
    FUTURE_YEARS,
    KEY_COLUMNS,
    OPEN_END_DATE,
    REQUIRED_COLUMNS,
    _future_limit,
)
from forecast.data.months import current_month, month_str
from forecast.data.spark_parse import (
    EARLIEST,
    LATEST,
    as_text,
    clean_text,
    date_text,
    infinite,
    is_float,
    is_numeric,
    iso_date,
    lit,
    month_ordinal,
    month_text,
    number,
    q,
)
from forecast.data.spark_sources import EXTRA, ROW, SparkRaw
from forecast.data.tables import EXIT_TYPES, is_identifier_like, is_protected
from forecast.errors import DataError

EARLIEST_MONTH = pd.Period(EARLIEST[:7], freq="M").ordinal
Message = Callable[[Any], tuple[str | None, str]]  # first offending row -> (column, text)


@dataclass(frozen=True)
class Rule:
    """A row-level check: `name` counts its offending rows in the aggregation."""

    name: str
    flag: str  # SQL: the row offends
    values: tuple[str, ...] = ()  # SQL: what the message needs, `_v0`, `_v1`, ...
    message: Message | None = None  # None: a lookup (a warning names the row)


@dataclass
class TableRules:
    """What Spark computes for one table: parsed columns (each stage a list of `SQL AS name`
    applied after the previous), the aggregation, the rules in order, and the conditions
    whose first row a warning or a later check may name (`lookups`)."""

    stages: list[list[str]] = field(default_factory=list)
    aggregates: list[str] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    lookups: dict[str, Rule] = field(default_factory=dict)
    candidates: list[str] = field(default_factory=list)  # monthly columns that may be numbers

    def counted(self, *rules: Rule) -> None:
        """Add rules (or lookups, without a message) and count each one in the aggregation."""
        for rule in rules:
            if rule.message is None:
                self.lookups[rule.name] = rule
            else:
                self.rules.append(rule)
            self.aggregates.append(f"count_if({rule.flag}) AS {q(rule.name)}")


# --------------------------------------------------------------------------- naming rows


def first(flag: str, raw: SparkRaw, *values: str) -> str:
    """The first row (file or key order) where `flag` holds: its position, key values and
    `values` (`_v0`, `_v1`, ...), as a struct; NULL when no row."""
    return f"min(CASE WHEN {flag} THEN {row_struct(raw, *values)} END)"


def row_struct(raw: SparkRaw, *values: str) -> str:
    fields = [f"'_o{i}', {o}" for i, o in enumerate(raw.order)]
    fields.append(f"'_row', {q(ROW)}")
    fields += [f"'_k_{k}', {q(k) if k in raw.columns else 'NULL'}" for k in KEY_COLUMNS[raw.name]]
    fields += [f"'_v{i}', {v}" for i, v in enumerate(values)]
    return f"named_struct({', '.join(fields)})"


def _show(value: Any, month: bool = False) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if month and isinstance(value, dt.date):
        return f"{value.year:04d}-{value.month:02d}"
    if isinstance(value, Decimal):
        return str(float(value))
    return str(value)


def key_text(raw: SparkRaw, row: Any) -> str:
    """contract._key_text: `employee_id=E1, team_id=T1`."""
    return ", ".join(
        f"{k}={_show(row[f'_k_{k}'], month=k == 'month')}"
        for k in KEY_COLUMNS[raw.name]
        if k in raw.columns
    )


def fail(raw: SparkRaw, column: str | None, row: Any, message: str) -> DataError:
    """contract._fail: the file (or table), the column, the row by number and key."""
    return DataError(
        message,
        file=raw.file,
        column=column,
        row=int(row["_row"]) + 1 if raw.numbered else None,
        key=key_text(raw, row) or None,
    )


def row_ref(raw: SparkRaw, row: Any) -> str:
    """contract._row_ref: `row 17` in a file, `row team_id=T1, month=2020-02` in a database."""
    if raw.numbered:
        return f"row {int(row['_row']) + 1}"
    return f"row {key_text(raw, row)}"


def first_row(parsed: Any, raw: SparkRaw, rule: Rule) -> Any:
    """The first row (file or key order) where the rule's condition holds (one Spark job)."""
    return parsed.selectExpr(f"{first(rule.flag, raw, *rule.values)} AS x").first()["x"]


def file_aggregates(raw: SparkRaw) -> list[str]:
    """A CSV's file-level facts: a replacement character (the file may not be UTF-8) and the
    first row with more fields than the header."""
    odd = " OR ".join(f"coalesce(contains({q(c)}, {lit(chr(0xFFFD))}), false)" for c in raw.columns)
    return [
        f"max({odd or 'false'}) AS _odd",
        f"min(CASE WHEN {q(EXTRA)} IS NOT NULL THEN {q(ROW)} END) AS _extra",
    ]


# --------------------------------------------------------------------------- employees


def employee_rules(raw: SparkRaw, now: dt.date, whole: Callable[[str], bool]) -> TableRules:
    schema = raw.frame.schema
    out = TableRules()
    if any(c not in raw.columns for c in REQUIRED_COLUMNS["employees"]):
        out.aggregates = ["count(1) AS _n"]
        return out

    def text_id(c: str) -> str:
        return as_text(q(c), schema[c].dataType, whole=whole(c))

    out.stages = [
        [
            f"{text_id('employee_id')} AS _eid",
            f"{text_id('team_id')} AS _tid",
            f"{date_text(q('hire_date'), schema['hire_date'].dataType)} AS _hire_text",
            f"{date_text(q('exit_date'), schema['exit_date'].dataType)} AS _exit_text0",
            f"lower({clean_text(q('exit_type'), schema['exit_type'].dataType)}) AS _etype",
        ],
        [f"{iso_date('_hire_text')} AS _hire_iso", f"{iso_date('_exit_text0')} AS _exit_iso0"],
        [
            f"(_exit_iso0 = '{OPEN_END_DATE}' AND _etype IS NULL) AS _open",
            f"CASE WHEN _exit_iso0 = '{OPEN_END_DATE}' AND _etype IS NULL THEN NULL "
            f"ELSE _exit_iso0 END AS _exit_iso",
            f"CASE WHEN _exit_iso0 = '{OPEN_END_DATE}' AND _etype IS NULL THEN NULL "
            f"ELSE _exit_text0 END AS _exit_text",
        ],
    ]
    limit, today = lit(str(_future_limit(now))), lit(now.isoformat())
    types = ", ".join(lit(t) for t in EXIT_TYPES)
    hire, exit_ = "_hire_iso", "_exit_iso"
    ahead = f"({hire} > {today} OR coalesce({exit_} > {today}, false))"
    out.aggregates = [
        "count(1) AS _n",
        "sum(CAST(_open AS INT)) AS _open_end",
        f"min({hire}) AS _hire_min",
        f"max(greatest({hire}, {exit_})) AS _event_max",
        f"max(CASE WHEN {hire} <= {today} THEN {hire} END) AS _hire_past",
        f"max(CASE WHEN {exit_} <= {today} THEN {exit_} END) AS _exit_past",
    ]

    def future(r: Any) -> tuple[str, str]:
        column, day = ("hire_date", r["_v1"]) if r["_v0"] else ("exit_date", r["_v2"])
        return column, (
            f"{column} {day} is more than {FUTURE_YEARS} years after today ({now.isoformat()})."
        )

    out.counted(
        Rule("_r_eid", "_eid IS NULL", (), lambda r: ("employee_id", "employee_id is empty.")),
        Rule("_r_tid", "_tid IS NULL", (), lambda r: ("team_id", "team_id is empty.")),
        Rule("_r_hire", f"{hire} IS NULL", ("_hire_text",), _date_problem("hire_date")),
        Rule(
            "_r_exit",
            "_exit_iso0 IS NULL AND _exit_text0 IS NOT NULL",
            ("_exit_text0",),
            _date_problem("exit_date"),
        ),
        Rule(
            "_r_etype",
            f"_etype IS NOT NULL AND NOT _etype IN ({types})",
            (q("exit_type"),),
            lambda r: (
                "exit_type",
                f"exit_type {r['_v0']!r} is not one of {', '.join(EXIT_TYPES)} "
                f"(or empty while employed).",
            ),
        ),
        Rule("_r_hire_range", _outside(hire), (hire,), _range_problem("hire_date")),
        Rule("_r_exit_range", _outside(exit_), (exit_,), _range_problem("exit_date")),
        Rule(
            "_r_future",
            f"({hire} > {limit} OR coalesce({exit_} > {limit}, false))",
            (f"{hire} > {limit}", hire, exit_),
            future,
        ),
        Rule("_ahead", ahead),
        Rule(
            "_r_no_exit",
            f"_etype IS NOT NULL AND {exit_} IS NULL",
            ("_etype",),
            lambda r: ("exit_date", f"exit_type {r['_v0']} has no exit_date."),
        ),
        Rule(
            "_r_no_type",
            f"_etype IS NULL AND {exit_} IS NOT NULL",
            (exit_,),
            lambda r: (
                "exit_type",
                f"exit_date {r['_v0']} has no exit_type (voluntary, involuntary or transfer).",
            ),
        ),
        Rule(
            "_r_before",
            f"{exit_} < {hire}",
            (exit_, hire),
            lambda r: ("exit_date", f"exit date {r['_v0']} is before hire date {r['_v1']}."),
        ),
    )
    return out


def _outside(iso: str) -> str:
    return f"({iso} < {lit(EARLIEST)} OR {iso} > {lit(LATEST)})"


def _date_problem(column: str) -> Message:
    def message(row: Any) -> tuple[str, str]:
        value = row["_v0"]
        what = "is empty" if value is None else f"{value!r} is not a date YYYY-MM-DD"
        return column, f"{column} {what}."

    return message


def _range_problem(column: str) -> Message:
    def message(row: Any) -> tuple[str, str]:
        day = row["_v0"]
        bound = f"before {EARLIEST}" if day < EARLIEST else f"after {LATEST}"
        if column == "exit_date" and day == str(OPEN_END_DATE):
            bound += f" ({OPEN_END_DATE} reads as no end date only with an empty exit_type)"
        return column, f"{column} {day} is {bound}."

    return message


# --------------------------------------------------------------------------- monthly tables


def candidates(raw: SparkRaw) -> list[str]:
    """Columns of a monthly table that may be numbers (not keys, identifiers or protected)."""
    return [
        c
        for c in raw.columns
        if c not in ("team_id", "month") and not is_identifier_like(c) and not is_protected(c)
    ]


def always_numeric(raw: SparkRaw, column: str) -> bool:
    return column == "responses" or (column == "csat" and raw.name == "cx")


def monthly_rules(raw: SparkRaw, now: dt.date, whole: Callable[[str], bool]) -> TableRules:
    schema = raw.frame.schema
    out = TableRules(candidates=candidates(raw))
    if any(c not in raw.columns for c in REQUIRED_COLUMNS[raw.name]):
        out.aggregates = ["count(1) AS _n"]
        return out
    tid = as_text(q("team_id"), schema["team_id"].dataType, whole=whole("team_id"))
    stage1 = [
        f"{tid} AS _tid",
        f"{month_text(q('month'), schema['month'].dataType)} AS _month_text",
    ]
    stage2 = [f"{month_ordinal('_month_text')} AS _month"]
    stage3 = []
    for c in out.candidates:
        dtype = schema[c].dataType
        text, num, txt = q(f"_t_{c}"), q(f"_num_{c}"), q(f"_txt_{c}")
        if is_numeric(dtype):
            stage2.append(f"{number(q(c), dtype, '')} AS {num}")
            stage3.append(f"false AS {txt}")
        else:
            stage1.append(f"{clean_text(q(c), dtype)} AS {text}")
            stage2.append(f"{number(q(c), dtype, text)} AS {num}")
            stage3.append(f"({text} IS NOT NULL AND {num} IS NULL) AS {txt}")
    out.stages = [stage1, stage2, stage3] if stage3 else [stage1, stage2]
    current = current_month(now)
    limit = current.ordinal + 12 * FUTURE_YEARS
    cap = current.ordinal - 1
    out.aggregates = [
        "count(1) AS _n",
        "count(DISTINCT _tid, _month) AS _distinct",
        "min(_month) AS _month_min",
        "max(_month) AS _month_max",
        f"collect_set(CASE WHEN _month <= {cap} THEN _month END) AS _complete",
    ]

    def month_problem(r: Any) -> tuple[str, str]:
        value = r["_v0"]
        what = "is empty" if value is None else f"{value!r} is not a month YYYY-MM"
        return "month", f"month {what}."

    def month_range(r: Any) -> tuple[str, str]:
        ordinal = int(r["_v0"])
        what = (
            f"is before {EARLIEST[:7]}"
            if ordinal < EARLIEST_MONTH
            else f"is more than {FUTURE_YEARS} years after the current month {month_str(current)}"
        )
        return "month", f"month {month_str(ordinal)} {what}."

    out.counted(
        Rule("_r_tid", "_tid IS NULL", (), lambda r: ("team_id", "team_id is empty.")),
        Rule("_r_month", "_month IS NULL", ("_month_text",), month_problem),
        Rule(
            "_r_month_range",
            f"(_month < {EARLIEST_MONTH} OR _month > {limit})",
            ("_month",),
            month_range,
        ),
        Rule("_ahead", f"_month >= {current.ordinal}"),
    )
    for c in out.candidates:
        num, txt = q(f"_num_{c}"), q(f"_txt_{c}")
        out.aggregates += [
            f"count_if({num} IS NOT NULL OR {txt}) AS {q(f'_present_{c}')}",
            f"count({num}) AS {q(f'_values_{c}')}",
        ]
        out.counted(
            Rule(f"_text_{c}", txt, (q(c),)),
            Rule(f"_inf_{c}", infinite(num), (q(c),)),
        )
        if always_numeric(raw, c):
            bad = f"({num} < 0 OR {num} > 100)" if c == "csat" else f"{num} < 0"
            out.counted(Rule(f"_range_{c}", bad, (num,)))
    return out


def float_id_columns(raw: SparkRaw) -> list[str]:
    """Identifier columns stored as floats (their text depends on whether all are whole)."""
    names = ["employee_id", "team_id"] if raw.name == "employees" else ["team_id"]
    return [c for c in names if c in raw.columns and is_float(raw.frame.schema[c].dataType)]


__all__ = [
    "Rule",
    "TableRules",
    "always_numeric",
    "employee_rules",
    "fail",
    "file_aggregates",
    "first",
    "first_row",
    "monthly_rules",
    "row_ref",
    "row_struct",
]
