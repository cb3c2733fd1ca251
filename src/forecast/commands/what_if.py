"""`forecast what-if`: read the data, resolve the registered pair, estimate with the causal
engine (reusing the fits stored with the pair), and render before and after.

What a what-if reads from a data directory for its month is kept in the user's cache
(`forecast.data.cache`, a `WhatIfMonth`), keyed by the files' bytes, the options, the specs
and the code: asking again on the same files reads none of the tables (issue 17). Both ways
answer with the same bytes, and every check gives the same message.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from forecast.data.cache import read_cached, write_cached
from forecast.data.contract import latest_complete_month
from forecast.data.lineage import data_hash
from forecast.data.months import month_str, parse_month_option
from forecast.data.sources import load_tables, open_source
from forecast.errors import ConfigError, DataError
from forecast.features.specs import FeatureSpecs, load_specs
from forecast.mlops.local import local_pair
from forecast.models.pair import ModelPair, PointForecasts
from forecast.whatif.engine import (
    CausalEngine,
    StoredFit,
    check_settable,
    check_what_if_signal,
    make_engine,
)
from forecast.whatif.month import CACHE_KIND, WhatIfMonth, month_cache_key, what_if_month
from forecast.whatif.signals import check_in_range, check_value, split_assignment


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
    specs = load_specs()
    located = _located(data)
    key = month_cache_key(located[1], month, specs.hash()) if located else None
    stored = read_cached(CACHE_KIND, key) if key else None
    view = WhatIfMonth.from_arrow(stored) if stored is not None else None
    if view is not None and month is None and view.latest_from_events:
        view = None  # "the latest" there depends on today's date: see WhatIfMonth
    # The pair and its fits, looked up once, after the checks (the lookup takes longer).
    engine_and_pair = functools.cache(lambda: _engine(specs, model, tracking_uri))
    if view is not None and signal.strip() in view.ranges:
        setting = check_settable(view.settable, view.history, signal)
        value = check_in_range(setting, raw, view.ranges[setting.signal])
        engine, pair = engine_and_pair()
        answer = engine.estimate_at(view, pair, teams, signal, value)
        if answer is not None:
            return answer
    return _the_long_way(data, teams, signal, raw, month, as_of, specs, located, engine_and_pair)


def _the_long_way(
    data: Path | str,
    teams: list[str],
    signal: str,
    raw: str,
    month: pd.Period | None,
    as_of: str | None,
    specs: FeatureSpecs,
    located: tuple[Path, str] | None,
    engine_and_pair: Callable[[], tuple[CausalEngine, PointForecasts]],
) -> pd.DataFrame:
    """Read and check the tables, then answer (and keep the month's inputs for next time)."""
    tables = load_tables(data)
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
    engine, pair = engine_and_pair()
    if located and engine.answers_from_store(setting.signal, month, pair):
        view = what_if_month(tables, specs, month)
        answer = engine.estimate_at(view, pair, teams, signal, value)
        if answer is not None:
            keep_month(*located, view, [None if as_of is None else view.month])
            return answer
    # The causal engine: re-scoring would let history features absorb the effect
    # (docs/what-if.md). It reuses the fits `forecast train` stored with the pair when they
    # can answer this what-if, and fits the signal's effect when none can.
    return engine.estimate(tables, pair, teams, signal, value, month)


def keep_month(
    directory: Path, files: str, view: WhatIfMonth, months: list[pd.Period | None]
) -> None:
    """Keep the month's inputs read from `directory`, whose files hashed to `files` before
    they were read, under the key of each of `months` (None: "the latest"). Nothing when the
    files changed while they were read (an entry for the new bytes would hold the old month);
    "the latest" not when it depends on today's date (`WhatIfMonth.latest_from_events`)."""
    months = [m for m in months if m is not None or not view.latest_from_events]
    try:
        if not months or data_hash(directory) != files:
            return
        table = view.to_arrow()
    except Exception:  # noqa: BLE001 - a cache that cannot be written is no error
        return
    for month in months:
        write_cached(CACHE_KIND, month_cache_key(files, month, view.spec_hash), table)


def _engine(
    specs: FeatureSpecs, model: str, tracking_uri: str | None
) -> tuple[CausalEngine, PointForecasts]:
    """The engine with the pair's stored fits, and the pair's forecast before the change
    (without its own interval: what-if shows the effect's)."""
    pair, fits = registered_pair(model, tracking_uri)
    return make_engine(specs, stored=fits), PointForecasts(pair)


def _located(data: Path | str) -> tuple[Path, str] | None:
    """The data directory and its files' hash (the cache keys' fingerprint of the data): None
    for a database (no file bytes to fingerprint cheaply) or data a reader would refuse (the
    long way names the problem)."""
    source = open_source(data)
    if source.directory is None:
        return None
    try:
        return source.directory, data_hash(source.directory)
    except (DataError, OSError):
        return None


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
