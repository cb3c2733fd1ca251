"""`forecast score --out-root ROOT --catch-up`: score every month that is due into ROOT/YYYY-MM/.

Due months run from the month after the latest month folder under ROOT (or from `--since`) to the
latest complete month of the data; into an empty ROOT only the latest complete month. A month
folder that exists is never rewritten, whichever model wrote it, so a rerun from cron with nothing
new changes nothing. One lock beside ROOT serialises overlapping runs: the second waits, then
finds the months done.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from forecast.data.months import is_month_folder, month_str

Say = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def month_folders(root: Path) -> list[str]:
    """Month folders already under ROOT (any content: an existing month is never rewritten)."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and is_month_folder(p.name))


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


__all__ = ["due_months", "month_folders"]
