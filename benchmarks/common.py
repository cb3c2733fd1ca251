"""Shared benchmark helpers (benchmarks run as scripts: `python benchmarks/x.py`)."""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil


class PeakRSS:
    """Samples this process's resident memory (plus its children's, e.g. a Spark JVM) in a
    thread; `peak` is the maximum seen, in bytes."""

    def __init__(self, every: float = 0.005, children: bool = False) -> None:
        self.proc, self.every, self.children, self.peak = psutil.Process(), every, children, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        total = self.proc.memory_info().rss
        if self.children:
            for child in self.proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):  # a child may exit meanwhile
                    total += child.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.every)

    def __enter__(self) -> PeakRSS:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


@contextlib.contextmanager
def work_dir(keep: Path | None) -> Iterator[Path]:
    """A benchmark's setup folder: `--work` when given (kept, so the next run reuses its setup),
    else a temporary folder removed at the end."""
    if keep is None:
        with tempfile.TemporaryDirectory() as tmp:
            yield Path(tmp)
        return
    work = keep.resolve()
    work.mkdir(parents=True, exist_ok=True)
    yield work


def train_on_two_organisations(
    work, teams: int, months: int, seeds: tuple[int, int], signals: list[str] | None
) -> tuple[str, float]:
    """Simulate a training organisation (seeds[0], work/train-data) and a held-out one
    (seeds[1], work/data) as Parquet, and train one pair on the first with `what_if.signals`
    set to `signals` (None: as training/model.yaml says). Returns the tracking URI of the store
    under `work` and the training time in seconds (setup, not what the benchmarks measure)."""
    import yaml

    from forecast.commands.train import run_training
    from forecast.models.config import DEFAULT_CONFIG_PATH
    from forecast.simulate import SimConfig, simulate, write_simulation

    for seed, name in zip(seeds, ("train-data", "data"), strict=True):
        sim = simulate(SimConfig(n_teams=teams, n_months=months, seed=seed, compute_truth=False))
        write_simulation(sim, work / name, fmt="parquet")
    config = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    if signals is not None:
        config["what_if"] = {"signals": signals}
    (work / "model.yaml").write_text(yaml.safe_dump(config))
    uri = f"sqlite:///{work / 'mlruns' / 'mlflow.db'}"
    t = time.perf_counter()
    run_training(work / "train-data", tracking_uri=uri, config_path=work / "model.yaml")
    return uri, time.perf_counter() - t


def train_small_pair(work, n_teams: int, n_months: int, overrides: dict) -> str:
    """Train and register a pair on a small simulated organisation (training is not what the
    scoring benchmarks measure); returns the tracking URI of its store under `work`."""
    import yaml

    from forecast.commands.train import run_training
    from forecast.models.config import DEFAULT_CONFIG_PATH
    from forecast.simulate import SimConfig, simulate, write_simulation

    data = work / "train-data"
    write_simulation(
        simulate(SimConfig(n_teams=n_teams, n_months=n_months, seed=1, compute_truth=False)),
        data,
        fmt="parquet",
    )
    config = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text()) | overrides
    (work / "model.yaml").write_text(yaml.safe_dump(config))
    uri = f"sqlite:///{work / 'mlruns' / 'mlflow.db'}"
    run_training(data, tracking_uri=uri, config_path=work / "model.yaml")
    return uri
