"""The commands on a database (issue 19): a pair trained from PostgreSQL once (conftest
`pg_trained`, TINY_MODEL), then scoring, catch-up, review, what-if, features and the backtest
read from PostgreSQL, SQLite and DuckDB; the same rows give byte-identical scores.parquet and
drivers.parquet as the directory, rows after the as-of month are filtered in the query, and the
password goes nowhere."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from forecast.cli import main
from forecast.commands import score
from forecast.commands.backtest import run_real_backtest
from forecast.commands.features import write_features
from forecast.commands.promote import _data_dir
from forecast.commands.review import run_review
from forecast.commands.what_if import run_what_if
from forecast.mlops.registry import resolve_pair
from tests.databases import PASSWORD, load_frames

IDENTICAL = ("scores.parquet", "drivers.parquet", "drivers_by_family.parquet", "history.parquet")


def _score(trained, data, out: Path, **kwargs) -> score.ScoreResult:
    kwargs.setdefault("report", False)
    return score.run_score(data, out, tracking_uri=trained.tracking_uri, **kwargs)


def _same_files(a: Path, b: Path) -> None:
    for name in IDENTICAL:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.fixture(scope="module")
def from_directory(pg_trained, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dir_scores") / "out"
    _score(pg_trained, pg_trained.org.data, out)
    return out


@pytest.fixture(scope="module")
def local_catch_up(pg_trained, tmp_path_factory) -> score.CatchUpResult:
    """The local engine's catch-up of the last two months from PostgreSQL (the local side of
    the Spark engine's comparisons too)."""
    org = pg_trained.org
    return score.run_catch_up(
        org.postgres,
        tmp_path_factory.mktemp("catch_up") / "root",
        since=str(pd.Period(org.latest, "M") - 1),
        tracking_uri=pg_trained.tracking_uri,
        report=False,
    )


def test_training_from_postgres_records_the_source_without_the_password(pg_trained) -> None:
    ref = resolve_pair("champion", pg_trained.tracking_uri).ref
    assert ref.tags["data_dir"] == pg_trained.org.postgres
    # Nothing in the MLflow store (database and artifacts) holds the password.
    for path in pg_trained.store.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


def test_postgres_scores_are_byte_identical_to_the_directorys(pg_trained, from_directory, tmp_path):
    result = _score(pg_trained, pg_trained.org.postgres, tmp_path / "pg")
    _same_files(from_directory, tmp_path / "pg")
    data = result.manifest["data"]
    assert data["source"] == pg_trained.org.postgres and len(data["hash"]) == 64
    assert data["tables"]["employees"] == {"table": "employees"}


@pytest.mark.parametrize("which", ["sqlite", "duckdb"])
def test_sqlite_and_duckdb_scores_are_byte_identical(pg_trained, from_directory, tmp_path, which):
    _score(pg_trained, getattr(pg_trained.org, which), tmp_path / which)
    _same_files(from_directory, tmp_path / which)


def _future_rows(frames: dict, month: pd.Period) -> dict:
    """Rows dated after `month`: a hire in every team, and each monthly table's rows again,
    moved three years on."""
    end = (month + 1).to_timestamp().date()
    emp = frames["employees"]
    hires = emp.drop_duplicates("team_id").copy()
    hires["employee_id"] = [f"F{i:07d}" for i in range(len(hires))]
    hires["hire_date"] = end + pd.Timedelta(days=3)
    hires[["exit_date", "exit_type", "exit_reason"]] = None
    out = {"employees": hires}
    for name in ("engagement", "workload", "cx"):
        t = frames[name].copy()
        t["month"] = (pd.PeriodIndex(t["month"], freq="M") + 36).astype(str)
        out[name] = t
    return out


def test_future_rows_in_postgres_do_not_change_scores_as_of_t(pg_trained, tmp_path) -> None:
    org = pg_trained.org
    month = pd.Period(org.latest, "M") - 2
    before = _score(pg_trained, org.postgres, tmp_path / "before", as_of=str(month))
    future = org.server.create_database("future")
    load_frames(org.server.url("future", password=True), org.frames)
    load_frames(
        org.server.url("future", password=True), _future_rows(org.frames, month), replace=False
    )
    seen: list[str] = []
    record = lambda *args: seen.append(args[2])  # noqa: E731 - statement of before_cursor_execute
    sa.event.listen(sa.Engine, "before_cursor_execute", record)
    try:
        after = _score(pg_trained, future, tmp_path / "after", as_of=str(month))
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", record)
    _same_files(tmp_path / "before", tmp_path / "after")
    # The later rows never left the database: the rows read, and so their hash, are the same.
    assert before.manifest["data"]["hash"] == after.manifest["data"]["hash"]
    assert after.manifest["data"]["as_of"] == str(month)
    assert any("hire_date <" in s and "WHERE" in s for s in seen)
    # And the same as the whole directory scored as of that month.
    _score(pg_trained, org.data, tmp_path / "dir", as_of=str(month))
    _same_files(tmp_path / "dir", tmp_path / "after")


def test_catch_up_and_review_read_postgres(pg_trained, local_catch_up) -> None:
    org = pg_trained.org
    since = str(pd.Period(org.latest, "M") - 1)
    assert local_catch_up.scored == [since, org.latest]
    manifest = json.loads((local_catch_up.root / org.latest / "manifest.json").read_text())
    assert manifest["data"]["source"] == org.postgres
    review = run_review(org.postgres, local_catch_up.root)
    assert review.path is not None and review.path.exists()


def test_cli_scores_a_database_and_its_outputs_hold_no_password(
    pg_trained, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", pg_trained.tracking_uri)
    url = pg_trained.org.server.url("org", password=True)
    out = tmp_path / "out"
    assert main(["score", "--data", url, "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert PASSWORD not in printed.out + printed.err
    for path in out.rglob("*"):
        assert PASSWORD.encode() not in path.read_bytes(), path
    assert (out / "report.html").exists()


def test_what_if_features_and_backtest_read_postgres(pg_trained, tmp_path) -> None:
    org = pg_trained.org
    teams = ["007"]  # a text id with leading zeros
    from_db = run_what_if(
        org.postgres, teams, "after_hours_ratio=0.05", tracking_uri=pg_trained.tracking_uri
    )
    from_dir = run_what_if(
        org.data, teams, "after_hours_ratio=0.05", tracking_uri=pg_trained.tracking_uri
    )
    pd.testing.assert_frame_equal(from_db, from_dir)
    panel = write_features(org.postgres, tmp_path / "panel.parquet", as_of=org.latest)
    assert panel.rows > 0
    done = run_real_backtest(
        org.postgres, tmp_path / "bt", config_path=pg_trained.config_path, n_origins=1
    )
    assert done.document["data"]["source"] == org.postgres


def test_promote_reads_the_source_a_pair_records(pg_trained) -> None:
    ref = resolve_pair("champion", pg_trained.tracking_uri).ref
    source = _data_dir(None, ref)
    assert source.is_database and source.label == pg_trained.org.postgres
    assert source.url.password == PASSWORD  # from FORECAST_DB_PASSWORD, never recorded


def test_spark_catch_up_reads_postgres_through_jdbc_and_writes_what_local_writes(
    spark, pg_trained, local_catch_up, tmp_path
) -> None:
    from forecast.data.spark_sources import jdbc_ready

    assert jdbc_ready(spark), "the PostgreSQL JDBC jar is missing (scripts/install-system-deps.sh)"
    org = pg_trained.org
    since = str(pd.Period(org.latest, "M") - 1)
    done = score.run_catch_up(
        org.postgres,
        tmp_path / "spark",
        since=since,
        tracking_uri=pg_trained.tracking_uri,
        report=False,
        engine="spark",
    )
    assert done.scored == local_catch_up.scored == [since, org.latest]
    for month in done.scored:
        _same_files(local_catch_up.root / month, tmp_path / "spark" / month)
        manifest = json.loads((tmp_path / "spark" / month / "manifest.json").read_text())
        assert manifest["engine"]["name"] == "spark"
        assert {r["by"] for r in manifest["data"]["read"].values()} == {"jdbc"}
        assert PASSWORD not in json.dumps(manifest)


def test_spark_stages_sqlite_and_scores_as_of_a_month(
    spark, pg_trained, local_catch_up, tmp_path
) -> None:
    """No JDBC driver for SQLite (nor DuckDB): the query streams into Parquet in chunks, Spark
    reads that. As of the month before the latest, the files are the local catch-up's."""
    org = pg_trained.org
    month = local_catch_up.scored[0]
    out = score.run_score_spark(
        org.sqlite,
        tmp_path / "spark",
        as_of=month,
        tracking_uri=pg_trained.tracking_uri,
        report=False,
    )
    _same_files(local_catch_up.root / month, out.out)
    read = out.manifest["data"]["read"]
    assert {r["by"] for r in read.values()} == {"staged"}
    assert read["cx"]["as_of"] == "in the query's WHERE clause (staged)"


@pytest.mark.parametrize(("which", "how"), [("postgres", "jdbc"), ("duckdb", "staged")])
def test_spark_reads_as_of_a_month_in_the_databases_query(spark, pg_org, which, how) -> None:
    """PostgreSQL through JDBC, DuckDB staged: the as-of cut runs in the database's own query
    and leaves the rows the local engine reads."""
    from forecast.data.sources import load_tables, open_source
    from forecast.data.spark_sources import read_tables

    data = getattr(pg_org, which)
    month = pd.Period(pg_org.latest, "M") - 6
    read = read_tables(spark, open_source(data), month)
    try:
        local = load_tables(data, as_of=month)
        assert set(read.raws) == {"employees", "engagement", "workload", "cx"}
        for name, raw in read.raws.items():
            assert raw.how == how
            assert raw.frame.count() == len(local.table(name)), name
        if how == "jdbc":
            plan = read.raws["employees"].frame._jdf.queryExecution().executedPlan().toString()
            assert "hire_date <" in plan  # the cut is in the query PostgreSQL runs
        else:
            assert read.pushed["employees"] == "in the query's WHERE clause (staged)"
    finally:
        read.close()
