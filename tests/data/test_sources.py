"""`--data URL` and source files (issue 19): a database gives the same tables, the same errors
(named by the row's key values) and, as of a month, only the rows known then, read by a query
that filters them itself. PostgreSQL is a real server (tests/databases.py); SQLite and DuckDB
(over Parquet files) are files."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from forecast.cli import main
from forecast.data import sources
from forecast.data.contract import load_tables as load_directory
from forecast.data.sources import load_tables, open_source
from forecast.errors import ConfigError, DataError
from forecast.features.grid import point_in_time
from tests.contract_cases import CASES, GOOD
from tests.databases import PASSWORD, USER, free_port, load_frames

TABLES = ("employees", "engagement", "workload", "cx")
CONTRACT_EMPLOYEES = ("employee_id", "team_id", "hire_date", "exit_date", "exit_type")


def _same_tables(a, b) -> None:
    for name in TABLES:
        x, y = a.table(name), b.table(name)
        assert (x is None) == (y is None), name
        if x is None:
            continue
        assert list(x.columns) == list(y.columns), name
        if name == "employees":
            # Extra columns keep the database's type (birth_year is a number there, as in a
            # typed Parquet file); the contract's columns have the contract's types.
            x, y = x[list(CONTRACT_EMPLOYEES)], y[list(CONTRACT_EMPLOYEES)]
        pd.testing.assert_frame_equal(x, y, check_dtype=False, obj=name)
        for col in ("employee_id", "team_id", "hire_date", "exit_date", "exit_type", "month"):
            if col in x:
                assert x[col].dtype == y[col].dtype, (name, col)
    assert a.signals == b.signals and a.protected == b.protected
    assert a.data_start == b.data_start


def _messages(warnings: list[str]) -> list[str]:
    return [w.replace(".csv", "") for w in warnings]


@pytest.fixture
def sql_log():
    """Every SQL statement sent while the test runs."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append(statement)

    sa.event.listen(sa.Engine, "before_cursor_execute", record)
    yield seen
    sa.event.remove(sa.Engine, "before_cursor_execute", record)


# --------------------------------------------------------------------------- same tables


def test_postgres_gives_the_directorys_tables(pg_org) -> None:
    from_db, from_dir = load_tables(pg_org.postgres), load_directory(pg_org.data)
    _same_tables(from_dir, from_db)
    assert "007" in set(from_db.employees["team_id"])  # a text id keeps its leading zeros
    assert _messages(from_db.warnings) == _messages(from_dir.warnings)


@pytest.mark.parametrize("which", ["sqlite", "duckdb"])
def test_sqlite_and_duckdb_over_parquet_give_the_directorys_tables(db_org, which) -> None:
    _same_tables(load_directory(db_org.data), load_tables(getattr(db_org, which)))


def test_the_rows_hash_follows_the_rows_not_the_database(pg_org, db_org) -> None:
    a, b = open_source(pg_org.postgres), open_source(db_org.sqlite)
    load_tables(a)
    load_tables(b)
    assert a.hash() == b.hash() and len(a.hash()) == 64
    c = open_source(pg_org.postgres)
    load_tables(c, as_of=pd.Period(pg_org.latest, "M") - 3)
    assert c.hash() != a.hash() and c.describe()["as_of"]


# --------------------------------------------------------------------------- point in time


def test_as_of_filters_rows_in_the_query(pg_org, sql_log) -> None:
    month = pd.Period(pg_org.latest, "M") - 4
    known = load_tables(pg_org.postgres, as_of=month)
    reads = [s for s in sql_log if "ORDER BY" in s]
    assert any("WHERE" in s and "hire_date <" in s for s in reads), reads
    assert sum("WHERE" in s and "month <" in s for s in reads) == 3, reads
    full = load_directory(pg_org.data)
    assert len(known.employees) < len(full.employees)
    assert max(t["month"].max() for t in (known.workload, known.cx)) == month
    # Exactly the rows the point-in-time view of the whole data keeps (later exits are read
    # and then unknown as of the month, as today).
    for name in TABLES:
        cols = list(CONTRACT_EMPLOYEES) if name == "employees" else slice(None)
        pd.testing.assert_frame_equal(
            point_in_time(known, month).table(name).reset_index(drop=True).loc[:, cols],
            point_in_time(full, month).table(name).reset_index(drop=True).loc[:, cols],
            check_dtype=False,
            obj=name,
        )


@pytest.mark.parametrize("where", ["sqlite", "duckdb"])
def test_directory_as_of_keeps_the_rows_a_database_query_keeps(db_org, where) -> None:
    month = pd.Period(db_org.latest, "M") - 5
    _same_tables(
        load_tables(db_org.data, as_of=month), load_tables(getattr(db_org, where), as_of=month)
    )


def test_text_dates_are_cut_by_the_query_and_bad_ones_are_still_named(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'hr.db'}"
    frames = _text_frames(GOOD)
    # A garbled hire date sorts after any month: the query must still read it.
    frames["employees"].loc[4, "hire_date"] = "N/A"
    load_frames(url, frames)
    with pytest.raises(DataError, match=r"employees, column hire_date, row employee_id=010"):
        load_tables(url, as_of=pd.Period("2020-02", "M"))
    frames["employees"].loc[4, "hire_date"] = "2020-03-10"
    load_frames(url, frames)
    t = load_tables(url, as_of=pd.Period("2020-02", "M"))
    assert list(t.employees["employee_id"]) == ["007", "008", "009"]
    assert str(t.cx["month"].max()) == "2020-02"


# --------------------------------------------------------------------------- same errors


def _text_frames(tables: dict[str, str]) -> dict[str, pd.DataFrame]:
    from io import StringIO

    out = {}
    for name, text in tables.items():
        frame = pd.read_csv(StringIO(text), dtype=str, keep_default_na=False)
        out[name] = frame.astype(object).where(frame != "", None)
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_contract_error_reads_the_same_from_a_database(tmp_path, case) -> None:
    """The contract's hard errors, loaded as text into SQLite: the same message for the same
    column, the row named by its key values instead of its number."""
    tables, file, column, _, _ = CASES[case]
    directory = tmp_path / "d"
    directory.mkdir()
    for stem, text in tables.items():
        (directory / f"{stem}.csv").write_text(text, encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'hr.db'}"
    load_frames(url, _text_frames(tables))
    with pytest.raises(DataError) as from_dir:
        load_directory(directory)
    with pytest.raises(DataError) as from_db:
        load_tables(url)
    a, b = from_dir.value, from_db.value
    assert b.file == file.removesuffix(".csv") and b.column == a.column == column
    assert b.row is None and (b.key == a.key)
    if a.key:
        assert f"row {a.key}:" in str(b)
    if case != "overlapping_spells":  # which names the other spell by its keys
        assert str(b).split(": ", 1)[1] == str(a).split(": ", 1)[1]


def test_an_error_names_the_table_column_and_key_values(pg_org) -> None:
    url = pg_org.server.create_database("bad_exit")
    frames = {k: v.copy() for k, v in pg_org.frames.items() if k == "employees"}
    emp = frames["employees"]
    i = emp.index[emp["exit_date"].notna()][0]
    emp.loc[i, "exit_date"] = emp.loc[i, "hire_date"] - pd.Timedelta(days=3)
    load_frames(pg_org.server.url("bad_exit", password=True), frames)
    with pytest.raises(DataError) as err:
        load_tables(url)
    assert str(err.value).startswith(
        f"employees, column exit_date, row employee_id={emp.loc[i, 'employee_id']}, "
        f"team_id={emp.loc[i, 'team_id']}: exit date "
    )


def _cli(capsys, *args: str) -> tuple[int, list[str]]:
    code = main(list(args))
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip()]


def _bad_database(pg_org, name: str, change) -> str:
    frames = {k: v.copy() for k, v in pg_org.frames.items()}
    change(frames)
    url = pg_org.server.create_database(name)
    load_frames(pg_org.server.url(name, password=True), frames)
    return url


def _text_csat(frames: dict) -> None:
    cx = frames["cx"]
    cx["csat"] = cx["csat"].map(lambda v: None if pd.isna(v) else f"{v:g}").astype(object)
    cx.loc[5, "csat"] = "high"


def _duplicate_month(frames: dict) -> None:
    w = frames["workload"]
    frames["workload"] = pd.concat([w, w.iloc[[7]]], ignore_index=True)


BAD = {
    "missing_table": (lambda f: f.pop("employees"), "required table employees is missing"),
    "missing_column": (
        lambda f: f.__setitem__("cx", f["cx"].drop(columns="csat")),
        "cx, column csat: required column csat is missing",
    ),
    "text_csat": (_text_csat, "cx, column csat, row team_id="),
    "duplicate_team_month": (_duplicate_month, "workload, column month, row team_id="),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_database_exits_2_with_one_line(pg_org, capsys, case) -> None:
    change, expected = BAD[case]
    url = _bad_database(pg_org, f"bad_{case}", change)
    code, lines = _cli(capsys, "validate", url)
    assert code == 2 and len(lines) == 1, lines
    assert expected in lines[0] and "Traceback" not in lines[0]
    if case == "text_csat":
        assert "csat 'high' is not a number" in lines[0]


def test_wrong_password_exits_2_naming_the_host_never_the_password(
    pg_org, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("FORECAST_DB_PASSWORD", "not-the-password")
    code, lines = _cli(capsys, "validate", pg_org.postgres)
    assert code == 2 and len(lines) == 1, lines
    assert "could not connect to the database at 127.0.0.1" in lines[0]
    assert "password authentication failed" in lines[0]
    assert "not-the-password" not in lines[0] and PASSWORD not in lines[0]


def test_a_password_in_the_url_is_never_shown(pg_org, capsys) -> None:
    url = pg_org.server.url("org", password=True)
    assert main(["validate", url]) == 0
    both = capsys.readouterr()
    assert PASSWORD not in both.out + both.err
    assert pg_org.postgres in both.out  # named without it
    code, lines = _cli(capsys, "validate", url.replace("/org", "/absent"))
    assert code == 2 and PASSWORD not in lines[0] and 'database "absent" does not exist' in lines[0]


def test_unreachable_port_exits_2_at_once_naming_the_host(capsys) -> None:
    port = free_port()
    started = time.monotonic()
    code, lines = _cli(capsys, "validate", f"postgresql+psycopg://{USER}@127.0.0.1:{port}/hr")
    assert code == 2 and len(lines) == 1, lines
    assert f"could not connect to the database at 127.0.0.1:{port}" in lines[0]
    assert time.monotonic() - started < 15


def test_a_server_that_never_answers_fails_within_the_timeout(monkeypatch) -> None:
    """A port that accepts connections and then says nothing (a firewall, a hung server)."""
    monkeypatch.setattr(sources, "CONNECT_TIMEOUT_S", 2)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    port = silent.getsockname()[1]
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        silent.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(silent.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        with pytest.raises(
            DataError, match=f"could not connect to the database at 127.0.0.1:{port}"
        ):
            load_tables(f"postgresql+psycopg://{USER}@127.0.0.1:{port}/hr")
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        silent.close()
    assert time.monotonic() - started < 15


# --------------------------------------------------------------------------- source files


def test_source_file_maps_tables_queries_schema_and_data_start(pg_org, tmp_path, monkeypatch):
    engine = pg_org.server.admin_engine("org")
    with engine.connect() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS hr CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA hr"))
        conn.execute(sa.text("CREATE TABLE hr.people AS SELECT * FROM public.employees"))
        conn.execute(sa.text("CREATE TABLE hr.workload AS SELECT * FROM public.workload"))
    engine.dispose()
    monkeypatch.delenv("FORECAST_DB_PASSWORD")
    monkeypatch.setenv("HR_DB_SECRET", PASSWORD)
    spec = {
        "url": pg_org.postgres,
        "schema": "hr",
        "password_env": "HR_DB_SECRET",
        "data_start": "2022-01",
        "tables": {
            "employees": "people",
            "cx": {"query": "SELECT team_id, month, csat, responses FROM public.cx;"},
            "engagement": None,
        },
    }
    path = tmp_path / "hr.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    source = open_source(path)
    t = load_tables(source)
    full = load_directory(pg_org.data)
    assert t.engagement is None and str(t.data_start) == "2022-01"
    cols = list(CONTRACT_EMPLOYEES)
    pd.testing.assert_frame_equal(t.employees[cols], full.employees[cols], check_dtype=False)
    pd.testing.assert_frame_equal(t.cx, full.cx[t.cx.columns], check_dtype=False)
    described = source.describe()
    assert described["schema"] == "hr" and described["tables"]["employees"] == {"table": "people"}
    assert len(described["tables"]["cx"]["query_sha256"]) == 64
    assert "engagement" not in described["tables"] and PASSWORD not in str(described)


@pytest.mark.parametrize(
    "spec, expected",
    [
        ({"url": "postgresql+psycopg://u@h/db", "tabels": {}}, "unknown key 'tabels'"),
        ({"tables": {}}, "`url` must be a database URL"),
        ({"url": "sqlite:///x.db", "tables": {"staff": "people"}}, "not a contract table"),
        ({"url": "postgresql+psycopg://u@h/db", "tables": {"cx": {"sql": "x"}}}, "tables.cx"),
        ({"url": "postgresql+psycopg://u@h/db", "tables": {"employees": None}}, "employees"),
        ({"url": "postgresql+psycopg://u@h/db", "data_start": "2022/01"}, "data_start"),
    ],
)
def test_a_bad_source_file_is_one_error(tmp_path, spec, expected) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(".", r"\.")):
        open_source(path)


def test_a_mapped_table_that_is_absent_is_named(db_org, tmp_path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        yaml.safe_dump({"url": db_org.sqlite, "tables": {"workload": "work"}}), encoding="utf-8"
    )
    with pytest.raises(DataError, match=r"required table workload \(table work\) is missing"):
        load_tables(path)


def test_missing_database_file_is_an_error_and_not_created(tmp_path) -> None:
    for url in (f"sqlite:///{tmp_path / 'no.db'}", f"duckdb:///{tmp_path / 'no.duckdb'}"):
        with pytest.raises(DataError, match="does not exist"):
            load_tables(url)
    assert not list(tmp_path.iterdir())


def test_a_url_without_a_driver_is_one_error(capsys) -> None:
    code, lines = _cli(capsys, "validate", "mysql://u:pw@127.0.0.1/hr")
    assert code == 2 and len(lines) == 1 and "no database driver for mysql" in lines[0]
    assert "pw" not in lines[0].split("mysql")[1]


def test_validate_as_of_reads_only_that_months_rows(pg_org, capsys) -> None:
    month = str(pd.Period(pg_org.latest, "M") - 6)
    assert main(["validate", pg_org.postgres, "--as-of", month]) == 0
    out = capsys.readouterr().out
    assert f"latest complete month {month}" in out


def test_directory_paths_still_work_as_path_or_text(db_org) -> None:
    assert open_source(Path(db_org.data)).directory == Path(db_org.data)
    assert open_source(str(db_org.data)).location == Path(db_org.data).resolve()


def test_database_column_types_map_to_the_contracts(pg_org, sql_log) -> None:
    """Integer ids, timestamp and date columns, a DATE month, numeric and integer signals."""
    url = pg_org.server.create_database("types")
    engine = pg_org.server.admin_engine("types")
    with engine.connect() as conn:
        for statement in (
            "CREATE TABLE employees (employee_id text, team_id integer, hire_date timestamp,"
            " exit_date date, exit_type text)",
            "INSERT INTO employees VALUES ('007', 7, '2020-01-05 09:30', NULL, NULL),"
            " ('008', 7, '2020-02-05 00:00', '2021-03-01', 'Voluntary'),"
            " ('009', 12, '2020-02-05 00:00', NULL, NULL),"
            " ('010', 12, '2020-05-02 00:00', NULL, NULL)",
            "CREATE TABLE workload (team_id integer, month date, after_hours_ratio numeric(6,3),"
            " cases_per_head integer)",
            "INSERT INTO workload VALUES (7, '2020-01-01', 0.105, 40), (7, '2020-02-01', 0.12, 41),"
            " (12, '2020-02-01', 0.3, NULL), (12, '2020-03-01', 0.28, 50)",
        ):
            conn.execute(sa.text(statement))
    engine.dispose()
    t = load_tables(url)
    assert list(t.employees["team_id"]) == ["7", "7", "12", "12"]
    assert str(t.employees["hire_date"].iloc[0]) == "2020-01-05 00:00:00"
    assert t.employees["exit_type"].iloc[1] == "voluntary"
    assert [str(m) for m in t.workload["month"]] == ["2020-01", "2020-02", "2020-02", "2020-03"]
    assert t.workload["after_hours_ratio"].dtype == "float64"
    assert t.signals["workload"] == ["after_hours_ratio", "cases_per_head"]
    sql_log.clear()
    known = load_tables(url, as_of=pd.Period("2020-02", "M"))
    assert list(known.employees["employee_id"]) == ["007", "008", "009"]
    assert {str(m) for m in known.workload["month"]} == {"2020-01", "2020-02"}
    assert any("month < %(known_by)s" in s for s in sql_log), sql_log
