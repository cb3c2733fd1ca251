"""Rolling-origin backtest of the attrition and CSAT models against simple baselines.

For each origin month `o` (the latest labelled months, `horizon` apart so that their outcome
windows do not overlap), both models are trained exactly as `train_pair` trains them, on the
rows whose outcome is known by the end of `o` (as_of + h <= o: no label may reach past the
origin), and scored on the rows with as_of == o, h months ahead. Baselines use the same rows.

The out-of-sample predictions recalibrate the attrition forecast by risk band
(`forecast.models.calibration`); in the pooled figures each origin is recalibrated on the
earlier origins only (those whose outcomes were known by then), so they are what the
recalibrated forecast would have scored at the time. The model's raw forecast stays in the
`lightgbm_raw` rows. The out-of-sample residuals also calibrate the intervals (NB dispersion and
the level of its whole-number bounds, conformal CSAT half-width, org-level model error) and the
risk bands; the coverage reported for each interval is honest: each origin's intervals are
calibrated on the other origins only.

Pure: frames in, a `BacktestResult` out. Only `calibration_plot` writes a file; `OriginPool`
fits origins in worker processes (each a pure function of the plan).
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from forecast.data.months import month_str
from forecast.errors import ModelError
from forecast.models import intervals
from forecast.models.baseline import Baseline, choose_baseline, poisson_deviance_terms
from forecast.models.calibration import Recalibration, fit_recalibration
from forecast.models.config import ModelConfig
from forecast.models.fit import (
    attrition_rows,
    feature_columns,
    fit_models,
    join_targets,
    months_of,
    predict_fitted,
)

ATTRITION_MODELS = {
    "lightgbm": "pred_model",
    "lightgbm_raw": "pred_model_raw",
    "org_rate": "pred_org_rate",
    "trailing_12": "pred_trailing_12",
    "long_run_shrunk": "pred_long_run",
    "long_run_tuned": "pred_long_run_tuned",
}
CSAT_MODELS = {
    "lightgbm": "csat_pred_model",
    "zero_change": "csat_pred_zero",
    "team_mean": "csat_pred_team_mean",
}
log = logging.getLogger("forecast")

NULL_MODEL, LONG_RUN_MODEL = "org_rate", "long_run_shrunk"
# Fewest training months before an origin (beyond the purge) for it to be worth backtesting.
MIN_HISTORY_MONTHS = 12


@dataclass
class Fold:
    """One origin: positions (into the joined panel) of the rows trained on and scored."""

    origin: str
    train_rows: np.ndarray
    test_rows: np.ndarray
    attrition_rounds: int = 0
    csat_rounds: int = 0
    seconds: float = 0.0  # how long the origin's fits took (for timing breakdowns only)
    # The attrition model's starting point at this origin (forecast.models.baseline), if any.
    baseline_prior: float = float("nan")
    baseline_scale: float = float("nan")
    baseline_weight: float = 0.0


@dataclass
class BacktestResult:
    horizon: int
    origins: list[str]
    metrics: pd.DataFrame  # one row per (target, model)
    predictions: pd.DataFrame  # per row, out of sample, every model and baseline
    calibration: pd.DataFrame  # by decile of the model's predicted per-head rate
    coverage: dict[str, float]  # empirical coverage of each interval (leave-one-origin-out)
    org_totals: pd.DataFrame  # per origin: expected, realised and interval of the org total
    dispersion: float
    csat_residual_q80: float
    org_total_model_sd: float
    risk_cuts: tuple[float, float]
    config_hash: str = ""
    folds: list[Fold] = field(default_factory=list, repr=False)
    # Learnt from every origin's raw out-of-sample predictions: what a pair applies at scoring.
    recalibration: Recalibration = field(default_factory=Recalibration)
    # The central level of the whole-number team leaver bounds (intervals.fit_count_level).
    leaver_level: float = 0.8
    # Per origin: nominal level, team leaver and CSAT coverage, the org total and its interval.
    coverage_by_origin: pd.DataFrame = field(default_factory=pd.DataFrame)

    def metric(self, model: str, column: str, target: str = "attrition") -> float:
        row = self.metrics[(self.metrics["target"] == target) & (self.metrics["model"] == model)]
        return float(row[column].iloc[0]) if len(row) else float("nan")

    def summary(self) -> dict[str, float]:
        """Flat numbers for logging (e.g. MLflow metrics)."""
        out: dict[str, float] = {}
        for _, row in self.metrics.iterrows():
            for col in self.metrics.columns[2:]:
                if pd.notna(row[col]):
                    out[f"{row['target']}.{row['model']}.{col}"] = float(row[col])
        out |= {f"coverage.{k}": float(v) for k, v in self.coverage.items()}
        out |= {
            "dispersion": self.dispersion,
            "csat_residual_q80": self.csat_residual_q80,
            "org_total_model_sd": self.org_total_model_sd,
            "leaver_interval_level": self.leaver_level,
        }
        return out

    def format_table(self) -> str:
        """Plain-text report: metrics per model, calibration by decile, interval coverage."""
        shown = self.metrics.dropna(axis=1, how="all")
        lines = [
            f"Backtest: horizon {self.horizon} months, origins {', '.join(self.origins)}",
            shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"),
            "",
            "Calibration by decile of predicted per-head rate (model):",
            self.calibration.to_string(index=False, float_format=lambda v: f"{v:.3f}"),
            "",
            "Interval coverage (nominal {:.0%}): ".format(self.coverage.get("level", 0.8))
            + ", ".join(f"{k} {v:.2f}" for k, v in self.coverage.items() if k != "level"),
            "Per origin:",
            self.coverage_by_origin.to_string(index=False, float_format=lambda v: f"{v:.2f}")
            if len(self.coverage_by_origin)
            else "  (none)",
            f"NB dispersion {self.dispersion:.3f}; CSAT half-width {self.csat_residual_q80:.2f}; "
            f"org model sd {self.org_total_model_sd:.3f}; risk cuts "
            f"{self.risk_cuts[0]:.4f} / {self.risk_cuts[1]:.4f}",
        ]
        return "\n".join(lines)


# --------------------------------------------------------------------------- origins


def choose_origins(
    frame: pd.DataFrame, config: ModelConfig, n_origins: int, *, skip_last: int = 0
) -> list[int]:
    """The latest labelled as-of months, `horizon` apart (newest first in the search, returned
    oldest first). `skip_last` drops that many of the latest labelled months (tuning never
    looks at the last months)."""
    labelled = np.unique(months_of(attrition_rows(frame)))
    if labelled.size == 0:
        return []
    h = config.horizon
    first = labelled[0]
    need = config.valid_months + h + MIN_HISTORY_MONTHS
    out = []
    origin = labelled[-1] - skip_last
    while len(out) < n_origins and origin - h - first + 1 >= need:
        if origin in labelled:
            out.append(int(origin))
        origin -= h
    return sorted(out)


# --------------------------------------------------------------------------- baselines


def _rate(leavers: pd.Series, exposure: pd.Series) -> float:
    return float(leavers.sum() / max(float(exposure.sum()), 1.0))


def baseline_rates(train: pd.DataFrame, test: pd.DataFrame, h: int, origin: int) -> pd.DataFrame:
    """Per-head h-month rates of the simple baselines for the test rows (from train labels)."""
    att = attrition_rows(train)
    org = _rate(att["leavers"], att["headcount"])
    m = months_of(att)
    recent = att[m > origin - h - 12]
    by_team = att.groupby("team_id", observed=True)[["leavers", "headcount"]].sum()
    recent_team = recent.groupby("team_id", observed=True)[["leavers", "headcount"]].sum()
    trailing = (recent_team["leavers"] / recent_team["headcount"]).reindex(test["team_id"])
    shrunk = _shrunk_rates(by_team, org, h).reindex(test["team_id"])
    return pd.DataFrame(
        {
            "pred_org_rate": org,
            "pred_trailing_12": trailing.fillna(org).to_numpy(),
            "pred_long_run": shrunk.fillna(org).to_numpy(),
        },
        index=test.index,
    )


def _shrunk_rates(by_team: pd.DataFrame, org: float, h: int) -> pd.Series:
    """Team long-run rate per person-month, shrunk toward the org rate (gamma-Poisson empirical
    Bayes), returned per head over h months.

    Overlapping h-month windows count each leaver h times, so leavers/h and person-months are
    the honest counts; the prior strength is the method-of-moments between-team variance.
    """
    leavers = by_team["leavers"].to_numpy() / h
    exposure = by_team["headcount"].to_numpy(dtype="float64")
    r0 = org / h
    raw = leavers / np.maximum(exposure, 1.0)
    w = exposure / exposure.sum()
    between = float(np.sum(w * (raw - r0) ** 2) - np.sum(w * r0 / np.maximum(exposure, 1.0)))
    tau2 = max(between, (0.05 * r0) ** 2)  # floor: never fully trust a team's short history
    prior = r0 / tau2
    rate = (leavers + prior * r0) / (exposure + prior)
    return pd.Series(rate * h, index=by_team.index)


def tuned_baseline(train: pd.DataFrame, config: ModelConfig) -> Baseline:
    """The team's long-run rate with the shrinkage chosen on the training window's latest
    months, as the model's baseline is chosen (forecast.models.baseline)."""
    att = attrition_rows(train)
    return choose_baseline(att, months_of(att), config.horizon, config.valid_months)


def csat_baselines(train: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
    cs = train[train["csat_change"].notna()]
    team_mean = cs.groupby("team_id", observed=True)["csat_change"].mean()
    return pd.DataFrame(
        {
            "csat_pred_zero": 0.0,
            "csat_pred_team_mean": team_mean.reindex(test["team_id"]).fillna(0.0).to_numpy(),
        },
        index=test.index,
    )


# --------------------------------------------------------------------------- one origin


def _run_origin(
    frame: pd.DataFrame, features: list[str], config: ModelConfig, origin: int
) -> tuple[pd.DataFrame, Fold]:
    started = time.perf_counter()
    m = months_of(frame)
    train_mask = m + config.horizon <= origin  # the leakage rule: every label known by `o`
    test_mask = (m == origin) & frame["labelled"].to_numpy() & (frame["headcount"] >= 1).to_numpy()
    train, test = frame[train_mask], frame[test_mask]
    fitted = fit_models(train, features, config)
    pred = predict_fitted(fitted.attrition, fitted.csat, test, features, fitted.baseline)
    out = pd.DataFrame(
        {
            "origin": month_str(int(origin)),
            "team_id": test["team_id"].to_numpy(),
            "as_of": test["as_of"].to_numpy(),
            "headcount": test["headcount"].to_numpy(dtype="float64"),
            "leavers": test["leavers"].to_numpy(dtype="float64"),
            "csat_change": test["csat_change"].to_numpy(dtype="float64"),
            "csat_weight": test["csat_weight"].to_numpy(dtype="float64"),
            "rate_model": pred["attrition_rate"].to_numpy(),
            "csat_pred_model": pred["csat_change"].to_numpy(),
        },
        index=test.index,
    )
    rates = baseline_rates(train, test, config.horizon, origin)
    out["rate_org_rate"] = rates["pred_org_rate"]
    out["rate_trailing_12"] = rates["pred_trailing_12"]
    out["rate_long_run"] = rates["pred_long_run"]
    # The model's baseline as a forecast by itself (chosen the same way when the configuration
    # blends with none): what the blend must beat.
    start = fitted.baseline
    out["rate_long_run_tuned"] = (start or tuned_baseline(train, config)).rate(test)
    for name in ("model", "org_rate", "trailing_12", "long_run", "long_run_tuned"):
        out[f"pred_{name}"] = out[f"rate_{name}"] * out["headcount"]
    out = pd.concat([out, csat_baselines(train, test)], axis=1)
    fold = Fold(
        origin=month_str(int(origin)),
        train_rows=np.flatnonzero(train_mask),
        test_rows=np.flatnonzero(test_mask),
        attrition_rounds=fitted.attrition_rounds,
        csat_rounds=fitted.csat_rounds,
        seconds=time.perf_counter() - started,
        baseline_prior=start.prior if start is not None else float("nan"),
        baseline_scale=start.scale if start is not None else float("nan"),
        baseline_weight=start.weight if start is not None else 0.0,
    )
    return out.reset_index(drop=True), fold


# --------------------------------------------------------------------------- metrics


def poisson_deviance(y: np.ndarray, mu: np.ndarray) -> float:
    """Mean Poisson deviance per row (y log(y/mu) taken as 0 when y == 0)."""
    return float(np.mean(poisson_deviance_terms(y, mu)))


def _corr(a: np.ndarray | pd.Series, b: np.ndarray | pd.Series) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def decile_table(pred: pd.DataFrame, rate_col: str = "rate_model", mean_col: str = "pred_model"):
    """Predicted vs realised leavers by decile of predicted per-head rate (pooled origins)."""
    rank = pred[rate_col].rank(method="first").to_numpy()
    decile = np.minimum((rank - 1) * 10 // len(pred), 9).astype(int) + 1
    g = pred.assign(decile=decile).groupby("decile")
    table = pd.DataFrame(
        {
            "rows": g.size(),
            "headcount": g["headcount"].sum(),
            "mean_rate": g[rate_col].mean(),
            "predicted": g[mean_col].sum(),
            "realised": g["leavers"].sum(),
        }
    ).reset_index()
    table["realised_rate"] = table["realised"] / table["headcount"]
    table["ratio"] = table["predicted"] / table["realised"].replace(0, np.nan)
    return table


def attrition_metrics(pred: pd.DataFrame, has_truth: bool) -> pd.DataFrame:
    y = pred["leavers"].to_numpy()
    dev = {name: poisson_deviance(y, pred[col]) for name, col in ATTRITION_MODELS.items()}
    rows = []
    for name, col in ATTRITION_MODELS.items():
        rate_col = "rate_" + col.removeprefix("pred_")
        deciles = decile_table(pred, rate_col, col)
        rows.append(
            {
                "target": "attrition",
                "model": name,
                "rows": len(pred),
                "deviance": dev[name],
                "d2_vs_null": 1 - dev[name] / dev[NULL_MODEL],
                "d2_vs_long_run": 1 - dev[name] / dev[LONG_RUN_MODEL],
                "calibration": float(pred[col].sum() / max(pred["leavers"].sum(), 1e-9)),
                "worst_decile": float(np.nanmax(np.abs(deciles["ratio"] - 1))),
                "corr": _corr(pred[col], y),
                "corr_true_leavers": _corr(pred[col], pred["true_leavers"])
                if has_truth
                else np.nan,
                "corr_true_rate": _corr(pred[rate_col], pred["true_rate"]) if has_truth else np.nan,
            }
        )
    return pd.DataFrame(rows)


def csat_metrics(pred: pd.DataFrame, has_truth: bool) -> pd.DataFrame:
    cs = pred[pred["csat_change"].notna() & pred["csat_pred_model"].notna()]
    rows = []
    for name, col in CSAT_MODELS.items():
        err = cs[col] - cs["csat_change"]
        w = cs["csat_weight"].fillna(1.0)
        rows.append(
            {
                "target": "csat",
                "model": name,
                "rows": len(cs),
                "mae": float(err.abs().mean()) if len(cs) else np.nan,
                "weighted_mae": float((err.abs() * w).sum() / w.sum()) if len(cs) else np.nan,
                "corr": _corr(cs[col], cs["csat_change"]),
                "corr_true_csat": _corr(cs[col], cs["true_csat"]) if has_truth else np.nan,
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- intervals


def recalibrate_by_origin(pred: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """The model's raw out-of-sample forecast (`rate_model_raw`, `pred_model_raw`) and, as
    `rate_model` / `pred_model`, that forecast recalibrated at each origin by the map learnt
    from the earlier origins whose outcomes were known by then (origin + horizon <= this
    origin): the forecast a recalibrated model would have made at the time. The first origin
    has nothing earlier and keeps its raw forecast."""
    out = pred.copy()
    if "rate_model_raw" not in out:
        out["rate_model_raw"] = out["rate_model"]
    out["pred_model_raw"] = out["rate_model_raw"] * out["headcount"]
    months = pd.PeriodIndex(out["origin"].astype(str), freq="M").asi8
    rate = out["rate_model_raw"].to_numpy(dtype=np.float64).copy()
    for origin in np.unique(months):
        known = months + horizon <= origin
        this = months == origin
        if known.any():
            past = out[known]
            recal = fit_recalibration(
                past["rate_model_raw"], past["headcount"], past["leavers"], past["origin"]
            )
            rate[this] = recal.apply(rate[this])
    out["rate_model"] = rate
    out["pred_model"] = rate * out["headcount"].to_numpy(dtype=np.float64)
    return out


def _calibrate(pred: pd.DataFrame, level: float) -> tuple[float, float, float, float]:
    """(NB dispersion, CSAT half-width, org model sd, leaver bounds' level) from these rows."""
    mu, y = pred["pred_model"].to_numpy(), pred["leavers"].to_numpy()
    dispersion = intervals.estimate_dispersion(y, mu)
    resid = (pred["csat_change"] - pred["csat_pred_model"]).to_numpy()
    q = intervals.conformal_halfwidth(resid, level)
    totals = _org_totals(pred, dispersion)
    sd = intervals.org_model_sd(totals["expected"], totals["realised"], totals["nb_variance"])
    return dispersion, q, sd, intervals.fit_count_level(y, mu, dispersion, level)


def _org_totals(pred: pd.DataFrame, dispersion: float) -> pd.DataFrame:
    g = pred.assign(v=intervals.nb_variance(pred["pred_model"].to_numpy(), dispersion))
    g = g.groupby("origin")
    return pd.DataFrame(
        {
            "expected": g["pred_model"].sum(),
            "realised": g["leavers"].sum(),
            "nb_variance": g["v"].sum(),
        }
    )


def honest_coverage(
    pred: pd.DataFrame, level: float
) -> tuple[dict[str, float], pd.DataFrame, pd.DataFrame]:
    """Coverage where each origin's intervals are calibrated on the other origins' residuals
    (with a single origin there is nothing else, so it is calibrated on itself: optimistic).
    Returns the pooled coverage, the org total per origin and the coverage per origin."""
    origins = sorted(pred["origin"].unique())
    hits = {"leavers": [], "csat_change": []}
    org_rows, per_origin = [], []
    for o in origins:
        this = pred[pred["origin"] == o]
        rest = pred[pred["origin"] != o] if len(origins) > 1 else this
        disp, q, sd, inner = _calibrate(rest, level)
        lo, hi = intervals.nb_interval(this["pred_model"].to_numpy(), disp, inner)
        y = this["leavers"].to_numpy()
        team_hit = (y >= lo) & (y <= hi)
        hits["leavers"].append(team_hit)
        cs = this[this["csat_change"].notna() & this["csat_pred_model"].notna()]
        resid = (cs["csat_change"] - cs["csat_pred_model"]).abs().to_numpy()
        csat_hit = resid <= q
        hits["csat_change"].append(csat_hit)
        others = int(rest["origin"].nunique())
        total = intervals.org_total_interval(this["pred_model"].to_numpy(), disp, sd, level, others)
        org_rows.append({"origin": o, **total, "realised": float(y.sum())})
        per_origin.append(
            {
                "origin": o,
                "nominal": level,
                "teams": len(this),
                "team_leavers": float(team_hit.mean()) if len(team_hit) else np.nan,
                "csat_change": float(csat_hit.mean()) if len(csat_hit) else np.nan,
                "org_expected": total["expected"],
                "org_p10": total["p10"],
                "org_p90": total["p90"],
                "org_realised": float(y.sum()),
                "org_total_covered": bool(total["p10"] <= y.sum() <= total["p90"]),
            }
        )
    org = pd.DataFrame(org_rows)
    org["covered"] = (org["realised"] >= org["p10"]) & (org["realised"] <= org["p90"])
    coverage = {
        k: float(np.concatenate(v).mean()) if sum(map(len, v)) else np.nan for k, v in hits.items()
    }
    coverage["org_total"] = float(org["covered"].mean())
    coverage["org_total_origins"] = float(len(org))
    coverage["level"] = level
    return coverage, org, pd.DataFrame(per_origin)


# --------------------------------------------------------------------------- entry point


def _attach_truth(pred: pd.DataFrame, truth: pd.DataFrame | None, h: int) -> bool:
    pred["true_leavers"], pred["true_rate"], pred["true_csat"] = np.nan, np.nan, np.nan
    if truth is None:
        return False
    t = truth[truth["horizon"] == h] if "horizon" in truth.columns else truth
    t = t.assign(as_of=t["as_of"].astype(str), team_id=t["team_id"].astype(str))
    t = t.drop_duplicates(["team_id", "as_of"]).set_index(["team_id", "as_of"])
    key = pd.MultiIndex.from_arrays([pred["team_id"].astype(str), pred["as_of"].astype(str)])
    pairs = (
        ("true_leavers", "true_expected_leavers"),
        ("true_rate", "true_attrition_rate"),
        ("true_csat", "true_csat_change"),
    )
    for col, src in pairs:
        if src in t.columns:
            pred[col] = t[src].reindex(key).to_numpy(dtype="float64")
    return bool(pred["true_leavers"].notna().any())


@dataclass
class BacktestPlan:
    """What one backtest fits: the panel joined with its targets, the features, the
    configuration and the origins (month ordinals, oldest first)."""

    frame: pd.DataFrame
    features: list[str]
    config: ModelConfig
    origins: list[int]


def plan_backtest(
    panel: pd.DataFrame,
    targets: pd.DataFrame,
    config: ModelConfig,
    *,
    n_origins: int = 4,
    skip_last: int = 0,
) -> BacktestPlan:
    """The origins of a backtest at up to `n_origins` origins; `skip_last` moves them that
    many months earlier (used by tuning, so that the latest months stay unseen). A
    ModelError when the history is too short for one."""
    frame = join_targets(panel, targets, config.horizon).reset_index(drop=True)
    origins = choose_origins(frame, config, n_origins, skip_last=skip_last)
    if not origins:
        need = config.valid_months + config.horizon + MIN_HISTORY_MONTHS
        raise ModelError(
            f"too little history to backtest: need at least {need} labelled as-of months "
            f"before an origin."
        )
    return BacktestPlan(frame, feature_columns(panel), config, origins)


def run_origin(plan: BacktestPlan, origin: int) -> tuple[pd.DataFrame, Fold]:
    """One origin of the plan: its out-of-sample rows and its fold."""
    return _run_origin(plan.frame, plan.features, plan.config, origin)


def combine_origins(
    plan: BacktestPlan,
    outcomes: dict[int, tuple[pd.DataFrame, Fold]],
    truth: pd.DataFrame | None = None,
) -> BacktestResult:
    """The result from every origin's outcome, pooled in origin order (whichever process
    fitted which origin, and in whatever order they finished)."""
    parts = [outcomes[o][0] for o in plan.origins]
    folds = [outcomes[o][1] for o in plan.origins]
    pred = pd.concat(parts, ignore_index=True)
    has_truth = _attach_truth(pred, truth, plan.config.horizon)
    return pooled_result(pred, folds, plan.config, has_truth)


def run_backtest(
    panel: pd.DataFrame,
    targets: pd.DataFrame,
    config: ModelConfig,
    *,
    truth: pd.DataFrame | None = None,
    n_origins: int = 4,
    progress: Callable[[int, int], None] | None = None,
    skip_last: int = 0,
    workers: int = 1,
) -> BacktestResult:
    """Backtest at up to `n_origins` origins; `skip_last` moves them that many months earlier
    (used by tuning, so that the latest months stay unseen). With `workers` > 1, the older
    origins are fitted in that many - 1 worker processes (`OriginPool`) while this one fits
    the newest: the same result, byte for byte."""
    plan = plan_backtest(panel, targets, config, n_origins=n_origins, skip_last=skip_last)
    *older, newest = plan.origins
    outcomes: dict[int, tuple[pd.DataFrame, Fold]] = {}
    with OriginPool(plan, older if workers > 1 else [], workers - 1) as pool:
        # Origins are independent; in one process they are fitted one after the other
        # (threaded LightGBM fits crashed in CI; see fit.fit_models).
        for origin in [newest, *older]:
            outcomes[origin] = pool.result(origin) if origin in pool else run_origin(plan, origin)
            if progress:
                progress(len(outcomes), len(plan.origins))
    return combine_origins(plan, outcomes, truth)


class OriginPool:
    """Backtest origins fitted in spawned worker processes while the caller goes on (`forecast
    train` fits the newest origin, the final models and the what-if engine meanwhile).

    Each worker gets the plan once (pickled at its start) and fits origins newest first; every
    fit is seeded and single-threaded, so an origin's outcome is the same bytes in any process.
    A pool that cannot start or loses its worker (killed, out of memory) is not an error: the
    caller's process fits what is left (`result`). No workers: nothing starts.
    """

    def __init__(self, plan: BacktestPlan, origins: list[int], workers: int = 1) -> None:
        self.plan = plan
        self._pool: ProcessPoolExecutor | None = None
        self._futures: dict[int, Future] = {}
        if workers < 1 or not origins:
            return
        self._pool = ProcessPoolExecutor(
            max_workers=min(workers, len(origins)),
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(plan,),
        )
        for origin in sorted(origins, reverse=True):
            self._futures[origin] = self._pool.submit(_origin_in_worker, origin)

    def __contains__(self, origin: int) -> bool:
        return origin in self._futures

    def __enter__(self) -> OriginPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def result(self, origin: int) -> tuple[pd.DataFrame, Fold]:
        """The origin's outcome: the worker's, or fitted here if the worker could not."""
        future = self._futures.get(origin)
        if future is not None:
            try:
                return future.result()
            except BrokenProcessPool:
                log.warning(
                    "the backtest's worker process ended early (killed, or out of memory?); "
                    "this process fits origin %s instead.",
                    month_str(origin),
                )
        return run_origin(self.plan, origin)

    def close(self) -> None:
        """Stop the workers (origins still running are dropped)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            end_pool(pool, all(f.done() for f in self._futures.values()))


def end_pool(pool: ProcessPoolExecutor, done: bool) -> None:
    """Shut a worker pool down; unless its work is `done`, end its processes first (a failure
    or Ctrl-C in the caller must not wait for fits nobody will read)."""
    if not done:
        # ProcessPoolExecutor can only wait for running work (before Python 3.14).
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.kill()
    pool.shutdown(wait=True, cancel_futures=True)


_PLAN: BacktestPlan | None = None  # a worker process's copy of the plan


def _start_worker(plan: BacktestPlan) -> None:
    global _PLAN
    _PLAN = plan


def _origin_in_worker(origin: int) -> tuple[pd.DataFrame, Fold]:
    assert _PLAN is not None
    return run_origin(_PLAN, origin)


def pooled_result(
    pred: pd.DataFrame, folds: list[Fold], config: ModelConfig, has_truth: bool
) -> BacktestResult:
    """The result of out-of-sample predictions pooled over origins: calibration, leave-one-
    origin-out coverage, risk cuts and metrics, all computed on the pooled rows."""
    level = config.interval_level
    pred = recalibrate_by_origin(pred, config.horizon)
    recalibration = fit_recalibration(
        pred["rate_model_raw"], pred["headcount"], pred["leavers"], pred["origin"]
    )
    dispersion, q, sd, inner = _calibrate(pred, level)
    coverage, org, by_origin = honest_coverage(pred, level)
    pred["leavers_p10"], pred["leavers_p90"] = intervals.nb_interval(
        pred["pred_model"].to_numpy(), dispersion, inner
    )
    # Risk bands are cut on the forecast as it is served (recalibrated, a monotone map).
    cuts = np.quantile(
        recalibration.apply(pred["rate_model_raw"].to_numpy()), config.risk_quantiles
    )
    metrics = pd.concat(
        [attrition_metrics(pred, has_truth), csat_metrics(pred, has_truth)], ignore_index=True
    )
    return BacktestResult(
        horizon=config.horizon,
        origins=[f.origin for f in folds],
        metrics=metrics,
        predictions=pred,
        calibration=decile_table(pred),
        coverage=coverage,
        org_totals=org,
        dispersion=dispersion,
        csat_residual_q80=q,
        org_total_model_sd=sd,
        risk_cuts=(float(cuts[0]), float(cuts[1])),
        config_hash=config.hash(),
        folds=folds,
        recalibration=recalibration,
        leaver_level=inner,
        coverage_by_origin=by_origin,
    )


# --------------------------------------------------------------------------- plot


def calibration_plot(result: BacktestResult, path: Path) -> Path:
    """Predicted vs realised leavers by risk decile, and the org total per origin with its
    interval; saved as a PNG."""
    # Lazy: pyplot needs the Agg backend chosen before it is imported, and only the plot pays
    # for it (about 0.5 s).
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cal, org = result.calibration, result.org_totals
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    top = float(max(cal["predicted"].max(), cal["realised"].max()) * 1.1)
    ax1.plot([0, top], [0, top], color="grey", lw=1, ls="--", label="perfect")
    ax1.scatter(cal["predicted"], cal["realised"], color="C0", zorder=3)
    for _, r in cal.iterrows():
        ax1.annotate(
            str(int(r["decile"])),
            (r["predicted"], r["realised"]),
            fontsize=8,
            xytext=(3, 3),
            textcoords="offset points",
        )
    ax1.set(
        xlabel="predicted leavers",
        ylabel="realised leavers",
        title="Calibration by risk decile (out of sample)",
    )
    ax1.legend(loc="upper left")
    x = np.arange(len(org))
    err = [org["expected"] - org["p10"], org["p90"] - org["expected"]]
    ax2.errorbar(
        x,
        org["expected"],
        yerr=err,
        fmt="o",
        color="C0",
        capsize=4,
        label="predicted, 80% interval",
    )
    ax2.scatter(x, org["realised"], color="C3", marker="x", zorder=3, label="realised")
    ax2.set_xticks(x, org["origin"])
    ax2.set(
        xlabel="origin",
        ylabel=f"org leavers over {result.horizon} months",
        title="Organisation total per origin",
    )
    ax2.legend(loc="best")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
