"""Which registered pair a user's reference names (alias, attrition version number, run id or
`models:/` URI), asked of MLflow, and the files of a pair's folder and of its training run,
downloaded. Nothing here loads a model: `forecast score` runs these calls in a second process
(`forecast.mlops.sidecar`) that must not pay for importing LightGBM.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from forecast.errors import ModelError, TrackingError
from forecast.mlops.names import ATTRITION_MODEL, CSAT_MODEL, PairRef
from forecast.mlops.tracking import Tracking, connect, tracking_errors

RUN_ID_RE = re.compile(r"^[0-9a-f]{32}$")
# MLflow spells an alias `models:/name@alias`; the contract's `models:/name/@alias` is accepted too.
# MLflow spells an alias `models:/name@alias`; the contract's `models:/name/@alias` is accepted too.
URI_RE = re.compile(
    rf"^models:/{re.escape(ATTRITION_MODEL)}(?:/?@(?P<alias>[\w-]+)|/(?P<version>\d+))$"
)


def version_by_alias(tracking: Tracking, alias: str) -> str | None:
    """The attrition version holding `alias`, or None (no registered model or no alias)."""

    try:
        return str(tracking.client.get_model_version_by_alias(ATTRITION_MODEL, alias).version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def load_ref(tracking: Tracking, attrition_version: str) -> PairRef:
    """Metadata of the pair whose attrition model is `attrition_version`."""

    client = tracking.client
    with tracking_errors(tracking.uri):
        try:
            mv = client.get_model_version(ATTRITION_MODEL, str(attrition_version))
        except MlflowException:
            raise _missing(tracking, f"version {attrition_version} of {ATTRITION_MODEL}") from None
        csat_version = _csat_partner(tracking, mv.run_id)
        run = client.get_run(mv.run_id)
    return PairRef(
        run_id=mv.run_id,
        attrition_version=str(mv.version),
        csat_version=csat_version,
        aliases=sorted(mv.aliases or []),
        tags=dict(mv.tags or {}),
        created=datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=UTC),
        metrics=dict(run.data.metrics),
    )


def _csat_partner(tracking: Tracking, run_id: str) -> str | None:
    """The CSAT version trained in the same run: pairs are defined by the run, not by numbers."""
    versions = _search(tracking, CSAT_MODEL, f"run_id = '{run_id}'")
    return str(max(int(v.version) for v in versions)) if versions else None


def _search(tracking: Tracking, name: str, extra: str | None = None) -> list:
    query = f"name = '{name}'" + (f" and {extra}" if extra else "")
    return list(tracking.client.search_model_versions(query))


def resolve_ref(tracking: Tracking, ref: str) -> PairRef:
    """Alias, attrition version number, run id, or `models:/forecast-attrition/<v or @alias>`."""
    ref = str(ref).strip()
    with tracking_errors(tracking.uri):
        if ref.startswith("models:/"):
            match = URI_RE.match(ref)
            if not match:
                raise ModelError(
                    f"`--model` must be an alias, a version number, a run id or "
                    f"models:/{ATTRITION_MODEL}/<version or @alias>. Got {ref!r} instead."
                )
            if match["alias"]:
                return _ref_by_alias(tracking, match["alias"])
            return load_ref(tracking, match["version"])
        if ref.isdigit():
            return load_ref(tracking, ref)
        if RUN_ID_RE.match(ref):
            versions = _search(tracking, ATTRITION_MODEL, f"run_id = '{ref}'")
            if not versions:
                raise _missing(tracking, f"run {ref} in {ATTRITION_MODEL}")
            return load_ref(tracking, str(max(int(v.version) for v in versions)))
        return _ref_by_alias(tracking, ref)


def _ref_by_alias(tracking: Tracking, alias: str) -> PairRef:
    version = version_by_alias(tracking, alias)
    if version is None:
        raise _missing(tracking, f"alias {alias}")
    return load_ref(tracking, version)


def _missing(tracking: Tracking, what: str) -> ModelError:
    return ModelError(
        f"no model registered under {what} in {tracking.uri}; "
        f"run `forecast train --data DIR` first."
    )


def get_alias(tracking: Tracking, alias: str) -> PairRef | None:
    with tracking_errors(tracking.uri):
        version = version_by_alias(tracking, alias)
    return load_ref(tracking, version) if version is not None else None


def list_pairs(tracking_uri: str | None = None) -> list[PairRef]:
    """Every registered attrition version with its pair, newest first (none for an empty
    store; a store that does not exist is a TrackingError, and is not created)."""
    tracking = connect(tracking_uri, create_experiment=False, read_only=True)
    with tracking_errors(tracking.uri):
        versions = _search(tracking, ATTRITION_MODEL)
    return [
        load_ref(tracking, str(v)) for v in sorted((int(v.version) for v in versions), reverse=True)
    ]


def download_pair(tracking: Tracking, ref: PairRef, dst: Path | str) -> Path:
    """The pair's folder (logged with the attrition model), downloaded into `dst`."""
    with tracking_errors(tracking.uri):
        return Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"{ref.attrition_uri}/artifacts/pair",
                dst_path=str(dst),
                tracking_uri=tracking.uri,
            )
        )


def download_run_artifact(
    tracking: Tracking, run_id: str, path: str, dst: Path | str
) -> Path | None:
    """A file logged with the pair's training run, downloaded into `dst`; None when the run
    has none (or the store cannot give it)."""
    try:
        with tracking_errors(tracking.uri):
            return Path(tracking.client.download_artifacts(run_id, path, str(dst)))
    except (TrackingError, OSError):
        return None


__all__ = [
    "download_pair",
    "download_run_artifact",
    "get_alias",
    "list_pairs",
    "load_ref",
    "resolve_ref",
    "version_by_alias",
]
