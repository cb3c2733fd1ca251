"""Choose the LightGBM parameters of training/model.yaml from a backtest that never looks at the
last months, and write the choice back.

    python scripts/tune.py --data DIR                 # a contract data directory
    python scripts/tune.py --simulate 600x42          # or a simulated organisation
    python scripts/tune.py --simulate 600x42 --dry-run

The backtest origins are moved `--skip-last` months earlier (default 12), so the months that
the reported backtest and the leaders' forecasts rest on play no part in the choice. The grid
is small on purpose: it is chosen on one organisation and must generalise to others, so it
only moves between strongly regularised settings, and a candidate must beat the current
setting by more than `--min-gain` (relative deviance) to replace it; ties go to the more
regularised (listed first).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
GRID: dict[str, list[Any]] = {
    "num_leaves": [7, 15],
    "min_data_in_leaf": [200, 100],
    "lambda_l2": [10.0, 1.0],
}


def _load(args: argparse.Namespace):
    from forecast.data import contract
    from forecast.features import panel as features
    from forecast.features import specs
    from forecast.features.targets import build_targets
    from forecast.models.config import load_model_config

    config = load_model_config(args.config)
    if args.data:
        tables = contract.load_tables(args.data)
    else:
        from forecast.simulate import SimConfig, simulate

        teams, months = (int(v) for v in args.simulate.split("x"))
        sim = simulate(SimConfig(n_teams=teams, n_months=months, seed=args.seed,
                                 compute_truth=False))
        tables = contract.tables_from_frames(sim.frames, data_start=sim.config.start)
    panel = features.build_panel(tables, specs.load_specs())
    return config, panel, build_targets(tables, config.horizon)


def _score(panel, targets, config, args) -> tuple[float, float]:
    from forecast.models.backtest import run_backtest

    bt = run_backtest(panel, targets, config, n_origins=args.origins, skip_last=args.skip_last)
    return bt.metric("lightgbm", "deviance"), bt.metric("lightgbm", "weighted_mae", "csat")


def _candidates(section: dict[str, Any]) -> list[dict[str, Any]]:
    keys = list(GRID)
    return [{**section, **dict(zip(keys, values, strict=True))}
            for values in itertools.product(*(GRID[k] for k in keys))]


def _pick(name: str, base: dict, scores: list[tuple[float, dict]], min_gain: float) -> dict:
    current = next((s for s, c in scores if c == base), scores[0][0])
    best_score, best = min(scores, key=lambda sc: sc[0])
    if best_score < current * (1 - min_gain):
        print(f"{name}: {best_score:.4f} beats the current {current:.4f}")
        return best
    print(f"{name}: keeping the current setting ({current:.4f}; best {best_score:.4f})")
    return base


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path)
    source.add_argument("--simulate", help="TEAMSxMONTHS, e.g. 600x42")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--config", type=Path, default=ROOT / "training" / "model.yaml")
    parser.add_argument("--origins", type=int, default=3)
    parser.add_argument("--skip-last", type=int, default=12)
    parser.add_argument("--min-gain", type=float, default=0.01)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()

    config, panel, targets = _load(args)
    scores = []
    for cand in _candidates(config.attrition):
        dev, _ = _score(panel, targets, config.replace(attrition=cand), args)
        print(f"attrition {_short(cand)}: deviance {dev:.4f}", flush=True)
        scores.append((dev, cand))
    attrition = _pick("attrition", config.attrition, scores, args.min_gain)
    config = config.replace(attrition=attrition)

    scores = []
    for cand in _candidates(config.csat):
        _, mae = _score(panel, targets, config.replace(csat=cand), args)
        print(f"csat {_short(cand)}: weighted MAE {mae:.4f}", flush=True)
        scores.append((mae, cand))
    csat = _pick("csat", config.csat, scores, args.min_gain)

    if args.dry_run:
        return 0
    raw = yaml.safe_load(args.config.read_text(encoding="utf-8")) or {}
    raw["attrition"], raw["csat"] = attrition, csat
    header = [line for line in args.config.read_text(encoding="utf-8").splitlines()
              if line.startswith("#")]
    body = yaml.safe_dump(raw, sort_keys=False, default_flow_style=False)
    args.config.write_text("\n".join(header) + "\n" + body, encoding="utf-8")
    print(f"wrote {args.config}")
    return 0


def _short(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={params[k]}" for k in GRID)


if __name__ == "__main__":
    sys.exit(main())
