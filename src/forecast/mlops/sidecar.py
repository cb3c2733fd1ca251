"""MLflow beside a scoring run: a second process resolves the pair, downloads its files and
tags the model version, while the scoring process reads the data and builds the forecasts.

Why: importing MLflow (1.2 s) and opening its SQL store (1.7 s) were a quarter of `forecast
score` with the report at 1,500 teams on 2 cores (issue 17), and none of it depends on the
data. A spawned process pays for them on the other core while the scoring process imports
pandas and LightGBM and reads the data; the scoring process never imports MLflow. The calls
are the ones scoring made itself before (`refs.resolve_ref`, the pair's folder, the training
run's backtest tables, the version and run tags), through one connection; an error over there
(an unreachable server, an unknown alias) is raised here as the same `ForecastError`.

The side process downloads into a temporary folder of its own, made when it downloads (so,
as before, a temporary folder appears once MLflow is downloading the pair) and removed when
it ends: when `close()` is called, when the `RegistrySide` is garbage-collected or this
process exits (`weakref.finalize`), or when this process dies (it reads its requests from a
pipe and stops at end of file); stopped early, it is terminated and still removes it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import tempfile
import threading
import traceback
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forecast import errors
from forecast.errors import ForecastError, TrackingError
from forecast.mlops.names import PairRef

STOP_TIMEOUT_S = 2.0
# The training run's tables scoring reads: the backtest's calibration by risk decile (the
# report's "how well did this model do") and its out-of-sample predictions (fairness audit).
BACKTEST_CALIBRATION = "backtest/calibration.csv"
BACKTEST_PREDICTIONS = "backtest/predictions.parquet"


@dataclass(frozen=True)
class SideAnswer:
    """What the side process found: the pair's record, the store it came from, its folder and
    the training run's files (None where the run has none), in the side's own temporary
    folder (gone after `close()`)."""

    ref: PairRef
    tracking_uri: str
    pair_dir: Path
    artifacts: dict[str, Path | None]


class RegistrySide:
    """A side process that answers for the pair `ref` names in `tracking_uri` (None: the
    environment's store, as `connect` resolves it): `answer()` (waits for it), then any number
    of `tag()` calls, then `close()`. Thread-safe."""

    def __init__(
        self,
        ref: str,
        tracking_uri: str | None = None,
        artifacts: tuple[str, ...] = (BACKTEST_CALIBRATION, BACKTEST_PREDICTIONS),
    ) -> None:
        self.ref, self.tracking_uri = ref, tracking_uri
        ctx = multiprocessing.get_context("spawn")  # fork would copy this process's threads
        self._conn, theirs = ctx.Pipe()
        self._process = ctx.Process(
            target=_serve,
            args=(theirs, ref, tracking_uri, tuple(artifacts)),
            name="forecast-mlflow",
            daemon=True,
        )
        self._process.start()
        theirs.close()
        self._lock = threading.Lock()
        self._answer: SideAnswer | None = None
        self._closed = False
        self._state = {"answered": False}
        self._finalizer = weakref.finalize(self, _stop, self._conn, self._process, self._state)

    def answer(self) -> SideAnswer:
        """The pair's record and files; raises what resolving them raised."""
        with self._lock:
            return self._answered()

    def tag(self, attrition_model: str, version: str, run_id: str, key: str, value: str) -> None:
        """Tag the model version and its run; raises TrackingError when MLflow refuses."""
        with self._lock:
            self._answered()
            self._send(("tag", attrition_model, version, run_id, key, value))
            self._receive()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._finalizer()

    def _answered(self) -> SideAnswer:
        if self._answer is None:
            self._answer = self._receive()
            self._state["answered"] = True
        return self._answer

    def _send(self, message: tuple) -> None:
        if self._closed:
            raise TrackingError("the MLflow side process was closed; this is a bug.")
        try:
            self._conn.send(message)
        except OSError:
            raise self._died() from None

    def _receive(self) -> Any:
        if self._closed:
            raise TrackingError("the MLflow side process was closed; this is a bug.")
        try:
            kind, *rest = self._conn.recv()
        except (EOFError, OSError):
            raise self._died() from None
        if kind == "ok":
            return rest[0]
        name, message = rest
        cls = getattr(errors, name, None)
        if isinstance(cls, type) and issubclass(cls, ForecastError):
            raise cls(message)
        raise RuntimeError(f"the MLflow side process failed: {message}")

    def _died(self) -> TrackingError:
        self._process.join(1.0)
        return TrackingError(
            f"the process talking to MLflow stopped (exit code {self._process.exitcode})."
        )


def _stop(conn: multiprocessing.connection.Connection, process: Any, state: dict) -> None:
    with contextlib.suppress(OSError):
        conn.send(("close",))
    conn.close()
    # An idle side reads "close" at once, removes its folder and ends; one still resolving (a
    # run that failed early) would answer first: nothing it does then matters, so it is
    # terminated (and still removes its folder, see `_serve`).
    process.join(STOP_TIMEOUT_S if state["answered"] else 0)
    if process.is_alive():
        process.terminate()
        process.join()


def _serve(
    conn: multiprocessing.connection.Connection,
    ref: str,
    tracking_uri: str | None,
    artifacts: tuple[str, ...],
) -> None:
    """The side process: answer, then tag on request until told to close (or end of file).
    It then ends at once: tearing down an interpreter with MLflow loaded took a second, which
    `close()` would wait for (every request has been answered; nothing is left to write)."""
    # Terminated (SIGTERM): unwind, so that the temporary folder is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Ctrl-C reaches both processes in a terminal; the scoring process says what it left.
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        _answer_and_tag(conn, ref, tracking_uri, artifacts)
    conn.close()
    os._exit(0)


def _answer_and_tag(
    conn: multiprocessing.connection.Connection,
    ref: str,
    tracking_uri: str | None,
    artifacts: tuple[str, ...],
) -> None:
    try:
        # Lazy, measured: MLflow is what this process is for, and what the scoring process
        # that imports this module must not pay for (about 3 s, see the module docstring).
        from forecast.mlops.refs import download_pair, download_run_artifact, resolve_ref
        from forecast.mlops.tracking import connect, tracking_errors

        try:
            tracking = connect(tracking_uri, create_experiment=False, read_only=True)
            pair_ref = resolve_ref(tracking, ref)
        except ForecastError as exc:
            conn.send(("error", type(exc).__name__, str(exc)))
            return
        with tempfile.TemporaryDirectory(prefix="forecast-pair-") as folder:
            base = Path(folder)
            try:
                answer = SideAnswer(
                    ref=pair_ref,
                    tracking_uri=tracking.uri,
                    pair_dir=download_pair(tracking, pair_ref, base / "pair"),
                    artifacts={
                        path: download_run_artifact(tracking, pair_ref.run_id, path, base / "run")
                        for path in artifacts
                    },
                )
            except ForecastError as exc:
                conn.send(("error", type(exc).__name__, str(exc)))
                return
            conn.send(("ok", answer))
            while True:
                try:
                    kind, *args = conn.recv()
                except EOFError:
                    return
                if kind != "tag":
                    return
                model, version, run_id, key, value = args
                try:
                    with tracking_errors(tracking.uri):
                        tracking.client.set_model_version_tag(model, version, key, value)
                        tracking.client.set_tag(run_id, key, value)
                except ForecastError as exc:
                    conn.send(("error", type(exc).__name__, str(exc)))
                    continue
                conn.send(("ok", None))
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception:  # noqa: BLE001 - handed back as text, raised by the scoring process
        with contextlib.suppress(OSError):
            conn.send(("error", "RuntimeError", traceback.format_exc(limit=5)))


__all__ = ["BACKTEST_CALIBRATION", "BACKTEST_PREDICTIONS", "RegistrySide", "SideAnswer"]
