"""A small on-disk cache of derived, team-level tables, addressed by what they were made from.

`forecast what-if` keeps here what it read from a data directory for one month (a
`forecast.whatif.month.WhatIfMonth`), so a second what-if on the same files skips reading,
checking and building features (issue 17). An entry's key is a hash of everything that shaped
it: the data files' bytes (`lineage.data_hash`), the options, the feature specs, the code of
this package and the versions of Python, pandas, NumPy and Arrow, so a change to any of them is
a miss, never a stale answer. Entries never hold employee rows: only team-level frames (the
caller's choice; docs/what-if.md).

Where: `FORECAST_CACHE_DIR`, else `$XDG_CACHE_HOME/forecast`, else `~/.cache/forecast`;
`FORECAST_CACHE_DIR=off` turns it off. The folder is private to its user: made 0700 (and set
so when the user owns it), entries 0600; a folder the user does not own, or that others may
write to, is not used (an entry planted there would change answers). The `KEEP` most recently
used entries of a kind are kept. A cache that cannot be read or written is a miss, never an
error: it only ever saves time.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import platform
import stat
import tempfile
from pathlib import Path

import numpy
import pandas
import pyarrow as pa
import pyarrow.feather as feather

CACHE_ENV = "FORECAST_CACHE_DIR"
OFF = ("off", "0", "false", "no", "none")
KEEP = 16  # entries kept per kind (a month of what-ifs on a few data sets)
SUFFIX = ".arrow"

log = logging.getLogger("forecast")


def cache_root() -> Path | None:
    """The cache folder, or None when `FORECAST_CACHE_DIR` turns the cache off (or no home
    folder can be found for the default)."""
    raw = os.environ.get(CACHE_ENV)
    try:
        if raw is not None:
            text = raw.strip()
            return None if not text or text.lower() in OFF else Path(text).expanduser()
        xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
        return (Path(xdg) if xdg else Path.home() / ".cache") / "forecast"
    except RuntimeError:  # no HOME and no passwd entry, or ~user unknown
        return None


@functools.cache
def code_fingerprint() -> str:
    """sha256 over this package's Python sources (path and bytes) and the versions of what
    computes and stores the entries: a new version, or any local edit, gives new keys."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for name, version in (
        ("python", platform.python_version()),
        ("numpy", numpy.__version__),
        ("pandas", pandas.__version__),
        ("pyarrow", pa.__version__),
    ):
        digest.update(f"{name}={version}\0".encode())
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


def _private(folder: Path) -> bool:
    """Whether `folder` is this user's and no one else may write to it (made so if it is
    theirs); on a system without owners (Windows), whether it is a folder."""
    info = folder.stat()
    if not stat.S_ISDIR(info.st_mode):
        return False
    if not hasattr(os, "getuid"):
        return True
    if info.st_uid != os.getuid():
        return False
    if stat.S_IMODE(info.st_mode) & 0o077:
        folder.chmod(0o700)
    return True


def _entry(kind: str, key: str, *, create: bool) -> Path | None:
    """The entry's path in a private cache folder, or None (no cache, or not a private one)."""
    root = cache_root()
    if root is None:
        return None
    try:
        if create:
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
        elif not root.is_dir():
            return None
        if not _private(root):
            log.debug("cache: %s is not private to this user; not used.", root)
            return None
        folder = root / kind
        if create:
            folder.mkdir(mode=0o700, exist_ok=True)
    except OSError as exc:
        log.debug("cache: %s cannot be used (%s).", root, exc)
        return None
    return folder / f"{key}{SUFFIX}"


def read_cached(kind: str, key: str) -> pa.Table | None:
    """The entry's table, or None (no cache, no entry, or one that cannot be read)."""
    path = _entry(kind, key, create=False)
    if path is None or not path.is_file():
        return None
    try:
        table = feather.read_table(path, memory_map=False)
    except Exception as exc:  # noqa: BLE001 - a broken entry is a miss, whatever broke it
        log.debug("cache: could not read %s (%s); reading the data instead.", path, exc)
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # recently used: pruned last
    return table


def write_cached(kind: str, key: str, table: pa.Table) -> Path | None:
    """Store `table` as the entry (0600, renamed into place), drop the least recently used
    beyond `KEEP`; None when there is no cache or it cannot be written."""
    path = _entry(kind, key, create=True)
    if path is None:
        return None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)  # mkstemp makes it 0600: kept so
    try:
        feather.write_feather(table, tmp)
        os.replace(tmp, path)
        _prune(path.parent)
    except Exception as exc:  # noqa: BLE001 - a cache that cannot be written is no error
        log.debug("cache: could not write %s (%s).", path, exc)
        return None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return path


def _prune(folder: Path) -> None:
    def used(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except OSError:  # pruned meanwhile by another process
            return 0.0

    for old in sorted(folder.glob(f"*{SUFFIX}"), key=used, reverse=True)[KEEP:]:
        old.unlink(missing_ok=True)


__all__ = [
    "CACHE_ENV",
    "cache_key",
    "cache_root",
    "code_fingerprint",
    "read_cached",
    "write_cached",
]
