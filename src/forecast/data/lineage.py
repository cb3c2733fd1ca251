"""Lineage: what a model saw and what produced it, as plain values for MLflow params, tags and
the score manifest.

`data_hash` fingerprints the files of a data directory; `data_summary` describes the data at the
team level only (rows, teams, months), so nothing here ever carries an employee identifier.
"""

from __future__ import annotations

import hashlib
import platform
from importlib import metadata
from pathlib import Path

from forecast.data.atomic import json_text
from forecast.data.contract import find_table_files
from forecast.data.tables import MONTHLY_TABLES, Tables

PACKAGES = (
    "forecast",
    "mlflow",
    "lightgbm",
    "pandas",
    "numpy",
    "scikit-learn",
    "scipy",
    "shap",
    "pyarrow",
)


MANIFEST = "manifest.json"  # a score output folder's lineage: files, hashes, model, data


def manifest_text(manifest: dict) -> str:
    """The manifest as it is written (sorted keys, so the same manifest gives the same bytes)."""
    return json_text(manifest)


def file_sha256(path: Path) -> str:
    """sha256 of one file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_hash(directory: Path | str) -> str:
    """sha256 over the contract files (name and bytes, in table order) and `meta.json`.

    Bytes rather than parsed frames: cheap, and any edit to the inputs changes the hash.
    """
    # Imported here: it loads pandera, which the report (it uses this module's manifest
    # helpers) does not need.

    directory = Path(directory)
    paths = list(find_table_files(directory).values())
    if (directory / "meta.json").exists():
        paths.append(directory / "meta.json")
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode("utf-8") + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def data_summary(tables: Tables) -> dict[str, object]:
    """Row counts, team count and month span: aggregate facts only, never identifiers."""
    emp = tables.employees
    rows = {"employees": len(emp)}
    first, last = [], []
    for name in MONTHLY_TABLES:
        frame = tables.table(name)
        if frame is not None:
            rows[name] = len(frame)
            if len(frame):
                first.append(frame["month"].min())
                last.append(frame["month"].max())
    hires = emp["hire_date"].dropna()
    if len(hires):
        first.append(hires.min().to_period("M"))
    return {
        "rows": rows,
        "teams": int(emp["team_id"].nunique()),
        "employee_spells": len(emp),
        "first_month": str(min(first)) if first else None,
        "last_month": str(max(last)) if last else None,
        "data_start": str(tables.data_start) if tables.data_start is not None else None,
    }
