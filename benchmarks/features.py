"""Benchmark the feature panel (and targets) on simulated organisations.

    python benchmarks/features.py            # all cases, each in a fresh process
    python benchmarks/features.py --case 1500x42

Prints rows, columns, seconds and peak memory per case, and the speed-up over the slow
reference implementation (tests/reference.py) on a small case. Goals: 1,500 teams x 42 months
in under 10 s on 2 cores; 20,000 teams x 36 months in under 2 minutes and 6 GB.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import psutil
from common import PeakRSS

ROOT = Path(__file__).resolve().parents[1]
CASES = {"1500x42": (1500, 42), "20000x36": (20000, 36)}
SMALL = (12, 24)  # the reference loops over employees and months: keep it small


def _tables(n_teams: int, n_months: int, seed: int = 1):
    from forecast.data.contract import tables_from_frames
    from forecast.simulate import SimConfig, simulate

    result = simulate(SimConfig(n_teams=n_teams, n_months=n_months, seed=seed, compute_truth=False))
    return tables_from_frames(result.frames, data_start=result.config.start)


def run_case(name: str) -> None:
    from forecast.features.panel import build_panel
    from forecast.features.specs import load_specs
    from forecast.features.targets import build_targets

    n_teams, n_months = CASES[name]
    t0 = time.perf_counter()
    tables = _tables(n_teams, n_months)
    t_sim = time.perf_counter() - t0
    specs = load_specs()
    base = psutil.Process().memory_info().rss
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        panel = build_panel(tables, specs)
        t_panel = time.perf_counter() - t0
        t0 = time.perf_counter()
        build_targets(tables, 3)
        t_targets = time.perf_counter() - t0
        t0 = time.perf_counter()
        month = panel["as_of"].max()
        scored = build_panel(tables, specs, as_of=month)
        t_score = time.perf_counter() - t0
    gb = 1024**3
    print(
        f"{name}: {len(tables.employees):,} spells -> panel {len(panel):,} rows x "
        f"{panel.shape[1]} columns in {t_panel:.2f} s; targets {t_targets:.2f} s; "
        f"scoring one month ({len(scored):,} rows) {t_score:.2f} s; "
        f"peak RSS {mem.peak / gb:.2f} GB (tables alone {base / gb:.2f} GB); "
        f"simulation+validation {t_sim:.1f} s (not counted)",
        flush=True,
    )


def run_reference() -> None:
    sys.path.insert(0, str(ROOT))
    from forecast.features.panel import build_panel
    from forecast.features.specs import load_specs
    from tests.reference import reference_panel

    tables = _tables(*SMALL)
    specs = load_specs()
    t0 = time.perf_counter()
    fast = build_panel(tables, specs)
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    reference_panel(tables, specs)
    t_ref = time.perf_counter() - t0
    print(
        f"reference {SMALL[0]}x{SMALL[1]}: {len(fast):,} rows; fast {t_fast:.3f} s, "
        f"reference {t_ref:.1f} s: {t_ref / t_fast:,.0f}x faster",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=[*CASES, "reference", "all"], default="all")
    args = parser.parse_args()
    if args.case == "all":
        # One process per case, so that each peak memory figure is that case's alone.
        for case in ["reference", *CASES]:
            subprocess.run([sys.executable, __file__, "--case", case], check=True)
    elif args.case == "reference":
        run_reference()
    else:
        run_case(args.case)


if __name__ == "__main__":
    main()
