"""The baseline of `benchmarks/speed.py`: what a forecasting engineer would build with mlforecast.

    python benchmarks/mlforecast_pipeline.py DATA_DIR [--horizon 3] [--out FILE.csv]

Runs in its own virtual environment (mlforecast 1.1.0 needs pandas < 3; `speed.py` makes it),
so it imports nothing of `forecast`. From the contract CSVs it builds one monthly series per
team for voluntary leavers (exits dated in the month) and for CSAT (response-weighted mean),
fits one global LightGBM per target with lags, rolling means and the calendar month, and
predicts the next `horizon` months after the latest complete month. Prints one JSON line of
step timings (seconds) and sizes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

T0 = time.perf_counter()

import lightgbm as lgb  # noqa: E402 - imports are part of what is timed
import pandas as pd  # noqa: E402
from mlforecast import MLForecast  # noqa: E402
from mlforecast.lag_transforms import RollingMean  # noqa: E402


def monthly_series(data: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(leavers, csat) in mlforecast's long format: unique_id, ds (month start), y."""
    employees = pd.read_csv(data / "employees.csv", dtype=str)
    cx = pd.read_csv(data / "cx.csv", dtype={"team_id": str, "month": str})
    cx["month"] = pd.PeriodIndex(cx["month"], freq="M")
    months = pd.period_range(cx["month"].min(), cx["month"].max(), freq="M")
    teams = sorted(employees["team_id"].unique())
    exits = employees.loc[employees["exit_type"].str.lower() == "voluntary"]
    exit_month = pd.to_datetime(exits["exit_date"]).dt.to_period("M")
    counts = (
        exits.assign(month=exit_month)
        .loc[lambda f: f["month"].isin(months)]
        .groupby(["team_id", "month"])
        .size()
    )
    grid = pd.MultiIndex.from_product([teams, months], names=["team_id", "month"])
    leavers = counts.reindex(grid, fill_value=0).rename("y").reset_index()
    cx["responses"] = pd.to_numeric(cx["responses"], errors="coerce").fillna(1.0)
    cx["csat"] = pd.to_numeric(cx["csat"], errors="coerce")
    cx = cx.dropna(subset=["csat"])
    cx["w"] = cx["csat"] * cx["responses"]
    g = cx.groupby(["team_id", "month"])[["w", "responses"]].sum()
    # Months without responses (suppressed, or no survey) carry the last level forward: the
    # series must be regular, and a missing month is not a zero.
    csat = (g["w"] / g["responses"]).rename("y").reindex(grid).groupby(level="team_id").ffill()
    csat = csat.dropna().reset_index()
    out = []
    for frame in (leavers, csat):
        frame = frame.rename(columns={"team_id": "unique_id"})
        frame["ds"] = pd.PeriodIndex(frame["month"].astype(str), freq="M").to_timestamp()
        out.append(frame[["unique_id", "ds", "y"]].sort_values(["unique_id", "ds"]))
    return out[0], out[1]


def forecaster(objective: str) -> MLForecast:
    model = lgb.LGBMRegressor(
        objective=objective,
        n_estimators=200,
        learning_rate=0.05,
        num_leaves=31,
        min_child_samples=50,
        n_jobs=2,
        random_state=0,
        verbosity=-1,
    )
    return MLForecast(
        models={"lgbm": model},
        freq="MS",
        lags=[1, 2, 3, 6, 12],
        lag_transforms={1: [RollingMean(window_size=3), RollingMean(window_size=12)]},
        date_features=["month"],
        num_threads=2,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--horizon", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    steps = {"start and imports": time.perf_counter() - T0}
    t = time.perf_counter()
    leavers, csat = monthly_series(args.data)
    steps["read + series"] = time.perf_counter() - t
    preds = []
    for name, series, objective in (
        ("leavers", leavers, "poisson"),
        ("csat", csat, "regression"),
    ):
        t = time.perf_counter()
        fc = forecaster(objective)
        fc.fit(series, static_features=[])
        steps[f"fit {name}"] = time.perf_counter() - t
        t = time.perf_counter()
        pred = fc.predict(h=args.horizon)
        steps[f"predict {name}"] = time.perf_counter() - t
        # Per team over the horizon: leavers summed, CSAT as its mean level.
        agg = "sum" if name == "leavers" else "mean"
        preds.append(pred.groupby("unique_id")["lgbm"].agg(agg).rename(name))
    result = pd.concat(preds, axis=1).reset_index().rename(columns={"unique_id": "team_id"})
    if args.out is not None:
        result.to_csv(args.out, index=False)
    summary = {
        "steps": steps,
        "series": int(leavers["unique_id"].nunique()),
        "months": int(leavers["ds"].nunique()),
        "rows": int(len(leavers) + len(csat)),
        "total": time.perf_counter() - T0,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
