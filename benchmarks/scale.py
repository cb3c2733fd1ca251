"""Benchmark `forecast score --engine local` against `--engine spark --master local[2]` on 20,000
simulated teams: wall time and peak memory of the whole process tree (the Python driver, the
Spark JVM and its Python workers), and whether both engines wrote the same files.

    .venv/bin/python benchmarks/scale.py                  # 20,000 teams x 18 months
    .venv/bin/python benchmarks/scale.py --teams 2000     # quick

A small pair is trained once on a 300-team organisation into a temporary MLflow store (training
is not what is measured). Each engine scores the same Parquet directory through the real CLI in
a fresh process (`python -m forecast score ... --no-report`); psutil samples the RSS of that
process and all its descendants every 0.1 s. Needs the spark extra and Java 17.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from common import train_small_pair

TRAIN_TEAMS, TRAIN_MONTHS = 300, 36
TRAIN_CONFIG = {"num_boost_round": 200, "early_stopping_rounds": 20}
COMPARED = ("scores.parquet", "drivers.parquet", "drivers_by_family.parquet")


def train(work: Path) -> str:
    # Training is not what is measured here: a smaller organisation gives a pair of the same
    # shape (all features, a few hundred trees).
    return train_small_pair(work, TRAIN_TEAMS, TRAIN_MONTHS, TRAIN_CONFIG)


class TreeMemory:
    """Peak RSS of a process and all its descendants (the JVM is a child of the driver, the
    Python workers children of the JVM), sampled on a thread."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        self.root = psutil.Process(pid)
        self.every = every
        self.peak_total = self.peak_driver = self.peak_jvm = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total = driver = jvm = 0
            for p in procs:
                try:
                    rss = p.memory_info().rss
                    name = p.name()
                except psutil.NoSuchProcess:
                    continue
                total += rss
                if p.pid == self.root.pid:
                    driver = rss
                elif name.startswith("java"):
                    jvm += rss
            self.peak_total = max(self.peak_total, total)
            self.peak_driver = max(self.peak_driver, driver)
            self.peak_jvm = max(self.peak_jvm, jvm)
            self._stop.wait(self.every)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def score(data: Path, out: Path, uri: str, engine: str, master: str) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "forecast",
        "-q",
        "score",
        "--data",
        str(data),
        "--out",
        str(out),
        "--no-report",
        "--engine",
        engine,
    ]
    if engine == "spark":
        cmd += ["--master", master]
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "SPARK_LOCAL_IP": "127.0.0.1"}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with TreeMemory(proc.pid) as mem:
        stdout, stderr = proc.communicate()
    wall = time.perf_counter() - started
    if proc.returncode:
        print(stderr[-3000:])
        raise SystemExit(proc.returncode)
    gb = 1024**3
    return {
        "wall_s": wall,
        "peak_tree_gb": mem.peak_total / gb,
        "peak_driver_gb": mem.peak_driver / gb,
        "peak_jvm_gb": mem.peak_jvm / gb,
        "line": stdout.strip().splitlines()[-1] if stdout.strip() else "",
    }


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teams", type=int, default=20_000)
    parser.add_argument("--months", type=int, default=18)
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args()

    from forecast.simulate import SimConfig, simulate, write_simulation

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        uri = train(work)
        print(
            f"trained the pair on {TRAIN_TEAMS} teams x {TRAIN_MONTHS} months in "
            f"{time.perf_counter() - t:.1f} s"
        )
        t = time.perf_counter()
        data = work / "data"
        sim = simulate(
            SimConfig(n_teams=args.teams, n_months=args.months, seed=2, compute_truth=False)
        )
        spells = len(sim.frames["employees"])
        write_simulation(sim, data, fmt="parquet")
        del sim
        print(
            f"simulated {args.teams:,} teams x {args.months} months ({spells:,} employee "
            f"spells) in {time.perf_counter() - t:.1f} s"
        )
        runs = {}
        for engine in ("local", "spark"):
            runs[engine] = score(data, work / f"out-{engine}", uri, engine, args.master)
            r = runs[engine]
            where = f" --master {args.master}" if engine == "spark" else ""
            print(
                f"--engine {engine}{where}: {r['wall_s']:.1f} s wall, peak RSS "
                f"{r['peak_tree_gb']:.2f} GB (driver {r['peak_driver_gb']:.2f} GB, JVM "
                f"{r['peak_jvm_gb']:.2f} GB, rest Spark's Python workers)"
            )
        same = {
            f: digest(work / "out-local" / f) == digest(work / "out-spark" / f) for f in COMPARED
        }
        print(
            "byte-identical: " + ", ".join(f"{f} {'yes' if ok else 'NO'}" for f, ok in same.items())
        )
        if not all(same.values()):
            raise SystemExit(1)


if __name__ == "__main__":
    main()
