"""Errors a person can act on. The CLI catches `ForecastError`, prints its message on one line
and exits with its `exit_code`; nothing else in the package catches broad exceptions."""

from __future__ import annotations


class ForecastError(Exception):
    """Base class: a problem the user can fix. The message is shown as is, on one line."""

    exit_code = 2


class DataError(ForecastError):
    """The input data break the contract (missing file or column, bad value, ...)."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        column: str | None = None,
        row: int | None = None,
        key: str | None = None,
    ) -> None:
        self.file, self.column, self.row, self.key = file, column, row, key
        where = []
        if file:
            where.append(file)
        if column:
            where.append(f"column {column}")
        if row is not None:
            where.append(f"row {row}" + (f" ({key})" if key else ""))
        elif key:  # a database row has no number: its key values name it
            where.append(f"row {key}")
        super().__init__((", ".join(where) + ": " if where else "") + message)


class ConfigError(ForecastError):
    """A parameter, option or configuration file is invalid."""


class SpecError(ConfigError):
    """A feature spec under features/ is invalid."""


class ModelError(ForecastError):
    """A model cannot be found, loaded or used with these data."""


class TrackingError(ForecastError):
    """The MLflow tracking server or registry cannot be reached or refused a call."""


class OutputError(ForecastError):
    """An output location cannot be written safely (not ours, locked, ...)."""


class PromotionRefused(ForecastError):
    """The gate kept the champion: not a failure of the tool, but a scheduler must see it."""

    exit_code = 1


class Interrupted(ForecastError):
    """Ctrl-C, caught where the command still knows what it left behind; the message says so
    (e.g. "interrupted; OUT left as it was") and is shown without an "error:" prefix."""

    exit_code = 130


class NotBuiltError(ForecastError):
    """A command that exists in the contract but is not built yet."""

    exit_code = 3


def check_param(name: str, value: object, ok: bool, expected: str) -> None:
    """Raise ConfigError in the house format when `ok` is false.

    >>> check_param("--horizon", 0, 1 <= 0 <= 24, "an integer between 1 and 24")
    Traceback (most recent call last):
    forecast.errors.ConfigError: `--horizon` must be an integer between 1 and 24. Got 0 instead.
    """
    if not ok:
        raise ConfigError(f"`{name}` must be {expected}. Got {value!r} instead.")
