"""Benchmark the whole training (features, backtest, final fit, what-if fits, MLflow logging)
on a simulated organisation, as `forecast train` runs it.

    python benchmarks/train.py                      # 1,500 teams x 42 months
    python benchmarks/train.py --teams 300 --months 36 --seed 3
    python benchmarks/train.py --what-if-signals after_hours_ratio cases_per_head  # not `report`
    python benchmarks/train.py --what-if-signals auto   # every settable signal

Runs `forecast.commands.train.run_training` itself (into a temporary MLflow store), with the
simulation's truth so that the backtest reports correlations with the true expected values.
Prints wall and CPU time (this process and its workers), peak memory (with worker processes),
the per-step breakdown, the backtest table (model next to the baselines) and whether the goals
are met. The simulation itself is not timed (the user's data already exist). Goals, 1,500
teams x 42 months on 2 cores: correlation with the true expected leavers above 0.90 and with
the true per-head rate above 0.90; calibration within 5% overall and 10% in every decile; D2
clearly above the long-run baseline's. Speed against a named baseline: benchmarks/speed.py.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import yaml
from common import PeakRSS

from forecast.commands.train import run_training
from forecast.models.config import DEFAULT_CONFIG_PATH
from forecast.simulate import SimConfig, simulate, write_simulation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teams", type=int, default=1500)
    parser.add_argument("--months", type=int, default=42)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--what-if-signals",
        nargs="*",
        default=None,
        help="instead of training/model.yaml's what_if.signals: names, `auto` or `report` "
        "(nothing: no fits)",
    )
    args = parser.parse_args()

    sim = simulate(SimConfig(n_teams=args.teams, n_months=args.months, seed=args.seed))
    with tempfile.TemporaryDirectory(prefix="forecast-train-bench-") as tmp:
        work = Path(tmp)
        write_simulation(sim, work / "data", fmt="parquet")
        config = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
        wanted = args.what_if_signals
        if wanted is not None:
            one = len(wanted) == 1 and wanted[0] in ("auto", "report")
            config["what_if"] = {"signals": wanted[0] if one else list(wanted)}
        (work / "model.yaml").write_text(yaml.safe_dump(config))
        uri = f"sqlite:///{work / 'mlruns' / 'mlflow.db'}"
        (work / "mlruns").mkdir()
        rusage = (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
        with PeakRSS(every=0.05, children=True) as mem:
            t0 = time.perf_counter()
            outcome = run_training(
                work / "data",
                tracking_uri=uri,
                config_path=work / "model.yaml",
                truth=sim.truth,
            )
            total = time.perf_counter() - t0
    cpu = sum(
        (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        for before, after in zip(
            rusage,
            (
                resource.getrusage(resource.RUSAGE_SELF),
                resource.getrusage(resource.RUSAGE_CHILDREN),
            ),
            strict=True,
        )
    )
    result = outcome.backtest
    pair = outcome.record.pair if outcome.record else None
    fits = outcome.record.what_if_fits if outcome.record else None
    print(
        f"{len(outcome.record.panel):,} team-months, {len(pair.features)} features, "
        f"what-if fits: {', '.join(sorted(fits or {})) or 'none'}"
    )
    print("steps (wall, this process; worker processes meanwhile) and fits (where they ran):")
    for name, secs in outcome.timings.items():
        print(f"  {name:<48} {secs:7.1f} s")
    print(
        f"  {'total':<48} {total:7.1f} s wall, {cpu:.1f} s CPU (with workers), "
        f"peak memory {mem.peak / 2**20:,.0f} MiB"
    )
    print()
    print(result.format_table())
    print()
    _goals(result)


def _goals(result) -> None:
    m = "lightgbm"
    cal = result.calibration
    worst = float((cal["predicted"] / cal["realised"] - 1).abs().max())
    d2, d2_lr = result.metric(m, "d2_vs_null"), result.metric("long_run_shrunk", "d2_vs_null")
    checks = [
        (
            "corr with true expected leavers > 0.90",
            result.metric(m, "corr_true_leavers") > 0.9,
            f"{result.metric(m, 'corr_true_leavers'):.3f}",
        ),
        (
            "corr with true per-head rate > 0.90",
            result.metric(m, "corr_true_rate") > 0.9,
            f"{result.metric(m, 'corr_true_rate'):.3f}",
        ),
        (
            "calibration within 5% overall",
            abs(result.metric(m, "calibration") - 1) < 0.05,
            f"{result.metric(m, 'calibration'):.3f}",
        ),
        ("calibration within 10% in every decile", worst < 0.10, f"worst {worst:.3f}"),
        ("D2 above the long-run baseline's", d2 > d2_lr, f"{d2:.3f} vs {d2_lr:.3f}"),
    ]
    for name, ok, value in checks:
        print(f"  [{'ok' if ok else '--'}] {name}: {value}")
    csat = result.metrics.set_index(["target", "model"]).loc[("csat", m)]
    print(
        f"  CSAT change: MAE {csat['mae']:.3f} (weighted {csat['weighted_mae']:.3f}), "
        f"corr with the true change {csat['corr_true_csat']:.3f}"
    )


if __name__ == "__main__":
    main()
