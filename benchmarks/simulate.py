"""Speed and memory of the simulator: seconds and peak RSS per organisation size.

Run: .venv/bin/python benchmarks/simulate.py [--sizes 1500x42,20000x36] [--write DIR]
Each size runs in a fresh process so that peak RSS is that size's own.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _one(teams: int, months: int, write: bool, interventions: bool) -> dict[str, float]:
    import psutil

    from forecast.simulate import SimConfig, simulate, write_simulation

    t0 = time.perf_counter()
    result = simulate(
        SimConfig(n_teams=teams, n_months=months, seed=1), with_interventions=interventions
    )
    t1 = time.perf_counter()
    out = {
        "teams": teams,
        "months": months,
        "simulate_s": round(t1 - t0, 2),
        "employee_rows": len(result.frames["employees"]),
        "truth_rows": 0 if result.truth is None else len(result.truth),
    }
    if write:
        with tempfile.TemporaryDirectory() as tmp:
            write_simulation(result, Path(tmp), truth=True)
        out["write_csv_s"] = round(time.perf_counter() - t1, 2)
    # ru_maxrss would also do; psutil gives the same figure on every platform we run on.
    mem = psutil.Process().memory_info()
    peak = getattr(mem, "peak_wset", None) or _linux_peak() or mem.rss
    out["peak_rss_gb"] = round(peak / 1e9, 2)
    return out


def _linux_peak() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1500x42,20000x36")
    ap.add_argument("--write", action="store_true", help="also time writing CSV + truth")
    ap.add_argument("--interventions", action="store_true")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        teams, months = (int(x) for x in args.one.split("x"))
        print(json.dumps(_one(teams, months, args.write, args.interventions)))
        return
    for size in args.sizes.split(","):
        cmd = [sys.executable, __file__, "--one", size]
        cmd += ["--write"] if args.write else []
        cmd += ["--interventions"] if args.interventions else []
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        print(res.stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
