"""The registered unit of prediction: the attrition and CSAT boosters with their calibration
(intervals, risk bands), the features they read and the drift reference, saved to and loaded
from a folder of plain files (LightGBM text models + meta.json), byte-stable.

Pure apart from `to_dir`/`from_dir` (the pair's own files). It knows nothing of the what-if
engine: the registry (`forecast.mlops.registry`) bundles the two.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from forecast.data.atomic import json_text
from forecast.errors import ModelError
from forecast.models import intervals
from forecast.models.backtest import BacktestResult
from forecast.models.config import ModelConfig, config_from_dict
from forecast.models.fit import (
    RATE_FEATURE,
    Fitted,
    Holdout,
    design_matrix,
    feature_columns,
    fit_models,
    join_targets,
    predict_fitted,
)

DRIFT_FILE = "drift_reference.csv"
# The forecasts of one team, each a float: expected leavers over the horizon with their interval,
# the per-head rate, and the CSAT change with its interval.
FORECAST_COLUMNS = (
    "expected_leavers",
    "attrition_rate",
    "csat_change",
    "leavers_p10",
    "leavers_p90",
    "csat_change_p10",
    "csat_change_p90",
)
# What `ModelPair.predict` returns, in this order.
PREDICTION_COLUMNS = (
    "team_id",
    "as_of",
    "headcount",
    *FORECAST_COLUMNS,
    "risk_band",
    RATE_FEATURE,
)


# --------------------------------------------------------------------------- the pair


@dataclass
class ModelPair:
    config: ModelConfig
    features: list[str]
    attrition_booster: lgb.Booster
    csat_booster: lgb.Booster | None
    csat_features: list[str]
    dispersion: float
    csat_residual_q80: float
    org_total_model_sd: float  # relative: a fraction of the expected org total
    risk_cuts: tuple[float, float]
    trained_until: str
    spec_hash: str = ""
    calibration_source: str = "backtest"
    # Quantile bins of the training features (drift.drift_reference): scoring measures drift
    # against the distribution the model learned from, not against one recent month.
    drift_reference: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    _texts: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def attrition_raw(self, X: pd.DataFrame) -> np.ndarray:
        """log(per-head rate over the horizon): the attrition booster's raw score, which SHAP's
        TreeExplainer decomposes exactly (base value + SHAP values)."""
        return self.attrition_booster.predict(design_matrix(X, self.features), raw_score=True)

    def predict(self, panel: pd.DataFrame) -> pd.DataFrame:
        out = predict_fitted(self.attrition_booster, self.csat_booster, panel, self.features)
        level = self.config.interval_level
        out["leavers_p10"], out["leavers_p90"] = intervals.nb_interval(
            out["expected_leavers"].to_numpy(), self.dispersion, level
        )
        q = self.csat_residual_q80
        out["csat_change_p10"] = out["csat_change"] - q
        out["csat_change_p90"] = out["csat_change"] + q
        out["risk_band"] = risk_band(out["attrition_rate"].to_numpy(), self.risk_cuts)
        return out[list(PREDICTION_COLUMNS)].reset_index(drop=True)

    def org_total_interval(self, predictions: pd.DataFrame) -> dict[str, float]:
        """Expected total leavers with an interval that is not a sum of team bounds."""
        return intervals.org_total_interval(
            predictions["expected_leavers"].to_numpy(),
            self.dispersion,
            self.org_total_model_sd,
            self.config.interval_level,
        )

    # ---- files

    def meta(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "features": self.features,
            "csat_features": self.csat_features,
            "dispersion": self.dispersion,
            "csat_residual_q80": self.csat_residual_q80,
            "org_total_model_sd": self.org_total_model_sd,
            "risk_cuts": list(self.risk_cuts),
            "trained_until": self.trained_until,
            "spec_hash": self.spec_hash,
            "calibration_source": self.calibration_source,
            "format": 1,
        }

    def to_dir(self, path: Path) -> Path:
        """attrition.txt and csat.txt (LightGBM text models) plus meta.json, the drift
        reference when set; byte-stable."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "attrition.txt").write_text(self._text("attrition"), encoding="utf-8")
        if self.csat_booster is not None:
            (path / "csat.txt").write_text(self._text("csat"), encoding="utf-8")
        (path / "meta.json").write_text(json_text(_jsonable(self.meta())), encoding="utf-8")
        if self.drift_reference is not None:
            self.drift_reference.to_csv(path / DRIFT_FILE, index=False, float_format="%.10g")
        return path

    @classmethod
    def from_dir(cls, path: Path) -> ModelPair:
        path = Path(path)
        try:
            meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
            texts = {"attrition": (path / "attrition.txt").read_text(encoding="utf-8")}
            if (path / "csat.txt").exists():
                texts["csat"] = (path / "csat.txt").read_text(encoding="utf-8")
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelError(f"cannot load the model pair from {path} ({exc}).") from None
        csat = lgb.Booster(model_str=texts["csat"]) if "csat" in texts else None
        drift_path = path / DRIFT_FILE
        reference = pd.read_csv(drift_path) if drift_path.exists() else None
        return cls(
            config=config_from_dict(meta["config"]),
            features=list(meta["features"]),
            attrition_booster=lgb.Booster(model_str=texts["attrition"]),
            csat_booster=csat,
            csat_features=list(meta["csat_features"]),
            dispersion=float(meta["dispersion"]),
            csat_residual_q80=float(meta["csat_residual_q80"]),
            org_total_model_sd=float(meta["org_total_model_sd"]),
            risk_cuts=(float(meta["risk_cuts"][0]), float(meta["risk_cuts"][1])),
            trained_until=meta["trained_until"],
            spec_hash=meta.get("spec_hash", ""),
            calibration_source=meta.get("calibration_source", "backtest"),
            drift_reference=reference,
            _texts=texts,
        )

    def _text(self, which: str) -> str:
        # Keep the text a model was loaded from: re-serialising a loaded booster may reorder
        # its parameter block, and a saved pair must stay byte-identical when saved again.
        if which not in self._texts:
            booster = self.attrition_booster if which == "attrition" else self.csat_booster
            assert booster is not None
            self._texts[which] = booster.model_to_string()
        return self._texts[which]


def risk_band(rate: np.ndarray, cuts: tuple[float, float]) -> np.ndarray:
    low, high = cuts
    return np.where(rate < low, "low", np.where(rate < high, "medium", "high")).astype(object)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        v = float(value)
        return v if np.isfinite(v) else None
    return value


# --------------------------------------------------------------------------- training entry


def train_pair(
    panel: pd.DataFrame,
    targets: pd.DataFrame,
    config: ModelConfig,
    *,
    spec_hash: str = "",
    backtest: BacktestResult | None = None,
) -> ModelPair:
    """Train the final attrition and CSAT models on every labelled row.

    Interval and risk-band calibration come from `backtest` (its out-of-sample residuals over
    several origins). Without one, the early-stopping hold-out months stand in: honest
    out-of-sample residuals too, but from one window only (`calibration_source` says which).

    With a backtest, the models take the numbers of trees early stopping chose at its latest
    origin (`horizon` months earlier, the same configuration) instead of a probe of their own:
    the probes were a third of the final fit's cost and moved its trees by about 10%.
    """
    fitted = fit_final(panel, targets, config, _backtest_rounds(backtest, config))
    return assemble_pair(fitted, config, spec_hash=spec_hash, backtest=backtest)


def fit_final(
    panel: pd.DataFrame,
    targets: pd.DataFrame,
    config: ModelConfig,
    rounds: tuple[int, int] | None = None,
) -> Fitted:
    """The final models on every labelled row; `rounds` (attrition, CSAT trees) as
    `fit_models` takes them (`forecast train` passes its newest backtest origin's, before the
    other origins are done)."""
    frame = join_targets(panel, targets, config.horizon)
    return fit_models(frame, feature_columns(panel), config, rounds=rounds)


def assemble_pair(
    fitted: Fitted,
    config: ModelConfig,
    *,
    spec_hash: str = "",
    backtest: BacktestResult | None = None,
) -> ModelPair:
    """The pair of `fitted` models, calibrated on `backtest` (else on their hold-out)."""
    calib = (
        _calibration_from_backtest(backtest)
        if backtest is not None
        else (_calibration_from_holdout(fitted.holdout, config))
    )
    return ModelPair(
        config=config,
        features=list(fitted.features),
        attrition_booster=fitted.attrition,
        csat_booster=fitted.csat,
        csat_features=[*fitted.features, RATE_FEATURE],
        trained_until=fitted.trained_until,
        spec_hash=spec_hash,
        **calib,
    )


def _backtest_rounds(bt: BacktestResult | None, config: ModelConfig) -> tuple[int, int] | None:
    """(attrition, CSAT) trees of the backtest's latest origin, when it ran this configuration."""
    if bt is None or not bt.folds or bt.config_hash != config.hash():
        return None
    last = bt.folds[-1]
    return (last.attrition_rounds, last.csat_rounds) if last.attrition_rounds > 0 else None


def _calibration_from_backtest(bt: BacktestResult) -> dict[str, Any]:
    return {
        "dispersion": float(bt.dispersion),
        "csat_residual_q80": float(bt.csat_residual_q80),
        "org_total_model_sd": float(bt.org_total_model_sd),
        "risk_cuts": (float(bt.risk_cuts[0]), float(bt.risk_cuts[1])),
        "calibration_source": "backtest",
    }


def _calibration_from_holdout(holdout: Holdout, config: ModelConfig) -> dict[str, Any]:
    att, cs = holdout.attrition, holdout.csat
    if att.empty:
        return {
            "dispersion": intervals.MIN_DISPERSION,
            "csat_residual_q80": float("nan"),
            "org_total_model_sd": 0.0,
            "risk_cuts": (float("nan"), float("nan")),
            "calibration_source": "none",
        }
    mu = att["rate"].to_numpy() * att["headcount"].to_numpy(dtype="float64")
    y = att["leavers"].to_numpy(dtype="float64")
    dispersion = intervals.estimate_dispersion(y, mu)
    var = intervals.nb_variance(mu, dispersion)
    by_month = pd.DataFrame({"m": att["as_of"].astype(str), "mu": mu, "y": y, "v": var})
    totals = by_month.groupby("m").sum()
    sd = intervals.org_model_sd(*(totals[c].to_numpy() for c in ("mu", "y", "v")))
    level = config.interval_level
    resid = (cs["csat_change"] - cs["prediction"]).to_numpy(dtype="float64")
    csat_q = intervals.conformal_halfwidth(resid, level) if len(cs) else float("nan")
    cuts = np.quantile(att["rate"].to_numpy(), config.risk_quantiles)
    return {
        "dispersion": dispersion,
        "csat_residual_q80": csat_q,
        "org_total_model_sd": sd,
        "risk_cuts": (float(cuts[0]), float(cuts[1])),
        "calibration_source": "holdout",
    }
