"""Shared benchmark helpers (benchmarks run as scripts: `python benchmarks/x.py`)."""

from __future__ import annotations

import contextlib
import threading
import time

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
