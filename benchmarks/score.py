"""Benchmark `forecast score`: wall time and peak memory for 1,500 and 100,000 simulated teams,
and the cost of the long-form SHAP drivers against LightGBM's bare `pred_contrib`.

    .venv/bin/python benchmarks/score.py                 # 1,500 and 100,000 teams
    .venv/bin/python benchmarks/score.py --sizes 1500    # quick

A pair is trained once on a 400-team organisation (36 months) into a temporary MLflow store;
each size is simulated (fewer months for the big one: the features need at most 12 months of
history), written as Parquet, and scored in a fresh process so its peak memory is its own.
The report is excluded (--no-report). Goals: 100,000 teams in under 2 minutes and 8 GB; drivers
build (pred_contrib + reshape + labels) at most 1.5x the bare pred_contrib.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import train_small_pair

MONTHS = {1500: 36, 100_000: 14}
TRAIN_TEAMS = 400
TRAIN_CONFIG = {"num_boost_round": 300, "early_stopping_rounds": 30}


def train(work: Path) -> str:
    # Training is not what is measured here: a smaller organisation gives a pair of the same
    # shape (all features, a few hundred trees).
    return train_small_pair(work, TRAIN_TEAMS, 36, TRAIN_CONFIG)


def child(data: Path, out: Path, uri: str) -> dict:
    """One scoring run, then the drivers timed in isolation on the same rows."""

    from forecast.commands.score import prepare, run_score
    from forecast.features.names import feature_catalog
    from forecast.features.panel import build_panel
    from forecast.models import explain
    from forecast.models.fit import RATE_FEATURE, design_matrix
    from forecast.scoring.batch import explain_batch, scores_frame
    from forecast.scoring.output import write_parquet

    started = time.perf_counter()
    result = run_score(data, out, tracking_uri=uri, report=False)
    wall = time.perf_counter() - started
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2

    scorer = prepare(data, tracking_uri=uri)
    pair = scorer.pair
    as_of = result.batch.as_of
    panel = build_panel(scorer.tables, scorer.specs, as_of=as_of)
    scores = scores_frame(pair.predict(panel), as_of, 5)
    rep = scores[scores["reportable"]]
    rows = panel.set_index(panel["team_id"].astype(str)).loc[rep["team_id"]].reset_index(drop=True)
    X = design_matrix(rows, pair.features)
    has = rep["csat_change"].notna().to_numpy()
    Xc = X.loc[has].copy()
    Xc[RATE_FEATURE] = rep["expected_attrition_rate"].to_numpy()[has]
    Xc = Xc[pair.csat_features]

    t = time.perf_counter()
    pair.attrition_booster.predict(X, pred_contrib=True)
    pair.csat_booster.predict(Xc, pred_contrib=True)
    bare = time.perf_counter() - t

    t = time.perf_counter()
    catalog = feature_catalog(scorer.specs, list(panel.columns))
    explanations, _ = explain_batch(pair, panel, scores)
    drivers = explain.long_form(explanations, as_of, catalog)
    explain.by_family(explanations, as_of, catalog)
    build = time.perf_counter() - t

    t = time.perf_counter()
    write_parquet(drivers, out.parent / "drivers-timing.parquet")
    write = time.perf_counter() - t
    return {
        "teams": len(scores),
        "reportable": int(rep.shape[0]),
        "driver_rows": len(drivers),
        "features": len(pair.features),
        "trees": int(pair.attrition_booster.num_trees()),
        "wall_s": round(wall, 2),
        "peak_rss_gb": round(peak_gb, 2),
        "bare_pred_contrib_s": round(bare, 2),
        "drivers_build_s": round(build, 2),
        "drivers_ratio": round(build / bare, 2),
        "drivers_write_s": round(write, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1500, 100_000])
    parser.add_argument("--child", nargs=3, metavar=("DATA", "OUT", "URI"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        data, out, uri = args.child
        print(json.dumps(child(Path(data), Path(out), uri)))
        return

    from forecast.simulate import SimConfig, simulate, write_simulation

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        uri = train(work)
        print(
            f"trained the pair on {TRAIN_TEAMS} teams x 36 months in "
            f"{time.perf_counter() - t:.1f} s"
        )
        for n in args.sizes:
            months = MONTHS.get(n, 14 if n > 10_000 else 36)
            data = work / f"data-{n}"
            sim = simulate(SimConfig(n_teams=n, n_months=months, seed=2, compute_truth=False))
            write_simulation(sim, data, fmt="parquet")
            del sim
            proc = subprocess.run(
                [sys.executable, __file__, "--child", str(data), str(work / f"out-{n}"), uri],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode:
                print(proc.stderr[-3000:])
                raise SystemExit(proc.returncode)
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(
                f"{r['teams']:>7,} teams ({months} months simulated, {r['reportable']:,} "
                f"reportable, {r['features']} features, {r['trees']} attrition trees): "
                f"score {r['wall_s']:.1f} s wall, peak RSS {r['peak_rss_gb']:.2f} GB | "
                f"bare pred_contrib {r['bare_pred_contrib_s']:.2f} s, drivers build "
                f"{r['drivers_build_s']:.2f} s (x{r['drivers_ratio']:.2f}), "
                f"{r['driver_rows']:,} driver rows written in {r['drivers_write_s']:.2f} s"
            )


if __name__ == "__main__":
    main()
