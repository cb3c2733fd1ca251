"""Names and places of the model registry that need no MLflow import: the registered models'
names, where the tracking store lives, and `PairRef`, the record of one registered pair.
(Importing MLflow costs over a second; the commands that can do without it import this.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ATTRITION_MODEL = "forecast-attrition"
CSAT_MODEL = "forecast-csat"


def default_tracking_uri(cwd: Path | None = None) -> str:
    """`mlruns/` in the working directory as an SQLite store (MLflow 3's own default is
    ./mlflow.db, and its plain file store is deprecated)."""
    root = (cwd or Path.cwd()).resolve() / "mlruns"
    return f"sqlite:///{root / 'mlflow.db'}"


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    """An explicit URI (e.g. the demo's own store) wins, then MLFLOW_TRACKING_URI, then mlruns/."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    return uri or default_tracking_uri()


def sqlite_path(uri: str) -> Path | None:
    """The database file of an `sqlite:///` URI (without SQLAlchemy's `?option=...`), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :].split("?", 1)[0])


# --------------------------------------------------------------------------- a registered pair


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


__all__ = [
    "ATTRITION_MODEL",
    "CSAT_MODEL",
    "PairRef",
    "default_tracking_uri",
    "resolve_tracking_uri",
    "sqlite_path",
]
