"""Drift between the data a model was trained on and the batch being scored.

Per feature: the population stability index (PSI) of this batch against quantile bins of the
training data, and the share of missing values then and now. Per batch: teams that did not exist
when the model was trained. A model is only as good as the resemblance of today's teams to the
ones it learnt from; this module says, in numbers, how far that resemblance has gone.

Like is compared with like: a batch is one month, so the reference is one month too, the
model's last training month (`month_reference`), not every training month pooled (long-run and
seasonal features differ from month to month by design, so a pooled reference made a model warn
about the very data it was trained on). And each feature warns only when its PSI exceeds both
0.25 and the largest PSI of the previous training year's months against that same reference:
the month-to-month movement the feature showed while the model was learning is not drift.

`month_reference(panel, features, month)` is the hook for training: it summarises the training
panel in a small frame (no team identifiers) that can be saved with the model. Pure functions:
nothing here reads or writes files or prints.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecast.features.names import FEATURE_SEP

N_BINS = 10
# Conventional PSI reading: < 0.1 stable, 0.1-0.25 some shift, > 0.25 a real shift.
PSI_WARN = 0.25
# A signal whose missing share rises by this much (absolute) probably lost a source column.
MISSING_JUMP_WARN = 0.2
# Fewer rows per bin than this and PSI measures sampling noise, not drift: a 40-team batch in
# ten bins shows PSI near 0.5 with no shift at all. Small organisations get fewer, wider bins.
MIN_ROWS_PER_BIN = 25
# Floor for empty bins: PSI is infinite otherwise, and one empty bin is not an infinite shift.
EPS = 1e-4
MISSING_BIN = -1
# Training months before the reference month whose PSI against it sets a feature's threshold.
LOOKBACK_MONTHS = 12
REFERENCE_COLUMNS = ("feature", "bin", "upper", "share")
DRIFT_COLUMNS = (
    "feature",
    "family",
    "psi",
    "missing_share_train",
    "missing_share_now",
    "mean_train",
    "mean_now",
    "drifted",
    "threshold",
)


def drift_reference(panel: pd.DataFrame, features: list[str], n_bins: int = N_BINS) -> pd.DataFrame:
    """Quantile bins of each feature in `panel` (the training rows) with their shares.

    Long form: feature, bin (0..k-1; -1 holds the missing share), upper (the bin's inclusive
    upper edge; +inf for the last bin), share (of non-missing values; of all rows for bin -1).
    """
    frames = []
    for name in features:
        values = panel[name].to_numpy(dtype=np.float64, na_value=np.nan)
        ok = values[~np.isnan(values)]
        missing = 1.0 - len(ok) / len(values) if len(values) else 0.0
        k = int(np.clip(len(ok) // MIN_ROWS_PER_BIN, 2, n_bins))
        probs = np.linspace(0, 1, k + 1)[1:-1]
        edges = np.unique(np.quantile(ok, probs)) if len(ok) else np.zeros(0)
        uppers = np.append(edges, np.inf)
        counts = np.bincount(np.searchsorted(edges, ok, side="left"), minlength=len(uppers))
        shares = counts / max(len(ok), 1)
        frames.append(
            pd.DataFrame(
                {
                    "feature": name,
                    "bin": np.arange(-1, len(uppers)),
                    "upper": np.append(np.nan, uppers),
                    "share": np.append(missing, shares),
                    "mean": float(ok.mean()) if len(ok) else np.nan,
                }
            )
        )
    if not frames:
        return pd.DataFrame({"feature": [], "bin": [], "upper": [], "share": [], "mean": []})
    return pd.concat(frames, ignore_index=True).astype(
        {
            "feature": "string",
            "bin": "int64",
            "upper": "float64",
            "share": "float64",
            "mean": "float64",
        }
    )


def month_reference(
    panel: pd.DataFrame,
    features: list[str],
    month: pd.Period | str,
    lookback: int = LOOKBACK_MONTHS,
) -> pd.DataFrame:
    """The reference for batches scored after training: `drift_reference` of `month`'s rows
    (the model's last training month), with each feature's `threshold`: the larger of
    `PSI_WARN` and the largest PSI of the `lookback` months before it against those bins."""
    month = pd.Period(month, freq="M")
    as_of = panel["as_of"]
    reference = drift_reference(panel.loc[as_of == month], features)
    earlier = [panel.loc[as_of == month - back] for back in range(1, lookback + 1)]
    earlier = [rows for rows in earlier if len(rows)]
    worst: dict[str, float] = {}
    for name, ref in reference.groupby("feature", sort=False):
        bins = ref.loc[ref["bin"] != MISSING_BIN].sort_values("bin")
        edges, shares = bins["upper"].to_numpy()[:-1], bins["share"].to_numpy()
        values = (rows[name].to_numpy(dtype=np.float64, na_value=np.nan) for rows in earlier)
        moved = [_psi_of(v[~np.isnan(v)], edges, shares) for v in values]
        worst[str(name)] = float(np.nanmax(moved)) if np.isfinite(moved).any() else PSI_WARN
    reference["threshold"] = reference["feature"].map(
        {k: max(v, PSI_WARN) for k, v in worst.items()}
    )
    return reference.astype({"threshold": "float64"})


def _psi_of(values: np.ndarray, edges: np.ndarray, shares: np.ndarray) -> float:
    """PSI of non-missing `values` against bins (`edges` between them, `shares` in them)."""
    if not len(values) or not len(shares):
        return float("nan")
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(shares))
    return psi(shares, counts / len(values))


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins."""
    e = np.clip(np.asarray(expected, float), EPS, None)
    a = np.clip(np.asarray(actual, float), EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


def feature_drift(
    panel: pd.DataFrame, reference: pd.DataFrame, families: dict[str, str] | None = None
) -> pd.DataFrame:
    """One row per feature of the reference: PSI of the batch against the training bins, missing
    shares then and now, means then and now, the PSI threshold (the reference's, else
    `PSI_WARN`) and whether it drifted (PSI above the threshold, or a missing jump).

    A feature absent from the batch is all missing now (the scorer refuses such a batch before
    it gets here; the row is kept so a report can still say so)."""
    rows = []
    families = families or {}
    for name, ref in reference.groupby("feature", sort=False):
        ref = ref.sort_values("bin")
        bins = ref[ref["bin"] != MISSING_BIN]
        missing_train = float(ref.loc[ref["bin"] == MISSING_BIN, "share"].sum())
        if name in panel.columns:
            values = panel[name].to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            values = np.full(len(panel), np.nan)
        ok = values[~np.isnan(values)]
        missing_now = 1.0 - len(ok) / len(values) if len(values) else 0.0
        value = _psi_of(ok, bins["upper"].to_numpy()[:-1], bins["share"].to_numpy())
        jump = missing_now - missing_train
        limit = float(ref["threshold"].iloc[0]) if "threshold" in ref else PSI_WARN
        limit = limit if np.isfinite(limit) else PSI_WARN
        rows.append(
            {
                "feature": str(name),
                "family": families.get(str(name), str(name).split(FEATURE_SEP)[0]),
                "psi": value,
                "missing_share_train": missing_train,
                "missing_share_now": missing_now,
                "mean_train": float(ref["mean"].iloc[0]) if "mean" in ref else np.nan,
                "mean_now": float(ok.mean()) if len(ok) else np.nan,
                "drifted": bool((value > limit) if np.isfinite(value) else False)
                or bool(jump > MISSING_JUMP_WARN),
                "threshold": limit,
            }
        )
    out = pd.DataFrame(rows, columns=list(DRIFT_COLUMNS))
    return out.astype(
        {
            "feature": "string",
            "family": "string",
            "psi": "float64",
            "missing_share_train": "float64",
            "missing_share_now": "float64",
            "mean_train": "float64",
            "mean_now": "float64",
            "drifted": "bool",
            "threshold": "float64",
        }
    )


def new_teams(
    team_ids: pd.Series, first_months: pd.Series, trained_until: pd.Period | None
) -> list[str]:
    """Teams of the batch whose first month with staff is after the model's last training month:
    the model never saw them, so their long-run features rest on the organisation's prior."""
    if trained_until is None:
        return []
    first = first_months.reindex(team_ids.astype(str).to_numpy())
    mask = first.notna().to_numpy() & (first.to_numpy() > pd.Period(trained_until, freq="M"))
    return sorted(team_ids.astype(str).to_numpy()[mask].tolist())


def summarize(drift: pd.DataFrame, n_new: int, n_teams: int, reference_source: str) -> dict:
    """The drift lines of the manifest and the console warnings of a run."""
    limit = drift.get("threshold", PSI_WARN)
    shifted = drift.loc[drift["psi"] > limit].sort_values("psi", ascending=False)
    jumps = drift.loc[drift["missing_share_now"] - drift["missing_share_train"] > MISSING_JUMP_WARN]
    finite = drift["psi"].dropna()
    return {
        "reference": reference_source,
        "features": len(drift),
        "max_psi": round(float(finite.max()), 6) if len(finite) else None,
        "psi_over_0_25": shifted["feature"].astype(str).tolist(),
        "missing_jumps": jumps["feature"].astype(str).tolist(),
        "new_teams": n_new,
        "new_team_share": round(n_new / n_teams, 6) if n_teams else 0.0,
    }


def warnings_for(summary: dict) -> list[str]:
    out = []
    if summary["psi_over_0_25"]:
        names = summary["psi_over_0_25"]
        out.append(
            f"{len(names)} feature(s) drifted from the training data (PSI > {PSI_WARN} and above "
            f"their month-to-month movement in training), e.g. {', '.join(names[:3])}; see "
            f"drift.parquet."
        )
    if summary["missing_jumps"]:
        names = summary["missing_jumps"]
        out.append(
            f"{len(names)} feature(s) are missing far more often than in training, "
            f"e.g. {', '.join(names[:3])}; a source column may be gone or suppressed."
        )
    return out


__all__ = [
    "DRIFT_COLUMNS",
    "MISSING_JUMP_WARN",
    "PSI_WARN",
    "drift_reference",
    "feature_drift",
    "month_reference",
    "new_teams",
    "psi",
    "summarize",
    "warnings_for",
]
