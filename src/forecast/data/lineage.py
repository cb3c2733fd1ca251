"""Lineage: what a model saw and what produced it, as plain values for MLflow params, tags and
the score manifest.

`data_hash` fingerprints the files of a data directory, `rows_hash` the rows read from a
database (forecast.data.sources); `data_summary` describes the data at the team level only (rows,
teams, months), so nothing here ever carries an employee identifier.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import platform
from importlib import metadata
from pathlib import Path

import pandas as pd

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


def rows_hash(frames: dict[str, pd.DataFrame], extra: bytes = b"") -> str:
    """sha256 over the rows of tables as read (a database has no file bytes to hash): each
    table's name and column names, then each column's values in a canonical form (numbers as
    float64, dates as ISO text, everything else as text), in the order read (queries order
    their rows by key). The same rows give the same hash whether a column is stored as DATE
    or as text, INTEGER or REAL. `extra` adds what else shaped the read (e.g. data_start)."""
    digest = hashlib.sha256(extra)
    for name in sorted(frames):
        frame = frames[name]
        header = [name, *map(str, frame.columns), str(len(frame))]
        digest.update("\0".join(header).encode("utf-8") + b"\0")
        for column in frame.columns:
            values = _canonical(frame[column])
            hashed = pd.util.hash_pandas_object(values, index=False, categorize=False)
            digest.update(str(values.dtype == "float64").encode() + hashed.to_numpy().tobytes())
    return digest.hexdigest()


def _canonical(series: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return series.astype("float64")
    if pd.api.types.is_string_dtype(series) and series.dtype != object:
        return series
    return pd.Series(
        [
            None
            if v is None or v is pd.NaT or (isinstance(v, float) and v != v)
            else v.isoformat()
            if isinstance(v, dt.date)
            else str(v)
            for v in series.astype(object)
        ],
        dtype="str",
    )


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
