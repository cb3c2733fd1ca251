"""`forecast what-if`: read the data, resolve the registered pair, estimate with the causal
engine (reusing the fits stored with the pair), and render before and after."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from forecast.data.contract import latest_complete_month, load_tables
from forecast.data.months import month_str, parse_month_option
from forecast.errors import (
    ConfigError,
)
from forecast.features.specs import load_specs
from forecast.mlops.registry import resolve_pair
from forecast.whatif.engine import check_what_if_signal, make_engine
from forecast.whatif.signals import check_value, split_assignment


def run_what_if(
    data: Path | str,
    teams: list[str],
    assignment: str,
    *,
    as_of: str | None = None,
    model: str = "champion",
    tracking_uri: str | None = None,
) -> pd.DataFrame:
    """`forecast what-if`: read the data, resolve the pair, estimate. The CLI renders it."""
    signal, raw = split_assignment(assignment)
    month = parse_month_option("--as-of", as_of)
    if not teams:
        raise ConfigError("`--team` must name at least one team.")
    tables = load_tables(data)
    specs = load_specs()
    # Refuse a bad signal or value before the (slower) model lookup.
    setting = check_what_if_signal(tables, specs, signal)
    latest = latest_complete_month(tables)
    month = latest if month is None else month
    if month > latest:
        raise ConfigError(
            f"`--as-of` must be a month up to the data's latest complete month "
            f"{month_str(latest)}. Got {as_of!r} instead."
        )
    value = check_value(tables, setting, raw, month)
    resolved = resolve_pair(model, tracking_uri)
    # The causal engine: re-scoring would let history features absorb the effect
    # (docs/what-if.md). It reuses the fits `forecast train` stored with the pair when they
    # can answer this what-if.
    engine = make_engine(specs, stored=resolved.what_if_fits)
    return engine.estimate(tables, resolved.pair, teams, signal, value, month)
