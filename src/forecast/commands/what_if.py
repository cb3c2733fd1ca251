"""`forecast what-if`: read the data, resolve the registered pair, estimate with the causal
engine (reusing the fits stored with the pair), and render before and after."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from forecast.data.contract import latest_complete_month
from forecast.data.months import month_str, parse_month_option
from forecast.data.sources import load_tables
from forecast.errors import (
    ConfigError,
)
from forecast.features.specs import load_specs
from forecast.mlops.local import local_pair
from forecast.models.pair import ModelPair, PointForecasts
from forecast.whatif.engine import StoredFit, check_what_if_signal, make_engine
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
    pair, fits = registered_pair(model, tracking_uri)
    # The causal engine: re-scoring would let history features absorb the effect
    # (docs/what-if.md). It reuses the fits `forecast train` stored with the pair when they
    # can answer this what-if.
    engine = make_engine(specs, stored=fits)
    # The forecast before the change without its own interval: what-if shows the effect's.
    return engine.estimate(tables, PointForecasts(pair), teams, signal, value, month)


def registered_pair(
    model: str, tracking_uri: str | None
) -> tuple[ModelPair, dict[str, StoredFit] | None]:
    """The pair and its what-if fits: read in place from a local SQLite store when it can be
    (`forecast.mlops.local`), else through MLflow."""
    found = local_pair(model, tracking_uri)
    if found is not None:
        return found
    # Lazy, measured: importing MLflow and opening its SQL store cost about 3 s of the
    # command's 4 (issue 17); only a store the local path cannot read pays for them.
    from forecast.mlops.registry import resolve_pair

    resolved = resolve_pair(model, tracking_uri)
    return resolved.pair, resolved.what_if_fits
