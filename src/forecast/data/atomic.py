"""Writing one file so a reader never sees half of it: write a temporary sibling, rename it in.

Used for every single-file output (tables, reports, reviews, JSON). Whole output folders are
swapped in by `score.publish`, which builds on the same idea for directories.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


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


def json_text(value: object, *, sort_keys: bool = True, allow_nan: bool = True,
              default: Callable[[object], object] | None = None) -> str:
    """The one JSON form of the files the project writes: indented by two, keys sorted (the
    same value gives the same bytes), a final newline."""
    return json.dumps(value, indent=2, sort_keys=sort_keys, allow_nan=allow_nan,
                      default=default) + "\n"


def write_text_atomic(path: Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
