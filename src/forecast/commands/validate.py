"""`forecast validate`: check a data directory (or a database) against the contract, summarise
it and say which features each table feeds."""

from __future__ import annotations

from pathlib import Path

from forecast.data.contract import Summary, summarize
from forecast.data.months import parse_month_option
from forecast.data.sources import load_tables, open_source
from forecast.features.panel import features_by_table
from forecast.features.specs import load_specs


def run_validate(
    data: Path | str, *, as_of: str | None = None
) -> tuple[Summary, dict[str, list[str]]]:
    """(summary, feature names by table); raises DataError on the first hard error. As of a
    month, only the rows known at its end are read and checked."""
    month = parse_month_option("--as-of", as_of)
    source = open_source(data)
    tables = load_tables(source, as_of=month)
    return summarize(tables, source.label), features_by_table(tables, load_specs())
