"""A registered pair's folder (save, load, `ResolvedPair`), and a pair read straight from a
local SQLite store without importing MLflow.

Why a path without MLflow: `forecast what-if` does about a second of work for one team, but
importing MLflow (1.2 s) and opening its SQL store (its SQLAlchemy models, 1.7 s) cost three
times that (measured with `python -X importtime` and cProfile, issue 17). For an
`sqlite:///` store whose artifacts are files on this machine, `local_pair` looks the alias or
version up with the standard library's sqlite3 (read-only: it never writes, never creates a
store) and loads the pair's folder where MLflow keeps it. Anything else (a server, a run id, a
`models:/` URI, a store whose tables are not the ones read here, artifacts elsewhere) gives
None, and the caller resolves through MLflow (`registry.resolve_pair`).
`tests/mlops/test_local.py` checks both give the same pair.

This module never imports MLflow, never trains and never reads the data directory.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from forecast.mlops.names import ATTRITION_MODEL, PairRef, resolve_tracking_uri, sqlite_path
from forecast.models.pair import ModelPair
from forecast.whatif.engine import StoredFit
from forecast.whatif.store import load_fits, save_fits

EFFECTS_DIR = "whatif_effects"  # the what-if engine's stored fits inside the pair's folder
PAIR_DIR = "artifacts/pair"  # the pair's folder inside the attrition model's artifacts
DEFAULT_WORKSPACE = "default"
WORKSPACE_ENV = ("MLFLOW_ENABLE_WORKSPACES", "MLFLOW_WORKSPACE")


# --------------------------------------------------------------------------- the pair's folder


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


# --------------------------------------------------------------------------- without MLflow


def local_pair_dir(ref: str, tracking_uri: str | None = None) -> Path | None:
    """The folder of the pair named by `ref` (an alias or an attrition version number) in a
    local SQLite store, or None when this path cannot tell (see the module docstring)."""
    db = sqlite_path(resolve_tracking_uri(tracking_uri))
    ref = str(ref).strip()
    if db is None or not db.is_file() or not ref or ref.startswith("models:/"):
        return None
    if any(os.environ.get(k) for k in WORKSPACE_ENV):
        return None  # MLflow's workspaces pick which rows count: MLflow decides
    try:
        # Read-only, so a missing or locked store is an error here, never a new empty one.
        with sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=5) as con:
            if ref.isdigit():
                version = int(ref)
            else:
                found = _rows(
                    con,
                    "SELECT version{ws} FROM registered_model_aliases WHERE name = ? AND alias = ?",
                    (ATTRITION_MODEL, ref),
                )
                if len(found) != 1:
                    return None
                version = int(found[0][0])
            rows = _rows(
                con,
                "SELECT storage_location, status{ws} FROM model_versions "
                "WHERE name = ? AND version = ?",
                (ATTRITION_MODEL, version),
            )
    except (sqlite3.Error, TypeError, ValueError):
        return None
    if len(rows) != 1 or rows[0][1] != "READY" or not rows[0][0]:
        return None
    location = urlparse(str(rows[0][0]))
    if location.scheme != "file" or location.netloc not in ("", "localhost"):
        return None
    folder = Path(unquote(location.path)) / PAIR_DIR
    return folder if (folder / "meta.json").is_file() else None


def _rows(con: sqlite3.Connection, query: str, args: tuple) -> list[tuple]:
    """Rows of `query`; where MLflow keeps a workspace per row, only rows of its default
    workspace, and the workspace column dropped."""
    table = query.split(" FROM ", 1)[1].split()[0]
    columns = {row[1] for row in con.execute(f"PRAGMA table_info({table})")}
    if "workspace" not in columns:
        return con.execute(query.format(ws=""), args).fetchall()
    rows = con.execute(query.format(ws=", workspace"), args).fetchall()
    if any(row[-1] != DEFAULT_WORKSPACE for row in rows):
        return []
    return [row[:-1] for row in rows]


def local_pair(
    ref: str, tracking_uri: str | None = None
) -> tuple[ModelPair, dict[str, StoredFit] | None] | None:
    """(pair, what-if fits) named by `ref` in a local SQLite store, loaded in place without
    MLflow; None when `local_pair_dir` cannot tell."""
    folder = local_pair_dir(ref, tracking_uri)
    return load_bundle(folder) if folder is not None else None


__all__ = [
    "EFFECTS_DIR",
    "ResolvedPair",
    "load_bundle",
    "local_pair",
    "local_pair_dir",
    "save_bundle",
]
