"""The attrition and CSAT models: configuration, training, prediction and (de)serialisation.

- Attrition: LightGBM Poisson on the per-head rate of voluntary leavers over the horizon, for
  the cohort employed at the as-of month. Headcount is the exposure.
- CSAT: LightGBM regression of the CSAT change over the horizon, weighted by the responses in
  the future window, with the attrition model's out-of-fold per-head rate as an input
  (`expected_attrition_rate`), so its SHAP values show how much of a dip is people risk.

Pure: frames in, boosters and frames out. This module never reads data files, never logs to
MLflow and never prints; `to_dir`/`from_dir` are its only I/O (a model's own files).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import yaml

from forecast.models import intervals
from forecast.errors import ConfigError, ModelError, check_param
from forecast.data.months import month_str, to_ordinal

if TYPE_CHECKING:
    from forecast.models.backtest import BacktestResult

KEYS = ["team_id", "as_of"]
RATE_FEATURE = "expected_attrition_rate"
TARGET_COLUMNS = ["leavers", "csat_change", "csat_weight", "labelled"]
_REPO_CONFIG = Path(__file__).resolve().parents[2] / "training" / "model.yaml"
# An installed wheel ships the same file inside the package (training_config/ links training/).
DEFAULT_CONFIG_PATH = (
    _REPO_CONFIG if _REPO_CONFIG.exists()
    else Path(__file__).resolve().parent / "training_config" / "model.yaml"
)
# Fewer labelled rows than this and a model is not worth fitting (and its early stopping is noise).
MIN_TRAIN_ROWS = 50
DRIFT_FILE = "drift_reference.csv"
EFFECTS_DIR = "whatif_effects"  # the what-if engine's stored fits (forecast.effects_store)

# Built-in defaults: used when training/model.yaml is not beside the package (an installed
# wheel) and to fill keys an older model.yaml lacks. Keep in step with training/model.yaml.
_TREE_DEFAULTS: dict[str, Any] = {
    "learning_rate": 0.1,
    "num_leaves": 7,
    "max_depth": 4,
    "min_data_in_leaf": 200,
    "lambda_l2": 10.0,
    "feature_fraction": 0.7,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "max_bin": 63,
}
DEFAULTS: dict[str, Any] = {
    "horizon": 3,
    "seed": 20240611,
    "num_threads": 2,
    "num_boost_round": 1000,
    "early_stopping_rounds": 50,
    "valid_months": 6,
    "oof_blocks": 4,
    "interval_level": 0.8,
    "risk_quantiles": [0.5, 0.8],
    "attrition": {"objective": "poisson", **_TREE_DEFAULTS, "min_sum_hessian_in_leaf": 1.0},
    "csat": {"objective": "regression", **_TREE_DEFAULTS},
    # The causal what-if engine fitted by `forecast train` and saved with the pair: `auto`
    # (every settable workload/engagement signal), or a list of signals ([] for none).
    "what_if": {"signals": "auto"},
}
# Parameters the code owns: determinism and threading must not be switched off from YAML.
_RESERVED = {"seed", "num_threads", "deterministic", "verbosity", "verbose", "metric"}
_CSAT_OBJECTIVES = {"regression", "regression_l2", "l2", "huber", "fair", "regression_l1", "l1"}
_KNOWN_LGB = {
    "objective", "learning_rate", "num_leaves", "max_depth", "min_data_in_leaf",
    "min_sum_hessian_in_leaf", "lambda_l1", "lambda_l2", "min_gain_to_split",
    "feature_fraction", "feature_fraction_bynode", "bagging_fraction", "bagging_freq",
    "max_bin", "min_data_in_bin", "extra_trees", "path_smooth", "max_delta_step", "huber_delta",
    "fair_c", "cat_smooth", "cat_l2", "max_cat_to_onehot", "min_data_per_group", "linear_tree",
    "linear_lambda", "boosting", "poisson_max_delta_step", "use_missing", "zero_as_missing",
}


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class ModelConfig:
    horizon: int
    attrition: dict
    csat: dict
    num_boost_round: int
    early_stopping_rounds: int
    valid_months: int
    seed: int
    num_threads: int = 2
    oof_blocks: int = 4
    interval_level: float = 0.8
    risk_quantiles: tuple[float, float] = (0.5, 0.8)
    what_if: dict = field(default_factory=lambda: copy.deepcopy(DEFAULTS["what_if"]))

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["risk_quantiles"] = list(self.risk_quantiles)
        return out

    def hash(self) -> str:
        """Stable short hash of the configuration (same parameters, same hash)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> ModelConfig:
        return config_from_dict({**self.to_dict(), **changes})

    def lgb_params(self, target: str) -> dict[str, Any]:
        """LightGBM parameters for `attrition` or `csat`, with the code-owned plumbing.

        LightGBM always runs on one thread, and fits run one after the other (SerialExecutor):
        OpenMP threads inside one small fit cost more than they save and, on a busy machine,
        can be 50x slower; boosters fitted side by side in threads crashed; and a model fitted
        on one thread is byte-identical whatever the machine's core count. `num_threads` is
        kept for configuration compatibility.
        """
        section = self.attrition if target == "attrition" else self.csat
        return {
            **section,
            "metric": "poisson" if target == "attrition" else "l2",
            "seed": self.seed,
            "num_threads": 1,
            # Same input -> byte-identical model: required for reproducible registry versions.
            "deterministic": True,
            "force_col_wise": True,
            "feature_pre_filter": False,
            "verbosity": -1,
        }


def load_model_config(path: Path | None = None, *, horizon: int | None = None) -> ModelConfig:
    """Read training/model.yaml (or `path`), fill missing keys from the built-in defaults and
    validate every parameter up front."""
    source = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    if path is None and not source.exists():
        raw: dict[str, Any] = {}
    else:
        raw = _read_yaml(source)
    merged = copy.deepcopy(DEFAULTS)
    for key, value in raw.items():
        if key in ("attrition", "csat", "what_if") and isinstance(value, dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    if horizon is not None:
        merged["horizon"] = horizon
    return config_from_dict(merged, where=str(source))


def config_from_dict(raw: dict[str, Any], *, where: str = "model configuration") -> ModelConfig:
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key `{unknown[0]}` (known: {', '.join(sorted(DEFAULTS))})."
        )
    full = {**copy.deepcopy(DEFAULTS), **raw}
    _validate_scalars(full)
    _validate_section("attrition", full["attrition"], {"poisson"})
    _validate_section("csat", full["csat"], _CSAT_OBJECTIVES)
    _validate_what_if(full["what_if"])
    return ModelConfig(
        horizon=full["horizon"],
        attrition=dict(full["attrition"]),
        csat=dict(full["csat"]),
        num_boost_round=full["num_boost_round"],
        early_stopping_rounds=full["early_stopping_rounds"],
        valid_months=full["valid_months"],
        seed=full["seed"],
        num_threads=full["num_threads"],
        oof_blocks=full["oof_blocks"],
        interval_level=float(full["interval_level"]),
        risk_quantiles=(float(full["risk_quantiles"][0]), float(full["risk_quantiles"][1])),
        what_if={**DEFAULTS["what_if"], **full["what_if"]},
    )


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"model configuration {path} does not exist.")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid YAML ({exc}).".replace("\n", " ")) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a mapping of keys to values.")
    return raw


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool)


def _int_between(name: str, value: object, lo: int, hi: int) -> None:
    ok = _is_int(value) and lo <= int(value) <= hi  # type: ignore[arg-type]
    check_param(name, value, ok, f"an integer between {lo} and {hi}")


def _validate_scalars(c: dict[str, Any]) -> None:
    _int_between("horizon", c["horizon"], 1, 24)
    _int_between("seed", c["seed"], 0, 2**31 - 1)
    _int_between("num_threads", c["num_threads"], 1, 256)
    _int_between("num_boost_round", c["num_boost_round"], 1, 100_000)
    _int_between("early_stopping_rounds", c["early_stopping_rounds"], 1, 10_000)
    _int_between("valid_months", c["valid_months"], 1, 60)
    _int_between("oof_blocks", c["oof_blocks"], 2, 24)
    lvl = c["interval_level"]
    check_param("interval_level", lvl, _is_number(lvl) and 0 < lvl < 1, "a number between 0 and 1")
    q = c["risk_quantiles"]
    ok = (
        isinstance(q, list | tuple) and len(q) == 2 and all(_is_number(v) for v in q)
        and 0 < q[0] < q[1] < 1
    )
    check_param("risk_quantiles", q, ok, "two increasing numbers between 0 and 1")


def _validate_what_if(section: object) -> None:
    if not isinstance(section, dict):
        raise ConfigError("`what_if` must be a mapping (e.g. `signals: auto`).")
    for key in section:
        check_param(f"what_if.{key}", key, key in DEFAULTS["what_if"], "one of: signals")
    signals = section.get("signals", "auto")
    ok = signals == "auto" or (
        isinstance(signals, list) and all(isinstance(s, str) and s.strip() for s in signals)
    )
    check_param("what_if.signals", signals, ok, "`auto` or a list of signal names")


def _validate_section(name: str, section: object, objectives: set[str]) -> None:
    if not isinstance(section, dict):
        raise ConfigError(f"`{name}` must be a mapping of LightGBM parameters.")
    for key, value in section.items():
        if key in _RESERVED:
            raise ConfigError(f"`{name}.{key}` is set by the code (seed, threads, determinism).")
        check_param(f"{name}.{key}", key, key in _KNOWN_LGB, "a known LightGBM parameter")
        if key == "objective":
            expected = " or ".join(sorted(objectives))
            check_param(f"{name}.objective", value, value in objectives, expected)
        elif key in ("num_leaves",):
            _int_between(f"{name}.{key}", value, 2, 4096)
        elif key in ("min_data_in_leaf", "bagging_freq", "max_bin"):
            _int_between(f"{name}.{key}", value, 0 if key == "bagging_freq" else 1, 1_000_000)
        elif key in ("learning_rate", "feature_fraction", "bagging_fraction"):
            ok = _is_number(value) and 0 < value <= 1
            check_param(f"{name}.{key}", value, ok, "a number in (0, 1]")
        elif key in ("lambda_l1", "lambda_l2", "min_sum_hessian_in_leaf", "min_gain_to_split"):
            check_param(f"{name}.{key}", value, _is_number(value) and value >= 0, "a number >= 0")


# --------------------------------------------------------------------------- frames


def feature_columns(panel: pd.DataFrame) -> list[str]:
    """Model inputs: the panel's `family__signal__transform` columns, in panel order."""
    return [c for c in panel.columns if "__" in c and c not in KEYS]


def design_matrix(panel: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The exact frame fed to LightGBM: one column per feature, in order; numbers as float64,
    anything else as a pandas categorical (LightGBM maps categories by the training levels).
    A feature the panel lacks (a table absent at scoring time) is all missing, not an error."""
    cols: dict[str, pd.Series] = {}
    for name in features:
        if name not in panel.columns:
            cols[name] = pd.Series(np.nan, index=panel.index, dtype="float64")
            continue
        s = panel[name]
        if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            cols[name] = s.astype("float64")
        else:
            levels = sorted(s.dropna().astype(str).unique())
            cols[name] = s.astype("object").astype(pd.CategoricalDtype(levels))
    return pd.DataFrame(cols, index=panel.index)


def join_targets(panel: pd.DataFrame, targets: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Panel rows with their labels; rows without a label keep NaN (never dropped here)."""
    missing = [c for c in KEYS + TARGET_COLUMNS if c not in targets.columns]
    if missing:
        raise ModelError(f"targets frame lacks column {missing[0]}.")
    frame = panel.merge(targets[KEYS + TARGET_COLUMNS], on=KEYS, how="left", validate="one_to_one")
    labelled = frame["labelled"].fillna(False).astype(bool)
    frame["labelled"] = labelled & (months_of(frame) >= first_trusted_month(frame, horizon))
    return frame


def first_trusted_month(frame: pd.DataFrame, horizon: int) -> int:
    """Month ordinal of the first as-of month whose labels can be trusted.

    An export without `data_start` often holds only the people still employed when its history
    begins, so the months before its first recorded exit show an organisation that never loses
    anyone. Training on them would teach the model that those months are safe. When the first
    as-of month with a leaver comes long after the panel starts, rows before the first exit
    month it implies (that as-of month + horizon) are treated as unlabelled.
    """
    m = months_of(frame)
    if m.size == 0:
        return 0
    positive = frame["leavers"].fillna(0).to_numpy() > 0
    if not positive.any():
        return int(m.min())
    first_positive = int(m[positive].min())
    return int(m.min()) if first_positive - int(m.min()) <= horizon else first_positive + horizon


def attrition_rows(frame: pd.DataFrame) -> pd.DataFrame:
    ok = frame["labelled"] & frame["leavers"].notna() & (frame["headcount"] >= 1)
    return frame[ok.to_numpy()]


def csat_rows(frame: pd.DataFrame) -> pd.DataFrame:
    w = frame["csat_weight"].fillna(1.0)
    ok = frame["labelled"] & frame["csat_change"].notna() & (w > 0)
    return frame[ok.to_numpy()]


def months_of(frame: pd.DataFrame) -> np.ndarray:
    return to_ordinal(frame["as_of"])


# --------------------------------------------------------------------------- fitting


@dataclass
class Holdout:
    """Out-of-sample predictions on the early-stopping months (a calibration fallback)."""

    attrition: pd.DataFrame  # as_of, headcount, leavers, rate
    csat: pd.DataFrame  # as_of, csat_change, prediction


@dataclass
class Fitted:
    features: list[str]
    attrition: lgb.Booster
    csat: lgb.Booster | None
    attrition_rounds: int
    csat_rounds: int
    trained_until: str
    holdout: Holdout


def _train(
    params: dict[str, Any], X: pd.DataFrame, y: np.ndarray, w: np.ndarray, rounds: int
) -> lgb.Booster:
    data = lgb.Dataset(X, label=y, weight=w, free_raw_data=True)
    return lgb.train(params, data, num_boost_round=rounds)


def _time_split(months: np.ndarray, config: ModelConfig) -> tuple[np.ndarray, np.ndarray] | None:
    """Early-stopping split: the last `valid_months` as-of months validate; fit rows end their
    horizon before the first of them (purged: a fit label never covers a validation month)."""
    uniq = np.unique(months)
    if uniq.size < config.valid_months + config.horizon + 3:
        return None
    first_valid = uniq[-config.valid_months]
    fit = months + config.horizon <= first_valid
    valid = months >= first_valid
    if fit.sum() < MIN_TRAIN_ROWS or valid.sum() < 10:
        return None
    return fit, valid


def _probe(
    target: str, X: pd.DataFrame, y: np.ndarray, w: np.ndarray, months: np.ndarray,
    config: ModelConfig,
) -> tuple[int, np.ndarray | None, np.ndarray | None]:
    """Pick the number of trees by early stopping on time-ordered validation. Returns the rounds,
    the validation mask and the out-of-sample raw scores of the validation rows."""
    split = _time_split(months, config)
    if split is None:
        # Too short a history to validate: a small fixed ensemble is the safe choice.
        return min(config.num_boost_round, 100), None, None
    fit, valid = split
    train_set = lgb.Dataset(X[fit], label=y[fit], weight=w[fit], free_raw_data=True)
    valid_set = lgb.Dataset(X[valid], label=y[valid], weight=w[valid], reference=train_set)
    probe = lgb.train(
        config.lgb_params(target), train_set, num_boost_round=config.num_boost_round,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False)],
    )
    rounds = max(int(probe.best_iteration or probe.current_iteration()), 1)
    return rounds, valid, probe.predict(X[valid], num_iteration=rounds, raw_score=True)


def _attrition_xyw(rows: pd.DataFrame, features: list[str]) -> tuple:
    # Poisson with exposure: fitting the rate leavers/headcount with weight headcount gives the
    # same gradients and hessians as counts with init_score = log(headcount), but lets
    # LightGBM start from the organisation's average rate, so the booster's raw output is
    # log(per-head rate) itself and SHAP explains it with no offset to add back.
    hc = rows["headcount"].to_numpy(dtype="float64")
    y = rows["leavers"].to_numpy(dtype="float64") / hc
    return design_matrix(rows, features), y, hc


def _attrition_holdout(rows: pd.DataFrame, valid: np.ndarray | None, held) -> pd.DataFrame:
    if valid is None:
        return pd.DataFrame(columns=["as_of", "headcount", "leavers", "rate"])
    part = rows[valid]
    return pd.DataFrame({
        "as_of": part["as_of"].to_numpy(), "headcount": part["headcount"].to_numpy(),
        "leavers": part["leavers"].to_numpy(dtype="float64"), "rate": np.exp(held),
    })


class SerialExecutor:
    """A stand-in for a thread pool that runs each job when it is submitted.

    Fitting LightGBM models side by side in threads crashed the interpreter in CI (a segfault
    in LGBM_BoosterFree while another thread built a Dataset), so fits run one at a time; the
    submit/result shape keeps the call sites ready for a process pool.
    """

    def __enter__(self) -> SerialExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit(self, fn: Any, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - re-raised by result(), as a pool would
            future.set_exception(exc)
        return future


def oof_attrition_rates(
    target_rows: pd.DataFrame, att_rows: pd.DataFrame, features: list[str], config: ModelConfig,
    rounds: int, pool: SerialExecutor,
) -> np.ndarray:
    """Out-of-fold per-head rates for `target_rows` (the CSAT training rows).

    Time-blocked folds: each block of as-of months gets rates from a model trained on the other
    blocks, minus `horizon` months either side (a neighbouring label window overlaps the block's
    months). The fold models see (k-1)/k of the data, so their rates are distributed like the
    final model's rates on new months, which is what the CSAT model is fed at scoring time.
    """
    h = config.horizon
    target_m, att_m = months_of(target_rows), months_of(att_rows)
    X_all, y_all, w_all = _attrition_xyw(att_rows, features)
    X_target = design_matrix(target_rows, features)
    params = config.lgb_params("attrition")
    out = np.full(len(target_rows), np.nan)
    blocks = np.array_split(np.unique(target_m), min(config.oof_blocks, len(np.unique(target_m))))
    jobs = []
    for block in blocks:
        start, end = block[0], block[-1]
        keep = (att_m + h <= start) | (att_m > end + h)
        sel = (target_m >= start) & (target_m <= end)
        if keep.sum() < MIN_TRAIN_ROWS:
            # Nothing honest to learn from: the organisation's rate outside the block.
            other = ~((att_m >= start) & (att_m <= end))
            out[sel] = y_all[other].dot(w_all[other]) / max(w_all[other].sum(), 1.0)
            continue
        job = pool.submit(_train, params, X_all[keep], y_all[keep], w_all[keep], rounds)
        jobs.append((sel, job))
    for sel, job in jobs:
        out[sel] = np.exp(job.result().predict(X_target[sel], raw_score=True))
    return out


def fit_csat(
    rows: pd.DataFrame, features: list[str], oof_rate: np.ndarray, config: ModelConfig
) -> tuple[lgb.Booster, int, pd.DataFrame]:
    X = design_matrix(rows, features)
    X[RATE_FEATURE] = oof_rate
    y = rows["csat_change"].to_numpy(dtype="float64")
    w = rows["csat_weight"].fillna(1.0).to_numpy(dtype="float64")
    rounds, valid, held = _probe("csat", X, y, w, months_of(rows), config)
    booster = _train(config.lgb_params("csat"), X, y, w, rounds)
    holdout = pd.DataFrame(columns=["as_of", "csat_change", "prediction"])
    if valid is not None:
        holdout = pd.DataFrame({
            "as_of": rows["as_of"].to_numpy()[valid], "csat_change": y[valid], "prediction": held,
        })
    return booster, rounds, holdout


def fit_models(
    frame: pd.DataFrame, features: list[str], config: ModelConfig, *, workers: int | None = None
) -> Fitted:
    """Both models on every labelled row of `frame` (the caller chooses the rows).

    The number of trees comes from early stopping on the last months; the final models are
    then refitted on every row (the last months are the most informative about the present).
    Independent fits (the refit, the out-of-fold models) run one after the other (see
    SerialExecutor); `workers` is accepted for compatibility.
    """
    att = attrition_rows(frame)
    if len(att) < MIN_TRAIN_ROWS:
        raise ModelError(
            f"too little labelled history to train: {len(att)} team-months with a known "
            f"{config.horizon}-month outcome (need at least {MIN_TRAIN_ROWS})."
        )
    X, y, w = _attrition_xyw(att, features)
    rounds, valid, held = _probe("attrition", X, y, w, months_of(att), config)
    csat_booster, csat_rounds = None, 0
    csat_holdout = pd.DataFrame(columns=["as_of", "csat_change", "prediction"])
    with SerialExecutor() as pool:
        refit = pool.submit(_train, config.lgb_params("attrition"), X, y, w, rounds)
        cs = csat_rows(frame)
        if len(cs) >= MIN_TRAIN_ROWS:
            oof = oof_attrition_rates(cs, att, features, config, rounds, pool)
            csat_booster, csat_rounds, csat_holdout = fit_csat(cs, features, oof, config)
        booster = refit.result()
    return Fitted(
        features=list(features),
        attrition=booster,
        csat=csat_booster,
        attrition_rounds=rounds,
        csat_rounds=csat_rounds,
        trained_until=month_str(att["as_of"].max()),
        holdout=Holdout(_attrition_holdout(att, valid, held), csat_holdout),
    )


def predict_fitted(
    attrition: lgb.Booster, csat: lgb.Booster | None, panel: pd.DataFrame, features: list[str]
) -> pd.DataFrame:
    """Point predictions of a booster pair; the CSAT input is this attrition model's rate."""
    X = design_matrix(panel, features)
    raw = attrition.predict(X, raw_score=True)
    rate = np.exp(raw)
    hc = panel["headcount"].to_numpy(dtype="float64")
    out = pd.DataFrame({
        "team_id": panel["team_id"].to_numpy(), "as_of": panel["as_of"].to_numpy(),
        "headcount": panel["headcount"].to_numpy(),
        "expected_leavers": rate * hc, "attrition_rate": rate,
    }, index=panel.index)
    out["csat_change"] = np.nan
    if csat is not None:
        X[RATE_FEATURE] = rate
        pred = csat.predict(X, raw_score=True)
        out["csat_change"] = np.where(_has_recent_cx(panel, features), pred, np.nan)
    out["expected_attrition_rate"] = rate
    return out


def _has_recent_cx(panel: pd.DataFrame, features: list[str]) -> np.ndarray:
    """A team with no CSAT in the target's "before" window (t-2 .. t) gets no CSAT forecast:
    its change is undefined there (contract: null, not a guess). Long-run and trend features
    still carry older CSAT, so they do not count; without a 3-month CSAT mean in the spec, any
    CX feature does."""
    cx = [f for f in features if f.startswith("cx__") and f in panel.columns]
    recent = [f for f in cx if f.split("__")[1:] == ["csat", "mean_3m"]]
    if not cx:
        return np.ones(len(panel), dtype=bool)
    return panel[recent or cx].notna().any(axis=1).to_numpy()


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
    # The causal what-if engine's fits by signal (forecast.effects_store.StoredFit), made by
    # `forecast train`; None for a pair trained without them (what-ifs then refit).
    what_if_fits: dict[str, Any] | None = field(default=None, repr=False, compare=False)
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
        cols = [
            "team_id", "as_of", "headcount", "expected_leavers", "attrition_rate", "csat_change",
            "leavers_p10", "leavers_p90", "csat_change_p10", "csat_change_p90", "risk_band",
            "expected_attrition_rate",
        ]
        return out[cols].reset_index(drop=True)

    def org_total_interval(self, predictions: pd.DataFrame) -> dict[str, float]:
        """Expected total leavers with an interval that is not a sum of team bounds."""
        return intervals.org_total_interval(
            predictions["expected_leavers"].to_numpy(), self.dispersion,
            self.org_total_model_sd, self.config.interval_level,
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
        reference and the what-if engine's stored fits (whatif_effects/) when set; byte-stable."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "attrition.txt").write_text(self._text("attrition"), encoding="utf-8")
        if self.csat_booster is not None:
            (path / "csat.txt").write_text(self._text("csat"), encoding="utf-8")
        meta = json.dumps(_jsonable(self.meta()), sort_keys=True, indent=2)
        (path / "meta.json").write_text(meta + "\n", encoding="utf-8")
        if self.drift_reference is not None:
            self.drift_reference.to_csv(path / DRIFT_FILE, index=False, float_format="%.10g")
        if self.what_if_fits is not None:
            from forecast.whatif.store import save_fits

            save_fits(path / EFFECTS_DIR, self.what_if_fits)
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
        what_if_fits = None
        if (path / EFFECTS_DIR).is_dir():
            from forecast.whatif.store import load_fits

            what_if_fits = load_fits(path / EFFECTS_DIR)
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
            what_if_fits=what_if_fits,
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
    """
    frame = join_targets(panel, targets, config.horizon)
    features = feature_columns(panel)
    fitted = fit_models(frame, features, config)
    calib = _calibration_from_backtest(backtest) if backtest is not None else (
        _calibration_from_holdout(fitted.holdout, config)
    )
    return ModelPair(
        config=config,
        features=features,
        attrition_booster=fitted.attrition,
        csat_booster=fitted.csat,
        csat_features=[*features, RATE_FEATURE],
        trained_until=fitted.trained_until,
        spec_hash=spec_hash,
        **calib,
    )


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
            "dispersion": intervals.MIN_DISPERSION, "csat_residual_q80": float("nan"),
            "org_total_model_sd": 0.0, "risk_cuts": (float("nan"), float("nan")),
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
        "dispersion": dispersion, "csat_residual_q80": csat_q, "org_total_model_sd": sd,
        "risk_cuts": (float(cuts[0]), float(cuts[1])), "calibration_source": "holdout",
    }
