"""What a what-if as of one month reads from the data, once it has a stored fit: a `WhatIfMonth`.

With the pair's stored fit, a what-if needs little of the data: which signals may be set (and
which are history), the range each settable signal has had up to the month, the month's panel
rows, and each team's recent CSAT level. All of it is team-level, nothing names a person, and
it is a few hundred kilobytes where the tables are megabytes and their reading and checking,
with the panel, was half of the command's time (issue 17). `forecast what-if` keeps one per
data fingerprint and month (`forecast.data.cache`), so asking again skips both.

The engine answers from a `WhatIfMonth` exactly as from the tables (`CausalEngine.estimate_at`
and `estimate` share every step after these inputs; a test compares the bytes).

Pure: tables in, a `WhatIfMonth` out; `to_arrow` / `from_arrow` for whoever stores it.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pyarrow as pa

from forecast.data.cache import cache_key
from forecast.data.months import month_str, today
from forecast.data.tables import Tables
from forecast.errors import ConfigError
from forecast.features.grid import point_in_time
from forecast.features.panel import build_panel
from forecast.features.specs import FeatureSpecs
from forecast.whatif.signals import (
    Settable,
    history_signals,
    recent_csat,
    resolve_as_of,
    settable_signals,
    value_range,
)

# Bumped when the stored form changes: an older entry is then a miss, never misread.
FORMAT = 1
METADATA_KEY = b"forecast.whatif.month"
CACHE_KIND = "what-if-month"


def month_cache_key(files_hash: str, month: pd.Period | None, spec_hash: str) -> str:
    """The cache key of the month inputs read from a data directory whose files hash to
    `files_hash` (`lineage.data_hash`), for `--as-of month` (None: the latest complete month).
    The latest complete month, and so what --as-of may be, depends on today's month."""
    when = month_str(month) if month is not None else "latest"
    return cache_key(CACHE_KIND, files_hash, when, f"{today():%Y-%m}", spec_hash)


def month_rows(tables: Tables, specs: FeatureSpecs, month: pd.Period) -> pd.DataFrame:
    """The panel rows of `month`, from the data known at its end (the whole history is built:
    the organisation-wide rates in the features need every team's past)."""
    panel = build_panel(point_in_time(tables, month), specs)
    return panel.loc[panel["as_of"] == month].reset_index(drop=True)


@dataclasses.dataclass(frozen=True)
class WhatIfMonth:
    """The inputs of a what-if as of `month` answered by a stored fit. `ranges` holds
    `value_range` of every settable signal with values up to the month (a signal without is
    left out: asking for it goes the long way and gets that path's message)."""

    month: pd.Period
    settable: dict[str, Settable]
    history: dict[str, str]
    ranges: dict[str, tuple[float, float]]
    rows: pd.DataFrame
    csat_level: dict[str, float]
    spec_hash: str
    # The data have neither workload nor CX: their latest complete month comes from hire and
    # exit dates up to today's date (not only today's month), so "the latest" is not kept.
    latest_from_events: bool = False

    def recent_csat(self, teams: list[str]) -> np.ndarray:
        """`signals.recent_csat` of these teams, in their order (NaN: unknown)."""
        return np.array([self.csat_level.get(str(t), np.nan) for t in teams], dtype=np.float64)

    def to_arrow(self) -> pa.Table:
        """The rows as an Arrow table, everything else in its schema's metadata (JSON)."""
        table = pa.Table.from_pandas(self.rows, preserve_index=False)
        meta = {
            "format": FORMAT,
            "month": month_str(self.month),
            "settable": [dataclasses.asdict(s) for s in self.settable.values()],
            "history": self.history,
            "ranges": {k: list(v) for k, v in self.ranges.items()},
            "csat_level": self.csat_level,
            "spec_hash": self.spec_hash,
            "latest_from_events": self.latest_from_events,
        }
        # Floats as Python writes them (repr): they read back to the same doubles.
        text = json.dumps(meta, sort_keys=True, allow_nan=True).encode("utf-8")
        return table.replace_schema_metadata({**(table.schema.metadata or {}), METADATA_KEY: text})

    @classmethod
    def from_arrow(cls, table: pa.Table) -> WhatIfMonth | None:
        """The month stored by `to_arrow`, or None when it is of another format."""
        raw = (table.schema.metadata or {}).get(METADATA_KEY)
        try:
            meta = json.loads(raw) if raw is not None else {}
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                return None
            settable = [Settable(**s) for s in meta["settable"]]
            return cls(
                month=pd.Period(meta["month"], freq="M"),
                settable={s.signal: s for s in settable},
                history=dict(meta["history"]),
                ranges={k: (float(v[0]), float(v[1])) for k, v in meta["ranges"].items()},
                rows=table.to_pandas(),
                csat_level={k: float(v) for k, v in meta["csat_level"].items()},
                spec_hash=str(meta["spec_hash"]),
                latest_from_events=bool(meta["latest_from_events"]),
            )
        except Exception:  # noqa: BLE001 - not one this code wrote: the caller reads the data
            return None


def what_if_month(
    tables: Tables, specs: FeatureSpecs, as_of: pd.Period | str | None
) -> WhatIfMonth:
    """Everything a stored fit's what-if as of `as_of` (None: the latest complete month)
    reads from `tables`."""
    month = resolve_as_of(tables, as_of)
    settable = settable_signals(tables, specs)
    ranges = {}
    for name, setting in settable.items():
        try:
            ranges[name] = value_range(tables, setting, month)
        except ConfigError:
            continue  # no value up to the month: the long way says so
    rows = month_rows(tables, specs, month)
    teams = rows["team_id"].astype(str).tolist()
    level = recent_csat(tables, teams, month)
    return WhatIfMonth(
        month=month,
        settable=settable,
        history=history_signals(tables, specs),
        ranges=ranges,
        rows=rows,
        csat_level={t: float(v) for t, v in zip(teams, level, strict=True) if np.isfinite(v)},
        spec_hash=specs.hash(),
        latest_from_events=tables.workload is None and tables.cx is None,
    )
