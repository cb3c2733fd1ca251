"""`forecast score --engine spark` writes the same scores.parquet and drivers.parquet as the local
engine, byte for byte, on a small organisation under local[2].

Skipped when pyspark (the `forecast[spark]` extra) or Java is missing, except under CI=true,
where a missing Spark is a failure: CI must install the extra.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from forecast.cli import main

SAME_FILES = (
    "scores.parquet",
    "drivers.parquet",
    "drivers_by_family.parquet",
    "history.parquet",
    "drift.parquet",
)


def _spark_missing() -> str | None:
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (pip install -e '.[spark]')"
    if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        return "Java is not installed (Spark needs Java 17)"
    return None


@pytest.fixture(scope="module")
def spark_ready() -> None:
    why = _spark_missing()
    if why is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but Spark cannot run: {why}")
    pytest.skip(why)


@pytest.fixture
def spark_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Loopback only, whatever the machine's network: CI runners often have no resolvable name.
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_spark_engine_writes_the_same_files_as_the_local_engine(
    spark_ready, spark_env, trained_org, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas as pd

    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained_org.tracking_uri)
    local, spark = tmp_path / "local", tmp_path / "spark"
    common = ["-q", "score", "--data", str(trained_org.data), "--no-report"]
    assert main([*common, "--out", str(local)]) == 0
    assert main([*common, "--out", str(spark), "--engine", "spark", "--master", "local[2]"]) == 0
    for name in SAME_FILES:
        a, b = pd.read_parquet(local / name), pd.read_parquet(spark / name)
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=name)
        assert _sha(local / name) == _sha(spark / name), name
    scores = pd.read_parquet(spark / "scores.parquet")
    assert "007" in set(scores["team_id"])  # ids stay text through Spark and Arrow
    manifest = (spark / "manifest.json").read_text(encoding="utf-8")
    assert '"engine"' in manifest and "local[2]" in manifest


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
