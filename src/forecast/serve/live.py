"""Live what-ifs for `forecast serve`: the causal engine answering from the fits `forecast train`
stored with the pair, loaded once at start-up with the data, so that one answer is a prediction
and the engine's final stage for one team (milliseconds), never a fit.

The answer is the one `forecast what-if --data DIR --team T --set SIGNAL=VALUE --as-of MONTH
--json` prints for the same pair: the same engine, the same stored fits, the same checks of the
signal and the value (`whatif.signals`). Only signals whose stored fit can answer as of the
month are offered (`scoring.extras.answerable_signals`); any other would need a fit of minutes,
which `forecast what-if` does and the server never does.

The engine's caches are not shared safely between threads, so answers are taken one at a time
under a lock. The server runs them in a worker process of their own (`WhatIfProcess`): a what-if
is tens of milliseconds of pandas, and in the web process it competed for the interpreter's lock
with every page being rendered (measured with benchmarks/serve.py: what-ifs queued for seconds
behind pages, and pages behind them); in its own process it runs on the other core.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from forecast.data.tables import Tables
from forecast.errors import ConfigError, ForecastError
from forecast.features.specs import FeatureSpecs
from forecast.models.pair import ModelPair
from forecast.report import words
from forecast.scoring.extras import answerable_signals
from forecast.whatif.engine import CausalEngine, StoredFit, make_engine
from forecast.whatif.signals import (
    Settable,
    as_json_records,
    check_value,
    settable_signals,
    signal_levels,
    value_range,
)


@dataclass(frozen=True)
class SignalChoice:
    """A signal a reader may set as of a month, with the range the data have seen."""

    signal: str
    label: str
    low: float
    high: float
    median: float
    levels: pd.Series = field(repr=False, compare=False)  # each team's current level

    def current(self, team_id: str) -> float | None:
        v = self.levels.get(team_id)
        return float(v) if v is not None and pd.notna(v) else None

    def shown(self, value: float | None) -> str:
        return "–" if value is None else words.fmt_signal_value(self.signal, "current", value)

    def step(self) -> float:
        """An input step of about a hundredth of the range."""
        span = self.high - self.low
        if span <= 0:
            return 0.01
        from math import floor, log10

        return 10.0 ** floor(log10(span / 100))


@dataclass
class MonthSignals:
    choices: dict[str, SignalChoice]
    refused: dict[str, str]  # stored signals that cannot answer this month, and why
    forecaster: RememberedForecasts | None = None


class RememberedForecasts:
    """The pair's forecasts of one month's panel rows, made once for every team: a what-if
    asks the pair for its team's "before", and one row through the pair's pandas design matrix
    cost ten times the rest of the answer. The pair predicts each row on its own (trees,
    per-row intervals and bands), so a remembered row is the very number a fresh call gives;
    a row it does not hold is predicted as before."""

    def __init__(self, pair: ModelPair, rows: pd.DataFrame) -> None:
        self.pair, self.features, self.config = pair, pair.features, pair.config
        predicted = pair.predict(rows)
        self._by_team = predicted.set_index(predicted["team_id"].astype(str), drop=False)
        self._teams = set(self._by_team.index)
        self._as_of = set(rows["as_of"].astype(str))

    def predict(self, panel: pd.DataFrame) -> pd.DataFrame:
        teams = [str(t) for t in panel["team_id"]]
        known = all(t in self._teams for t in teams) and all(
            str(m) in self._as_of for m in panel["as_of"]
        )
        if not known:
            return self.pair.predict(panel)
        return self._by_team.loc[teams].reset_index(drop=True)


class LiveWhatIf:
    """The pair, its stored what-if fits and the data, held for the server's life."""

    def __init__(
        self,
        tables: Tables,
        pair: ModelPair,
        fits: dict[str, StoredFit] | None,
        specs: FeatureSpecs,
        *,
        model: str,
    ) -> None:
        self.tables, self.pair, self.specs, self.model = tables, pair, specs, model
        self.fits = dict(fits or {})
        self.engine: CausalEngine = make_engine(specs, stored=self.fits)
        self.settable: dict[str, Settable] = settable_signals(tables, specs, list(pair.features))
        self.horizon = int(pair.config.horizon)
        self._months: dict[str, MonthSignals] = {}
        self._lock = threading.Lock()

    def signals(self, month: str) -> MonthSignals:
        """The signals answerable as of `month` (built once per month, with the month's
        panel rows, so the first what-if is as fast as the next)."""
        known = self._months.get(month)
        if known is not None:  # no lock: a page must not wait behind a what-if
            return known
        with self._lock:
            if month not in self._months:
                self._months[month] = self._build(month)
            return self._months[month]

    def _build(self, month: str) -> MonthSignals:
        period = pd.Period(month, freq="M")
        ok, refused = answerable_signals(
            self.fits, self.engine, period, self.horizon, self.specs.hash()
        )
        choices, rows = {}, None
        for signal in sorted(ok & set(self.settable)):
            setting = self.settable[signal]
            try:
                low, high = value_range(self.tables, setting, period)
            except ConfigError as exc:
                refused[signal] = str(exc)
                continue
            levels = signal_levels(self.tables, setting, period)
            median = float(levels.median()) if len(levels) else (low + high) / 2
            choices[signal] = SignalChoice(
                signal=signal,
                label=words.signal_label(signal),
                low=low,
                high=high,
                median=min(max(median, low), high),
                levels=levels,
            )
            # Warm the engine: the stored fit and the month's panel rows, read once here.
            _, frame, _ = self.engine.fit(self.tables, signal, period, self.horizon)
            rows = frame.loc[frame["as_of"] == period]
        forecaster = RememberedForecasts(self.pair, rows) if rows is not None else None
        return MonthSignals(choices, refused, forecaster)

    def answer(self, month: str, team_id: str, signal: str, value: Any) -> pd.DataFrame:
        """The engine's frame for one team (ConfigError for a signal or value it refuses)."""
        available = self.signals(month)
        if signal not in available.choices:
            names = ", ".join(sorted(available.choices)) or "none"
            why = available.refused.get(signal)
            raise ConfigError(
                f"a live what-if can set {names} as of {month}"
                + (f"; {signal} cannot be answered from the stored fit ({why})" if why else "")
                + (
                    f"; {signal} has no fit stored with the pair (`forecast what-if` fits one)"
                    if not why and signal in self.settable
                    else ""
                )
                + "."
            )
        setting = self.settable[signal]
        number = check_value(self.tables, setting, value, pd.Period(month, freq="M"))
        pair = available.forecaster or self.pair
        with self._lock:
            return self.engine.estimate(
                self.tables, pair, [team_id], signal, number, pd.Period(month, freq="M")
            )

    @staticmethod
    def contract_object(result: pd.DataFrame) -> dict[str, Any]:
        """The object `forecast what-if --json` prints for the team."""
        return as_json_records(result)[0]


# --------------------------------------------------------------------------- the worker process

_WORKER: LiveWhatIf | None = None
_WORKER_ERROR: str = ""


def _install(build: Callable[..., LiveWhatIf], args: tuple, warm: str) -> None:
    """In the worker: build the what-if state once and warm it for the month served first."""
    global _WORKER, _WORKER_ERROR
    threading.Thread(target=_exit_with, args=(os.getppid(),), daemon=True).start()
    try:
        _WORKER = build(*args)
        _WORKER.signals(warm)
    except ForecastError as exc:  # said by the first call, in one line, not as a dead pool
        _WORKER, _WORKER_ERROR = None, str(exc)


def _exit_with(parent: int) -> None:
    """End the worker when the server is gone, however it ended (a signal that stops the
    server before it can shut its pool down, a kill): an orphan would hold the data forever."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _worker() -> LiveWhatIf:
    if _WORKER is None:
        raise ConfigError(_WORKER_ERROR or "the what-if worker did not start")
    return _WORKER


def _signals(month: str) -> MonthSignals:
    found = _worker().signals(month)
    return MonthSignals(found.choices, found.refused)  # the forecasts stay in the worker


def _answer(month: str, team_id: str, signal: str, value: Any) -> pd.DataFrame:
    return _worker().answer(month, team_id, signal, value)


class WhatIfProcess:
    """`LiveWhatIf`'s interface, answered by one worker process that holds the data, the pair
    and its stored fits. `build(*args)` makes the `LiveWhatIf` there (a module-level function,
    so that the worker, started fresh, can import it)."""

    def __init__(self, build: Callable[..., LiveWhatIf], args: tuple, warm: str) -> None:
        self._pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_install,
            initargs=(build, args, warm),
        )
        self._months: dict[str, MonthSignals] = {}
        self._warm = warm

    def signals(self, month: str) -> MonthSignals:
        known = self._months.get(month)
        if known is None:
            known = self._months[month] = self._pool.submit(_signals, month).result()
        return known

    def answer(self, month: str, team_id: str, signal: str, value: Any) -> pd.DataFrame:
        return self._pool.submit(_answer, month, team_id, signal, value).result()

    contract_object = staticmethod(LiveWhatIf.contract_object)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


WhatIfs = LiveWhatIf | WhatIfProcess  # what the app asks for what-ifs


def result_words(result: pd.DataFrame, choice: SignalChoice) -> dict[str, str]:
    """One answer in words, with the 80% intervals, for the team page."""
    r = result.iloc[0]

    def num(name: str) -> float | None:
        v = r.get(name)
        return float(v) if v is not None and pd.notna(v) else None

    def count_range(lo: str, hi: str, fmt=words.fmt_count) -> str:
        a, b = num(lo), num(hi)
        return f"{fmt(a)} to {fmt(b)}" if a is not None else "–"

    def points_range(lo: str, hi: str) -> str:
        a, b = num(lo), num(hi)
        return f"{words.fmt_points(a)} to {words.fmt_points(b)}" if a is not None else "–"

    return {
        "signal": choice.label,
        "value": choice.shown(num("value")),
        "before_leavers": words.fmt_count(num("before_expected_leavers")),
        "after_leavers": words.fmt_count(num("after_expected_leavers")),
        "after_leavers_interval": count_range("after_leavers_p10", "after_leavers_p90"),
        "leavers_effect": words.fmt_signed_count(num("leavers_effect")),
        "leavers_effect_interval": count_range(
            "leavers_effect_p10", "leavers_effect_p90", words.fmt_signed_count
        ),
        "before_csat": words.fmt_points(num("before_csat_change")),
        "after_csat": words.fmt_points(num("after_csat_change")),
        "after_csat_interval": points_range("after_csat_change_p10", "after_csat_change_p90"),
        "csat_effect": words.fmt_points(num("csat_effect")),
        "csat_effect_interval": points_range("csat_effect_p10", "csat_effect_p90"),
    }


__all__ = ["LiveWhatIf", "SignalChoice", "WhatIfProcess", "WhatIfs", "result_words"]
