"""Month arithmetic. Months are pandas `Period[M]` at the edges and integer ordinals inside
hot loops (`ordinal = (year - 1970) * 12 + month - 1`, the same as Period's ordinal)."""

from __future__ import annotations

import datetime as dt
import os
import re

import numpy as np
import pandas as pd

from forecast.errors import ConfigError

MONTH_DTYPE = pd.PeriodDtype("M")
# "Today" can be pinned (tests, replaying a past run); nothing else may read the clock.
TODAY_ENV = "FORECAST_TODAY"


def to_ordinal(months: pd.Series | pd.PeriodIndex) -> np.ndarray:
    """Integer month ordinals of a Period[M] series (NaT -> INT64 min)."""
    arr = months.array if isinstance(months, pd.Series) else months
    return np.asarray(arr.asi8, dtype=np.int64)


def from_ordinal(ordinals: np.ndarray | list[int]) -> pd.PeriodIndex:
    return pd.PeriodIndex.from_ordinals(np.asarray(ordinals, dtype=np.int64), freq="M")


def dates_to_ordinal(dates: pd.Series) -> np.ndarray:
    """Month ordinal of each date; NaT becomes a very large number ("never")."""
    d = pd.to_datetime(dates)
    out = (
        (d.dt.year.to_numpy(dtype="float64") - 1970) * 12 + d.dt.month.to_numpy(dtype="float64") - 1
    )
    return np.where(np.isnan(out), NEVER, out).astype(np.int64)


NEVER = np.int64(10**9)
# The name of a month's folder under a scoring ROOT (`forecast score --catch-up`): ROOT/YYYY-MM.
MONTH_FOLDER = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def is_month_folder(name: str) -> bool:
    return bool(MONTH_FOLDER.match(name))


def parse_month(text: str) -> pd.Period:
    """Parse `YYYY-MM` strictly."""
    if not isinstance(text, str) or not re.fullmatch(r"\d{4}-\d{2}", text.strip()):
        raise ValueError(text)
    p = pd.Period(text.strip(), freq="M")
    return p


def month_str(p: pd.Period | int) -> str:
    if isinstance(p, int | np.integer):
        p = from_ordinal([int(p)])[0]
    return p.strftime("%Y-%m")


def parse_month_option(option: str, text: str | None) -> pd.Period | None:
    """A `YYYY-MM` CLI option, or None; raises ConfigError in the house format."""

    if text is None:
        return None
    try:
        return parse_month(text)
    except ValueError:
        raise ConfigError(f"`{option}` must be a month YYYY-MM. Got {text!r} instead.") from None


def today() -> dt.date:
    """The date the command runs on: `FORECAST_TODAY=YYYY-MM-DD` when set, else the clock.

    The one source of "today" for the package: the latest complete month is never later than
    the month before this date's month, and data dated after it are events not yet happened.
    """

    text = os.environ.get(TODAY_ENV, "").strip()
    if not text:
        return dt.date.today()
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise ValueError(text)
        value = dt.date.fromisoformat(text)
        if not 1900 <= value.year <= 2199:
            raise ValueError(text)
    except ValueError:
        raise ConfigError(
            f"`{TODAY_ENV}` must be a date YYYY-MM-DD between 1900 and 2199. Got {text!r} instead."
        ) from None
    return value


def current_month(on: dt.date | None = None) -> pd.Period:
    """The month of `on` (default: `today()`), which is not complete yet."""
    on = today() if on is None else on
    return pd.Period(year=on.year, month=on.month, freq="M")
