"""A small on-disk cache of derived, team-level tables, addressed by what they were made from.

`forecast what-if` keeps here what it read from a data directory for one month (a
`forecast.whatif.month.WhatIfMonth`), so a second what-if on the same files skips reading,
checking and building features (issue 17). An entry's key is a hash of everything that shaped
it: the data files' bytes (`lineage.data_hash`), the options, the feature specs and the code of
this package, so an edit to any of them is a miss, never a stale answer. Entries never hold
employee rows: only team-level frames (the caller's choice, documented in docs/data-contract.md).

Where: `FORECAST_CACHE_DIR`, else `$XDG_CACHE_HOME/forecast`, else `~/.cache/forecast`;
`FORECAST_CACHE_DIR=off` turns it off. The folder is private to the user (0700); the newest
`KEEP` entries of a kind are kept. A cache that cannot be written or read is a miss, never an
error: it only ever saves time.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from forecast.data.atomic import write_atomic

if TYPE_CHECKING:
    import pyarrow as pa

CACHE_ENV = "FORECAST_CACHE_DIR"
OFF = ("off", "0", "false", "no", "none")
KEEP = 16  # entries kept per kind (a month of what-ifs on a few data sets)
SUFFIX = ".arrow"

log = logging.getLogger("forecast")


def cache_root() -> Path | None:
    """The cache folder, or None when `FORECAST_CACHE_DIR` turns the cache off."""
    raw = os.environ.get(CACHE_ENV)
    if raw is not None:
        text = raw.strip()
        return None if not text or text.lower() in OFF else Path(text).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".cache") / "forecast"


@functools.cache
def code_fingerprint() -> str:
    """sha256 over this package's Python sources (path and bytes): a new version, or any local
    edit, gives new keys."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode("utf-8") + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def cache_key(*parts: str) -> str:
    """The key of an entry made from `parts` (each a string) by this code."""
    digest = hashlib.sha256(code_fingerprint().encode("ascii"))
    for part in parts:
        digest.update(b"\0" + part.encode("utf-8"))
    return digest.hexdigest()


def _entry(kind: str, key: str) -> Path | None:
    root = cache_root()
    return None if root is None else root / kind / f"{key}{SUFFIX}"


def read_cached(kind: str, key: str) -> pa.Table | None:
    """The entry's table, or None (no cache, no entry, or one that cannot be read)."""
    path = _entry(kind, key)
    if path is None or not path.is_file():
        return None
    import pyarrow.feather as feather

    try:
        table = feather.read_table(path, memory_map=False)
    except Exception as exc:  # noqa: BLE001 - a broken entry is a miss, whatever broke it
        log.debug("cache: could not read %s (%s); reading the data instead.", path, exc)
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # recently used: pruned last
    return table


def write_cached(kind: str, key: str, table: pa.Table) -> Path | None:
    """Store `table` as the entry (atomically), drop the oldest beyond `KEEP`; None when there
    is no cache or it cannot be written."""
    path = _entry(kind, key)
    if path is None:
        return None
    import pyarrow.feather as feather

    try:
        for folder in (path.parent.parent, path.parent):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(path, lambda tmp: feather.write_feather(table, tmp))
        _prune(path.parent)
    except OSError as exc:
        log.debug("cache: could not write %s (%s).", path, exc)
        return None
    return path


def _prune(folder: Path) -> None:
    entries = sorted(folder.glob(f"*{SUFFIX}"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[KEEP:]:
        old.unlink(missing_ok=True)


__all__ = [
    "CACHE_ENV",
    "cache_key",
    "cache_root",
    "code_fingerprint",
    "read_cached",
    "write_cached",
]
