"""SHAP drivers of a scoring batch: exact TreeSHAP per team and target, in long form.

LightGBM's own `pred_contrib` is exact TreeSHAP (shap.TreeExplainer runs the same algorithm), so
it is used directly: one call per target on the reportable rows, then a reshape with numpy
`repeat`/`tile`, never a loop over teams. The result is additive: for each team and target,
`base_value + sum(shap_value)` is the model's raw output: log of the per-head attrition rate (the
Poisson offset log(headcount) is an init_score outside the trees, so the bias excludes it) and
the CSAT change. The attrition forecast's parts outside the trees (the team's own long-run rate
the trees start from, the backtest's recalibration) join as named terms (`with_terms`), so the
sum stays the served log rate.

Pure: takes boosters and matrices, returns frames. Never reads or writes files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast.features.names import (
    BASELINE_LABEL,
    BASELINE_TERM,
    CALIBRATION_FAMILY,
    CALIBRATION_LABEL,
    CALIBRATION_TERM,
    RATE_FAMILY,
    RATE_FEATURE,
    RATE_LABEL,
    is_feature_name,
    split_feature,
)

# The family the baseline term belongs to: the team's own history of leavers.
BASELINE_FAMILY = "people_flow"

# The CSAT model's stacked input: the attrition model's expected per-head rate. Shown to leaders
# as its own family so they can see how much of a CSAT dip comes from expected leavers.
TARGETS = ("attrition", "csat")
DRIVER_COLUMNS = (
    "team_id",
    "as_of",
    "target",
    "feature",
    "feature_value",
    "shap_value",
    "base_value",
    "family",
    "feature_label",
)
FAMILY_COLUMNS = ("team_id", "as_of", "target", "family", "shap_value", "base_value")


@dataclass
class TargetExplanation:
    """One target's explanation before reshaping: rows are teams, columns are features."""

    target: str
    team_ids: np.ndarray  # object/str array of the explained teams, in output order
    features: list[str]
    values: np.ndarray  # (n, F) float64 feature values as the model saw them
    contrib: np.ndarray  # (n, F + 1) float64, last column the bias (base value)

    @property
    def raw(self) -> np.ndarray:
        return self.contrib.sum(axis=1)


def contributions(booster: object, X: pd.DataFrame | np.ndarray) -> np.ndarray:
    """Exact TreeSHAP values of every row: (n, F + 1), the last column the base value.

    `X` is what the model was fed when it scored (`models.design_matrix`), so categoricals are
    mapped exactly as in prediction."""
    if len(X) == 0:
        return np.zeros((0, X.shape[1] + 1))
    out = booster.predict(X, pred_contrib=True)  # type: ignore[attr-defined]
    return np.asarray(out, dtype=np.float64)


def as_matrix(frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """Feature values as float64 (a category as its code, missing as NaN), C-contiguous."""
    cols = []
    for name in features:
        col = frame[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            codes = col.cat.codes.to_numpy(dtype=np.float64)
            cols.append(np.where(codes < 0, np.nan, codes))
        else:
            cols.append(
                pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            )
    if not cols:
        return np.zeros((len(frame), 0))
    return np.ascontiguousarray(np.column_stack(cols))


def explain_target(
    target: str, booster: object, X: pd.DataFrame, team_ids: pd.Series | np.ndarray
) -> TargetExplanation:
    """TreeSHAP of one target for the rows of the design matrix `X` (one per team)."""
    features = [str(c) for c in X.columns]
    return TargetExplanation(
        target=target,
        team_ids=np.asarray(team_ids, dtype=object).astype(str).astype(object),
        features=features,
        values=as_matrix(X, features),
        contrib=contributions(booster, X),
    )


def with_terms(
    explanation: TargetExplanation,
    names: list[str],
    values: np.ndarray,
    contrib: np.ndarray,
    base_shift: float = 0.0,
    trees: float = 1.0,
) -> TargetExplanation:
    """The explanation of `trees` x the model's output plus extra additive terms (columns
    before the base value), the base value moved by `base_shift`: its raw output becomes
    trees x raw + sum(contrib) + base_shift (the attrition forecast's blend with its baseline
    and its recalibration; `ModelPair.driver_terms` gives the arguments)."""
    if not names:
        return explanation
    k = len(explanation.features)
    own = explanation.contrib * trees
    return TargetExplanation(
        target=explanation.target,
        team_ids=explanation.team_ids,
        features=[*explanation.features, *names],
        values=np.ascontiguousarray(np.hstack([explanation.values, values])),
        contrib=np.ascontiguousarray(np.hstack([own[:, :k], contrib, own[:, k:] + base_shift])),
    )


def feature_labels(
    features: list[str], catalog: pd.DataFrame | None
) -> tuple[list[str], list[str]]:
    """Family and plain-words label of each feature; names the catalog does not know fall back
    to the name's own parts, so a drivers file never has an empty family."""
    known: dict[str, tuple[str, str]] = {}
    if catalog is not None and len(catalog):
        known = dict(
            zip(
                catalog["feature"],
                zip(catalog["family"], catalog["label"], strict=True),
                strict=True,
            )
        )
    families, labels = [], []
    for name in features:
        if name == RATE_FEATURE:
            family, label = RATE_FAMILY, RATE_LABEL
        elif name == BASELINE_TERM:
            family, label = BASELINE_FAMILY, BASELINE_LABEL
        elif name == CALIBRATION_TERM:
            family, label = CALIBRATION_FAMILY, CALIBRATION_LABEL
        elif name in known:
            family, label = known[name]
        elif is_feature_name(name):
            family, signal, transform = split_feature(name)
            label = f"{signal} {transform}".replace("_", " ")
        else:
            family, label = "other", name.replace("_", " ")
        families.append(str(family))
        labels.append(str(label))
    return families, labels


def _categorical(codes: np.ndarray, categories: list[str]) -> pd.Categorical:
    return pd.Categorical.from_codes(codes, categories=pd.Index(categories, dtype=object))


def long_form(
    explanations: list[TargetExplanation], as_of: str, catalog: pd.DataFrame | None
) -> pd.DataFrame:
    """All targets stacked in `TARGETS` order, then the explanation's row order (the caller
    sorts teams), then the model's feature order: a stable order, so files are reproducible.

    String columns are categoricals built from integer codes: 100,000 teams x 80 features x 2
    targets is 16 M rows, and object strings would cost gigabytes and most of the time.
    """
    ids = [e.team_ids.astype(str) for e in explanations]
    teams_arr, team_codes = np.unique(
        np.concatenate(ids) if ids else np.zeros(0, str), return_inverse=True
    )
    teams = teams_arr.tolist()
    offsets = np.cumsum([0] + [len(i) for i in ids])
    all_features = list(dict.fromkeys(f for e in explanations for f in e.features))
    fam_of, label_of = feature_labels(all_features, catalog)
    families = sorted(set(fam_of))
    labels = sorted(set(label_of))
    feat_idx = {f: i for i, f in enumerate(all_features)}

    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("team", "target", "feature", "value", "shap", "base")
    }
    for i, e in enumerate(explanations):
        n, k = e.values.shape
        if n == 0:
            continue
        tcodes = team_codes[offsets[i] : offsets[i + 1]].astype(np.int32)
        fcodes = np.array([feat_idx[f] for f in e.features], dtype=np.int32)
        parts["team"].append(np.repeat(tcodes, k))
        parts["target"].append(np.full(n * k, TARGETS.index(e.target), dtype=np.int8))
        parts["feature"].append(np.tile(fcodes, n))
        parts["value"].append(e.values.reshape(-1))
        parts["shap"].append(np.ascontiguousarray(e.contrib[:, :k]).reshape(-1))
        parts["base"].append(np.repeat(e.contrib[:, k], k))
    empty = np.zeros(0, dtype=np.int32)
    cat = {key: (np.concatenate(v) if v else empty) for key, v in parts.items()}
    feature_codes = cat["feature"].astype(np.int32)
    fam_code = np.array([families.index(f) for f in fam_of], dtype=np.int32)
    lab_code = np.array([labels.index(lb) for lb in label_of], dtype=np.int32)
    n_rows = len(feature_codes)
    return pd.DataFrame(
        {
            "team_id": _categorical(cat["team"].astype(np.int32), teams),
            "as_of": _categorical(np.zeros(n_rows, dtype=np.int8), [as_of]),
            "target": _categorical(cat["target"].astype(np.int8), list(TARGETS)),
            "feature": _categorical(feature_codes, all_features),
            "feature_value": cat["value"].astype(np.float64),
            "shap_value": cat["shap"].astype(np.float64),
            "base_value": cat["base"].astype(np.float64),
            "family": _categorical(fam_code[feature_codes] if n_rows else feature_codes, families),
            "feature_label": _categorical(
                lab_code[feature_codes] if n_rows else feature_codes, labels
            ),
        }
    )


def by_family(
    explanations: list[TargetExplanation], as_of: str, catalog: pd.DataFrame | None
) -> pd.DataFrame:
    """Sums of SHAP values by family, per team and target, with the base value so that
    `base_value + sum(shap_value)` stays the raw output here too. A matrix product, not a
    group-by over millions of long rows. Rows keep the explanations' order (teams sorted by
    the caller), families in the model's feature order."""
    frames = []
    for e in explanations:
        n, k = e.values.shape
        fam_of, _ = feature_labels(e.features, catalog)
        families = list(dict.fromkeys(fam_of))  # first-seen order: the model's feature order
        onehot = np.zeros((k, len(families)))
        onehot[np.arange(k), [families.index(f) for f in fam_of]] = 1.0
        sums = e.contrib[:, :k] @ onehot
        m = len(families)
        frames.append(
            pd.DataFrame(
                {
                    "team_id": np.repeat(e.team_ids, m),
                    "as_of": as_of,
                    "target": e.target,
                    "family": np.tile(np.array(families, dtype=object), n),
                    "shap_value": sums.reshape(-1),
                    "base_value": np.repeat(e.contrib[:, k], m),
                }
            )
        )
    if not frames:
        return pd.DataFrame(
            {
                c: pd.Series(dtype="float64" if c.endswith("value") else "string")
                for c in FAMILY_COLUMNS
            }
        )
    out = pd.concat(frames, ignore_index=True)
    for col in ("team_id", "as_of", "target", "family"):
        out[col] = out[col].astype("string")
    return out


def additivity_error(explanation: TargetExplanation, expected_raw: np.ndarray) -> float:
    """Largest |base + sum(shap) - expected raw output| over the rows (0 for none)."""
    if len(expected_raw) == 0:
        return 0.0
    return float(np.max(np.abs(explanation.raw - np.asarray(expected_raw, dtype=np.float64))))


__all__ = [
    "DRIVER_COLUMNS",
    "FAMILY_COLUMNS",
    "TargetExplanation",
    "additivity_error",
    "as_matrix",
    "by_family",
    "contributions",
    "explain_target",
    "feature_labels",
    "long_form",
    "with_terms",
]
