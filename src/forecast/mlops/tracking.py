"""Where MLflow lives and how we talk to it: the tracking URI, a fast reachability check, bounded
HTTP retries, quiet logging and the `forecast` experiment.

Every MLflow call of the package goes through `connect()` and runs inside `tracking_errors()`,
so an unreachable or misconfigured server becomes one `TrackingError` line instead of minutes of
retries and a traceback. This module never trains, scores or reads data.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlparse

import mlflow
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.utils.logging_utils import disable_logging

from forecast.errors import TrackingError
from forecast.mlops.names import (
    ATTRITION_MODEL,
    CSAT_MODEL,
    default_tracking_uri,
    resolve_tracking_uri,
    sqlite_path,
)

EXPERIMENT = "forecast"
HEALTH_TIMEOUT_S = 5.0

# MLflow's defaults (7 retries, backoff factor 2, 120 s timeout) retry an unreachable server for
# minutes. A scheduled batch job should fail fast and loudly instead, so we cap them unless the
# user set their own values.
HTTP_BOUNDS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
NOISY_LOGGERS = ("mlflow", "alembic", "urllib3", "git", "sqlalchemy", "huggingface_hub")


def artifact_root(uri: str) -> str | None:
    """Artifacts of an SQLite store sit beside its database (`<dir>/artifacts`); a server
    decides for itself (None)."""
    db = sqlite_path(uri)
    return (db.parent / "artifacts").resolve().as_uri() if db is not None else None


def quiet_mlflow() -> None:
    """Silence MLflow's logging, stdout links and warnings in normal runs (--verbose and --debug
    still see our own logs)."""
    # MLflow configures its loggers when imported and prints some notices ("Successfully
    # registered model ...") past the logging levels; its own switch silences both.
    disable_logging()
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for module in ("mlflow", "alembic", "pydantic", "sqlalchemy", "setuptools"):
        warnings.filterwarnings("ignore", module=module)
    for message in (".*[Ff]ilesystem tracking backend.*", ".*type hint.*", ".*[Tt]ype hints.*"):
        warnings.filterwarnings("ignore", message=message)


@contextmanager
def muted() -> Iterator[None]:
    """Swallow what MLflow prints past its own logging switch (registration notices, model
    validation chatter); exceptions still propagate and become TrackingError upstream."""
    with (
        contextlib.redirect_stderr(io.StringIO()),
        contextlib.redirect_stdout(io.StringIO()),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        yield


def bound_http_retries() -> None:
    for key, value in HTTP_BOUNDS.items():
        os.environ.setdefault(key, value)


def check_reachable(uri: str, timeout: float = HEALTH_TIMEOUT_S) -> None:
    """Fail in seconds, with one actionable line, when the tracking location cannot be used."""
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https"):
        url = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise _unreachable(uri, f"{type(exc).__name__}: {reason}") from None
        if status != 200:
            raise _unreachable(uri, f"GET /health answered HTTP {status}; is it an MLflow server?")
        return
    db = sqlite_path(uri)
    if db is not None:
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrackingError(
                f"cannot create the MLflow store {db.parent} ({exc.strerror}). "
                f"Check MLFLOW_TRACKING_URI."
            ) from None
        return
    if scheme in ("", "file"):
        raise TrackingError(
            f"MLflow tracking URI {uri} is a plain file store, which MLflow deprecated; use "
            f"sqlite:///<dir>/mlflow.db or an http(s) server. Check MLFLOW_TRACKING_URI."
        )
    # Other schemes (databricks, postgresql, ...) are MLflow's business; errors surface through
    # tracking_errors().


def check_store_exists(uri: str) -> None:
    """An SQLite store must already exist for a command that only reads it. Servers and other
    back ends are checked by `check_reachable` and MLflow itself."""
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        raise TrackingError(
            f"no MLflow store at {db}; train a model first (forecast train --data DIR) or set "
            f"MLFLOW_TRACKING_URI."
        )


def _unreachable(uri: str, reason: str) -> TrackingError:
    return TrackingError(
        f"MLflow tracking server at {uri} is unreachable ({' '.join(reason.split())}). "
        f"Check MLFLOW_TRACKING_URI."
    )


@contextmanager
def tracking_errors(uri: str) -> Iterator[None]:
    """Turn MLflow and HTTP failures into one TrackingError line naming the store."""
    try:
        yield
    except MlflowException as exc:
        raise TrackingError(
            f"MLflow at {uri} refused a call: {_first_line(exc.message)}. "
            f"Check MLFLOW_TRACKING_URI."
        ) from None
    except requests.exceptions.RequestException as exc:
        raise _unreachable(uri, f"{type(exc).__name__}: {_first_line(str(exc))}") from None


def _first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    first = lines[0] if lines else "no detail"
    return first[:300]


@dataclass
class Tracking:
    """A checked connection: the resolved URI, a client and the `forecast` experiment id."""

    uri: str
    client: MlflowClient
    experiment_id: str


def connect(
    tracking_uri: str | None = None, *, create_experiment: bool = True, read_only: bool = False
) -> Tracking:
    """Resolve, health-check and open the tracking store; sets MLflow's global URIs because
    `mlflow.pyfunc.log_model` logs through the fluent API.

    `read_only=True` is for every command that only reads the registry (score, what-if, models,
    promote): an SQLite store that does not exist is then an error, before MLflow opens it,
    since opening it would create its folder and an empty database. Only `train` (and
    `demo`, in its own folder) may create a store."""
    uri = resolve_tracking_uri(tracking_uri)
    if read_only:
        check_store_exists(uri)
    quiet_mlflow()
    bound_http_retries()
    check_reachable(uri)

    with tracking_errors(uri):
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        experiment = client.get_experiment_by_name(EXPERIMENT)
        if experiment is not None:
            experiment_id = experiment.experiment_id
        elif create_experiment:
            experiment_id = client.create_experiment(
                EXPERIMENT, artifact_location=artifact_root(uri)
            )
        else:
            experiment_id = ""
    return Tracking(uri=uri, client=client, experiment_id=experiment_id)


__all__ = [
    "ATTRITION_MODEL",
    "CSAT_MODEL",
    "EXPERIMENT",
    "Tracking",
    "artifact_root",
    "check_reachable",
    "check_store_exists",
    "connect",
    "default_tracking_uri",
    "muted",
    "quiet_mlflow",
    "resolve_tracking_uri",
    "tracking_errors",
]
