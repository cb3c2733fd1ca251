"""`forecast validate`: check a data directory against the contract, summarise it and say which
features each table feeds."""

from __future__ import annotations

from pathlib import Path

from forecast.data.contract import Summary, load_tables, summarize
from forecast.features.panel import features_by_table
from forecast.features.specs import load_specs


def run_validate(data: Path) -> tuple[Summary, dict[str, list[str]]]:
    """(summary, feature names by table); raises DataError on the first hard error."""
    tables = load_tables(data)
    return summarize(tables, str(data)), features_by_table(tables, load_specs())
