"""`forecast score --out-root ROOT --catch-up`: score every month that is due into ROOT/YYYY-MM/.

Due months run from the month after the latest month folder under ROOT (or from `--since`) to the
latest complete month of the data; into an empty ROOT only the latest complete month. A month
folder that exists is never rewritten, whichever model wrote it, so a rerun from cron with nothing
new changes nothing. One lock beside ROOT serialises overlapping runs: the second waits, then
finds the months done.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from forecast.data.months import month_str
from forecast.errors import ConfigError, OutputError, check_param

MONTH_DIR = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
Say = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass
class CatchUpResult:
    root: Path
    latest: str
    scored: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # month -> why


def month_folders(root: Path) -> list[str]:
    """Month folders already under ROOT (any content: an existing month is never rewritten)."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and MONTH_DIR.match(p.name))


def due_months(
    existing: list[str], latest: pd.Period, since: pd.Period | None = None
) -> list[pd.Period]:
    """The months to score, oldest first (pure: the scheduling rule in one place)."""
    if since is not None:
        start = since
    elif existing:
        start = pd.Period(max(existing), freq="M") + 1
    else:
        start = latest
    done = set(existing)
    return [m for m in pd.period_range(start, latest, freq="M") if month_str(m) not in done]


def _root_lock(root: Path):
    from filelock import FileLock

    # Beside ROOT, not in it: a run with nothing to do must leave ROOT untouched.
    return FileLock(str(root.parent / f".{root.name}.lock"))


def run_catch_up(
    data: Path, root: Path, *, since: str | None = None, model: str = "champion",
    min_group: int = 5, report: bool = True, horizon: int | None = None,
    tracking_uri: str | None = None, say: Say = _quiet, warn: Say = _quiet,
) -> CatchUpResult:
    """Score every due month into ROOT/YYYY-MM/ with one loaded pair and one read of the data."""
    from forecast.data.contract import latest_complete_month
    from forecast.scoring.batch import (
        LOCK_TIMEOUT_S,
        parse_as_of,
        prepare,
        read_manifest,
        score_month,
    )

    check_param("--min-group", min_group, isinstance(min_group, int) and min_group >= 1,
                "an integer >= 1")
    since_month = parse_as_of(since, "--since")
    root = Path(os.path.abspath(root))
    if root.exists() and not root.is_dir():
        raise OutputError(f"{root} exists and is not a directory; choose another --out-root.")
    scorer = prepare(data, model=model, horizon=horizon, tracking_uri=tracking_uri, warn=warn)
    latest = latest_complete_month(scorer.tables)
    if since_month is not None and since_month > latest:
        raise ConfigError(
            f"`--since` must be on or before the latest complete month {month_str(latest)}. "
            f"Got {month_str(since_month)} instead."
        )
    result = CatchUpResult(root=root, latest=month_str(latest))
    root.parent.mkdir(parents=True, exist_ok=True)
    from filelock import Timeout

    lock = _root_lock(root)
    try:
        lock.acquire(timeout=LOCK_TIMEOUT_S)
    except Timeout:
        raise OutputError(
            f"another catch-up has held {root} for over {LOCK_TIMEOUT_S:.0f} s; try again later."
        ) from None
    try:
        # Decided under the lock: a run that waited sees what the other one wrote.
        existing = month_folders(root)
        version = scorer.resolved.ref.attrition_version
        if since_month is not None:
            for name in existing:
                if since_month <= pd.Period(name, freq="M") <= latest:
                    previous = read_manifest(root / name) or {}
                    by = previous.get("model", {}).get("attrition", {}).get("version")
                    result.skipped[name] = (
                        "already scored with this model version" if by == version else
                        f"already scored (model version {by or 'unknown'}); never rewritten"
                    )
        months = due_months(existing, latest, since_month)
        if not months:
            return result
        root.mkdir(parents=True, exist_ok=True)
        for month in months:
            name = month_str(month)
            say(f"scoring {name} into {root / name}")
            # The root lock already serialises writers; a per-month lock file would litter ROOT.
            score_month(scorer, month, root / name, min_group=min_group, report=report,
                        lock=False, warn=warn)
            result.scored.append(name)
    finally:
        lock.release()
    return result


__all__ = ["MONTH_DIR", "CatchUpResult", "due_months", "month_folders", "run_catch_up"]
