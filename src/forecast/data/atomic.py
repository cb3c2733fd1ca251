"""Writing outputs safely: one file so a reader never sees half of it (a temporary sibling,
renamed in), a check that an output location can be written before any work starts, and the
lock file that serialises writers of one output.

Used for every single-file output (tables, reports, reviews, JSON). Whole output folders are
swapped in by `score.publish`, which builds on the same ideas for directories. This module never
reads data and never talks to MLflow.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from filelock import FileLock, Timeout

from forecast.errors import OutputError


def write_atomic(path: Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temporary sibling of `path`, then rename it onto `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    # mkstemp creates 0600: outputs must stay readable by colleagues, services and leaders.
    os.chmod(tmp, 0o644)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def json_text(
    value: object,
    *,
    sort_keys: bool = True,
    allow_nan: bool = True,
    default: Callable[[object], object] | None = None,
) -> str:
    """The one JSON form of the files the project writes: indented by two, keys sorted (the
    same value gives the same bytes), a final newline."""
    return (
        json.dumps(value, indent=2, sort_keys=sort_keys, allow_nan=allow_nan, default=default)
        + "\n"
    )


def write_text_atomic(path: Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


# --------------------------------------------------------------------------- checked up front


def check_writable_dir(
    directory: Path, option: str = "--out", *, given: Path | None = None
) -> None:
    """Fail at once, naming `option` and the culprit, unless new directories and files can be
    created in `directory` (created later if missing, so its first existing ancestor is what
    is tried). `given` is the path the user typed, when it is not `directory` itself.

    It really creates and removes a hidden probe directory and file: `os.access` says yes to
    root on a read-only mount and to anyone under /proc, where a lock file can never exist.
    """
    directory = Path(os.path.abspath(directory))
    shown = f"`{option}` {Path(os.path.abspath(given)) if given is not None else directory}"
    existing = directory
    while not os.path.lexists(existing) and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        what = "a file" if existing.is_file() else "not a directory"
        raise OutputError(f"{shown}: {existing} is {what}; choose another {option}.")
    probe = existing / f".forecast-probe-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        _probe(probe)
    except OSError as exc:
        raise OutputError(
            f"{shown}: {existing} {_why_unwritable(exc)}; choose another {option}."
        ) from None


def check_writable_parent(path: Path, option: str = "--out") -> None:
    """`check_writable_dir` for an output `path` (file or folder) created beside its siblings."""
    path = Path(os.path.abspath(path))
    check_writable_dir(path.parent, option, given=path)


def _probe(probe: Path) -> None:
    os.mkdir(probe)
    os.rmdir(probe)
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.close(fd)
    finally:
        os.unlink(probe)


def _why_unwritable(exc: OSError) -> str:
    reason = exc.strerror or type(exc).__name__
    if exc.errno == errno.EROFS:
        return "is read-only (read-only file system)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"is read-only for this user ({reason})"
    return f"cannot hold a new directory or a lock file ({reason})"


# --------------------------------------------------------------------------- the lock file


@contextmanager
def output_lock(
    lock_path: Path, *, timeout: float, busy: str, option: str = "--out"
) -> Iterator[None]:
    """Hold the lock file `lock_path` for the block, and remove it on the way out.

    A lock file that cannot be created fails at once (filelock would retry it until the
    timeout, as if another run held it); `busy` is the message when another run holds it for
    longer than `timeout` seconds. The file is unlinked while still held, as the last step:
    a waiter that opened it then finds an unlinked inode and starts over on a fresh file
    (filelock checks the link count after locking), so mutual exclusion holds.
    """

    lock_path = Path(lock_path)
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise OutputError(
            f"`{option}`: cannot create the lock file {lock_path} "
            f"({exc.strerror or type(exc).__name__}); choose another {option}."
        ) from None
    os.close(fd)
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        raise OutputError(busy) from None
    except OSError as exc:
        raise OutputError(
            f"`{option}`: cannot lock {lock_path} ({exc.strerror or type(exc).__name__})."
        ) from None
    try:
        yield
    finally:
        # A lock file left behind (unlink refused) is harmless: the next run reuses it.
        with suppress(OSError):
            lock_path.unlink(missing_ok=True)
        lock.release()


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C back for a few instructions that must not be cut in half (swapping an output
    in), then deliver it. Only the main thread receives signals, so elsewhere this does
    nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending:
        if callable(previous):
            previous(signal.SIGINT, None)
        elif previous == signal.SIG_DFL:
            raise KeyboardInterrupt
