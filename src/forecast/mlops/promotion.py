"""`forecast promote`: move `champion` to the challenger pair when its backtest is not worse.

The gate re-runs the backtest of both pairs' recorded configurations (feature spec, model
config, horizon) on the same data and origins, so the comparison is between configurations on
today's data, not between numbers logged on different data at different times.

Rule (primary metric): the challenger is promoted when its mean Poisson deviance of attrition
over the shared backtest origins is not higher than the champion's (a tie promotes: the newer
pair has seen more data). Pairs of different horizons are never compared; `--force` promotes
whatever the gate says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.table import Table

from forecast.data.tables import Tables
from forecast.errors import ConfigError, ModelError
from forecast.features.panel import build_panel
from forecast.features.specs import specs_from_dict
from forecast.mlops.registry import PairRef
from forecast.models.backtest import BacktestResult, poisson_deviance, run_backtest
from forecast.models.config import config_from_dict

RULE = (
    "the challenger becomes champion when its mean Poisson deviance of attrition over the "
    "shared backtest origins is not higher than the champion's (lower is better)"
)
# Deviance is recomputed from the same rows in the same order; only float noise may differ.
RELATIVE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    forced: bool = False


def gate(
    *,
    champion_horizon: int | None,
    challenger_horizon: int | None,
    champion_deviance: float | None,
    challenger_deviance: float | None,
    force: bool = False,
) -> GateDecision:
    """The promotion rule, free of I/O. Raises ConfigError for pairs of different horizons
    unless forced (their backtests answer different questions)."""
    if champion_horizon != challenger_horizon:
        if not force:
            raise ConfigError(
                f"the champion forecasts {champion_horizon} months ahead and the challenger "
                f"{challenger_horizon}; pairs of different horizons are never compared. Train a "
                f"challenger with `--horizon {champion_horizon}`, or use `--force` to switch "
                f"the champion's horizon (scheduled scoring changes with it)."
            )
        return GateDecision(True, "forced: horizons differ, no comparison made", forced=True)
    if champion_deviance is None or challenger_deviance is None:
        raise ModelError("no backtest deviance to compare; the gate cannot decide.")
    limit = champion_deviance * (1 + RELATIVE_TOLERANCE) + 1e-12
    better = challenger_deviance <= limit
    verdict = "not worse" if better else "worse"
    reason = (
        f"challenger deviance {challenger_deviance:.4f} vs champion {champion_deviance:.4f}: "
        f"{verdict}"
    )
    if not better and force:
        return GateDecision(True, reason + "; promoted anyway (--force)", forced=True)
    return GateDecision(better, reason)


def attrition_deviance(result: BacktestResult, origins: list[str]) -> float:
    """Mean Poisson deviance of the LightGBM attrition predictions at `origins`."""

    pred = result.predictions
    rows = pred[pred["origin"].isin(origins)]
    return poisson_deviance(rows["leavers"].to_numpy(), rows["pred_model"].to_numpy())


def rerun_backtest(tables: Tables, training: dict[str, Any], targets: pd.DataFrame) -> Any:
    """The backtest of a recorded training configuration on `tables`."""

    specs = specs_from_dict(training["feature_spec"])
    config = config_from_dict(training["model_config"], where="the recorded model config")
    panel = build_panel(tables, specs)
    return run_backtest(panel, targets, config, n_origins=int(training.get("n_origins", 4)))


def comparison_table(evals: list[Evaluation]) -> pd.DataFrame:
    """Rows: metrics; columns: champion and challenger (with their versions)."""
    rows: dict[str, list[float]] = {
        "attrition deviance (primary)": [],
        "attrition D² vs org rate": [],
        "attrition predicted / realised": [],
        "CSAT weighted MAE": [],
    }
    for ev in evals:
        r = ev.result
        rows["attrition deviance (primary)"].append(float(ev.deviance))
        rows["attrition D² vs org rate"].append(r.metric("lightgbm", "d2_vs_null"))
        rows["attrition predicted / realised"].append(r.metric("lightgbm", "calibration"))
        rows["CSAT weighted MAE"].append(r.metric("lightgbm", "weighted_mae", "csat"))
    columns = [
        f"champion v{evals[0].ref.attrition_version}",
        f"challenger v{evals[1].ref.attrition_version}",
    ]
    table = pd.DataFrame.from_dict(rows, orient="index", columns=columns)
    return table.replace([np.inf, -np.inf], np.nan)


def comparison_rich(outcome: PromotionOutcome) -> Table:
    """The comparison as a Rich table (metrics by row, champion and challenger by column)."""

    table = Table(
        title=f"Champion vs challenger, backtest origins {', '.join(outcome.origins)}",
        header_style="bold",
    )
    table.add_column("metric")
    assert outcome.comparison is not None
    for column in outcome.comparison.columns:
        table.add_column(column, justify="right")
    for metric, values in outcome.comparison.iterrows():
        cells = ["-" if pd.isna(v) else f"{v:.4f}" for v in values]
        table.add_row(str(metric), *cells, style="bold" if "primary" in str(metric) else None)
    return table


@dataclass
class Evaluation:
    """One pair's configuration re-backtested on the promotion data."""

    ref: PairRef
    config: dict[str, Any]
    result: BacktestResult | None = None
    deviance: float | None = None


@dataclass
class PromotionOutcome:
    champion: PairRef | None  # before the decision
    challenger: PairRef
    decision: GateDecision
    data_dir: Path | str | None  # a directory, a source file or a URL without password
    tracking_uri: str
    origins: list[str] = field(default_factory=list)
    comparison: pd.DataFrame | None = None
    note: str = ""

    @property
    def promoted(self) -> bool:
        return self.decision.promote

    @property
    def refused(self) -> bool:
        """The gate said no (exit 1); "already champion" is not a refusal."""
        return not self.decision.promote and not self.note
