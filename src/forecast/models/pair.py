"""The registered unit of prediction: the attrition and CSAT boosters with their calibration
(the attrition model's baseline, its recalibration by risk band, intervals, risk bands), the
features they read and the drift reference, saved to and loaded from a folder of plain files
(LightGBM text models + meta.json + backtest.json), byte-stable.

The attrition forecast served is `recalibration(exp((1 - w) trees + w log baseline))`: the
trees' log rate blended with the team's own long-run rate (`forecast.models.baseline`), and the
monotone recalibration learnt from the backtest's out-of-sample predictions adjusting each
risk band. The CSAT model's input is the
rate before recalibration, as the out-of-fold rates it was trained on are. A pair saved before
issue 18 has neither (its forecast is the trees' alone), and scores as it always did.

A pair loaded from its folder keeps the model texts and makes LightGBM boosters only when
something needs one: a few rows (a what-if) are scored from the texts with numpy
(`forecast.models.trees`, the same numbers), so `forecast what-if` never imports LightGBM,
scikit-learn or SciPy (issue 17).

Pure apart from `to_dir`/`from_dir` (the pair's own files). It knows nothing of the what-if
engine: the registry (`forecast.mlops.registry`) bundles the two.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from forecast.data.atomic import json_text
from forecast.errors import ModelError
from forecast.features.names import BASELINE_TERM, CALIBRATION_TERM
from forecast.models import intervals
from forecast.models.backtest import BacktestResult
from forecast.models.baseline import Baseline
from forecast.models.calibration import Recalibration
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
from forecast.models.trees import Trees, parse

if TYPE_CHECKING:
    import lightgbm as lgb

DRIFT_FILE = "drift_reference.csv"
# The backtest's calibration by risk decile and coverage per origin, for the report's trust
# section (tables of numbers: no team or person).
BACKTEST_FILE = "backtest.json"
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
INTERVAL_COLUMNS = ("leavers_p10", "leavers_p90", "csat_change_p10", "csat_change_p90")
# Up to this many rows, a booster not built yet scores from its text with numpy: importing
# LightGBM costs more than a few rows take; beyond a few hundred, LightGBM is the faster.
TREES_MAX_ROWS = 256


# --------------------------------------------------------------------------- its boosters


class _Model:
    """One of a pair's boosters: a LightGBM booster, or the text of one (a pair loaded from
    its folder), made a booster the first time something needs it."""

    def __init__(self, booster: lgb.Booster | None = None, text: str | None = None) -> None:
        self._booster, self.text = booster, text
        self._trees: Trees | bool | None = False  # False: not parsed yet

    @property
    def booster(self) -> lgb.Booster:
        if self._booster is None:
            import lightgbm as lgb

            self._booster = lgb.Booster(model_str=self.text)
        return self._booster

    def predict(self, X: pd.DataFrame, raw_score: bool = True) -> np.ndarray:
        """Raw scores, as the booster gives them (what `predict_fitted` asks of a booster)."""
        if not raw_score:
            raise ValueError("a pair's model answers raw scores only")
        if self._booster is None and 0 < len(X) <= TREES_MAX_ROWS:
            trees = self._parsed()
            if (
                trees is not None
                and X.shape[1] == trees.n_features
                and (X.dtypes == np.float64).all()
            ):
                return trees.predict(X.to_numpy(np.float64))
        return self.booster.predict(X, raw_score=True)

    def _parsed(self) -> Trees | None:
        if self._trees is False:
            self._trees = parse(self.text) if self.text is not None else None
        return self._trees  # type: ignore[return-value]


class _BoosterField:
    """`ModelPair.attrition_booster` and `csat_booster`: a LightGBM booster (or None) to every
    reader, kept as a `_Model` so a loaded pair builds it only when read."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_{name}_model"

    def __get__(self, pair: Any, owner: type | None = None) -> Any:
        if pair is None:
            raise AttributeError(self.slot)  # to dataclasses: a field without a default
        model = pair.__dict__[self.slot]
        return None if model is None else model.booster

    def __set__(self, pair: Any, value: Any) -> None:
        pair.__dict__[self.slot] = (
            value if value is None or isinstance(value, _Model) else _Model(booster=value)
        )


# --------------------------------------------------------------------------- the pair


@dataclass
class ModelPair:
    config: ModelConfig
    features: list[str]
    attrition_booster: lgb.Booster = _BoosterField()  # type: ignore[assignment]
    csat_booster: lgb.Booster | None = _BoosterField()  # type: ignore[assignment]
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
    # The attrition trees' starting point (None: the organisation's average, before issue 18).
    baseline: Baseline | None = None
    recalibration: Recalibration = field(default_factory=Recalibration)
    # Central level of the whole-number leaver bounds that covers `interval_level` in the
    # backtest (None: the nominal level, as before issue 18).
    leaver_level: float | None = None
    # How many backtest origins `org_total_model_sd` comes from (widens the org interval;
    # None: not widened, as before issue 18).
    org_total_origins: int | None = None
    # The backtest's calibration by risk decile and coverage per origin (for the report).
    calibration_table: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    coverage_table: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    _texts: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def attrition_raw(self, X: pd.DataFrame) -> np.ndarray:
        """log(per-head rate over the horizon) as served: the baseline's log rate plus the
        attrition booster's raw score, recalibrated (the drivers decompose it exactly)."""
        raw = self._model("attrition").predict(design_matrix(X, self.features))
        if self.baseline is not None:
            raw = self.baseline.blend(raw, X)
        return raw + self.recalibration.log_factor(np.exp(raw))

    def predict(self, panel: pd.DataFrame, *, with_intervals: bool = True) -> pd.DataFrame:
        """Forecasts of the panel's rows (`PREDICTION_COLUMNS`); `with_intervals=False` leaves
        out the interval columns (their negative binomial quantiles need SciPy)."""
        out = predict_fitted(
            self._model("attrition"), self._model("csat"), panel, self.features, self.baseline
        )
        if not self.recalibration.is_identity:
            rate = self.recalibration.apply(out["attrition_rate"].to_numpy())
            out["attrition_rate"] = rate
            out["expected_leavers"] = rate * panel["headcount"].to_numpy(dtype="float64")
        out["risk_band"] = risk_band(out["attrition_rate"].to_numpy(), self.risk_cuts)
        if not with_intervals:
            return out[[c for c in PREDICTION_COLUMNS if c not in INTERVAL_COLUMNS]].reset_index(
                drop=True
            )
        level = self.config.interval_level if self.leaver_level is None else self.leaver_level
        out["leavers_p10"], out["leavers_p90"] = intervals.nb_interval(
            out["expected_leavers"].to_numpy(), self.dispersion, level
        )
        q = self.csat_residual_q80
        out["csat_change_p10"] = out["csat_change"] - q
        out["csat_change_p90"] = out["csat_change"] + q
        return out[list(PREDICTION_COLUMNS)].reset_index(drop=True)

    def _model(self, which: str) -> Any:
        """The `_Model` behind `attrition_booster` or `csat_booster` (None: no CSAT model)."""
        return self.__dict__[f"_{which}_booster_model"]

    def driver_terms(
        self, rows: pd.DataFrame, raw_rate: np.ndarray
    ) -> tuple[list[str], np.ndarray, np.ndarray, float, float]:
        """The attrition drivers' terms outside the trees, for `rows` (panel rows) whose rate
        before recalibration is `raw_rate`: names, values and SHAP-scale contributions (n x k),
        the shift of the base value and the factor of the trees' own contributions (and bias).
        The baseline's term is its weight times the team's log long-run rate against the
        training average (the weighted average joins the base value); the recalibration's is
        log(served / raw rate). With them, base value + contributions = log(attrition_rate)."""
        names: list[str] = []
        values: list[np.ndarray] = []
        contrib: list[np.ndarray] = []
        shift, trees = 0.0, 1.0
        if self.baseline is not None:
            b = self.baseline
            rate = b.rate(rows)
            names.append(BASELINE_TERM)
            values.append(rate)
            contrib.append(b.weight * (np.log(rate) - b.log_reference))
            shift, trees = b.weight * b.log_reference, 1.0 - b.weight
        if not self.recalibration.is_identity:
            factor = self.recalibration.log_factor(raw_rate)
            names.append(CALIBRATION_TERM)
            values.append(np.exp(factor))
            contrib.append(factor)
        n = len(rows)
        stack = lambda a: np.column_stack(a) if a else np.zeros((n, 0))  # noqa: E731
        return names, stack(values), stack(contrib), shift, trees

    def org_total_interval(self, predictions: pd.DataFrame) -> dict[str, float]:
        """Expected total leavers with an interval that is not a sum of team bounds."""
        return intervals.org_total_interval(
            predictions["expected_leavers"].to_numpy(),
            self.dispersion,
            self.org_total_model_sd,
            self.config.interval_level,
            self.org_total_origins,
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
            **(
                {
                    "baseline": self.baseline.to_dict() if self.baseline is not None else None,
                    "recalibration": self.recalibration.to_dict(),
                    "leaver_interval_level": self.leaver_level,
                    "org_total_origins": self.org_total_origins,
                }
                if self._is_issue18()
                else {}
            ),
        }

    def _is_issue18(self) -> bool:
        # A pair with none of issue 18's parts writes the meta.json it always wrote.
        return (
            self.baseline is not None
            or not self.recalibration.is_identity
            or self.leaver_level is not None
            or self.org_total_origins is not None
        )

    def to_dir(self, path: Path) -> Path:
        """attrition.txt and csat.txt (LightGBM text models) plus meta.json, the drift
        reference when set; byte-stable."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "attrition.txt").write_text(self._text("attrition"), encoding="utf-8")
        if self._model("csat") is not None:
            (path / "csat.txt").write_text(self._text("csat"), encoding="utf-8")
        (path / "meta.json").write_text(json_text(_jsonable(self.meta())), encoding="utf-8")
        if self.drift_reference is not None:
            self.drift_reference.to_csv(path / DRIFT_FILE, index=False, float_format="%.10g")
        tables = {
            k: v.to_dict(orient="records")
            for k, v in (("calibration", self.calibration_table), ("coverage", self.coverage_table))
            if v is not None
        }
        if tables:
            (path / BACKTEST_FILE).write_text(json_text(_jsonable(tables)), encoding="utf-8")
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
        csat = _Model(text=texts["csat"]) if "csat" in texts else None
        drift_path = path / DRIFT_FILE
        reference = pd.read_csv(drift_path) if drift_path.exists() else None
        tables: dict[str, Any] = {}
        if (path / BACKTEST_FILE).exists():
            tables = json.loads((path / BACKTEST_FILE).read_text(encoding="utf-8"))
        level = meta.get("leaver_interval_level")
        return cls(
            config=config_from_dict(meta["config"]),
            features=list(meta["features"]),
            attrition_booster=_Model(text=texts["attrition"]),
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
            baseline=Baseline.from_dict(meta.get("baseline")),
            recalibration=Recalibration.from_dict(meta.get("recalibration")),
            leaver_level=None if level is None else float(level),
            org_total_origins=_int_or_none(meta.get("org_total_origins")),
            calibration_table=_frame(tables.get("calibration")),
            coverage_table=_frame(tables.get("coverage")),
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


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _frame(records: list[dict[str, Any]] | None) -> pd.DataFrame | None:
    return None if records is None else pd.DataFrame.from_records(records)


def risk_band(rate: np.ndarray, cuts: tuple[float, float]) -> np.ndarray:
    low, high = cuts
    return np.where(rate < low, "low", np.where(rate < high, "medium", "high")).astype(object)


@dataclass(frozen=True)
class PointForecasts:
    """A pair's forecasts without their intervals, for `forecast what-if`: it shows the
    interval of the effect, not of the forecast, and the forecast's needs SciPy (over a
    second of imports). A `whatif.Forecaster`."""

    pair: ModelPair

    @property
    def config(self) -> ModelConfig:
        return self.pair.config

    @property
    def features(self) -> list[str]:
        return self.pair.features

    def predict(self, panel: pd.DataFrame) -> pd.DataFrame:
        return self.pair.predict(panel, with_intervals=False)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.bool_):
        return bool(value)
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
        baseline=fitted.baseline,
        **calib,
    )


def _backtest_rounds(bt: BacktestResult | None, config: ModelConfig) -> tuple[int, int] | None:
    """(attrition, CSAT) trees of the backtest's latest origin, when it ran this configuration."""
    if bt is None or not bt.folds or bt.config_hash != config.hash():
        return None
    last = bt.folds[-1]
    return (last.attrition_rounds, last.csat_rounds) if last.attrition_rounds > 0 else None


def _calibration_from_backtest(bt: BacktestResult) -> dict[str, Any]:
    """Everything learnt from the backtest's out-of-sample predictions (never from the final
    models' own training rows)."""
    return {
        "dispersion": float(bt.dispersion),
        "csat_residual_q80": float(bt.csat_residual_q80),
        "org_total_model_sd": float(bt.org_total_model_sd),
        "risk_cuts": (float(bt.risk_cuts[0]), float(bt.risk_cuts[1])),
        "calibration_source": "backtest",
        "recalibration": bt.recalibration,
        "leaver_level": float(bt.leaver_level),
        "org_total_origins": len(bt.origins),
        "calibration_table": bt.calibration.copy(),
        "coverage_table": bt.coverage_by_origin.copy(),
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
