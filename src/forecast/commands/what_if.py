"""`forecast what-if`: read the data, resolve the registered pair, estimate with the causal
engine (reusing the fits stored with the pair), and render before and after."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from forecast.data.contract import load_tables
from forecast.data.months import parse_month_option
from forecast.errors import (
    ConfigError,
)
from forecast.features.specs import load_specs
from forecast.mlops.registry import resolve_pair
from forecast.whatif.engine import check_what_if_signal, make_engine
from forecast.whatif.signals import parse_assignment


def run_what_if(
    data: Path | str, teams: list[str], assignment: str, *, as_of: str | None = None,
    model: str = "champion", tracking_uri: str | None = None,
) -> pd.DataFrame:
    """`forecast what-if`: read the data, resolve the pair, estimate. The CLI renders it."""
    signal, value = parse_assignment(assignment)
    month = parse_month_option("--as-of", as_of)
    if not teams:
        raise ConfigError("`--team` must name at least one team.")
    tables = load_tables(data)
    specs = load_specs()
    # Refuse a bad signal before the (slower) model lookup.
    check_what_if_signal(tables, specs, signal)
    resolved = resolve_pair(model, tracking_uri)
    # The causal engine: re-scoring would let history features absorb the effect
    # (docs/what-if.md). It reuses the fits `forecast train` stored with the pair when they
    # can answer this what-if.
    engine = make_engine(specs, stored=resolved.what_if_fits)
    return engine.estimate(tables, resolved.pair, teams, signal, value, month)
