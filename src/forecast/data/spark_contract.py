"""The contract's validation (data.contract.tables_from_raw) run by Spark on the tables Spark
read (data.spark_sources), for `forecast score --engine spark`: the same checks in the same
order, the same messages (the file or table, the column, the first offending row by its data
row number and key values, or by key values in a database), the same warnings. The driver
receives aggregates, never rows.

Each table is parsed once (data.spark_rules) and kept on the executors (persisted). One
aggregation per table counts every row-level rule's offending rows and keeps the first; the
rules that compare rows (overlapping spells, duplicate team-months, team keys, survey
cadence) are window and join jobs, and a rule reports only when every rule before it passed,
as the local engine raises at its first failure. A job that only names an offending row runs
only when an aggregate says there is one.

The result, `SparkTables`, holds the typed frames the Spark scoring engine partitions by team
and what the driver needs to decide (columns, signals, first and latest months, warnings).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from forecast.data.contract import OPEN_END_DATE, REQUIRED_COLUMNS, latest_common_month
from forecast.data.lineage import data_hash
from forecast.data.months import current_month, month_str
from forecast.data.months import today as run_date
from forecast.data.sources import Source
from forecast.data.spark_parse import as_string, as_text, is_numeric, lit, q, to_date
from forecast.data.spark_rules import (
    Rule,
    TableRules,
    always_numeric,
    employee_rules,
    fail,
    file_aggregates,
    first,
    first_row,
    float_id_columns,
    monthly_rules,
    row_ref,
    row_struct,
)
from forecast.data.spark_sources import (
    ROW,
    SparkRaw,
    SparkRead,
    is_blank,
    not_utf8,
    read_tables,
)
from forecast.data.tables import (
    MONTHLY_TABLES,
    NON_SIGNAL,
    TABLE_NAMES,
    is_identifier_like,
    is_protected,
)
from forecast.errors import DataError


@dataclass
class SparkTables:
    """Validated tables as Spark frames (persisted on the executors) and what the driver knows
    of them. `employees`: employee_id, team_id (text), hire_date, exit_date (DATE; no exit
    date while employed), exit_type (lower case), every other column as text. Monthly frames:
    team_id, month (ordinal), and the columns read as numbers (DOUBLE)."""

    employees: Any
    monthly: dict[str, Any]
    columns: dict[str, list[str]]
    numeric: dict[str, list[str]]  # monthly columns read as numbers
    signals: dict[str, list[str]]
    protected: list[str]
    data_start: pd.Period | None
    warnings: list[str]
    rows: dict[str, int]
    teams: int
    first_month: pd.Period  # features.panel_months' first month
    latest: pd.Period  # contract.latest_complete_month
    employee_numeric: set[str] = field(default_factory=set)  # read as numbers by pandas
    read: SparkRead | None = None
    parsed: dict[str, Any] = field(default_factory=dict)  # each table as read, plus its parse
    _persisted: list[Any] = field(default_factory=list, repr=False)

    def present(self) -> list[str]:
        return ["employees", *self.monthly]

    def close(self) -> None:
        """Release the executors' copies and any staging folder."""
        for frame in self._persisted:
            frame.unpersist()
        self._persisted.clear()
        if self.read is not None:
            self.read.close()


def validate(
    spark: Any, read: SparkRead, *, as_of: pd.Period | None = None, now: dt.date | None = None
) -> SparkTables:
    """Validate the tables Spark read as the local engine validates the same rows; raise
    DataError at the first hard error. `as_of`: the month the read was cut at (a monthly
    table left with no row is then absent, as in `sources.load_tables`)."""
    now = run_date() if now is None else now
    checks: dict[str, _Table] = {}
    try:
        for name in TABLE_NAMES:
            if name in read.raws:
                checks[name] = _Table.prepare(read.raws[name], now)
        for check in checks.values():
            check.file_checks()
        absent = _without_empty(checks, as_of)
        return _validate(read, checks, absent, now)
    except BaseException:
        for check in checks.values():
            check.release()
        raise


def read_and_validate(spark: Any, source: Source, *, as_of: pd.Period | None = None) -> SparkTables:
    """Spark reads `source` (as of a month: only the rows known at its end) and validates it."""
    read = read_tables(spark, source, as_of)
    try:
        return validate(spark, read, as_of=as_of)
    except BaseException:
        read.close()
        raise


def spark_data_hash(source: Source, st: SparkTables) -> str:
    """The manifest's data hash. A directory: lineage.data_hash of its files (streamed in
    blocks, as the local engine hashes them: the same hash). A database: sha256 over each
    table's name, columns, row count and the sum of its rows' sha2 (of the row as JSON), an
    order-free digest Spark computes where the rows are (not the local engine's rows_hash,
    which reads every row on one machine)."""
    if source.directory is not None:
        return data_hash(source.directory)
    digest = hashlib.sha256(b"spark-rows-1")
    for name in sorted(st.parsed):
        columns = st.columns[name]
        row = "to_json(named_struct(" + ", ".join(f"{lit(c)}, {q(c)}" for c in columns) + "))"
        part = f"CAST(conv(substring(sha2({row}, 256), 1, 15), 16, 10) AS DECIMAL(38, 0))"
        total = st.parsed[name].selectExpr("count(1) AS n", f"sum({part}) AS s").first()
        header = [name, *columns, str(total["n"]), str(total["s"])]
        digest.update("\0".join(header).encode("utf-8") + b"\0")
    return digest.hexdigest()


def _without_empty(checks: dict[str, _Table], as_of: pd.Period | None) -> list[str]:
    """sources._without_empty: a table with no rows is an error; as of a month, a monthly
    table with none yet is absent (a warning)."""
    warnings = []
    for name in list(checks):
        check = checks[name]
        if check.stats["_n"]:
            continue
        if as_of is None:
            raise DataError("the table has no rows.", file=check.raw.file)
        column = "hire_date" if name == "employees" else "month"
        why = f"no row has a {column} on or before the end of {month_str(as_of)}"
        if name == "employees":
            raise DataError(f"{why} (`--as-of`).", file=check.raw.file)
        warnings.append(f"{check.raw.file}: {why}; read as absent as of that month.")
        check.release()
        del checks[name]
    return warnings


def _validate(
    read: SparkRead, checks: dict[str, _Table], absent: list[str], now: dt.date
) -> SparkTables:
    warnings: list[str] = []
    emp = checks["employees"]
    emp.check_employees(warnings)
    signals: dict[str, list[str]] = {}
    keys: _Keys | None = None
    for name in MONTHLY_TABLES:
        if name in checks:
            signals[name] = checks[name].check_monthly(warnings)
            keys = keys or _team_keys(checks)  # every table has its key columns by now
            warnings += checks[name].team_key_check(keys, emp)
    keys = keys or _team_keys(checks)
    if "cx" in checks:
        if keys["_no_cx"]:
            first3 = (
                keys.frame.where("_in_employees AND NOT _in_cx").orderBy("_tid").limit(3).collect()
            )
            warnings.append(
                f"{checks['cx'].raw.file}: {int(keys['_no_cx'])} team(s) have no CX rows "
                f"(e.g. {', '.join(r['_tid'] for r in first3)}); their CSAT change is left empty."
            )
    else:
        warnings.append("no cx table: the CSAT model cannot be trained or scored.")
    if "engagement" in checks:
        warnings += checks["engagement"].cadence()
    warnings += _span_warnings(checks)
    warnings += absent
    firsts = [emp.stats["_hire_min"][:7]] + [
        month_str(int(c.stats["_month_min"])) for n, c in checks.items() if n != "employees"
    ]
    start = read.data_start
    typed = {name: check.typed() for name, check in checks.items()}
    return SparkTables(
        employees=typed["employees"],
        monthly={n: typed[n] for n in MONTHLY_TABLES if n in typed},
        columns={n: list(c.raw.columns) for n, c in checks.items()},
        numeric={n: list(c.numbers) for n, c in checks.items() if n != "employees"},
        signals=signals,
        protected=[c for c in emp.raw.columns if is_protected(c)],
        data_start=start,
        warnings=warnings,
        rows={n: int(c.stats["_n"]) for n, c in checks.items()},
        teams=int(keys["_teams"]),
        first_month=pd.Period(start if start is not None else min(firsts), freq="M"),
        latest=_latest_complete_month(checks, now),
        employee_numeric={
            c
            for c in emp.raw.columns
            if is_numeric(emp.raw.frame.schema[c].dataType) and not is_identifier_like(c)
        },
        read=read,
        parsed={n: c.parsed for n, c in checks.items()},
        _persisted=[c.parsed for c in checks.values()],
    )


# --------------------------------------------------------------------------- one table


@dataclass
class _Table:
    """One table: its parsed frame (persisted), its rules and its aggregation's row."""

    raw: SparkRaw
    rules: TableRules
    parsed: Any
    stats: Any
    now: dt.date
    numbers: list[str] = field(default_factory=list)  # monthly columns read as numbers

    @classmethod
    def prepare(cls, raw: SparkRaw, now: dt.date) -> _Table:
        from pyspark import StorageLevel

        floats = float_id_columns(raw)
        whole = _whole_ids(raw, floats) if floats else set()
        build = employee_rules if raw.name == "employees" else monthly_rules
        rules = build(raw, now, lambda c: c in whole)
        parsed = raw.frame
        for stage in rules.stages:
            parsed = parsed.selectExpr("*", *stage)
        parsed = parsed.persist(StorageLevel.MEMORY_AND_DISK)
        aggregates = list(rules.aggregates)
        if raw.how == "csv" and raw.whole is raw.frame:  # the file's own checks, same pass
            aggregates += file_aggregates(raw)
        try:
            stats = parsed.selectExpr(*aggregates).first()
        except Exception as exc:  # noqa: BLE001 - a reader failure is the user's unreadable table
            parsed.unpersist()
            raise DataError(f"Spark could not read it ({_one_line(exc)}).", file=raw.file) from None
        return cls(raw, rules, parsed, stats, now)

    def release(self) -> None:
        self.parsed.unpersist()

    def file_checks(self) -> None:
        """What the local engine checks while reading a file: an empty file, a file that is
        not UTF-8, a row with more fields than the header, a header with no data rows."""
        raw = self.raw
        if raw.how == "parquet":
            if raw.whole is not raw.frame and raw.whole.limit(1).count() == 0:
                raise DataError("the header has no data rows.", file=raw.file)
            if raw.whole is raw.frame and not self.stats["_n"]:
                raise DataError("the header has no data rows.", file=raw.file)
            return
        if raw.how != "csv":
            return
        if raw.whole is raw.frame:
            n, odd, extra = self.stats["_n"], self.stats["_odd"], self.stats["_extra"]
        else:
            facts = raw.whole.selectExpr("count(1) AS _n", *file_aggregates(raw)).first()
            n, odd, extra = facts["_n"], facts["_odd"], facts["_extra"]
        if not n:
            if raw.path is not None and is_blank(raw.path):
                raise DataError("the file is empty.", file=raw.file)
            raise DataError("the header has no data rows.", file=raw.file)
        if odd and raw.path is not None:
            message = not_utf8(raw.path)
            if message:
                raise DataError(message, file=raw.file)
        if extra is not None:
            raise DataError(
                f"the file cannot be read as CSV (data row {int(extra) + 1} has more fields "
                f"than the header's {len(raw.columns)}).",
                file=raw.file,
            )

    def fail_first(self, rules: list[Rule]) -> None:
        """Raise for the first rule (in order) that has offending rows, naming the first."""
        for rule in rules:
            if self.stats[rule.name]:
                row = self.first(rule.name)
                assert rule.message is not None
                column, text = rule.message(row)
                raise fail(self.raw, column, row, text)

    def first(self, name: str) -> Any:
        """The first row of a rule or lookup (a second job, only when one is needed)."""
        rule = self.rules.lookups.get(name) or next(r for r in self.rules.rules if r.name == name)
        return first_row(self.parsed, self.raw, rule)

    # ----------------------------------------------------------------------- employees

    def check_employees(self, warnings: list[str]) -> None:
        _require_columns(self.raw)
        s, f, rules = self.stats, self.raw.file, self.rules.rules
        self.fail_first(rules[:5])
        if s["_open_end"]:
            warnings.append(
                f"{f}, column exit_date: {int(s['_open_end'])} exit_date(s) of "
                f"{OPEN_END_DATE} with an empty exit_type read as still employed (no end date)."
            )
        self.fail_first(rules[5:8])
        if s["_ahead"]:
            warnings.append(
                f"{f}: {int(s['_ahead'])} row(s) hold a hire or exit date after today "
                f"({self.now.isoformat()}), first at {row_ref(self.raw, self.first('_ahead'))}; "
                f"they are events that have not happened yet and never move the latest "
                f"complete month."
            )
        self.fail_first(rules[8:])
        self._check_overlaps()

    def _check_overlaps(self) -> None:
        """contract._check_overlaps: spells of one employee sorted by hire date (ties in file
        or key order); of the overlapping pairs, the one whose earlier row comes first,
        naming its later-starting spell."""
        raw = self.raw
        pos = (
            "named_struct("
            + ", ".join([f"'_o{i}', {o}" for i, o in enumerate(raw.order)] + [f"'_row', {q(ROW)}"])
            + ")"
        )
        window = "OVER (PARTITION BY _eid ORDER BY _hire_iso, _pos)"
        found = (
            self.parsed.selectExpr(
                "_eid", "_hire_iso", "_exit_iso", f"{pos} AS _pos", f"{row_struct(raw)} AS _me"
            )
            .selectExpr(
                "*",
                f"lag(_pos) {window} AS _prev_pos",
                f"lag(_exit_iso) {window} AS _prev_exit",
                f"lag(_me) {window} AS _prev",
            )
            .where("_prev_pos IS NOT NULL AND (_prev_exit IS NULL OR _hire_iso < _prev_exit)")
            .selectExpr(
                "min(named_struct('_pair', least(_prev_pos, _pos), '_eid', _eid, "
                "'_hire', _hire_iso, '_pos', _pos, '_me', _me, '_prev', _prev)) AS x"
            )
            .first()["x"]
        )
        if found is not None:
            raise fail(
                raw,
                "hire_date",
                found["_me"],
                f"this spell overlaps the spell on {row_ref(raw, found['_prev'])} of the same "
                f"employee (a spell may start only on or after the previous one's exit date).",
            )

    # ----------------------------------------------------------------------- monthly

    def check_monthly(self, warnings: list[str]) -> list[str]:
        """contract._parse_monthly's checks in its order; the table's signals."""
        _require_columns(self.raw)
        s, raw = self.stats, self.raw
        self.fail_first(self.rules.rules)
        if s["_ahead"]:
            warnings.append(
                f"{raw.file}: {int(s['_ahead'])} row(s) are for the current month "
                f"{month_str(current_month(self.now))} or later (first at "
                f"{row_ref(raw, self.first('_ahead'))}); a month counts only once it has ended, "
                f"so they never move the latest complete month."
            )
        if s["_distinct"] != s["_n"]:
            self._name_duplicate()
        signals, ranged = [], []
        for col in self.rules.candidates:
            always = always_numeric(raw, col)
            present, texts = int(s[f"_present_{col}"]), int(s[f"_text_{col}"])
            if not always and not present - texts >= 0.5 * present:
                warnings.append(
                    f"{raw.file}, column {col}: non-numeric values (first at "
                    f"{row_ref(raw, self.first(f'_text_{col}'))}); treated as text, not a signal."
                )
                continue
            if texts:
                row = self.first(f"_text_{col}")
                cell = str(row["_v0"]).strip()
                context = (
                    ""
                    if always
                    else (f" ({present - texts} of the column's {present} values are numbers)")
                )
                if re.fullmatch(r"-?\d+,\d+", cell):
                    context += "; write decimals with a point"
                raise fail(raw, col, row, f"{col} {cell!r} is not a number{context}.")
            if s[f"_inf_{col}"]:
                row = self.first(f"_inf_{col}")
                cell = str(row["_v0"]).strip()
                raise fail(raw, col, row, f"{col} {cell!r} is not a finite number.")
            self.numbers.append(col)
            if always:
                ranged.append(col)
                if col == "csat":
                    signals.append(col)  # past CSAT is a feature; the target is future
                continue
            if not s[f"_values_{col}"]:
                raise DataError(
                    "this signal column has no value at all; drop it or fill it.",
                    file=raw.file,
                    column=col,
                )
            signals.append(col)
            missing = int(s["_n"]) - int(s[f"_values_{col}"])
            if missing:
                warnings.append(
                    f"{raw.file}, column {col}: {missing} suppressed (empty) value(s); "
                    f"features carry the last observed value forward."
                )
        # The range checks run after every column's (pandera, in the local engine): the first
        # offending row of either column, in row order.
        found = [(self.first(f"_range_{c}"), c) for c in ranged if s[f"_range_{c}"]]
        if found:
            row, col = min(found, key=lambda rc: tuple(rc[0])[: len(raw.order) + 1])
            why = "is outside 0..100" if col == "csat" else "is negative"
            raise fail(raw, col, row, f"{col} {row['_v0']} {why}.")
        return [c for c in signals if c not in NON_SIGNAL]

    def _name_duplicate(self) -> None:
        order = ", ".join([*self.raw.order, q(ROW)])
        nth = f"row_number() OVER (PARTITION BY _tid, _month ORDER BY {order})"
        row = (
            self.parsed.selectExpr("*", f"{nth} AS _nth")
            .selectExpr(f"{first('_nth > 1', self.raw, '_tid', '_month')} AS x")
            .first()["x"]
        )
        raise fail(
            self.raw,
            "month",
            row,
            f"duplicate row for team_id {row['_v0']} and month {month_str(int(row['_v1']))}; "
            f"one row per team per month.",
        )

    def team_key_check(self, keys: _Keys, emp: _Table) -> list[str]:
        """contract._team_key_check: teams that never appear in employees (a typo, or `7`
        against `007`): a few is a warning, more than half of the table's teams an error."""
        name = self.raw.name
        n, total = int(keys[f"_missing_{name}"]), int(keys[f"_total_{name}"])
        if not n:
            return []
        missing = keys.frame.where(f"{q('_in_' + name)} AND NOT _in_employees").select("_tid")
        unmatched = self.parsed.join(missing, "_tid", "left_semi")
        at = (
            "min(named_struct("
            + ", ".join(
                [f"'_o{i}', {o}" for i, o in enumerate(self.raw.order)] + [f"'_row', {q(ROW)}"]
            )
            + ")) AS _at"
        )
        first_seen = unmatched.groupBy("_tid").agg(_expr(at)).orderBy("_at", "_tid").limit(3)
        examples = [r["_tid"] for r in first_seen.collect()]  # in order of first appearance
        loose = {
            r["_loose"]: r["_tid"]
            for r in keys.frame.where("_in_employees")
            .selectExpr("_tid", f"{_loose('_tid')} AS _loose")
            .where(f"_loose IN ({', '.join(_sql_text(_loose_key(t)) for t in examples)})")
            .collect()
        }

        def show(team: str) -> str:
            near = loose.get(_loose_key(team))
            return f"{team} (employees has {near})" if near else str(team)

        shown = ", ".join(show(t) for t in examples)
        if 2 * n > total:
            row = unmatched.selectExpr(f"{first('true', self.raw)} AS x").first()["x"]
            raise fail(
                self.raw,
                "team_id",
                row,
                f"{n} of {total} teams never appear in {emp.raw.file} (e.g. {shown}); team_id "
                f"must match employees' team_id exactly.",
            )
        return [
            f"{self.raw.file}, column team_id: {n} of {total} team(s) never appear in "
            f"{emp.raw.file} (e.g. {shown}); their rows feed nothing."
        ]

    def cadence(self) -> list[str]:
        """contract._cadence_warnings: teams whose median gap between surveys exceeds 1.5."""
        row = (
            self.parsed.selectExpr(
                "_tid", "_month - lag(_month) OVER (PARTITION BY _tid ORDER BY _month) AS _gap"
            )
            .groupBy("_tid")
            .agg({"_gap": "median"})
            .toDF("_tid", "_median")
            .selectExpr(
                "count(1) AS teams", "sum(CAST(coalesce(_median, 1.0) > 1.5 AS INT)) AS sparse"
            )
            .first()
        )
        if row["sparse"]:
            return [
                f"{self.raw.file}: {int(row['sparse'])} of {int(row['teams'])} teams are "
                f"surveyed less than monthly (e.g. quarterly); features carry the last survey "
                f"forward with its age."
            ]
        return []

    def typed(self) -> Any:
        """The validated table in the engine's types (see SparkTables)."""
        schema = self.parsed.schema
        if self.raw.name == "employees":
            others = [
                f"{_other(c, schema[c].dataType)} AS {q(c)}"
                for c in self.raw.columns
                if c not in REQUIRED_COLUMNS["employees"]
            ]
            return self.parsed.selectExpr(
                "_eid AS employee_id",
                "_tid AS team_id",
                f"{to_date('_hire_iso')} AS hire_date",
                f"{to_date('_exit_iso')} AS exit_date",
                "_etype AS exit_type",
                *others,
            )
        protected = [
            f"{_protected_number(c, schema[c].dataType)} AS {q(c)}"
            for c in self.raw.columns
            if is_protected(c)
        ]
        return self.parsed.selectExpr(
            "_tid AS team_id",
            "_month AS month",
            *[f"{q('_num_' + c)} AS {q(c)}" for c in self.numbers],
            *protected,
        )


class _Keys:
    """One job over every table's teams: per monthly table its teams and those missing from
    employees, the employees' teams, and those without CX rows."""

    def __init__(self, frame: Any, row: Any) -> None:
        self.frame, self.row = frame, row

    def __getitem__(self, key: str) -> Any:
        return self.row[key]


def _team_keys(checks: dict[str, _Table]) -> _Keys:
    from functools import reduce

    # A table without its key columns fails in its turn, before its teams are looked at.
    keyed = {
        n: c for n, c in checks.items() if all(k in c.raw.columns for k in REQUIRED_COLUMNS[n])
    }
    names = list(keyed)
    parts = [
        c.parsed.selectExpr("_tid", f"{_sql_text(n)} AS _table").distinct()
        for n, c in keyed.items()
    ]
    union = reduce(lambda a, b: a.unionByName(b), parts)
    flags = [f"max(_table = {_sql_text(n)}) AS {q('_in_' + n)}" for n in names]
    per_team = union.groupBy("_tid").agg(*[_expr(f) for f in flags])
    sums = ["sum(CAST(_in_employees AS INT)) AS _teams"]
    for n in names[1:]:
        sums += [
            f"sum(CAST({q('_in_' + n)} AS INT)) AS {q('_total_' + n)}",
            f"sum(CAST({q('_in_' + n)} AND NOT _in_employees AS INT)) AS {q('_missing_' + n)}",
        ]
    if "cx" in names:
        sums.append("sum(CAST(_in_employees AND NOT _in_cx AS INT)) AS _no_cx")
    return _Keys(per_team, per_team.selectExpr(*sums).first())


def _expr(sql: str) -> Any:
    from pyspark.sql import functions as F

    return F.expr(sql)


def _sql_text(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _whole_ids(raw: SparkRaw, columns: list[str]) -> set[str]:
    """contract._as_text's test for float id columns: all their values are whole numbers."""
    checks = [
        f"max(CAST({q(c)} IS NOT NULL AND NOT isnan({q(c)}) AND {q(c)} <> floor({q(c)}) AS INT))"
        f" AS {q(c)}"
        for c in columns
    ]
    row = raw.frame.selectExpr(*checks).first()
    return {c for c in columns if not row[c]}


def _other(column: str, dtype: Any) -> str:
    return as_text(q(column), dtype) if is_identifier_like(column) else as_string(q(column), dtype)


def _protected_number(column: str, dtype: Any) -> str:
    from forecast.data.spark_parse import clean_text, number

    return number(q(column), dtype, clean_text(q(column), dtype))


def _require_columns(raw: SparkRaw) -> None:
    missing = [c for c in REQUIRED_COLUMNS[raw.name] if c not in raw.columns]
    if missing:
        raise DataError(
            f"required column {missing[0]} is missing (found: {', '.join(raw.columns)}).",
            file=raw.file,
            column=missing[0],
        )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return " ".join(text.splitlines()[0].split()) if text else type(exc).__name__


def _loose(column: str) -> str:
    from forecast.data.spark_parse import stripped

    return f"regexp_replace(lower({stripped(column)}), '(?<![0-9])0+(?=[0-9])', '')"


def _loose_key(team: str) -> str:
    return re.sub(r"\d+", lambda m: str(int(m.group())), str(team).strip().casefold())


# --------------------------------------------------------------------------- across tables


def _span_warnings(checks: dict[str, _Table]) -> list[str]:
    emp = checks["employees"].stats
    first_month, last = emp["_hire_min"][:7], emp["_event_max"][:7]
    out = []
    for name, check in checks.items():
        if name == "employees":
            continue
        lo = month_str(int(check.stats["_month_min"]))
        hi = month_str(int(check.stats["_month_max"]))
        if hi < first_month or lo > last:
            out.append(
                f"{check.raw.file}: its months ({lo}..{hi}) do not overlap the employees' span "
                f"({first_month}..{last})."
            )
    return out


def _latest_complete_month(checks: dict[str, _Table], now: dt.date) -> pd.Period:
    """contract.latest_complete_month from the months each table holds (the aggregation's
    set of complete months: a few values per table, never a row)."""
    cap = current_month(now).ordinal - 1
    common = latest_common_month(
        [{int(m) for m in checks[n].stats["_complete"]} for n in ("workload", "cx") if n in checks]
    )
    if common is not None:
        return common
    s = checks["employees"].stats
    past = [d for d in (s["_hire_past"], s["_exit_past"]) if d is not None]
    last = max(past) if past else s["_event_max"]
    return pd.Period(ordinal=min(pd.Period(last[:7], freq="M").ordinal, cap), freq="M")


__all__ = ["SparkTables", "read_and_validate", "spark_data_hash", "validate"]
