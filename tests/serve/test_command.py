"""`forecast serve` from the command line: its refusals in one line, and the real command
serving the fixture's months in its own process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import psutil

from forecast.cli import main
from tests.interrupts import interruptible_forecast
from tests.serve.conftest import PASSWORDS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_refusals_are_one_line(served_org, users_db, tmp_path, capsys) -> None:
    root = str(served_org.root)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        cases = [
            (["--out-root", str(tmp_path), "--users", str(users_db)], "no scored month folders"),
            (["--out-root", root, "--users", str(tmp_path / "none.db")], "no user store"),
            (
                [
                    "--out-root",
                    root,
                    "--users",
                    str(users_db),
                    "--trusted-header",
                    "X-Forwarded-Email",
                    "--host",
                    "0.0.0.0",
                ],
                "loopback",
            ),
            (
                ["--out-root", root, "--users", str(users_db), "--trusted-header", "X Bad"],
                "header name",
            ),
            (
                ["--out-root", root, "--users", str(users_db), "--port", str(taken)],
                f"cannot listen on 127.0.0.1:{taken}",
            ),
            (["--out-root", root, "--users", str(users_db), "--port", "0"], "--port"),
        ]
        for args, message in cases:
            assert main(["serve", *args]) == 2, args
            err = capsys.readouterr().err
            assert message in err and err.count("\n") == 1, (args, err)


def test_forecast_serve_runs_as_a_command(served_org, users_db) -> None:
    """The console command in its own process: it starts, signs in, answers, and stops on
    Ctrl-C (SIGINT) without a traceback."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.Popen(
        interruptible_forecast(
            "serve",
            "--out-root",
            str(served_org.root),
            "--data",
            str(served_org.trained.data),
            "--users",
            str(users_db),
            "--port",
            str(port),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(f"{url}/login", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()[1]
                assert time.monotonic() < deadline, "forecast serve did not start"
                time.sleep(0.3)
        with httpx.Client(base_url=url) as c:
            assert c.get("/api/teams").status_code == 401
            r = c.post("/api/session", json={"username": "sally", "password": PASSWORDS["sally"]})
            token = r.json()["csrf_token"]
            teams = c.get("/api/teams").json()
            body = {"team_id": teams[0]["team_id"], "signal": "after_hours_ratio", "value": 0.05}
            answer = c.post("/api/what-if", json=body, headers={"X-CSRF-Token": token})
            assert answer.status_code == 200 and answer.json()["team_id"] == teams[0]["team_id"]
        workers = psutil.Process(proc.pid).children(recursive=True)
        assert workers  # the what-if worker process
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert "serving 2 scored month(s)" in out and "live what-ifs of after_hours_ratio" in out
    assert "Traceback" not in err
    # The what-if worker ends with the server, whatever ended it.
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive
