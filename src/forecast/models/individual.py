"""Individual-level attrition view on the IBM HR sample (one row per employee, no dates).

This is a sanity check against published results, not a product feature: it reports how well a
small, regularised LightGBM and a logistic-regression baseline separate leavers from stayers
under stratified cross-validation, and which columns drive the boosted model (mean |SHAP|).

What it must never do: write a per-person score unless asked (`per_person=True`, and then only
into the chosen output directory, keyed by row index, never by name or employee number); use a
protected attribute as a feature unless opted in; or tune on the folds it reports.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import normalized_mutual_info_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from forecast.data.contract import read_csv_text
from forecast.data.tables import is_protected
from forecast.errors import ConfigError, DataError, check_param

TARGET = "Attrition"
# Constant in this file (EmployeeCount=1, Over18=Y, StandardHours=80) or a row identifier.
DROP_COLUMNS = ("EmployeeCount", "Over18", "StandardHours", "EmployeeNumber")
REQUIRED = (
    TARGET,
    "Age",
    "Gender",
    "MaritalStatus",
    "OverTime",
    "JobRole",
    "MonthlyIncome",
    "YearsAtCompany",
)
# Published honest cross-validated ROC-AUC on this file is about 0.79-0.82 (SOURCES.md); well
# above that, something that knows the answer has slipped into the features.
LEAKAGE_AUC = 0.90
LGBM_PARAMS: dict[str, Any] = {
    # Small and heavily regularised: 1,470 rows with 237 leavers overfit easily.
    "objective": "binary",
    "learning_rate": 0.03,
    "n_estimators": 300,
    "num_leaves": 7,
    "max_depth": 3,
    "min_child_samples": 20,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.6,
    "reg_lambda": 5.0,
    # Reproducible to the bit: one thread, deterministic histogram construction.
    "n_jobs": 1,
    "deterministic": True,
    "force_row_wise": True,
    "verbose": -1,
}
LOGIT_C = 0.3  # mild L2: the one-hot design has ~45 columns for ~190 leavers per training fold
# Excluding a protected column does not remove what other columns say about it; a feature whose
# normalised mutual information with an excluded attribute reaches this is reported as a proxy.
PROXY_NMI = 0.15


@dataclass
class Prepared:
    """Model input: features (categoricals as CategoricalDtype), target, and what was left out."""

    X: pd.DataFrame
    y: np.ndarray
    categorical: list[str]
    dropped: list[str]
    protected_excluded: list[str]
    protected_included: list[str]
    # Features that carry an excluded protected attribute: feature, protected, nmi.
    proxies: list[dict[str, float | str]] = field(default_factory=list)


@dataclass
class ModelScore:
    auc_mean: float
    auc_sd: float
    auc_folds: list[float]


@dataclass
class IndividualResult:
    file: str
    sha256: str | None
    rows: int
    leavers: int
    folds: int
    seed: int
    features: list[str]
    protected_excluded: list[str]
    protected_included: list[str]
    dropped: list[str]
    lightgbm: ModelScore
    logistic: ModelScore
    shap: list[dict[str, float | str]]  # feature, mean_abs_shap (log-odds), best first
    proxies: list[dict[str, float | str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    # Out-of-fold probabilities, in memory only; written only with per_person=True.
    oof: pd.DataFrame | None = None

    def summary(self) -> dict[str, Any]:
        """The aggregate result, safe to write anywhere (no per-person values)."""
        out = asdict(self)
        out.pop("oof")
        out.pop("written")
        out["lightgbm_params"] = {k: v for k, v in LGBM_PARAMS.items() if k != "verbose"}
        out["logistic_C"] = LOGIT_C
        out["auc_sd_is"] = "sample standard deviation across folds (ddof=1)"
        return out


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def read_ibm(path: Path | str) -> pd.DataFrame:
    """The IBM CSV as text (UTF-8 with BOM, CRLF)."""
    return read_csv_text(Path(path))


def prepare(
    frame: pd.DataFrame, *, file: str = "<memory>", include_protected: bool = False
) -> Prepared:
    """Target Yes/No -> 1/0; numeric columns as float; text columns as CategoricalDtype.

    LightGBM rejects pandas 3 string columns, and a category dtype set once on the full frame
    keeps the codes identical in every fold (categories carry no label information).
    """
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise DataError(
            f"required column {missing[0]} is missing; is this the IBM HR attrition file?",
            file=file,
            column=missing[0],
        )
    f = frame.reset_index(drop=True)
    target = f[TARGET].astype("string").str.strip().str.lower()
    bad = ~target.isin(["yes", "no"]).fillna(False)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"Attrition {f[TARGET].iloc[i]!r} is not Yes or No.",
            file=file,
            column=TARGET,
            row=i + 1,
        )
    y = (target == "yes").to_numpy(dtype=int)
    if y.sum() < 10 or (1 - y).sum() < 10:
        raise DataError(
            "Attrition needs at least 10 leavers and 10 stayers for cross-validation.",
            file=file,
            column=TARGET,
        )

    dropped = [c for c in DROP_COLUMNS if c in f.columns]
    candidates = [c for c in f.columns if c != TARGET and c not in dropped]
    protected = [c for c in candidates if is_protected(_snake(c))]
    excluded = [] if include_protected else protected
    features = [c for c in candidates if c not in excluded]
    X = pd.DataFrame(index=f.index)
    categorical: list[str] = []
    for col in features:
        text = f[col].astype("string").str.strip()
        num = pd.to_numeric(text, errors="coerce")
        if num.notna().sum() == text.notna().sum():
            X[col] = num.astype("float64")
        else:
            values = sorted(text.dropna().unique())
            X[col] = pd.Categorical(text.to_numpy(dtype=object), categories=values)
            categorical.append(col)
    # Any other column constant in this file carries no information; say so rather than fit it.
    constant = [c for c in X.columns if X[c].nunique(dropna=False) <= 1]
    X = X.drop(columns=constant)
    categorical = [c for c in categorical if c not in constant]
    return Prepared(
        X,
        y,
        categorical,
        dropped + constant,
        excluded,
        [c for c in protected if c in X.columns],
        find_proxies(f[excluded], X),
    )


def _binned(values: pd.Series) -> np.ndarray:
    """Codes for mutual information: deciles for a many-valued number, else the value itself."""
    num = (
        pd.to_numeric(values.astype("string"), errors="coerce")
        if not isinstance(values.dtype, pd.CategoricalDtype)
        else None
    )
    if num is not None and num.notna().all() and num.nunique() > 10:
        return pd.qcut(num, 10, duplicates="drop").cat.codes.to_numpy()
    return pd.factorize(values.astype("string"))[0]


def find_proxies(protected: pd.DataFrame, X: pd.DataFrame) -> list[dict[str, float | str]]:
    """Features whose normalised mutual information with an excluded protected column is at
    least PROXY_NMI (e.g. in the IBM file every Single employee has StockOptionLevel 0)."""
    out: list[dict[str, float | str]] = []
    for p in protected.columns:
        a = _binned(protected[p])
        for col in X.columns:
            score = float(normalized_mutual_info_score(a, _binned(X[col])))
            if score >= PROXY_NMI:
                out.append({"feature": col, "protected": p, "nmi": round(score, 3)})
    return sorted(out, key=lambda r: -float(r["nmi"]))


def _logistic(X: pd.DataFrame, categorical: list[str]):
    numeric = [c for c in X.columns if c not in categorical]
    encode = ColumnTransformer(
        [
            ("num", StandardScaler(), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical),
        ]
    )
    return make_pipeline(encode, LogisticRegression(C=LOGIT_C, max_iter=5000))


def _score(aucs: list[float]) -> ModelScore:
    arr = np.asarray(aucs)
    return ModelScore(
        round(float(arr.mean()), 4), round(float(arr.std(ddof=1)), 4), [round(a, 4) for a in aucs]
    )


def cross_validate(
    prep: Prepared, *, folds: int = 5, seed: int = 0
) -> tuple[ModelScore, ModelScore, pd.DataFrame, pd.DataFrame]:
    """Stratified k-fold: per-fold AUC of both models, mean |SHAP| and out-of-fold probabilities.

    Nothing is tuned here: the parameters are fixed above, so the fold AUCs are honest
    estimates rather than the best of a search.
    """
    check_param(
        "--folds", folds, isinstance(folds, int) and 2 <= folds <= 20, "an integer between 2 and 20"
    )
    if min(prep.y.sum(), (1 - prep.y).sum()) < folds:
        raise ConfigError(f"`--folds` {folds} is more than the rarer class has rows.")
    X, y = prep.X, prep.y
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    lgb_auc, log_auc = [], []
    oof = pd.DataFrame({"fold": -1, "p_lightgbm": np.nan, "p_logistic": np.nan}, index=X.index)
    contrib_sum = np.zeros(X.shape[1])
    for k, (tr, va) in enumerate(cv.split(X, y)):
        model = lgb.LGBMClassifier(**LGBM_PARAMS, random_state=seed + k)
        model.fit(X.iloc[tr], y[tr], categorical_feature=prep.categorical or "auto")
        booster = model.booster_
        # Raw log-odds and their exact per-feature split (TreeSHAP); the last column is the bias.
        contrib = booster.predict(X.iloc[va], pred_contrib=True)
        p_lgb = 1.0 / (1.0 + np.exp(-contrib.sum(axis=1)))
        contrib_sum += np.abs(contrib[:, :-1]).sum(axis=0)

        logit = _logistic(X, prep.categorical).fit(X.iloc[tr], y[tr])
        p_log = logit.predict_proba(X.iloc[va])[:, 1]

        lgb_auc.append(float(roc_auc_score(y[va], p_lgb)))
        log_auc.append(float(roc_auc_score(y[va], p_log)))
        oof.iloc[va, 0] = k
        oof.iloc[va, 1] = p_lgb
        oof.iloc[va, 2] = p_log
    shap = (
        pd.DataFrame({"feature": list(X.columns), "mean_abs_shap": contrib_sum / len(X)})
        .sort_values(["mean_abs_shap", "feature"], ascending=[False, True])
        .reset_index(drop=True)
    )
    shap["mean_abs_shap"] = shap["mean_abs_shap"].round(5)
    return _score(lgb_auc), _score(log_auc), shap, oof


def evaluate(
    frame: pd.DataFrame,
    *,
    file: str = "<memory>",
    folds: int = 5,
    seed: int = 0,
    include_protected: bool = False,
) -> IndividualResult:
    """Pure core of `forecast individual`: frame in, aggregate result (plus in-memory OOF) out."""
    prep = prepare(frame, file=file, include_protected=include_protected)
    lgb_score, log_score, shap, oof = cross_validate(prep, folds=folds, seed=seed)
    warnings = []
    for name, s in (("LightGBM", lgb_score), ("logistic regression", log_score)):
        if s.auc_mean > LEAKAGE_AUC:
            warnings.append(
                f"{name} ROC-AUC {s.auc_mean:.3f} is above {LEAKAGE_AUC:.2f}; published honest "
                f"results on this data are 0.79-0.82, so suspect leakage (a column that encodes "
                f"the outcome) before trusting it."
            )
    if prep.protected_included:
        warnings.append(
            f"protected attributes used as features (--include-protected): "
            f"{', '.join(prep.protected_included)}."
        )
    return IndividualResult(
        file=file,
        sha256=None,
        rows=len(prep.X),
        leavers=int(prep.y.sum()),
        folds=folds,
        seed=seed,
        features=list(prep.X.columns),
        protected_excluded=prep.protected_excluded,
        protected_included=prep.protected_included,
        dropped=prep.dropped,
        lightgbm=lgb_score,
        logistic=log_score,
        shap=shap.to_dict("records"),
        proxies=prep.proxies,
        warnings=warnings,
        oof=oof,
    )
