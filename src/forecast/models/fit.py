"""Fitting and predicting the two LightGBM models on panel rows joined with their targets.

- Attrition: LightGBM Poisson on the per-head rate of voluntary leavers over the horizon, for
  the cohort employed at the as-of month. Headcount is the exposure. With a baseline
  (`forecast.models.baseline`, the default) the forecast's log rate blends the trees' with the
  team's own shrunk long-run rate, by a weight chosen on the out-of-fold rates.
- CSAT: LightGBM regression of the CSAT change over the horizon, weighted by the responses in
  the future window, with the attrition model's out-of-fold per-head rate as an input
  (`expected_attrition_rate`), so its SHAP values show how much of a dip is people risk.

Pure: frames in, boosters and frames out; no file, no MLflow, no print.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from forecast.data.months import month_str, to_ordinal
from forecast.errors import ModelError
from forecast.features.names import RATE_FEATURE, is_feature_name, split_feature
from forecast.models.baseline import Baseline, choose_baseline, choose_weight
from forecast.models.config import ModelConfig

if TYPE_CHECKING:  # imported where a model is trained: a forecast from a pair needs no LightGBM
    import lightgbm as lgb

KEYS = ["team_id", "as_of"]


TARGET_COLUMNS = ["leavers", "csat_change", "csat_weight", "labelled"]


# Fewer labelled rows than this and a model is not worth fitting (and its early stopping is noise).
MIN_TRAIN_ROWS = 50


def feature_columns(panel: pd.DataFrame) -> list[str]:
    """Model inputs: the panel's `family__signal__transform` columns, in panel order."""
    return [c for c in panel.columns if is_feature_name(c) and c not in KEYS]


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


def _attrition_mask(frame: pd.DataFrame) -> np.ndarray:
    ok = frame["labelled"] & frame["leavers"].notna() & (frame["headcount"] >= 1)
    return ok.to_numpy(dtype=bool)


def _csat_mask(frame: pd.DataFrame) -> np.ndarray:
    w = frame["csat_weight"].fillna(1.0)
    ok = frame["labelled"] & frame["csat_change"].notna() & (w > 0)
    return ok.to_numpy(dtype=bool)


def attrition_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[_attrition_mask(frame)]


def csat_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[_csat_mask(frame)]


def months_of(frame: pd.DataFrame) -> np.ndarray:
    return to_ordinal(frame["as_of"])


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
    baseline: Baseline | None = None


def fit_baseline(rows: pd.DataFrame, config: ModelConfig, weight: float = 0.0) -> Baseline | None:
    """The attrition forecast's baseline for these labelled rows (None when the configuration
    has none), chosen on their latest `valid_months` as-of months, with this blend weight."""
    if config.attrition_baseline == "none":
        return None
    base = choose_baseline(rows, months_of(rows), config.horizon, config.valid_months)
    return base.with_weight(weight)


def blended(trees: np.ndarray, baseline: Baseline | None, rows: pd.DataFrame) -> np.ndarray:
    """The forecast's log rate from the trees' raw score and the baseline (if any)."""
    return trees if baseline is None else baseline.blend(trees, rows)


def _train(
    params: dict[str, Any], X: pd.DataFrame, y: np.ndarray, w: np.ndarray, rounds: int
) -> lgb.Booster:
    import lightgbm as lgb

    data = lgb.Dataset(X, label=y, weight=w, free_raw_data=True)
    return lgb.train(params, data, num_boost_round=rounds)


def time_split(months: np.ndarray, config: ModelConfig) -> tuple[np.ndarray, np.ndarray] | None:
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
    target: str,
    X: pd.DataFrame,
    y: np.ndarray,
    w: np.ndarray,
    months: np.ndarray,
    config: ModelConfig,
) -> tuple[int, np.ndarray | None, np.ndarray | None]:
    """Pick the number of trees by early stopping on time-ordered validation. Returns the rounds,
    the validation mask and the out-of-sample raw scores of the validation rows."""
    split = time_split(months, config)
    if split is None:
        # Too short a history to validate: a small fixed ensemble is the safe choice.
        return min(config.num_boost_round, 100), None, None
    fit, valid = split
    import lightgbm as lgb

    train_set = lgb.Dataset(X[fit], label=y[fit], weight=w[fit], free_raw_data=True)
    valid_set = lgb.Dataset(X[valid], label=y[valid], weight=w[valid], reference=train_set)
    probe = lgb.train(
        config.lgb_params(target),
        train_set,
        num_boost_round=config.num_boost_round,
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
    return pd.DataFrame(
        {
            "as_of": part["as_of"].to_numpy(),
            "headcount": part["headcount"].to_numpy(),
            "leavers": part["leavers"].to_numpy(dtype="float64"),
            "rate": np.exp(held),
        }
    )


def oof_attrition(
    target_rows: pd.DataFrame,
    att_rows: pd.DataFrame,
    features: list[str],
    config: ModelConfig,
    rounds: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold log per-head rates for `target_rows`: the trees' and the baseline's (each
    fold's baseline chosen on the fold's own rows; the trees' again without a baseline).

    Time-blocked folds: each block of as-of months gets rates from a model trained on the other
    blocks, minus `horizon` months either side (a neighbouring label window overlaps the block's
    months). The fold models see (k-1)/k of the data, so their rates are distributed like the
    final model's rates on new months, which is what the CSAT model is fed at scoring time; and
    over every labelled month they say how much weight the baseline deserves.
    """
    h = config.horizon
    target_m, att_m = months_of(target_rows), months_of(att_rows)
    X_all, y_all, w_all = _attrition_xyw(att_rows, features)
    X_target = design_matrix(target_rows, features)
    params = config.lgb_params("attrition")
    trees = np.full(len(target_rows), np.nan)
    base = np.full(len(target_rows), np.nan)
    blocks = np.array_split(np.unique(target_m), min(config.oof_blocks, len(np.unique(target_m))))
    for block in blocks:
        start, end = block[0], block[-1]
        keep = (att_m + h <= start) | (att_m > end + h)
        sel = (target_m >= start) & (target_m <= end)
        if keep.sum() < MIN_TRAIN_ROWS:
            # Nothing honest to learn from: the organisation's rate outside the block.
            other = ~((att_m >= start) & (att_m <= end))
            rate = y_all[other].dot(w_all[other]) / max(w_all[other].sum(), 1.0)
            trees[sel] = base[sel] = np.log(max(rate, 1e-12))
            continue
        booster = _train(params, X_all[keep], y_all[keep], w_all[keep], rounds)
        trees[sel] = booster.predict(X_target[sel], raw_score=True)
        fold_base = fit_baseline(att_rows[keep], config)
        base[sel] = trees[sel] if fold_base is None else fold_base.log_rate(target_rows[sel])
    return trees, base


def fit_csat(
    rows: pd.DataFrame,
    features: list[str],
    oof_rate: np.ndarray,
    config: ModelConfig,
    rounds: int | None = None,
) -> tuple[lgb.Booster, int, pd.DataFrame]:
    """The CSAT model; with `rounds`, that many trees and no early-stopping probe."""
    X = design_matrix(rows, features)
    X[RATE_FEATURE] = oof_rate
    y = rows["csat_change"].to_numpy(dtype="float64")
    w = rows["csat_weight"].fillna(1.0).to_numpy(dtype="float64")
    valid = held = None
    if rounds is None:
        rounds, valid, held = _probe("csat", X, y, w, months_of(rows), config)
    booster = _train(config.lgb_params("csat"), X, y, w, rounds)
    holdout = pd.DataFrame(columns=["as_of", "csat_change", "prediction"])
    if valid is not None:
        holdout = pd.DataFrame(
            {
                "as_of": rows["as_of"].to_numpy()[valid],
                "csat_change": y[valid],
                "prediction": held,
            }
        )
    return booster, rounds, holdout


def fit_models(
    frame: pd.DataFrame,
    features: list[str],
    config: ModelConfig,
    rounds: tuple[int, int] | None = None,
) -> Fitted:
    """Both models on every labelled row of `frame` (the caller chooses the rows).

    The number of trees comes from early stopping on the last months; the final models are
    then refitted on every row (the last months are the most informative about the present).
    With `rounds` (attrition, CSAT), those numbers of trees instead, with no early-stopping
    probe and so no hold-out (`train_pair` passes those of the latest backtest origin).
    The baseline's blend weight is chosen on the out-of-fold rates (`oof_attrition`), which
    the CSAT model needs anyway.
    Fits run one after the other on one thread each: LightGBM fits side by side in threads
    crashed the interpreter in CI (LGBM_BoosterFree while another thread built a Dataset).
    """
    att_mask, cs_mask = _attrition_mask(frame), _csat_mask(frame)
    att = frame[att_mask]
    if len(att) < MIN_TRAIN_ROWS:
        raise ModelError(
            f"too little labelled history to train: {len(att)} team-months with a known "
            f"{config.horizon}-month outcome (need at least {MIN_TRAIN_ROWS})."
        )
    X, y, w = _attrition_xyw(att, features)
    valid = held = None
    if rounds is None:
        att_rounds, valid, held = _probe("attrition", X, y, w, months_of(att), config)
    else:
        att_rounds = rounds[0]
    booster = _train(config.lgb_params("attrition"), X, y, w, att_rounds)
    has_csat = int(cs_mask.sum()) >= MIN_TRAIN_ROWS
    weight, oof_rows, oof = 0.0, frame[:0], (np.zeros(0), np.zeros(0))
    if has_csat or config.attrition_baseline != "none":
        oof_rows = frame[att_mask | (cs_mask & has_csat)]
        oof = oof_attrition(oof_rows, att, features, config, att_rounds)
    if config.attrition_baseline != "none":
        on_att = _attrition_mask(oof_rows)
        rows = oof_rows[on_att]
        weight = choose_weight(
            rows["leavers"].to_numpy(dtype="float64"),
            rows["headcount"].to_numpy(dtype="float64"),
            oof[0][on_att],
            oof[1][on_att],
        )
        if valid is not None and held is not None:
            # The hold-out as the blended forecast, the baseline chosen without it.
            split = time_split(months_of(att), config)
            assert split is not None
            held = blended(held, fit_baseline(att[split[0]], config, weight), att[valid])
    csat_booster, csat_rounds = None, 0
    csat_holdout = pd.DataFrame(columns=["as_of", "csat_change", "prediction"])
    if has_csat:
        on_cs = _csat_mask(oof_rows)
        rate = np.exp((1.0 - weight) * oof[0][on_cs] + weight * oof[1][on_cs])
        fixed = rounds[1] if rounds is not None and rounds[1] > 0 else None
        csat_booster, csat_rounds, csat_holdout = fit_csat(
            oof_rows[on_cs], features, rate, config, fixed
        )
    return Fitted(
        features=list(features),
        attrition=booster,
        csat=csat_booster,
        attrition_rounds=att_rounds,
        csat_rounds=csat_rounds,
        trained_until=month_str(att["as_of"].max()),
        holdout=Holdout(_attrition_holdout(att, valid, held), csat_holdout),
        baseline=fit_baseline(att, config, weight),
    )


def predict_fitted(
    attrition: lgb.Booster,
    csat: lgb.Booster | None,
    panel: pd.DataFrame,
    features: list[str],
    baseline: Baseline | None = None,
) -> pd.DataFrame:
    """Point predictions of a booster pair; the CSAT input is this attrition model's rate.
    With `baseline`, the attrition rate blends the trees' with it."""
    X = design_matrix(panel, features)
    raw = blended(attrition.predict(X, raw_score=True), baseline, panel)
    rate = np.exp(raw)
    hc = panel["headcount"].to_numpy(dtype="float64")
    out = pd.DataFrame(
        {
            "team_id": panel["team_id"].to_numpy(),
            "as_of": panel["as_of"].to_numpy(),
            "headcount": panel["headcount"].to_numpy(),
            "expected_leavers": rate * hc,
            "attrition_rate": rate,
        },
        index=panel.index,
    )
    out["csat_change"] = np.nan
    if csat is not None:
        X[RATE_FEATURE] = rate
        pred = csat.predict(X, raw_score=True)
        out["csat_change"] = np.where(has_recent_cx(panel, features), pred, np.nan)
    out["expected_attrition_rate"] = rate
    return out


def has_recent_cx(panel: pd.DataFrame, features: list[str]) -> np.ndarray:
    """A team with no CSAT in the target's "before" window (t-2 .. t) gets no CSAT forecast:
    its change is undefined there (contract: null, not a guess). Long-run and trend features
    still carry older CSAT, so they do not count; without a 3-month CSAT mean in the spec, any
    CX feature does."""
    cx = [f for f in features if f.startswith("cx__") and f in panel.columns]
    recent = [f for f in cx if split_feature(f)[1:] == ("csat", "mean_3m")]
    if not cx:
        return np.ones(len(panel), dtype=bool)
    return panel[recent or cx].notna().any(axis=1).to_numpy()
