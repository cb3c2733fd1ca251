"""Compare what-if engines with the simulator's intervention truth.

    python benchmarks/whatif.py                  # 400 teams x 42 months, held-out seeds 101-103
    python benchmarks/whatif.py --seeds 1 2 3    # the seeds the engine's settings were chosen on

For each simulated organisation (seed x after-hours effect scale: all three after-hours links,
`after_hours_on_exit`, `after_hours_on_engagement` and `cases_on_after_hours`, multiplied by
the scale) and each as-of month of the truth, every engine estimates holding
`after_hours_ratio` (and the distractor `system_uptime`) at the organisation median for the
20 most loaded teams. Printed: the aggregate leavers ratio (sum after / sum before) against
the truth's, the share of teams whose CSAT moves in the true direction, and fit times.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import pandas as pd

SET = "most_after_hours"


def engines(only: list[str] | None = None) -> dict[str, object]:
    from whatif_candidates import SLearnerEngine, StructuralEngine
    from whatif_engines import RescoringEngine

    from forecast.whatif.engine import CausalEngine, EngineSettings

    s = EngineSettings()
    every = {
        "rescoring": RescoringEngine(),
        "causal-dml (chosen)": CausalEngine(settings=s),
        "dml, one split": CausalEngine(settings=replace(s, repeats=1)),
        "dml, own-history controls": CausalEngine(settings=replace(s, own_controls=True)),
        "lgbm monotone+linear": SLearnerEngine(settings=s),
        "structural 2-stage": StructuralEngine(settings=s),
    }
    return {k: v for k, v in every.items() if only is None or k in only}


def train_pair(tables: object) -> object:
    from forecast.features import panel as features
    from forecast.features import specs
    from forecast.features.targets import build_targets
    from forecast.models.config import load_model_config
    from forecast.models.pair import train_pair as fit

    base = load_model_config()
    config = base.replace(
        num_boost_round=300,
        early_stopping_rounds=20,
        attrition={**base.attrition, "learning_rate": 0.1},
        csat={**base.csat, "learning_rate": 0.1},
    )
    panel = features.build_panel(tables, specs.load_specs())
    return fit(panel, build_targets(tables, config.horizon), config)


def run_org(
    teams: int, months: int, seed: int, scale: float, only: list[str] | None = None
) -> list[dict]:
    from forecast.data import contract
    from forecast.simulate import Effects, SimConfig, simulate

    d = Effects()
    eff = replace(
        d,
        after_hours_on_exit=d.after_hours_on_exit * scale,
        after_hours_on_engagement=d.after_hours_on_engagement * scale,
        cases_on_after_hours=d.cases_on_after_hours * scale,
    )
    cfg = SimConfig(n_teams=teams, n_months=months, seed=seed, effects=eff)
    sim = simulate(cfg, with_interventions=True)
    tables = contract.tables_from_frames(sim.frames, data_start=cfg.start)
    pair = train_pair(tables)
    iv = sim.interventions
    iv = iv.loc[iv["team_set"] == SET]
    last = iv["as_of"].max()
    out = []
    for name, engine in engines(only).items():
        for (as_of, signal), g in iv.groupby(["as_of", "signal"]):
            if signal not in ("after_hours_ratio", "system_uptime"):
                continue
            if signal == "system_uptime" and as_of != last:
                continue
            t0 = time.perf_counter()
            res = engine.estimate(
                tables, pair, list(g["team_id"]), signal, float(g["value"].iloc[0]), as_of
            )
            secs = time.perf_counter() - t0
            res = res.set_index("team_id").loc[list(g["team_id"])]
            true_ratio = (
                g["intervened_expected_leavers"].sum() / g["baseline_expected_leavers"].sum()
            )
            before = res["before_expected_leavers"].sum()
            ratio = res["after_expected_leavers"].sum() / before
            lo_hi = [
                res[c].sum() / before if c in res.columns else np.nan
                for c in ("after_leavers_p10", "after_leavers_p90")
            ]
            dt = (g["intervened_csat_change"] - g["baseline_csat_change"]).to_numpy()
            de = (res["after_csat_change"] - res["before_csat_change"]).to_numpy()
            moved = np.abs(dt) > 1e-9
            direction = (
                float(np.mean(np.sign(dt[moved]) == np.sign(de[moved])))
                if moved.any()
                else float("nan")
            )
            out.append(
                {
                    "engine": name,
                    "seed": seed,
                    "scale": scale,
                    "as_of": as_of,
                    "signal": signal,
                    "truth": true_ratio,
                    "estimate": ratio,
                    "error": ratio - true_ratio,
                    "csat_direction": direction,
                    "ratio_p10": lo_hi[0],
                    "ratio_p90": lo_hi[1],
                    "covered": float(lo_hi[0] <= true_ratio <= lo_hi[1])
                    if np.isfinite(lo_hi).all()
                    else np.nan,
                    "csat_effect": float(np.mean(de)),
                    "true_csat_effect": float(np.mean(dt)),
                    "seconds": secs,
                }
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teams", type=int, default=400)
    parser.add_argument("--months", type=int, default=42)
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[101, 102, 103],
        help="organisation seeds; 1-3 were used to choose the engine's settings",
    )
    parser.add_argument("--scales", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0])
    parser.add_argument("--out", default=None, help="optional CSV of every row")
    parser.add_argument(
        "--engines",
        nargs="+",
        default=None,
        help="only these engines (e.g. 'causal-dml (chosen)'; default: all)",
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        default=None,
        help="summarise CSVs written by earlier runs (--out) instead of running",
    )
    args = parser.parse_args()
    if args.merge:
        df = pd.concat([pd.read_csv(f) for f in args.merge], ignore_index=True)
    else:
        rows = []
        for seed in args.seeds:
            for scale in args.scales:
                rows += run_org(args.teams, args.months, seed, scale, args.engines)
                print(f"done seed {seed} scale {scale}", flush=True)
        df = pd.DataFrame(rows)
    if args.out:
        df.to_csv(args.out, index=False)
    ah = df.loc[df["signal"] == "after_hours_ratio"]
    pd.set_option("display.width", 200)
    print("\nAfter-hours held at the median, 20 most loaded teams: estimate - truth of the ratio")
    print(
        ah.pivot_table(index="engine", columns=["scale", "seed", "as_of"], values="error")
        .round(3)
        .to_string()
    )
    summary = ah.groupby("engine").agg(
        mean_abs_error=("error", lambda e: float(np.mean(np.abs(e)))),
        max_abs_error=("error", lambda e: float(np.max(np.abs(e)))),
        bias=("error", "mean"),
        within_010=("error", lambda e: float(np.mean(np.abs(e) <= 0.10))),
        interval_coverage=("covered", "mean"),
        csat_direction=("csat_direction", "mean"),
        csat_direction_min=("csat_direction", "min"),
        seconds=("seconds", "median"),
    )
    up = (
        df.loc[df["signal"] == "system_uptime"]
        .groupby("engine")["error"]
        .agg(lambda e: float(np.max(np.abs(e))))
    )
    summary["distractor_max_abs"] = up
    print("\nSummary (CSAT direction: share of teams, orgs with a non-zero effect)")
    print(summary.round(3).to_string())
    print("\nTruth ratios:")
    print(
        ah.loc[ah["engine"] == ah["engine"].iloc[0], ["seed", "scale", "as_of", "truth"]]
        .round(3)
        .to_string(index=False)
    )


if __name__ == "__main__":
    main()
