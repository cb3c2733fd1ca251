"""The output folder of `forecast score`: deterministic Parquet (fixed types, no timestamps),
the batch's files, and the atomic publish: everything is written into a temporary directory
beside OUT and swapped into place under a lock, so a failed or killed run leaves an earlier OUT
as it was and two runs at once leave one complete output.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from forecast.data.atomic import check_writable_parent, interrupts_deferred, output_lock
from forecast.data.lineage import MANIFEST, file_sha256
from forecast.errors import (
    OutputError,
)
from forecast.scoring.batch import ScoreBatch


def _arrow_column(series: pd.Series) -> pa.Array:
    """Fixed Arrow types per pandas kind; categoricals stay dictionary-encoded (16 M driver rows
    would otherwise materialise gigabytes of repeated strings); NaN floats become nulls."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = pa.array(series.cat.codes.to_numpy(), type=pa.int32())
        return pa.DictionaryArray.from_arrays(
            codes, pa.array([str(c) for c in series.cat.categories], type=pa.string())
        )
    if pd.api.types.is_bool_dtype(series):
        return pa.array(series.to_numpy(dtype=bool), type=pa.bool_())
    if pd.api.types.is_integer_dtype(series):
        return pa.array(series.to_numpy(dtype=np.int64), type=pa.int64())
    if pd.api.types.is_float_dtype(series):
        return pa.array(
            series.to_numpy(dtype=np.float64, na_value=np.nan), type=pa.float64(), from_pandas=True
        )
    values = series.astype(object).where(series.notna(), None).to_numpy(dtype=object)
    return pa.array([None if v is None else str(v) for v in values], type=pa.string())


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Deterministic Parquet: explicit types, no pandas index or metadata, no timestamps.
    `store_schema=False` makes dictionary columns read back as plain strings everywhere."""
    table = pa.table({c: _arrow_column(frame[c]) for c in frame.columns})
    pq.write_table(table, path, compression="zstd", store_schema=False)


def write_batch_files(directory: Path, batch: ScoreBatch) -> dict[str, str]:
    """The batch's files into `directory`; returns file name -> sha256 (parquet and csv)."""
    files = {
        "scores.parquet": batch.scores,
        "drivers.parquet": batch.drivers,
        "drivers_by_family.parquet": batch.drivers_by_family,
        "drift.parquet": batch.drift,
        "history.parquet": batch.history,
    }
    if batch.calibration is not None:
        files["backtest_calibration.parquet"] = batch.calibration
    if batch.coverage is not None:
        files["backtest_coverage.parquet"] = batch.coverage
    files.update(batch.extra)
    for name, frame in files.items():
        write_parquet(frame, directory / name)
    # For spreadsheet users: same rows and columns as scores.parquet.
    batch.scores.to_csv(directory / "scores.csv", index=False, lineterminator="\n")
    return {name: file_sha256(directory / name) for name in [*files, "scores.csv"]}


def _lock_path(out: Path) -> Path:
    return out.parent / f".{out.name}.lock"


def _tmp_prefix(out: Path) -> str:
    return f".{out.name}.tmp-"


def _backup_path(out: Path) -> Path:
    return out.parent / f".{out.name}.backup"


def read_manifest(out: Path) -> dict[str, Any] | None:
    """Our manifest in `out`, or None when there is none (or it is not ours)."""
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("producer") == PRODUCER else None


def check_replaceable(out: Path) -> None:
    """OUT may be absent, empty, or an earlier output of ours; anything else is someone's data."""
    if not out.exists():
        return
    if not out.is_dir():
        raise OutputError(f"{out} exists and is not a directory; choose another --out.")
    if any(out.iterdir()) and read_manifest(out) is None:
        raise OutputError(
            f"{out} is not empty and was not written by `forecast score` (no manifest.json of "
            f"ours); refusing to replace it. Choose another --out or empty it."
        )


def _recover(out: Path) -> None:
    """Undo what a killed run left beside OUT (we hold the lock, so no live run owns these)."""
    backup = _backup_path(out)
    if backup.exists():
        if out.exists():
            shutil.rmtree(backup)
        else:  # killed between the two renames of the fallback swap: the backup is the output
            os.replace(backup, out)
    for stale in out.parent.glob(_tmp_prefix(out) + "*"):
        shutil.rmtree(stale, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two directories (Linux renameat2 RENAME_EXCHANGE); False when the
    platform or file system cannot, and the caller falls back to two renames."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _fsync_tree(directory: Path) -> None:
    for path in [*directory.iterdir(), directory]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _swap_in(tmp: Path, out: Path) -> None:
    """Put `tmp` at `out`; the old `out` survives until the new one is in place."""
    if not out.exists():
        os.replace(tmp, out)
    elif _exchange(tmp, out):
        shutil.rmtree(tmp)
    else:
        backup = _backup_path(out)
        os.replace(out, backup)
        os.replace(tmp, out)
        shutil.rmtree(backup)
    fd = os.open(out.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(
    out: Path, write: Callable[[Path], None], *, lock: bool = True, option: str = "--out"
) -> None:
    """Write a complete folder with `write(tmp)` and swap it in as `out`, under a lock file
    beside `out` (removed when done). Any failure, Ctrl-C or kill before the swap leaves `out`
    as it was; `option` names the output in messages."""
    out = Path(os.path.abspath(out))
    check_writable_parent(out, option)
    out.parent.mkdir(parents=True, exist_ok=True)
    busy = (
        f"another `forecast score` has been writing {out} for over {LOCK_TIMEOUT_S:.0f} s "
        f"(lock {_lock_path(out)}); try again when it has finished."
    )
    guard = (
        output_lock(_lock_path(out), timeout=LOCK_TIMEOUT_S, busy=busy, option=option)
        if lock
        else contextlib.nullcontext()
    )
    with guard:
        _recover(out)
        check_replaceable(out)
        # Named before it exists, so a Ctrl-C between creating and naming it cannot orphan it.
        tmp = out.parent / f"{_tmp_prefix(out)}{secrets.token_hex(8)}"
        try:
            tmp.mkdir()
            os.chmod(tmp, 0o755)  # outputs must stay readable by colleagues
            write(tmp)
            _fsync_tree(tmp)
            with interrupts_deferred():
                _swap_in(tmp, out)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


PRODUCER = "forecast score"


# A scheduled run should not queue behind a hung one forever; 10 minutes covers the largest
# organisation we benchmark several times over.
LOCK_TIMEOUT_S = 600.0
