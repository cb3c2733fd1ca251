"""Outputs that cannot be written are refused before any work, lock files do not outlive a run,
Ctrl-C says what it left, and commands that only read MLflow never create a tracking store.

Every failing case must end in exit 2 (130 for Ctrl-C) and one line naming the problem, with
no traceback, no hang and no change to an earlier output.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from forecast.cli import main
from forecast.commands import score
from forecast.data.atomic import check_writable_dir, output_lock
from forecast.errors import OutputError, TrackingError
from forecast.scoring import output
from tests.interrupts import interruptible, interruptible_forecast

LINUX = sys.platform.startswith("linux")


def _forecast(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    prefix: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """Run `forecast ARGS` and capture what a person would see. In this process (the CLI's own
    `main`, which is what the console script calls) unless a `prefix` command must wrap it: a
    Python start and MLflow's import cost seconds per case."""
    if prefix:
        return subprocess.run(
            [*prefix, sys.executable, "-m", "forecast", *args],
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            timeout=300,
        )
    out, err = io.StringIO(), io.StringIO()
    saved = {key: os.environ.get(key) for key in env or {}}
    here = Path.cwd()
    try:
        os.environ.update(env or {})
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        os.chdir(here)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = _lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    return lines[0]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _leftovers(out: Path) -> list[str]:
    """What a run may leave beside OUT: its lock file, temporary or backup folders."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def _earlier_output(folder: Path) -> Path:
    """Something `forecast score` would replace: a folder with a manifest of ours."""
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"producer": score.PRODUCER}))
    (folder / "scores.parquet").write_bytes(b"earlier scores")
    return folder


# --------------------------------------------------------------------------- unwritable outputs


@pytest.mark.parametrize(
    "command",
    [
        ("score", "--out", "{file}/sub"),
        ("score", "--out-root", "{file}/sub", "--catch-up"),
        ("backtest", "--out", "{file}/sub"),
    ],
)
def test_output_under_a_file_is_refused_before_the_data_or_mlflow(command, tmp_path) -> None:
    # Neither the data nor the store exist: only a check made first can report the output.
    file = tmp_path / "FILE"
    file.write_text("not a folder")
    args = [a.format(file=file) for a in command]
    store = tmp_path / "no" / "store"
    proc = _forecast(
        *args,
        "--data",
        str(tmp_path / "missing-data"),
        env={"MLFLOW_TRACKING_URI": f"sqlite:///{store}/mlflow.db"},
    )
    assert proc.returncode == 2
    line = _one_error_line(proc)
    assert f"`{args[1]}` {file}/sub" in line and f"{file} is a file" in line, line
    assert file.read_text() == "not a folder" and not store.parent.exists()


def _read_only_dir(tmp_path: Path) -> tuple[Path, tuple[str, ...]]:
    """A directory holding an earlier output that this user cannot write to, and the command
    prefix that makes it so: a read-only bind mount in a private mount namespace for root
    (permissions do not stop root), plain permissions otherwise."""
    folder = tmp_path / "ro"
    _earlier_output(folder / "out")
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return folder, ()
    if not LINUX or shutil.which("unshare") is None:
        pytest.skip("needs unshare to make a read-only directory as root")
    mount = f'mount --bind {folder} {folder} && mount -o remount,ro,bind {folder} && exec "$@"'
    prefix = ("unshare", "--mount", "sh", "-c", mount, "sh")
    probe = subprocess.run([*prefix, "touch", str(folder / "x")], capture_output=True, text=True)
    if "Read-only file system" not in probe.stderr:
        pytest.skip(f"cannot make a read-only mount here: {probe.stderr.strip()}")
    return folder, prefix


def test_out_under_a_read_only_directory_is_refused_before_any_work(tmp_path) -> None:
    folder, prefix = _read_only_dir(tmp_path)
    out = folder / "out"
    before = _snapshot(out)
    store = tmp_path / "no" / "store"
    proc = _forecast(
        "score",
        "--data",
        str(tmp_path / "missing-data"),
        "--out",
        str(out),
        env={"MLFLOW_TRACKING_URI": f"sqlite:///{store}/mlflow.db"},
        prefix=prefix,
    )
    assert proc.returncode == 2
    line = _one_error_line(proc)
    assert f"`--out` {out}: {folder} is read-only" in line, line
    assert _snapshot(out) == before and _leftovers(out) == []


@pytest.mark.skipif(not LINUX, reason="/proc and /sys are Linux's")
@pytest.mark.parametrize("out", ["/proc/forecast-out", "/sys/forecast-out"])
def test_out_where_no_file_can_exist_fails_within_seconds(out, trained_org) -> None:
    # Before: ten minutes of retrying a lock file /proc can never hold, then "another run".
    started = time.monotonic()
    proc = _forecast(
        "score",
        "--data",
        str(trained_org.data),
        "--out",
        out,
        env={"MLFLOW_TRACKING_URI": trained_org.tracking_uri},
    )
    assert time.monotonic() - started < 30
    assert proc.returncode == 2
    line = _one_error_line(proc)
    assert f"`--out` {out}: {Path(out).parent}" in line and "another `forecast" not in line, line


def test_a_lock_file_that_cannot_be_created_fails_at_once_not_at_the_timeout(tmp_path) -> None:
    started = time.monotonic()
    with (
        pytest.raises(OutputError, match="cannot create the lock file"),
        output_lock(tmp_path / "missing" / ".out.lock", timeout=600, busy="another run holds it"),
    ):
        pass
    assert time.monotonic() - started < 5


def test_a_lock_held_by_another_run_times_out_and_stays_with_its_holder(tmp_path) -> None:
    from filelock import FileLock

    path = tmp_path / ".out.lock"
    holder = FileLock(str(path))
    holder.acquire()
    try:
        with (
            pytest.raises(OutputError, match="another run holds it"),
            output_lock(path, timeout=0.3, busy="another run holds it"),
        ):
            pass
        assert path.exists()  # the waiter that gave up must not remove the holder's file
    finally:
        holder.release()


def test_removing_the_lock_file_on_release_keeps_writers_exclusive(tmp_path) -> None:
    path, inside, overlaps = tmp_path / ".out.lock", [], []

    def writer() -> None:
        for _ in range(15):
            with output_lock(path, timeout=60, busy="busy"):
                inside.append(1)
                if len(inside) > 1:
                    overlaps.append(len(inside))
                time.sleep(0.002)
                inside.pop()

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == [] and not path.exists()


def test_unwritable_directory_is_named_with_its_option(tmp_path, monkeypatch) -> None:
    import errno

    def refused(path, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(os, "mkdir", refused)
    with pytest.raises(
        OutputError,
        match=rf"`--out-root` {tmp_path}/a/b: {tmp_path} is "
        r"read-only \(read-only file system\)",
    ):
        check_writable_dir(tmp_path / "a" / "b", "--out-root")


# --------------------------------------------------------------------------- lock files


def test_no_lock_file_is_left_after_a_successful_score(trained_org, tmp_path) -> None:
    out = tmp_path / "out"
    score.run_score(trained_org.data, out, tracking_uri=trained_org.tracking_uri, report=False)
    assert (out / "scores.parquet").exists()
    assert _leftovers(out) == []


def test_a_failed_score_leaves_no_lock_file_and_out_as_it_was(
    trained_org, tmp_path, monkeypatch
) -> None:
    out = tmp_path / "out"
    score.run_score(trained_org.data, out, tracking_uri=trained_org.tracking_uri, report=False)
    before = _snapshot(out)
    real = output.write_parquet

    def dying(frame, path):
        real(frame, path)
        if path.name == "drivers.parquet":
            raise OSError("disk full")

    monkeypatch.setattr(output, "write_parquet", dying)
    with pytest.raises(OSError, match="disk full"):
        score.run_score(trained_org.data, out, tracking_uri=trained_org.tracking_uri, report=False)
    assert _snapshot(out) == before
    assert _leftovers(out) == []


# --------------------------------------------------------------------------- Ctrl-C

# `forecast score` whose writing of drivers.parquet stalls, so Ctrl-C lands mid-write, inside
# the temporary folder beside OUT, every time.
STALLING = """
import sys, time
from forecast.cli import main
from forecast.scoring import output
real = output.write_parquet
def stalling(frame, path):
    real(frame, path)
    if path.name == "drivers.parquet":
        time.sleep(120)
output.write_parquet = stalling
sys.exit(main(sys.argv[1:]))
"""


def _interrupt_when(proc: subprocess.Popen, ready, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"finished before it could be interrupted: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("never got to the point to interrupt")
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)


def _earlier_score(trained_org, out: Path) -> dict[str, bytes]:
    score.run_score(trained_org.data, out, tracking_uri=trained_org.tracking_uri, report=False)
    return _snapshot(out)


def test_ctrl_c_mid_write_says_one_line_exits_130_and_leaves_out_as_it_was(
    trained_org, tmp_path
) -> None:
    out = tmp_path / "out"
    before = _earlier_score(trained_org, out)
    env = {**os.environ, "MLFLOW_TRACKING_URI": trained_org.tracking_uri}
    proc = subprocess.Popen(
        interruptible(
            STALLING,
            "--quiet",
            "score",
            "--data",
            str(trained_org.data),
            "--out",
            str(out),
            "--no-report",
        ),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _interrupt_when(proc, lambda: any(tmp_path.glob(".out.tmp-*/drivers.parquet")))
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert stderr.splitlines() == [f"interrupted; {out} left as it was"]
    assert "Traceback" not in stdout
    assert _snapshot(out) == before
    assert _leftovers(out) == []


def test_ctrl_c_of_forecast_score_while_it_loads_leaves_out_as_it_was(
    trained_org, tmp_path
) -> None:
    out = tmp_path / "out"
    before = _earlier_score(trained_org, out)
    # MLflow downloads the model into a temporary folder: once one appears, `score` is
    # past its imports and loading the pair, and Ctrl-C lands in the scoring run itself.
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {**os.environ, "MLFLOW_TRACKING_URI": trained_org.tracking_uri, "TMPDIR": str(scratch)}
    proc = subprocess.Popen(
        interruptible_forecast(
            "--quiet",
            "score",
            "--data",
            str(trained_org.data),
            "--out",
            str(out),
        ),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _interrupt_when(proc, lambda: any(scratch.iterdir()))
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert stderr.splitlines() == [f"interrupted; {out} left as it was"]
    assert "Traceback" not in stderr + stdout
    assert _snapshot(out) == before
    assert _leftovers(out) == []


def test_ctrl_c_during_catch_up_names_the_month_left_unwritten(
    trained_org, tmp_path, monkeypatch
) -> None:
    from forecast.commands.score import run_catch_up
    from forecast.errors import Interrupted

    root = tmp_path / "root"
    kw = {"tracking_uri": trained_org.tracking_uri, "report": False}
    run_catch_up(trained_org.data, root, **kw)
    latest = root / trained_org.latest
    before = _snapshot(latest)
    first, second = (str(pd.Period(trained_org.latest, "M") - k) for k in (2, 1))
    real = output.write_parquet

    def interrupted(frame, path):  # Ctrl-C while the second backfilled month is written
        if path.parent.name.startswith(f".{second}.tmp-") and path.name == "drivers.parquet":
            raise KeyboardInterrupt
        real(frame, path)

    monkeypatch.setattr(output, "write_parquet", interrupted)
    with pytest.raises(Interrupted) as caught:
        run_catch_up(trained_org.data, root, since=first, **kw)
    assert str(caught.value) == (
        f"interrupted; {root / second} left as it was; {first} scored before it"
    )
    assert sorted(p.name for p in root.iterdir()) == sorted([first, trained_org.latest])
    assert _snapshot(latest) == before
    assert _leftovers(root) == [] and not list(root.glob(".*"))


# --------------------------------------------------------------------------- no store created


def _missing_store(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    db = tmp_path / "no" / "such" / "dir" / "x.db"
    return db, {"MLFLOW_TRACKING_URI": f"sqlite:///{db}"}


@pytest.mark.parametrize(
    "command",
    [
        ("score", "--data", "{data}", "--out", "{tmp}/out"),
        ("what-if", "--data", "{data}", "--team", "007", "--set", "after_hours_ratio=0.2"),
        ("models",),
        ("promote",),
    ],
)
def test_read_only_commands_say_there_is_no_store_and_create_none(
    command, trained_org, tmp_path
) -> None:
    db, env = _missing_store(tmp_path)
    args = [a.format(data=trained_org.data, tmp=tmp_path) for a in command]
    proc = _forecast(*args, env=env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    line = _one_error_line(proc)
    assert line.startswith(f"error: no MLflow store at {db};"), line
    assert not (tmp_path / "no").exists()
    assert not (tmp_path / "out").exists() and not (tmp_path / "mlruns").exists()


def test_review_never_touches_the_tracking_store(trained_org, tmp_path) -> None:
    _, env = _missing_store(tmp_path)
    root = tmp_path / "root"
    root.mkdir()
    proc = _forecast(
        "review", "--data", str(trained_org.data), "--out-root", str(root), env=env, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "no").exists() and not (tmp_path / "mlruns").exists()


def test_read_only_connect_does_not_even_construct_the_sqlalchemy_store(
    tmp_path, monkeypatch
) -> None:
    from mlflow.store.tracking import sqlalchemy_store

    from forecast.mlops.tracking import connect

    def constructed(*args, **kwargs):
        raise AssertionError("SqlAlchemyStore was constructed")

    monkeypatch.setattr(sqlalchemy_store.SqlAlchemyStore, "__init__", constructed)
    db, _ = _missing_store(tmp_path)
    with pytest.raises(TrackingError, match=f"no MLflow store at {db}; train a model first"):
        connect(f"sqlite:///{db}", create_experiment=False, read_only=True)
    assert not (tmp_path / "no").exists()


def test_models_on_an_existing_empty_store_still_says_none_registered(
    empty_store, monkeypatch, capsys
) -> None:
    from forecast.cli import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", empty_store)
    assert main(["models"]) == 0
    assert "No models registered yet" in capsys.readouterr().out
