"""The causal what-if engine's fits, made once by `forecast train` and kept with the model pair.

Fitting `forecast.whatif.engine.CausalEngine` takes seconds per signal (5-10 s at 400 teams, 20 s or
more at 1,500), and every `forecast what-if` and every report paid it again. Instead:

- `forecast train` fits the engine for the configured signals (`what_if.signals` in
  training/model.yaml; `auto` = every settable signal, `what_if_signals`) on the data the pair
  was trained on, as of those data's latest complete month: the same labelled rows as the pair
  (`FitJob`, in worker processes while the models train);
- the registry saves the fits beside the pair's models (`save_fits`, into `whatif_effects/`)
  and loads them with it (`load_fits`; `forecast.mlops.registry.save_bundle`), so they travel
  with the registered pair;
- `CausalEngine` reuses a stored fit for a what-if as of the fit's month or later, and refits
  when the what-if is about an earlier month (a fit from later data would leak into it), or
  when the horizon, the engine settings or the feature specs differ (`StoredFit.refusal`).

On disk (`whatif_effects/`): `manifest.json` (format, the `EffectFit` fields the fits were
saved with, and per signal its file, as-of month, horizon, engine settings, feature spec hash
and sha256) and one `<signal>.json` per signal: the whole `EffectFit`, encoded by type, not by
field name (`encode`: LightGBM boosters as their model text, arrays as dtype, shape and bytes),
so fields added to `EffectFit` are saved without changing this module. Byte-stable by
construction (JSON by type, no pickle): the same fit saves to the same
bytes, and a loaded fit saves again unchanged (a loaded booster keeps the text it was loaded
from). Fits saved when `EffectFit` had other fields are not loaded (the engine refits), never
misread.

Pure apart from `save_fits` and `load_fits`, which touch only the pair's own folder.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import importlib
import json
import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import pickle
import re
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from forecast.data.atomic import json_text
from forecast.data.months import month_str
from forecast.data.tables import Tables
from forecast.errors import (
    ConfigError,
    ModelError,
)
from forecast.features.specs import FeatureSpecs
from forecast.whatif.engine import (
    CausalEngine,
    EffectFit,
    EngineSettings,
    StoredFit,
    check_what_if_signal,
    settings_dict,
)
from forecast.whatif.signals import settable_signals

if TYPE_CHECKING:
    import lightgbm as lgb

log = logging.getLogger("forecast")

FORMAT = 1
MANIFEST = "manifest.json"
AUTO = "auto"
# The signals the leaders' report moves (known once the pair exists; forecast.commands.train).
REPORT = "report"
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,80}")


class StoredBooster:
    """A booster of a loaded fit: its model text, made a LightGBM booster on first use.

    A what-if answered with the pair never uses a fit's boosters (they forecast without a
    pair), and importing LightGBM costs over a second (issue 17). The text is kept as loaded:
    re-serialising a loaded booster may reorder its parameter block, and a loaded fit must
    save to the same bytes again."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._booster: lgb.Booster | None = None

    @property
    def booster(self) -> lgb.Booster:
        if self._booster is None:
            import lightgbm as lgb

            self._booster = lgb.Booster(model_str=self.text)
        return self._booster

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        return self.booster.predict(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        # Anything else a booster answers; never a private name (pickle and copy probe those
        # before __init__ has run).
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.booster, name)


# --------------------------------------------------------------------------- making fits


def what_if_signals(tables: Tables, specs: FeatureSpecs, wanted: str | list[str]) -> list[str]:
    """The signals `what_if.signals` names: `auto` = every settable (actionable) signal of
    these data, sorted; a list is checked one by one (a ConfigError names the first bad one).
    Not for `report`: those come from the trained pair (`commands.train.report_signals`)."""

    if wanted == AUTO:
        return sorted(settable_signals(tables, specs))
    if wanted == REPORT:
        raise ValueError("`report` signals come from a trained pair (commands.train)")
    out = []
    for name in wanted:
        try:
            out.append(check_what_if_signal(tables, specs, name).signal)
        except ConfigError as exc:
            reason = str(exc).replace("`--set` signal", "signal", 1)
            raise ConfigError(f"`what_if.signals` in the model configuration: {reason}") from None
    return list(dict.fromkeys(out))


def default_workers() -> int:
    """The CPUs this process may use (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_MAIN = -1  # a claim by the caller's process (workers claim with their number, from 1)
_POLL_SECONDS = 0.2


class FitJob:
    """The engine's fits for several signals, started at once and collected by `wait`.

    With `workers` CPUs (default: those this process may use), up to `workers - 1` spawned
    worker processes (at most MAX_WORKER_PROCESSES, as each holds a copy of the data; a fork
    would inherit LightGBM's OpenMP runtime, which does not survive it) fit the signals in
    order while the caller goes on: `forecast train` backtests and trains the pair meanwhile
    (its models use two threads, so on a small machine they share the CPUs). When the caller
    then waits, it fits every signal no worker has claimed and collects the rest.

    Built to end, whatever happens to a worker: each process claims a signal in a shared
    array before fitting it (so no signal is fitted twice or lost), and a worker hands its fit
    back as a file, written whole and then renamed, in a private temporary folder that also
    carries the data to the workers; no pipe or queue a dying process could leave half
    written. A worker that dies (killed, out of memory) after claiming a signal is a
    ModelError naming it; one that dies before claiming any (e.g. a script without a main
    guard) leaves its signals to the caller, with a warning. A fit that fails in a worker
    stops the others from claiming more. Use it as a context manager, so a failure meanwhile
    ends the workers at once. Every fit is seeded and single-threaded, and comes back as its
    saved bytes (`dumps`), so the fits are the same, byte for byte, whichever process made
    them and however many there were."""

    MAX_WORKER_PROCESSES = 4

    def __init__(
        self,
        tables: Tables,
        specs: FeatureSpecs,
        signals: list[str],
        horizon: int,
        *,
        settings: EngineSettings | None = None,
        workers: int | None = None,
    ) -> None:
        self.args = (tables, specs, settings or EngineSettings(), int(horizon))
        self.signals = list(signals)
        cpus = workers if workers is not None else default_workers()
        self._folder: Path | None = None
        self._processes: list[Any] = []  # multiprocessing's spawned Process objects
        self._outcome: tuple[dict[str, StoredFit], dict[str, str]] | None = None
        self._stopped = False
        # Seconds each signal's fit took, and where: {signal: (seconds, "main" | "worker N")}.
        self.seconds: dict[str, tuple[float, str]] = {}
        ctx = multiprocessing.get_context("spawn")
        self._claims = ctx.Array("i", len(self.signals))  # 0: free, else who fits it
        self._stopping = ctx.Value("b", 0)  # set when a worker's fit fails or the job stops
        n = min(len(self.signals), cpus - 1, self.MAX_WORKER_PROCESSES)
        if n < 1:
            return
        try:
            self._start_workers(ctx, n)
        except BaseException:
            self.stop()
            raise

    def _start_workers(self, ctx: Any, n: int) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="forecast-whatif-"))
        inputs = self._folder / "inputs.pickle"  # removed once every worker has read it
        with open(inputs, "wb") as handle:
            pickle.dump((*self.args, self.signals), handle, protocol=pickle.HIGHEST_PROTOCOL)
        # Kept on self: a child opens these by name after it starts, so they must outlive
        # this call.
        self._loaded = loaded = ctx.Value("i", 0)
        for number in range(1, n + 1):
            process = ctx.Process(
                target=_work,
                name=f"forecast-whatif-{number}",
                daemon=True,
                args=(
                    number,
                    n,
                    str(self._folder),
                    self._claims,
                    self._stopping,
                    loaded,
                    os.getpid(),
                ),
            )
            process.start()
            self._processes.append(process)

    def __enter__(self) -> FitJob:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """End the worker processes at once (fits still running are dropped) and remove the
        temporary folder."""
        self._stopped = True
        self._stopping.value = 1
        processes, self._processes = self._processes, []
        for process in processes:
            process.kill()
        for process in processes:
            process.join()
        folder, self._folder = self._folder, None
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def claims(self) -> dict[str, str | None]:
        """Who fits each signal so far: "main", "worker N", or None (not claimed yet)."""
        with self._claims.get_lock():
            values = list(self._claims[:])
        return {
            s: None if v == 0 else "main" if v == _MAIN else f"worker {v}"
            for s, v in zip(self.signals, values, strict=True)
        }

    def wait(
        self, progress: Callable[[str, int, int], None] | None = None
    ) -> tuple[dict[str, StoredFit], dict[str, str]]:
        if self._outcome is not None:
            return self._outcome
        if self._stopped:
            raise RuntimeError("this FitJob has stopped; start a new one")
        tables, specs, settings, horizon = self.args
        done: dict[str, tuple[bytes | None, str, str]] = {}

        def report(signal: str) -> None:
            if progress is not None:
                progress(signal, len(done), len(self.signals))

        try:
            for index, signal in enumerate(self.signals):  # those no worker has claimed
                self._raise_failure()
                if _claim(self._claims, index, _MAIN):
                    report(signal)
                    start = time.perf_counter()
                    done[signal] = _fit_one(tables, specs, settings, horizon, signal)
                    self.seconds[signal] = (time.perf_counter() - start, "main")
            for index, signal in enumerate(self.signals):
                if signal not in done:
                    report(signal)
                    done[signal] = self._collect(index)
            self._warn_unstarted()
        finally:
            self.stop()
        fits: dict[str, StoredFit] = {}
        skipped: dict[str, str] = {}
        for signal in self.signals:
            data, as_of, reason = done[signal]
            if data is None:
                skipped[signal] = reason
                continue
            fits[signal] = StoredFit(
                fit=loads(data),
                as_of=as_of,
                horizon=horizon,
                settings=settings_dict(settings),
                spec_hash=specs.hash(),
            )
        self._outcome = fits, skipped
        return self._outcome

    def _raise_failure(self) -> None:
        if self._stopping.value and self._folder is not None:
            for index in range(len(self.signals)):
                result = _read_result(self._folder, index)
                if result is not None and result.get("error"):
                    raise RuntimeError(result["error"])

    def _collect(self, index: int) -> tuple[bytes | None, str, str]:
        """The fit worker `claims[index]` made, once it is there; a ModelError if that
        worker ended without it."""
        assert self._folder is not None
        signal, process = self.signals[index], self._processes[self._claims[index] - 1]
        while (result := _read_result(self._folder, index)) is None:
            if not process.is_alive():
                if (result := _read_result(self._folder, index)) is not None:
                    break
                raise ModelError(
                    f"the process fitting the what-if engine for {signal} ended before it "
                    f"finished (exit code {process.exitcode}: killed, or out of memory?). "
                    "Train again, with fewer `what_if.signals` or --no-what-if-fit."
                )
            multiprocessing.connection.wait([process.sentinel], timeout=_POLL_SECONDS)
        if result.get("error"):
            raise RuntimeError(result["error"])
        self.seconds[signal] = (float(result["seconds"]), f"worker {self._claims[index]}")
        fit = result["fit"]
        return (None if fit is None else fit.encode("utf-8")), result["as_of"], result["reason"]

    def _warn_unstarted(self) -> None:
        """Workers that failed before claiming any signal (the caller fitted theirs)."""
        claimed = set(self._claims[:])
        for number, process in enumerate(self._processes, start=1):
            if number not in claimed and process.exitcode not in (None, 0):
                log.warning(
                    "what-if worker process %d ended before it started (exit code %s); this "
                    "process fitted its signals. A script that trains must start under "
                    '`if __name__ == "__main__":`.',
                    number,
                    process.exitcode,
                )


def _claim(claims: Any, index: int, who: int) -> bool:
    with claims.get_lock():
        if claims[index] != 0:
            return False
        claims[index] = who
        return True


def _result_path(folder: Path, index: int) -> Path:
    return folder / f"result-{index}.json"


def _read_result(folder: Path, index: int) -> dict[str, Any] | None:
    try:
        return json.loads(_result_path(folder, index).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def _fit_one(
    tables: Tables, specs: FeatureSpecs, settings: EngineSettings, horizon: int, signal: str
) -> tuple[bytes | None, str, str]:
    """(the fit's bytes, its as-of month, "") or (None, "", why it could not be fitted)."""
    # One engine per signal: its cache would otherwise keep every signal's effect frame.
    engine = CausalEngine(specs=specs, settings=settings, horizon=horizon)
    try:
        fit, _, month = engine.fit(tables, signal, None, horizon)
    except ModelError as exc:
        return None, "", str(exc)
    return dumps(fit), month_str(month), ""


def _work(
    number: int, workers: int, folder: str, claims: Any, stopping: Any, loaded: Any, parent: int
) -> None:
    """A worker process: claim the next free signal, fit it, hand the fit back as a file;
    until none is free, a fit failed, or the caller is gone."""
    inputs = Path(folder) / "inputs.pickle"
    with open(inputs, "rb") as handle:
        *args, signals = pickle.load(handle)  # written by this job's FitJob just before
    with loaded.get_lock():
        loaded.value += 1
        if loaded.value == workers:
            inputs.unlink()  # the data's copy is not left behind longer than needed
    for index, signal in enumerate(signals):
        if stopping.value or os.getppid() != parent:
            return
        if not _claim(claims, index, number):
            continue
        try:
            start = time.perf_counter()
            data, as_of, reason = _fit_one(*args, signal)
            result = {
                "fit": None if data is None else data.decode("utf-8"),
                "as_of": as_of,
                "reason": reason,
                "seconds": time.perf_counter() - start,
            }
        except Exception:  # noqa: BLE001 - handed back as text, raised by the caller
            stopping.value = 1
            result = {
                "error": f"fitting the what-if engine for {signal} failed in a worker "
                f"process:\n{traceback.format_exc()}"
            }
        path = _result_path(Path(folder), index)
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(result), encoding="utf-8")
        os.replace(partial, path)  # whole or absent, even if this process is killed


def fit_metrics(fits: dict[str, StoredFit]) -> dict[str, float]:
    """`EffectFit.metrics()` of each fit as flat MLflow metric names,
    `whatif.<metric>.<signal>` (e.g. `whatif.theta_p10.after_hours_ratio`)."""
    out: dict[str, float] = {}
    for signal in sorted(fits):
        name = re.sub(r"[^A-Za-z0-9_.\- /]", "_", signal)
        for key, value in fits[signal].fit.metrics().items():
            out[f"whatif.{key}.{name}"] = float(value)
    return out


def fit_table(fits: dict[str, StoredFit], skipped: dict[str, str]) -> pd.DataFrame:
    """One row per signal: as-of month, horizon and `EffectFit.metrics()`, or why it was
    skipped. Signal-level figures only."""
    rows = [
        {"signal": s, "status": "fitted", "as_of": f.as_of, "horizon": f.horizon, **f.fit.metrics()}
        for s, f in sorted(fits.items())
    ]
    rows += [
        {"signal": s, "status": "skipped", "reason": why} for s, why in sorted(skipped.items())
    ]
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- files


def fit_fields() -> list[str]:
    """The fields of `EffectFit` as the running code defines them (never listed by hand)."""
    return sorted(f.name for f in dataclasses.fields(EffectFit))


def encode(value: Any) -> Any:
    """`value` as JSON data, by type, never by field name: dataclasses field by field (as
    `dataclasses.fields` lists them), LightGBM boosters as their model text, numeric arrays as
    dtype, shape and base64 bytes, tuples and dicts marked so they come back as such. A type
    none of these covers (one a later EffectFit may hold) is a TypeError: no pickle, so a
    pair's files never run code when they are loaded."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return {"__numpy__": value.dtype.str, "value": encode(value.item())}
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, StoredBooster):
        return {"__booster__": value.text}
    if _is_booster(value):
        return {"__booster__": value.model_to_string()}
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        arr = np.ascontiguousarray(value)
        return {
            "__ndarray__": arr.dtype.str,
            "shape": list(arr.shape),
            "data": base64.b64encode(arr.tobytes()).decode("ascii"),
        }
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {"__dict__": [[encode(k), encode(v)] for k, v in value.items()]}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        return {
            "__dataclass__": f"{cls.__module__}.{cls.__qualname__}",
            "fields": {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)},
        }
    raise TypeError(
        f"cannot store a {type(value).__name__} in a what-if fit; teach "
        "forecast.effects_store.encode about it"
    )


def decode(data: Any) -> Any:
    """The value `encode` gave `data` for."""
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    if "__numpy__" in data:
        return np.dtype(data["__numpy__"]).type(decode(data["value"]))
    if "__float__" in data:
        return float(data["__float__"])
    if "__booster__" in data:
        return StoredBooster(data["__booster__"])
    if "__ndarray__" in data:
        raw = base64.b64decode(data["data"])
        return np.frombuffer(raw, dtype=np.dtype(data["__ndarray__"])).reshape(data["shape"]).copy()
    if "__tuple__" in data:
        return tuple(decode(v) for v in data["__tuple__"])
    if "__dict__" in data:
        return {decode(k): decode(v) for k, v in data["__dict__"]}
    if "__dataclass__" in data:
        return _dataclass(data["__dataclass__"], {k: decode(v) for k, v in data["fields"].items()})
    raise ValueError(f"unknown encoding {sorted(data)[:1]}")


def _dataclass(name: str, values: dict[str, Any]) -> Any:
    module, _, qualname = name.rpartition(".")
    if not module.startswith("forecast."):
        raise ValueError(f"{name} is not a class of this package")
    try:
        cls = getattr(importlib.import_module(module), qualname)
    except (ImportError, AttributeError):
        # Pairs registered before the package's layout changed (issue 16) name old modules.
        raise ValueError(
            f"{name} no longer exists: the pair was registered by an older "
            f"forecast; retrain it with `forecast train --data DIR`"
        ) from None
    init = {f.name for f in dataclasses.fields(cls) if f.init}
    out = cls(**{k: v for k, v in values.items() if k in init})
    for key, value in values.items():
        if key not in init:
            object.__setattr__(out, key, value)
    return out


def _is_booster(value: Any) -> bool:
    """A LightGBM booster (only a process that imported LightGBM can hold one)."""
    lgb = sys.modules.get("lightgbm")
    return lgb is not None and isinstance(value, lgb.Booster)


def dumps(fit: EffectFit) -> bytes:
    """The fit's bytes: the same fit always gives the same bytes."""
    text = json.dumps(encode(fit), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return (text + "\n").encode("utf-8")


def loads(data: bytes) -> EffectFit:
    return decode(json.loads(data.decode("utf-8")))


def _file_name(signal: str, index: int, taken: set[str]) -> str:
    stem = signal if _SAFE_NAME.fullmatch(signal) else f"signal_{index}"
    while f"{stem}.json" in taken:
        stem = f"{stem}_{index}"
    return f"{stem}.json"


def save_fits(path: Path, fits: dict[str, StoredFit]) -> Path:
    """Write `fits` into the folder `path` (created): manifest.json and one file per signal."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    entries, taken = [], set()
    for index, signal in enumerate(sorted(fits)):
        stored = fits[signal]
        name = _file_name(signal, index, taken)
        taken.add(name)
        data = dumps(stored.fit)
        (path / name).write_bytes(data)
        entries.append(
            {
                "signal": signal,
                "file": name,
                "as_of": stored.as_of,
                "horizon": stored.horizon,
                "settings": stored.settings,
                "spec_hash": stored.spec_hash,
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    manifest = {
        "format": FORMAT,
        "fit_class": f"{EffectFit.__module__}.EffectFit",
        "fields": fit_fields(),
        "fits": entries,
    }
    (path / MANIFEST).write_text(json_text(manifest), encoding="utf-8")
    return path


def load_fits(path: Path) -> dict[str, StoredFit] | None:
    """The fits saved in `path`; None when there are none (a pair from before stored fits),
    {} when they were made by an engine whose `EffectFit` differs (the engine then refits).
    A damaged folder is a one-line ModelError."""
    path = Path(path)
    if not (path / MANIFEST).exists():
        return None
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read the stored what-if fits in {path} ({exc}).") from None
    if manifest.get("format") != FORMAT or manifest.get("fields") != fit_fields():
        log.info(
            "the pair's stored what-if fits were made by another version of the engine; "
            "what-ifs refit the engine instead."
        )
        return {}
    out = {}
    for entry in manifest.get("fits", []):
        try:
            data = (path / entry["file"]).read_bytes()
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                raise ValueError(f"{entry['file']} does not match its checksum")
            fit = loads(data)
        except (
            OSError,
            KeyError,
            TypeError,
            ValueError,
            AttributeError,
            ImportError,
            EOFError,
        ) as exc:
            raise ModelError(
                f"cannot load the stored what-if fit of {entry.get('signal')} from {path} "
                f"({exc}); re-register the pair or train again."
            ) from None
        out[str(entry["signal"])] = StoredFit(
            fit=fit,
            as_of=str(entry["as_of"]),
            horizon=int(entry["horizon"]),
            settings=dict(entry["settings"]),
            spec_hash=str(entry.get("spec_hash", "")),
        )
    return out
