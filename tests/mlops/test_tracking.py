"""Where MLflow lives, failing fast against a bad server, and a real `mlflow server` receiving
a run and the registry calls of a pair."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from forecast.commands.train import log_and_register
from forecast.errors import TrackingError
from forecast.mlops.registry import resolve_pair
from forecast.mlops.tracking import (
    ATTRITION_MODEL,
    HTTP_BOUNDS,
    artifact_root,
    bound_http_retries,
    connect,
    resolve_tracking_uri,
)

FORECAST = str(Path(sys.executable).with_name("forecast"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_default_store_is_sqlite_in_mlruns_of_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    uri = resolve_tracking_uri()
    assert uri == f"sqlite:///{tmp_path.resolve()}/mlruns/mlflow.db"
    assert artifact_root(uri) == (tmp_path.resolve() / "mlruns" / "artifacts").as_uri()


def test_environment_then_explicit_uri_take_precedence(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://example.invalid:5000")
    assert resolve_tracking_uri() == "http://example.invalid:5000"
    assert resolve_tracking_uri("sqlite:////tmp/x/mlflow.db") == "sqlite:////tmp/x/mlflow.db"


def test_experiment_artifacts_sit_beside_the_database(empty_store, tmp_path):
    tracking = connect(empty_store)
    experiment = tracking.client.get_experiment(tracking.experiment_id)
    assert experiment.name == "forecast"
    assert experiment.artifact_location == (tmp_path / "mlruns" / "artifacts").as_uri()


def test_http_retries_are_bounded_unless_the_user_set_them(monkeypatch):
    for key in HTTP_BOUNDS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")
    bound_http_retries()
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"
    assert os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] == "1"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"


def test_unreachable_server_is_one_tracking_error_within_seconds():
    uri = f"http://127.0.0.1:{_free_port()}"
    start = time.monotonic()
    with pytest.raises(TrackingError) as err:
        resolve_pair("champion", tracking_uri=uri)
    assert time.monotonic() - start < 15
    message = str(err.value)
    assert message.startswith(f"MLflow tracking server at {uri} is unreachable (")
    assert message.endswith("Check MLFLOW_TRACKING_URI.")
    assert "\n" not in message


def test_a_server_that_never_answers_times_out_within_seconds():
    # Listening without ever accepting: the connection opens, no reply ever comes (the way a
    # firewall or a hung proxy behaves). MLflow's own client would retry for minutes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(TrackingError, match=r"is unreachable \(.*timed out"):
            connect(uri)
        assert time.monotonic() - start < 15


@pytest.mark.parametrize("command", [["models"], ["train", "--data", "."], ["promote"]])
def test_cli_against_unreachable_server_prints_one_line_and_fails(command, tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{_free_port()}"}
    # `train` checks that --data holds an employees table before it opens the store.
    (tmp_path / "employees.csv").write_text("employee_id,team_id,hire_date,exit_date,exit_type\n")
    start = time.monotonic()
    proc = subprocess.run(
        [FORECAST, *command], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert time.monotonic() - start < 15
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: MLflow tracking server at http://127.0.0.1:")
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.fixture
def mlflow_server(tmp_path, migrated_db):
    """A real tracking server on a free loopback port, with its own SQLite store (a copy of an
    already migrated one, to start faster) and served artifacts; torn down (whole process
    group) after the test."""
    import shutil

    shutil.copy(migrated_db, tmp_path / "server.db")
    port = _free_port()
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "artifacts"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    "mlflow server did not start: " + (tmp_path / "server.log").read_text()[-2000:]
                )
            time.sleep(0.3)
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_server_receives_the_run_and_registry_calls(registry_org, mlflow_server):
    record = registry_org.first.record
    tracking = connect(mlflow_server)
    run_id, _, ref = log_and_register(tracking, record)
    # A fresh registry: the first pair is both champion and challenger.
    assert ref.aliases == ["challenger", "champion"]
    assert ref.run_id == run_id and ref.csat_version == "1"
    run = tracking.client.get_run(run_id)
    assert run.data.params["data_hash"] == registry_org.first.data_hash
    assert "model_card.md" in {f.path for f in tracking.client.list_artifacts(run_id)}

    panel = record.panel.tail(30)
    expected = record.pair.predict(panel)
    # Every form resolves on SQLite (test_training.py); over HTTP three suffice.
    for name in ("champion", run_id, f"models:/{ATTRITION_MODEL}/1"):
        got = resolve_pair(name, tracking_uri=mlflow_server)
        assert (got.ref.attrition_version, got.ref.run_id) == ("1", run_id)
        pd.testing.assert_frame_equal(got.pair.predict(panel), expected)
