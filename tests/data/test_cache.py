"""The on-disk cache of derived tables: where it lives, what turns it off, what a key depends
on, and that a broken or unwritable cache is a miss, never an error."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pyarrow as pa
import pytest

from forecast.data import cache


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "c"))
    return tmp_path / "c"


def table(n: int) -> pa.Table:
    return pa.table({"team_id": [f"T{i}" for i in range(n)], "x": [i / 3 for i in range(n)]})


def test_where_it_lives(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv(cache.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_root() == tmp_path / "xdg" / "forecast"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_root() == tmp_path / "home" / ".cache" / "forecast"
    for off in ("off", "OFF", "0", "", "none"):
        monkeypatch.setenv(cache.CACHE_ENV, off)
        assert cache.cache_root() is None
        assert cache.write_cached("k", "a", table(2)) is None
        assert cache.read_cached("k", "a") is None


def test_a_written_entry_reads_back_and_is_private(root) -> None:
    path = cache.write_cached("kind", "abc", table(5))
    assert path is not None and path.parent == root / "kind"
    assert cache.read_cached("kind", "abc").equals(table(5))
    assert cache.read_cached("kind", "other") is None
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(root / "kind").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in (root / "kind").iterdir()] == [path.name]  # no temporary left


def test_a_folder_others_may_write_to_is_made_private(root) -> None:
    root.mkdir(mode=0o777)
    root.chmod(0o777)
    assert cache.write_cached("kind", "abc", table(2)) is not None
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="needs root")
def test_a_folder_of_another_user_is_not_used(root) -> None:
    root.mkdir()
    os.chown(root, 12345, 12345)  # someone else's: an entry planted there could change answers
    assert cache.write_cached("kind", "abc", table(2)) is None
    assert cache.read_cached("kind", "abc") is None


def test_no_home_folder_turns_it_off(monkeypatch) -> None:
    monkeypatch.setenv(cache.CACHE_ENV, "~no-such-user-here/cache")
    assert cache.cache_root() is None


def test_keys_change_with_every_part() -> None:
    base = cache.cache_key("what-if-month", "data", "2024-06")
    assert base == cache.cache_key("what-if-month", "data", "2024-06")
    assert base != cache.cache_key("what-if-month", "data2", "2024-06")
    assert base != cache.cache_key("what-if-month", "data", "2024-07")
    # Parts are separated: moving text between parts is another key.
    assert cache.cache_key("ab", "c") != cache.cache_key("a", "bc")
    assert len(cache.code_fingerprint()) == 64


def test_only_the_newest_entries_are_kept(root) -> None:
    for i in range(cache.KEEP + 3):
        path = cache.write_cached("kind", f"k{i}", table(1))
        os.utime(path, (1_000_000 + i, 1_000_000 + i))
    cache.write_cached("kind", "last", table(1))
    kept = {p.stem for p in (root / "kind").glob("*.arrow")}
    assert len(kept) == cache.KEEP and "last" in kept and "k0" not in kept


def test_a_broken_or_unwritable_cache_is_a_miss(root, tmp_path, monkeypatch) -> None:
    path = cache.write_cached("kind", "abc", table(3))
    path.write_bytes(b"not arrow")
    assert cache.read_cached("kind", "abc") is None
    blocked = tmp_path / "file"
    blocked.write_text("a file where the folder should be")
    monkeypatch.setenv(cache.CACHE_ENV, str(blocked))
    assert cache.write_cached("kind", "abc", table(3)) is None
