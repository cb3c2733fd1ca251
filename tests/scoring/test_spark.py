"""`forecast score --engine spark` reads the data with Spark, validates them with the contract's
rules and scores them on Spark, and writes the same scores.parquet, drivers.parquet,
drivers_by_family.parquet, history.parquet and drift.parquet as the local engine, byte for
byte; the driver never collects a table's rows.

One local[2] session for the module (tests/conftest.py `spark`); skipped when pyspark (the
`forecast[spark]` extra) or Java is missing, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from forecast.cli import main
from forecast.data.sources import load_tables, open_source
from forecast.errors import DataError
from tests.contract_cases import CASES, GOOD, write_dir

SAME_FILES = (
    "scores.parquet",
    "drivers.parquet",
    "drivers_by_family.parquet",
    "history.parquet",
    "drift.parquet",
)
# Columns that only a table's own rows have: no result collected on the driver may hold one.
ROW_COLUMNS = {"employee_id", "hire_date", "exit_date", "exit_type", "hire_us", "exit_us"}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _same_files(a: Path, b: Path) -> None:
    for name in SAME_FILES:
        x, y = pd.read_parquet(a / name), pd.read_parquet(b / name)
        pd.testing.assert_frame_equal(x, y, check_exact=True, obj=name)
        assert _sha(a / name) == _sha(b / name), name


@pytest.fixture
def watched(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str], int]]:
    """Every result Spark hands the driver (collect, toPandas, toLocalIterator) as (how,
    columns, rows); the driver-side readers of the local engine fail if called."""
    from pyspark.sql import SparkSession
    from pyspark.sql.classic.dataframe import DataFrame

    seen: list[tuple[str, list[str], int]] = []
    for name in ("collect", "toPandas", "toLocalIterator"):
        original = getattr(DataFrame, name)

        def spy(self, *args, _name=name, _original=original, **kwargs):
            result = _original(self, *args, **kwargs)
            if _name == "toLocalIterator":
                result = list(result)
            seen.append((_name, list(self.columns), len(result)))
            return result

        monkeypatch.setattr(DataFrame, name, spy)

    def refuse(*_args, **_kwargs):
        raise AssertionError("the Spark engine loaded a table on the driver")

    monkeypatch.setattr(SparkSession, "createDataFrame", refuse)
    for target in (
        "forecast.commands.score.load_tables",
        "forecast.data.sources.read_database",
        "forecast.data.contract.tables_from_raw",
        "forecast.data.contract.read_raw_tables",
    ):
        monkeypatch.setattr(target, refuse)
    return seen


def test_spark_engine_writes_the_same_files_and_never_collects_rows(
    spark, trained_org, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained_org.tracking_uri)
    local, out = tmp_path / "local", tmp_path / "spark"
    common = ["-q", "score", "--data", str(trained_org.data), "--no-report"]
    assert main([*common, "--out", str(local)]) == 0
    seen = request.getfixturevalue("watched")
    assert main([*common, "--out", str(out), "--engine", "spark", "--master", "local[2]"]) == 0
    _same_files(local, out)
    scores = pd.read_parquet(out / "scores.parquet")
    assert "007" in set(scores["team_id"])  # ids stay text through Spark and Arrow
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["engine"]["name"] == "spark" and manifest["data"]["read"]["employees"] == {
        "by": "csv"
    }
    local_manifest = json.loads((local / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["data"]["hash"] == local_manifest["data"]["hash"]  # the same files' hash
    # What came back: per-team results (scores and features, up to 12 months of history),
    # aggregates, never a table's rows.
    teams = pd.read_csv(trained_org.data / "employees.csv", dtype=str)["team_id"].nunique()
    assert seen, "the spy saw nothing: the test would pass vacuously"
    assert all(not (set(cols) & ROW_COLUMNS) for _, cols, _ in seen), seen
    # Pass 2 returns a row per team and its history (at most 12 months): 13 rows per team.
    assert max(rows for _, _, rows in seen) <= teams * 13, seen
    raw_rows = sum(len(pd.read_csv(p)) for p in trained_org.data.glob("*.csv"))
    assert sum(rows for _, _, rows in seen) < raw_rows / 2, (raw_rows, seen)


def _future_rows(frames: dict[str, pd.DataFrame], latest: pd.Period) -> dict[str, pd.DataFrame]:
    """Each table with rows after `latest` added: hires, monthly rows, an exit."""
    out = {}
    later = latest + 2
    for name, frame in frames.items():
        extra = frame.tail(3).copy()
        if name == "employees":
            extra["employee_id"] = ["F1", "F2", "F3"]
            extra["hire_date"] = pd.Timestamp(later.year, later.month, 10)
            extra["exit_date"] = pd.NaT
            extra["exit_type"] = None
        else:
            extra["month"] = str(later)
        out[name] = pd.concat([frame, extra], ignore_index=True)
    return out


def test_parquet_with_future_rows_scores_as_of_a_month_like_the_csv(
    spark, trained_org, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spark reads Parquet (typed dates) with the as-of cut pushed into the scan: rows after
    the month change nothing, and the files equal the local engine's on the CSV files."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained_org.tracking_uri)
    latest = pd.Period(trained_org.latest, freq="M")
    frames = {
        p.stem: pd.read_csv(p, dtype=str, keep_default_na=False, na_values=[""])
        for p in trained_org.data.glob("*.csv")
    }
    frames["employees"]["hire_date"] = pd.to_datetime(frames["employees"]["hire_date"])
    frames["employees"]["exit_date"] = pd.to_datetime(frames["employees"]["exit_date"])
    lake = tmp_path / "lake"
    lake.mkdir()
    for name, frame in _future_rows(frames, latest).items():
        frame.to_parquet(lake / f"{name}.parquet", index=False)
    meta = trained_org.data / "meta.json"
    if meta.exists():
        (lake / "meta.json").write_text(meta.read_text(encoding="utf-8"), encoding="utf-8")
    as_of = ["--as-of", str(latest - 1)]
    common = ["-q", "score", "--no-report", *as_of]
    assert main([*common, "--data", str(trained_org.data), "--out", str(tmp_path / "local")]) == 0
    spark_run = [
        *common,
        "--data",
        str(lake),
        "--out",
        str(tmp_path / "spark"),
        "--engine",
        "spark",
    ]
    assert main(spark_run) == 0
    _same_files(tmp_path / "local", tmp_path / "spark")


def test_the_as_of_cut_is_pushed_into_the_parquet_scan(spark, tmp_path: Path) -> None:
    from forecast.data.spark_sources import read_tables

    d = write_dir(tmp_path, GOOD)
    emp = pd.read_csv(d / "employees.csv", dtype=str)
    emp["hire_date"] = pd.to_datetime(emp["hire_date"]).dt.date
    (d / "employees.csv").unlink()
    emp.to_parquet(d / "employees.parquet", index=False)
    read = read_tables(spark, open_source(d), pd.Period("2020-02", freq="M"))
    plan = read.raws["employees"].frame._jdf.queryExecution().executedPlan().toString()
    assert "PushedFilters: [Or(LessThan(hire_date,2020-03-01),IsNull(hire_date))]" in plan, plan
    assert read.raws["employees"].frame.count() == 3  # 2020-03-10 and 2021-03-01 are left out


@pytest.mark.parametrize(
    "case",
    [
        "exit_before_hire",
        "overlapping_spells",
        "bad_month",
        "csat_not_a_number",
        "negative_responses",
        "missing_cx_column",
    ],
)
def test_spark_validation_names_the_same_file_column_and_row(spark, tmp_path: Path, case) -> None:
    """One case per kind of rule (a duplicate key: through the CLI, below)."""
    from forecast.data.spark_contract import read_and_validate

    d = write_dir(tmp_path, CASES[case][0])
    with pytest.raises(DataError) as local:
        load_tables(d)
    with pytest.raises(DataError) as on_spark:
        read_and_validate(spark, open_source(d)).close()
    assert str(on_spark.value) == str(local.value)


def test_bad_data_through_the_spark_engine_is_one_line_and_exit_2(
    spark, trained_org, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained_org.tracking_uri)
    d = write_dir(tmp_path, CASES["duplicate_team_month"][0])
    run = ["score", "--data", str(d), "--out", str(tmp_path / "o"), "--engine", "spark"]
    assert main(run) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "Traceback" not in err
    with pytest.raises(DataError) as local:
        load_tables(d)
    assert " ".join(str(local.value).split()) in err  # the local engine's message, word for word
    assert "workload.csv, column month, row 3 (team_id=T1, month=2020-02): duplicate row" in err


def test_spark_validation_gives_the_same_warnings_signals_and_months(spark, tmp_path: Path):
    from forecast.data.spark_contract import read_and_validate

    tables = dict(GOOD)
    tables["workload"] += "T9,2020-03,0.2,30,13\n"  # a team employees never mention
    lines = tables["engagement"].splitlines()  # a text column: kept, never a signal
    tables["engagement"] = "\n".join([lines[0] + ",note", *(ln + ",ok" for ln in lines[1:])]) + "\n"
    d = write_dir(tmp_path, tables)
    local = load_tables(d)
    st = read_and_validate(spark, open_source(d))
    try:
        assert st.warnings == local.warnings and len(st.warnings) >= 3
        assert st.signals == local.signals
        assert st.protected == local.protected
        assert st.latest == pd.Period("2020-03", freq="M")
        assert st.teams == local.employees["team_id"].nunique()
    finally:
        st.close()


def test_spark_reads_numbers_as_pandas_does(spark) -> None:
    """The same cells are numbers (and the same doubles) or text on both engines."""
    from pyspark.sql import types as T

    from forecast.data.spark_parse import clean_text, number

    cells = ["1", " 1.5 ", "-2e3", "+.5", "5.", "1e500", "inf", "-Infinity", "00012", "1_000"]
    cells += ["0x10", "1,5", "1.5d", "1e", "NaN", "N/A", "-", "", None, "0.1", "87.123456789012"]
    frame = spark.createDataFrame(
        [(c,) for c in cells], T.StructType([T.StructField("c", T.StringType())])
    )
    text = clean_text("c", T.StringType())
    got = [r[0] for r in frame.selectExpr(f"{number('c', T.StringType(), text)} AS v").collect()]
    from forecast.data.contract import _clean_text

    want = pd.to_numeric(_clean_text(pd.Series(cells, dtype=object)), errors="coerce")
    assert [None if pd.isna(w) else float(w) for w in want] == got


def test_drift_reference_rebuilt_on_spark_equals_the_local_one(spark, trained_org) -> None:
    from dataclasses import replace

    from forecast.data.spark_contract import read_and_validate
    from forecast.features.specs import load_specs
    from forecast.mlops.registry import resolve_pair
    from forecast.scoring.batch import training_reference
    from forecast.scoring.spark import spark_reference

    pair = replace(resolve_pair("champion", trained_org.tracking_uri).pair, drift_reference=None)
    specs = load_specs()
    local_ref, local_source = training_reference(load_tables(trained_org.data), pair, specs)
    st = read_and_validate(spark, open_source(trained_org.data))
    try:
        ref, source = spark_reference(spark, st, pair, specs)
    finally:
        st.close()
    assert source == local_source and source.startswith("rebuilt")
    pd.testing.assert_frame_equal(ref, local_ref, check_exact=True)


def test_unknown_engine_is_one_line_and_exit_2(capsys) -> None:
    assert main(["score", "--data", ".", "--out", "x", "--engine", "dask"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "`--engine` must be one of local, spark. Got 'dask' instead." in err


def test_missing_pyspark_is_an_error_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from forecast.errors import ConfigError
    from forecast.scoring.spark import spark_session

    monkeypatch.setitem(sys.modules, "pyspark.sql", None)  # import now fails
    with pytest.raises(ConfigError, match=r"forecast\[spark\]"):
        spark_session("local[1]")
