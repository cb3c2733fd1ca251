"""Benchmark the whole training (features + backtest + final fit + what-if fits) on a
simulated organisation.

    python benchmarks/train.py                      # 1,500 teams x 42 months
    python benchmarks/train.py --teams 300 --months 36 --seed 3
    python benchmarks/train.py --no-baseline        # skip the serial baseline run
    python benchmarks/train.py --what-if-signals after_hours_ratio cases_per_head  # not `auto`

Prints wall time and peak memory (with worker processes) of each step, the backtest table
(model next to the baselines) and whether the goals are met. Run as `forecast train` runs it:
the what-if engine's fits (`what_if.signals` of training/model.yaml) in worker processes
while the backtest and the final fit run. Baseline, in the same run: the same work one step
after another in this process (the fits after the models, one signal at a time). The
simulation itself is not timed (the user's data already exist). Goals, 1,500 teams x 42
months on 2 cores: under 90 s; correlation with the true expected leavers above 0.90 and with
the true per-head rate above 0.90; calibration within 5% overall and 10% in every decile; D2
clearly above the long-run baseline's.
"""

from __future__ import annotations

import argparse
import time

from common import PeakRSS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teams", type=int, default=1500)
    parser.add_argument("--months", type=int, default=42)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--origins", type=int, default=4)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument(
        "--what-if-signals",
        nargs="*",
        default=None,
        help="instead of training/model.yaml's what_if.signals (none: no fits)",
    )
    args = parser.parse_args()

    from forecast.simulate import SimConfig, simulate

    sim = simulate(SimConfig(n_teams=args.teams, n_months=args.months, seed=args.seed))
    wanted = args.what_if_signals
    result, total = train(sim, args.origins, wanted, workers=None, label="as `forecast train`")
    if not args.no_baseline:
        _, serial = train(
            sim, args.origins, wanted, workers=1, label="baseline: one step after another"
        )
        print(f"as `forecast train` / serial baseline: {total / serial:.2f}x the wall time\n")
    print(result.format_table())
    print()
    _goals(result, total)


def train(sim, origins: int, wanted: list[str] | None, workers: int | None, label: str):
    from forecast.data import contract
    from forecast.features import panel as features
    from forecast.features import specs
    from forecast.features.targets import build_targets
    from forecast.models.backtest import run_backtest
    from forecast.models.config import load_model_config
    from forecast.models.pair import train_pair
    from forecast.whatif.store import FitJob, what_if_signals

    config = load_model_config()
    steps: dict[str, float] = {}
    with PeakRSS(every=0.05, children=True) as mem:
        t0 = time.perf_counter()
        tables = contract.tables_from_frames(sim.frames, data_start=sim.config.start)
        spec = specs.load_specs()
        signals = what_if_signals(
            tables, spec, config.what_if["signals"] if wanted is None else wanted
        )
        # workers=None: the product's way (fits in worker processes, started first);
        # workers=1: nothing starts until `wait`, after the models.
        with FitJob(tables, spec, signals, config.horizon, workers=workers) as job:
            panel = features.build_panel(tables, spec)
            targets = build_targets(tables, config.horizon)
            steps["features + targets"] = time.perf_counter() - t0
            t1 = time.perf_counter()
            result = run_backtest(panel, targets, config, truth=sim.truth, n_origins=origins)
            steps["backtest"] = time.perf_counter() - t1
            t2 = time.perf_counter()
            pair = train_pair(panel, targets, config, spec_hash=spec.hash(), backtest=result)
            steps["final fit"] = time.perf_counter() - t2
            t3 = time.perf_counter()
            job.wait()
            steps[f"what-if fits ({len(signals)}), rest"] = time.perf_counter() - t3
        total = time.perf_counter() - t0

    print(
        f"{label}: {len(panel):,} team-months, {len(pair.features)} features, "
        f"{len(signals)} what-if signals"
    )
    for name, secs in steps.items():
        print(f"  {name:<28} {secs:7.1f} s")
    print(f"  {'total':<28} {total:7.1f} s   peak memory {mem.peak / 2**20:,.0f} MiB")
    print()
    return result, total


def _goals(result, total: float) -> None:
    m = "lightgbm"
    cal = result.calibration
    worst = float((cal["predicted"] / cal["realised"] - 1).abs().max())
    d2, d2_lr = result.metric(m, "d2_vs_null"), result.metric("long_run_shrunk", "d2_vs_null")
    checks = [
        ("wall time < 90 s", total < 90, f"{total:.1f} s"),
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


if __name__ == "__main__":
    main()
