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
import tempfile
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from rich import box
from rich.table import Table

from forecast.mlops.local import EFFECTS_DIR, ResolvedPair, load_bundle, save_bundle
from forecast.mlops.names import ATTRITION_MODEL, CSAT_MODEL, PairRef
from forecast.mlops.refs import (
    download_pair,
    get_alias,
    list_pairs,
    load_ref,
    resolve_ref,
    version_by_alias,
)
from forecast.mlops.tracking import Tracking, connect, muted, tracking_errors
from forecast.models.pair import ModelPair
from forecast.whatif.engine import StoredFit

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
        had_champion = version_by_alias(tracking, CHAMPION) is not None
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
    with tempfile.TemporaryDirectory() as tmp:
        return load_bundle(download_pair(tracking, ref, tmp))


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
    "EFFECTS_DIR",
    "PairRef",
    "ResolvedPair",
    "get_alias",
    "list_pairs",
    "load_bundle",
    "load_pair",
    "load_ref",
    "models_table",
    "register_pair",
    "resolve_pair",
    "resolve_ref",
    "run_config",
    "save_bundle",
    "set_pair_alias",
]
