"""The model registry as pairs: `forecast-attrition` and `forecast-csat` versions logged by the same
run form one pair, and aliases (`champion`, `challenger`) always move on both together.

A registered pair is one folder (the artifact `pair` of both models): the two LightGBM models
with their meta (`ModelPair.to_dir`) and the what-if engine's fits (`whatif_effects/`);
`save_bundle`/`load_bundle` are the one place that puts the two together, so the predictive
models never know the what-if engine. `resolve_pair` is what scoring, promotion and
`forecast models` use to turn a user's reference (alias, attrition version, run id or
`models:/` URI) into the pair's metadata and loaded models. This module never trains and never
reads the data directory.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from rich import box
from rich.table import Table

from forecast.errors import ModelError
from forecast.mlops.tracking import (
    ATTRITION_MODEL,
    CSAT_MODEL,
    Tracking,
    connect,
    muted,
    tracking_errors,
)
from forecast.models.pair import ModelPair
from forecast.whatif.engine import StoredFit
from forecast.whatif.store import load_fits, save_fits

CHAMPION = "champion"
CHALLENGER = "challenger"
ALIASES = (CHAMPION, CHALLENGER)
# Tags every registered version carries, so a version can be re-run and audited on its own.
VERSION_TAGS = (
    "horizon",
    "spec_hash",
    "data_hash",
    "model_config_hash",
    "trained_until",
    "data_dir",
    "backtest_origins",
    "pair_model",
    "pair_version",
    "pair_run_id",
    "forecast_version",
)
EFFECTS_DIR = "whatif_effects"  # the what-if engine's stored fits inside the pair's folder
RUN_ID_RE = re.compile(r"^[0-9a-f]{32}$")
# MLflow spells an alias `models:/name@alias`; the contract's `models:/name/@alias` is accepted too.
URI_RE = re.compile(
    rf"^models:/{re.escape(ATTRITION_MODEL)}(?:/?@(?P<alias>[\w-]+)|/(?P<version>\d+))$"
)


@dataclass
class PairRef:
    """One registered pair: names, versions, the run that trained both, and its record."""

    run_id: str
    attrition_version: str
    csat_version: str | None
    aliases: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    created: datetime | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    attrition_name: str = ATTRITION_MODEL
    csat_name: str = CSAT_MODEL

    @property
    def horizon(self) -> int | None:
        value = self.tags.get("horizon")
        return int(value) if value and value.isdigit() else None

    @property
    def attrition_uri(self) -> str:
        # A version number, not an alias: the pair must not move while it is being used.
        return f"models:/{self.attrition_name}/{self.attrition_version}"

    @property
    def csat_uri(self) -> str | None:
        return f"models:/{self.csat_name}/{self.csat_version}" if self.csat_version else None

    def describe(self) -> str:
        csat = f" + {self.csat_name} v{self.csat_version}" if self.csat_version else ""
        return f"{self.attrition_name} v{self.attrition_version}{csat} (run {self.run_id})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "attrition_model": self.attrition_name,
            "attrition_version": self.attrition_version,
            "csat_model": self.csat_name,
            "csat_version": self.csat_version,
            "run_id": self.run_id,
            "aliases": list(self.aliases),
            "horizon": self.horizon,
        }


@dataclass
class ResolvedPair:
    """A loaded pair and where it came from."""

    pair: ModelPair
    ref: PairRef
    tracking_uri: str
    # The causal what-if engine's fits by signal, made by `forecast train`; empty for a pair
    # trained without them (what-ifs then refit).
    what_if_fits: dict[str, StoredFit] | None = None


def save_bundle(path: Path, pair: ModelPair, what_if_fits: dict[str, StoredFit] | None) -> Path:
    """The pair's folder: both models with their meta, and the what-if fits when there are
    any; byte-stable."""
    pair.to_dir(path)
    if what_if_fits is not None:
        save_fits(Path(path) / EFFECTS_DIR, what_if_fits)
    return Path(path)


def load_bundle(path: Path) -> tuple[ModelPair, dict[str, StoredFit] | None]:
    """(pair, what-if fits or None) from a folder `save_bundle` wrote."""
    fits_dir = Path(path) / EFFECTS_DIR
    return ModelPair.from_dir(path), load_fits(fits_dir) if fits_dir.is_dir() else None


# --------------------------------------------------------------------------- registration


def register_pair(
    tracking: Tracking,
    *,
    run_id: str,
    attrition_uri: str,
    csat_uri: str | None,
    tags: dict[str, str],
) -> PairRef:
    """Register both logged models of one run, tag them as partners and set the aliases: a fresh
    pair is always `challenger`, and also `champion` when there is none yet."""
    client = tracking.client
    with tracking_errors(tracking.uri):
        had_champion = _version_by_alias(tracking, CHAMPION) is not None
        with muted():
            attrition = mlflow.register_model(attrition_uri, ATTRITION_MODEL, tags=tags)
            csat = mlflow.register_model(csat_uri, CSAT_MODEL, tags=tags) if csat_uri else None
        partner_tags = {
            ATTRITION_MODEL: (attrition.version, CSAT_MODEL, csat.version if csat else ""),
        }
        if csat is not None:
            partner_tags[CSAT_MODEL] = (csat.version, ATTRITION_MODEL, attrition.version)
        for name, (version, partner, partner_version) in partner_tags.items():
            for key, value in {
                "pair_model": partner,
                "pair_version": partner_version,
                "pair_run_id": run_id,
            }.items():
                client.set_model_version_tag(name, version, key, value)
        ref = PairRef(
            run_id=run_id,
            attrition_version=str(attrition.version),
            csat_version=str(csat.version) if csat else None,
        )
        set_pair_alias(tracking, CHALLENGER, ref)
        if not had_champion:
            set_pair_alias(tracking, CHAMPION, ref)
    return load_ref(tracking, ref.attrition_version)


def set_pair_alias(tracking: Tracking, alias: str, ref: PairRef) -> None:
    """Point `alias` at both models of the pair; a pair without CSAT model clears the CSAT
    alias so the two names can never point at different runs."""
    client = tracking.client
    with tracking_errors(tracking.uri):
        client.set_registered_model_alias(ATTRITION_MODEL, alias, ref.attrition_version)
        if ref.csat_version:
            client.set_registered_model_alias(CSAT_MODEL, alias, ref.csat_version)
        elif _csat_alias_exists(tracking, alias):
            client.delete_registered_model_alias(CSAT_MODEL, alias)


def _csat_alias_exists(tracking: Tracking, alias: str) -> bool:

    try:
        tracking.client.get_model_version_by_alias(CSAT_MODEL, alias)
    except MlflowException:
        return False
    return True


# --------------------------------------------------------------------------- lookup


def _version_by_alias(tracking: Tracking, alias: str) -> str | None:
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
    version = _version_by_alias(tracking, alias)
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
        version = _version_by_alias(tracking, alias)
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


def models_table(pairs: list[PairRef]) -> Table:
    """`forecast models` as a Rich table, newest pair first."""

    table = Table(
        title="Registered model pairs (attrition/csat versions)",
        box=box.SIMPLE_HEAD,
        header_style="bold",
        pad_edge=False,
    )
    table.add_column("pair", no_wrap=True)
    table.add_column("aliases")
    table.add_column("h", justify="right")
    table.add_column("run id", no_wrap=True)
    table.add_column("trained", no_wrap=True)
    for name in ("deviance", "D²", "CSAT MAE"):
        table.add_column(name, justify="right", no_wrap=True)

    def fmt(ref: PairRef, key: str) -> str:
        value = ref.metrics.get(key)
        return "-" if value is None else f"{value:.3f}"

    for ref in pairs:
        table.add_row(
            f"v{ref.attrition_version}/" + (f"v{ref.csat_version}" if ref.csat_version else "-"),
            ", ".join(ref.aliases) or "-",
            str(ref.horizon or "-"),
            ref.run_id,
            ref.created.strftime("%Y-%m-%d") if ref.created else "-",
            fmt(ref, "attrition.lightgbm.deviance"),
            fmt(ref, "attrition.lightgbm.d2_vs_null"),
            fmt(ref, "csat.lightgbm.weighted_mae"),
        )
    table.caption = (
        "deviance: attrition Poisson deviance on the backtest (lower is better); D²: versus the "
        "organisation-wide rate; CSAT MAE: response-weighted, in CSAT points"
    )
    return table


# --------------------------------------------------------------------------- loading


def load_pair(tracking: Tracking, ref: PairRef) -> tuple[ModelPair, dict[str, StoredFit] | None]:
    """Download the pair directory logged with the attrition model and load it."""
    with tracking_errors(tracking.uri), tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{ref.attrition_uri}/artifacts/pair",
            dst_path=tmp,
            tracking_uri=tracking.uri,
        )
        return load_bundle(Path(local))


def resolve_pair(ref: str = CHAMPION, tracking_uri: str | None = None) -> ResolvedPair:
    """The pair named by `ref`, loaded; the CSAT model is always the one of the same run.
    Never creates a store: scoring and what-ifs only read one."""
    tracking = connect(tracking_uri, create_experiment=False, read_only=True)
    pair_ref = resolve_ref(tracking, ref)
    pair, fits = load_pair(tracking, pair_ref)
    return ResolvedPair(pair=pair, ref=pair_ref, tracking_uri=tracking.uri, what_if_fits=fits)


def run_config(tracking: Tracking, ref: PairRef) -> dict[str, Any]:
    """The training configuration recorded with a pair (`config/training.json` of its run)."""
    with tracking_errors(tracking.uri), tempfile.TemporaryDirectory() as tmp:
        local = tracking.client.download_artifacts(ref.run_id, "config/training.json", tmp)
        return json.loads(Path(local).read_text(encoding="utf-8"))


__all__ = [
    "ALIASES",
    "ATTRITION_MODEL",
    "CHALLENGER",
    "CHAMPION",
    "CSAT_MODEL",
    "PairRef",
    "ResolvedPair",
    "get_alias",
    "list_pairs",
    "load_pair",
    "load_ref",
    "models_table",
    "register_pair",
    "resolve_pair",
    "resolve_ref",
    "run_config",
    "set_pair_alias",
]
