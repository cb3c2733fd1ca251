"""Causal what-if engine: what happens to leavers and CSAT if a team's workload or engagement
signal is held at a value from the as-of month on.

Why not re-score the predictive model: its strongest inputs are the team's own leaver history,
which past workload caused. Re-scoring with the signal changed leaves that history as it was,
so the history keeps the credit for what the workload does, and the effect looks small.

What this engine estimates (docs/what-if.md has the reasoning and the validation):

- Dose: the signal's mean over the horizon months t+1..t+h, which the intervention sets to
  VALUE. Its natural path (what it would be without intervening) is forecast from the
  signal's own history (`natural_path`): a loaded team tends to drift back, and the effect is
  the gap between VALUE and that path, not between VALUE and this month's level.
- Effect on leavers: double machine learning. Nuisance models (LightGBM, cross-fitted over
  folds of teams and averaged over three random splits, trees picked by early stopping on
  held-out teams) predict the dose and the
  share of the team leaving from the team's *state* at t (tenure mix, team size, recent
  leavers and hires, other signals' recent levels, the last survey) and from the other
  workload signals over the same horizon months (load drives after-hours and leaving alike,
  and leavers feed back into load). Long-run history (long-run leaver rates, long windows,
  trends, the signal's own past) is left out of these controls on purpose: it is a proxy of
  the signal's own past level and would absorb its effect. The final stage is a binomial
  model with a complementary log-log link (the cumulative hazard over the horizon),
  offset by the nuisance prediction: log H = log H(X) + a + theta(risk) * (dose - m(X)).
  The cumulative hazard, not the rate, is what the intervention scales, so a team most of
  whose people would leave anyway cannot save more people than it has. theta may vary with
  the team's baseline risk (shrunk to constant unless the data show it clearly). The total
  effect includes the path through engagement, since future engagement is not held fixed.
- Effect on CSAT: a partially linear model of the CSAT change on the residual dose and the
  residual leaver rate, so CSAT moves through the attrition effect (theta_leavers * change in
  rate) and through the direct effect the data show (theta_direct * dose change). Learnt from
  the signal's unforeseen moves (its own history is a control: CSAT is scored as a change, so
  a persistent level cancels out of it), with the other workload signals over the horizon as
  co-treatments (CSAT answers to the load, which the signal may only follow).
- Intervals: 80% by a team-cluster (Poisson-weight) bootstrap of the final stages; they
  cover the effect's estimation uncertainty, not the forecast's own noise.

Pure: frames in, frames out. Never reads files, never prints, never logs to MLflow.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from forecast.data.months import month_str
from forecast.data.tables import Tables, is_protected
from forecast.errors import (
    ConfigError,
    ModelError,
)
from forecast.features.grid import (
    assemble,
    headcount_grid,
    make_grid,
    make_spells,
    monthly_grid,
    panel_months,
    point_in_time,
)
from forecast.features.names import FEATURE_SEP, split_feature
from forecast.features.panel import build_panel
from forecast.features.specs import FeatureSpecs, load_specs
from forecast.features.targets import _window, build_targets
from forecast.whatif.month import WhatIfMonth, month_rows
from forecast.whatif.signals import (
    RESULT_COLUMNS,
    Forecaster,
    Settable,
    bound_result,
    csat_change_bounds,
    history_signals,
    recent_csat,
    resolve_as_of,
    settable_signals,
)
from forecast.whatif.survey import (
    MIN_WHOLE_ROWS,
    PAST_COVER,
    PAST_MEAN,
    PAST_NOISE,
    SURVEY_COVER,
    SURVEY_MEAN,
    SURVEY_NOISE,
    answer_variance,
    eiv_ls,
    window_survey,
)

if TYPE_CHECKING:
    # Imported where the engine fits: answering from a stored fit needs no LightGBM (it
    # imports scikit-learn and SciPy, over a second; issue 17).
    import lightgbm as lgb

    from forecast.whatif.engine import StoredFit

EXAMPLE_SIGNAL = "after_hours_ratio"
INTERVAL_LEVEL = 0.8
FUTURE = "future__"  # prefix of other signals' means over the horizon (concurrent controls)
# Prefix of other signals' values in each horizon month: `future_m1__<signal>` is month t+1's.
FUTURE_MONTH = "future_m"
MAX_SHARE = 0.98  # a horizon share leaving above this is treated as this (cum. hazard finite)
# Transforms that describe a team's state at t; everything else (long-run means and rates,
# vs-long-run, trends, long windows) describes its history and is not a control here.
STATE_KINDS = ("current", "last", "age_months", "change", "median")
HISTORY_FAMILIES_FOR_CSAT = ("cx",)  # the CSAT change is measured against past CSAT
NOTE = (
    "Estimated effect of holding the signal at this value from now on, learned from how "
    "leaving and CSAT moved with this signal across teams and months; 80% interval shown. "
    "It assumes nothing else that drives both the signal and leaving is missing from the "
    "data, so treat it as a guide, not a promise."
)


@dataclasses.dataclass(frozen=True)
class EngineSettings:
    """Knobs of the engine; defaults chosen on simulated organisations (benchmarks/whatif.py)."""

    folds: int = 3  # cross-fitting folds (over teams)
    # Trees of the fits without early stopping, and the step: 75 at 0.1 (issue 17) grow about
    # the ensembles 150 at 0.05 did in half the time; held out, the ratio's mean error stayed
    # 0.043, its worst 0.109 instead of 0.113 (benchmarks/whatif.py).
    trees: int = 75
    learning_rate: float = 0.1
    num_leaves: int = 15
    min_child_samples: int = 40
    bootstrap: int = 200
    seed: int = 20240611
    ridge: float = 1e-6  # keeps the final-stage Newton steps well posed
    controls: str = "state"  # "state" (default) or "all" (lets history absorb the effect)
    # Let the effect vary with the team's baseline risk: where most people would leave anyway
    # (a team in crisis), easing one load saves fewer of them.
    by_risk: bool = True
    # Adjust for the other workload signals over the same months (e.g. cases per head when
    # after-hours is held): load drives both after-hours and leaving, and leavers feed back
    # into load through understaffing within the horizon.
    concurrent: bool = True
    # Adjust for the signal's own history (its current level, windows, long-run level): the
    # effect is then learned from the signal's unforeseeable moves over the horizon only, not
    # from its persistent level, which past engagement damage and team make-up confound.
    own_controls: bool = False
    # Shrink the direct CSAT effect toward zero by its bootstrap variance. Off: on simulated
    # organisations shrinking halved the CSAT effect at small after-hours effects without
    # fixing a single wrong direction (docs/what-if.md).
    shrink_csat_direct: bool = False
    # Cross-fit the attrition stage's nuisances over this many random team splits and average
    # their out-of-fold predictions: one split's luck moved the ratio by 0.03-0.04 at 400 teams.
    repeats: int = 3
    # Widens the bootstrap spread of every coefficient around its estimate. The bootstrap of
    # the final stages alone covered the true ratio in 12 of 24 known-effect cases (seeds 1-3):
    # it misses the nuisance models' error and the engine's bias (docs/what-if.md). 1.6 is
    # the widening that covered 80% there; held-out seeds check it (benchmarks/whatif.py).
    # The error floors below add the bias that does not shrink with more teams.
    interval_scale: float = 1.6
    # Pick the nuisance models' trees by early stopping once per outcome (on the first split's
    # first fold) and grow that many in every fold and repeat, instead of once per fold. Off:
    # it saved a third of a fit's time, but on the held-out organisations the ratio's mean
    # error rose from 0.043 to 0.046 and 3 of 24 cases missed 0.10 instead of 1
    # (benchmarks/whatif.py, issue 17).
    probe_once: bool = False
    # The CSAT stage learns from the signal's unforeseen moves over the horizon (its own
    # history as a control), not from its persistent level: CSAT is scored as a change, so a
    # team's persistent load and the engagement it left behind cancel out of it, and learning
    # from the persistent level halved the CSAT effect at small effects (docs/what-if.md).
    csat_own_controls: bool = True
    # ... and adjusts for the other workload signals over the same months: CSAT answers to
    # the load itself, which after-hours follows, so without them a signal that is only a
    # proxy of the load got a CSAT effect of 0.6-0.9 points (benchmarks/whatif_variants.py).
    csat_concurrent: bool = True
    # ... as co-treatments of the final stage (their CSAT effects estimated alongside the
    # signal's, from all rows), not only as inputs of the nuisance models: CSAT's answer to
    # the load is small against CSAT's noise, so the nuisance models barely learn it, and the
    # signal, which follows the load, borrowed it (the proxy: +1.2 and +1.6 points, intervals
    # excluding zero; as co-treatments +0.4 and +1.2, intervals including zero).
    csat_cotreat: bool = True
    # Route the signal's own CSAT term through this engagement survey column (needs its
    # response counts): the signal's effect on the survey's mean over the horizon, times the
    # survey's effect on the CSAT change, that one corrected for the survey's sampling noise
    # (forecast.whatif.survey); the leavers path as before. None: the direct term above. Off:
    # on the development organisations it removed most of the load's leak (after-hours' CSAT
    # at a zero truth -0.05..+0.46 against -0.71..+1.19) but met the CSAT goal in 11 of 30
    # cases against 16 (docs/what-if.md).
    csat_survey: str | None = None
    # Adjust the attrition stage for the other workload signals in each horizon month, not only
    # their horizon means (leavers within the horizon raise the load month by month, and the
    # signal follows it). Off: the proxies' ratios barely moved (0.904 -> 0.911, 0.939 ->
    # 0.932) and each fit took 20% longer (docs/what-if.md).
    concurrent_months: bool = False
    # The CSAT stage's controls: "state" like the attrition stage, or "all" (every other
    # feature too: recent hires and leavers, the load against its long-run level). "all"
    # lowered the CSAT effect in most cases: better on the final sets, worse on the development
    # ones (16/30 -> 11/30 at 400 teams, 10/15 -> 7/15 at 1,500), so off (docs/what-if.md).
    # "state+people_flow" adds only the team's people-flow history (leavers, hires and moves
    # up to a year back, its long-run leaving rate): on the development set at 400 teams it
    # moved the CSAT effect little and the wrong way (goal 14/30 against 16/30, mean error
    # 0.58 against 0.53 points; the ratio unchanged), so off (docs/what-if.md).
    csat_controls: str = "state"
    # The engine's systematic error, which the bootstrap cannot see and which does not shrink
    # with more teams: each draw of the attrition effect gets a normal error of this sd (log
    # cumulative hazard per sd of the residual dose), and each draw of the direct CSAT effect
    # one of `csat_floor` (CSAT points per sd). Chosen on the development organisations (400
    # teams, seeds 201-202, and 1,500 teams, seed 201): the narrowest pair whose 80% intervals
    # covered at least 80% of cases at each size, with the most zero truths clean. Without
    # them, at 1,500 teams the ratio's interval covered 11 of 18 development cases and 20 of
    # 21 zero truths were clean; with them 18 of 18 and 21 of 21 (docs/what-if.md).
    effect_floor: float = 0.025
    csat_floor: float = 0.15


# --------------------------------------------------------------------------- signal checks


def _refusal(signal: str, why: str, example: str) -> ConfigError:
    return ConfigError(
        f"`--set` signal {signal} {why}; a what-if takes an actionable workload or engagement "
        f"signal (e.g. {example})."
    )


def check_what_if_signal(tables: Tables, specs: FeatureSpecs, signal: str) -> Settable:
    """The `whatif.Settable` for `signal`, or a one-line ConfigError saying why not.

    Protected attributes, tenure, past leavers and other history signals are never levers:
    a leader cannot set them, and "what if this team had not lost people" is a different
    past, not an intervention.
    """

    return check_settable(settable_signals(tables, specs), history_signals(tables, specs), signal)


def check_settable(settable: dict[str, Settable], history: dict[str, str], signal: str) -> Settable:
    """`check_what_if_signal` given the data's settable and history signals (`WhatIfMonth`
    holds them): the same answers and messages."""
    name = str(signal).strip()
    example = (
        EXAMPLE_SIGNAL
        if EXAMPLE_SIGNAL in settable
        else next(iter(sorted(settable)), EXAMPLE_SIGNAL)
    )
    base = split_feature(name)[1] if name.count(FEATURE_SEP) >= 2 else name
    if is_protected(name) or is_protected(base):
        raise _refusal(name, "is a protected attribute", example)
    if base in settable and base == name:
        return settable[base]
    if base in history or base in ("tenure", "headcount") or "leaver" in base:
        family = history.get(base, "tenure" if base in ("tenure", "headcount") else "history")
        raise _refusal(name, f"is a {family} (history) signal, not a lever", example)
    if base in settable:
        raise _refusal(name, f"is a feature column; name the signal itself ({base})", example)
    raise _refusal(name, "is not a signal in these data", example)


# --------------------------------------------------------------------------- data


def _window_mean(values: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Mean of the present values over columns j+lo..j+hi (NaN where none is present)."""

    ok = ~np.isnan(values)
    num = _window(np.where(ok, values, 0.0), lo, hi)
    den = _window(ok.astype(np.float64), lo, hi)
    out = np.full(values.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def dose_frame(
    tables: Tables,
    setting: Settable,
    horizon: int,
    survey: str | None = None,
    months: bool = False,
) -> pd.DataFrame:
    """Per (team, as_of) panel row: `dose`, the signal's mean over t+1..t+h (NaN when no value
    falls in the window or the window runs past the data), and `future__<signal>`, the same
    mean of every other workload signal; with `months`, also each of those signals' value in
    each horizon month (`future_m<k>__<signal>`). With `survey` (an engagement column with
    response counts), also that survey's mean over the horizon and its sampling-noise variance
    (forecast.whatif.survey). Rows in panel order."""

    first, last = panel_months(tables)
    grid = make_grid(tables, first, last)
    hc = headcount_grid(make_spells(tables.employees, grid), grid.shape)
    full = np.arange(grid.n_months) + horizon <= grid.n_months - 1

    def ahead(values: np.ndarray, lo: int, hi: int) -> np.ndarray:
        return np.where(full[None, :], _window_mean(values, lo, hi), np.nan)

    values, _ = monthly_grid(tables.table(setting.table), setting.column, grid)
    arrays = {"dose": ahead(values, 1, horizon)}
    if tables.workload is not None:
        for col in tables.signals.get("workload", []):
            if col != setting.column:
                values, _ = monthly_grid(tables.table("workload"), col, grid)
                arrays[f"{FUTURE}{col}"] = ahead(values, 1, horizon)
                if months:
                    for k in range(1, horizon + 1):
                        arrays[f"{FUTURE_MONTH}{k}__{col}"] = ahead(values, k, k)
    eng = tables.table("engagement")
    if survey and eng is not None and survey in eng.columns and "responses" in eng.columns:
        values, _ = monthly_grid(eng, survey, grid)
        responses, _ = monthly_grid(eng, "responses", grid)
        sigma2 = answer_variance(values, responses)
        arrays[SURVEY_MEAN], arrays[SURVEY_NOISE], arrays[SURVEY_COVER] = window_survey(
            values, responses, 1, horizon, full, sigma2
        )
        arrays[PAST_MEAN], arrays[PAST_NOISE], arrays[PAST_COVER] = window_survey(
            values, responses, -2, 0, np.ones_like(full), sigma2
        )
    return assemble(grid, hc, arrays)


def is_future(column: str) -> bool:
    """A column of the horizon's months (a concurrent control): never an input of a forecast."""
    return column.startswith(FUTURE) or re.match(rf"{FUTURE_MONTH}\d+__", column) is not None


def _transform_window(transform: str) -> int | None:
    m = re.fullmatch(r"(?:mean|sum)_(\d+)m", transform)
    return int(m.group(1)) if m else None


def control_columns(
    columns: Sequence[str],
    signal: str,
    horizon: int,
    *,
    outcome: str,
    which: str = "state",
    own: bool = False,
) -> list[str]:
    """Controls of the nuisance models: the team's state at t, never the signal's own features.

    `which="all"` keeps every other feature too (the history features that absorb the effect;
    kept for the benchmark's evidence).
    """

    out = []
    for col in columns:
        if col.count(FEATURE_SEP) < 2:
            continue
        family, sig, transform = split_feature(col)
        if sig == signal:
            if own:
                out.append(col)
            continue
        if family == "cx" and outcome != "csat":
            continue  # CSAT does not drive leaving; it would only proxy past engagement
        if (
            which == "all"
            or (which == "state+engagement" and family == "engagement")
            or (which == "state+people_flow" and family == "people_flow")
        ):
            out.append(col)
            continue
        w = _transform_window(transform)
        keep = (
            transform in STATE_KINDS
            or transform.startswith("share_lt")
            or (w is not None and w <= horizon)
            or (family in HISTORY_FAMILIES_FOR_CSAT and outcome == "csat")
        )
        if keep:
            out.append(col)
    return out


def own_history_columns(columns: Sequence[str], signal: str) -> list[str]:
    """The signal's own features (current, windows, long-run, trend): its natural path's inputs."""

    return [c for c in columns if c.count(FEATURE_SEP) >= 2 and split_feature(c)[1] == signal]


# --------------------------------------------------------------------------- model pieces


def team_folds(team_ids: pd.Series, k: int, seed: int) -> np.ndarray:
    """Fold of each row, by team (a team's months never straddle a fit and its prediction)."""
    teams, codes = np.unique(team_ids.astype(str).to_numpy(), return_inverse=True)
    perm = np.random.default_rng(seed).permutation(len(teams))
    return (perm % k)[codes]


def _lgb(objective: str, s: EngineSettings) -> dict[str, Any]:
    return {
        "objective": objective,
        "learning_rate": s.learning_rate,
        "num_leaves": s.num_leaves,
        "min_data_in_leaf": s.min_child_samples,
        "lambda_l2": 1.0,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "seed": s.seed,
        "num_threads": 1,
        "deterministic": True,
        "force_row_wise": True,  # the same trees as column-wise, faster (models.config)
        "verbosity": -1,
    }


def _binned(
    objective: str, X: pd.DataFrame, y: np.ndarray, w: np.ndarray | None, s: EngineSettings
) -> lgb.Dataset:
    """The rows binned once; each fold's fit and early-stopping split takes a subset (binning
    costs ten times a subset, and one signal's fit made over sixty of them). Bins are
    quantiles of the controls only, never of an outcome."""
    import lightgbm as lgb

    return lgb.Dataset(X, label=y, weight=w, params=_lgb(objective, s), free_raw_data=True)


def _rows(data: lgb.Dataset, rows: np.ndarray) -> lgb.Dataset:
    return data.construct().subset(rows.astype(np.int32))


def _fit(
    objective: str,
    X: pd.DataFrame,
    y: np.ndarray,
    w: np.ndarray | None,
    s: EngineSettings,
    groups: np.ndarray | None = None,
) -> lgb.Booster:
    """LightGBM on all these rows: `s.trees` trees without `groups`, else as many as early
    stopping on a fifth of the teams held out picks (`_probe_rounds`)."""
    import lightgbm as lgb

    data = _binned(objective, X, y, w, s)
    everything = np.arange(len(y))
    rounds = s.trees if groups is None or s.trees < 10 else None
    if rounds is None:
        rounds = _probe_rounds(objective, data, everything, groups, s)
    return lgb.train(_lgb(objective, s), _rows(data, everything), num_boost_round=rounds)


def _probe_rounds(
    objective: str, data: lgb.Dataset, rows: np.ndarray, groups: np.ndarray, s: EngineSettings
) -> int:
    """Trees picked by early stopping on a fifth of the teams of `rows` held out: nuisance
    models that under- or over-fit leave their error in the residuals the effect is read
    from."""
    import lightgbm as lgb

    valid = team_folds(pd.Series(groups), 5, s.seed + 7) == 0
    probe = lgb.train(
        _lgb(objective, s),
        _rows(data, rows[~valid]),
        num_boost_round=s.trees * 4,
        valid_sets=[_rows(data, rows[valid])],
        callbacks=[lgb.early_stopping(20, verbose=False)],
    )
    return max(int(probe.best_iteration or s.trees), 10)


def cross_fit(
    objective: str,
    X: pd.DataFrame,
    y: np.ndarray,
    w: np.ndarray | None,
    folds: np.ndarray,
    s: EngineSettings,
    groups: np.ndarray | None = None,
    *,
    data: lgb.Dataset | None = None,
    rounds: int | None = None,
) -> tuple[np.ndarray, list[lgb.Booster], int]:
    """Out-of-fold predictions (raw score), the fold models (to predict new rows) and the
    number of trees they grew.

    Trees: `rounds` when given; else `s.trees` without `groups`; else early stopping on held-
    out teams picks them, for every fold (on the first fold only with `s.probe_once`).
    `data`: the rows already binned (`_binned`), to share across calls."""
    import lightgbm as lgb

    data = _binned(objective, X, y, w, s) if data is None else data
    out = np.full(len(y), np.nan)
    models = []
    fixed = rounds if rounds is not None else (s.trees if groups is None or s.trees < 10 else None)
    for k in range(s.folds):
        fit = folds != k
        rows = np.flatnonzero(fit)
        n = fixed
        if n is None:
            n = _probe_rounds(objective, data, rows, groups[fit], s)
            if s.probe_once:
                fixed = n
        model = lgb.train(_lgb(objective, s), _rows(data, rows), num_boost_round=n)
        out[~fit] = model.predict(X[~fit], raw_score=True)
        models.append(model)
        rounds = n
    return out, models, int(rounds if rounds is not None else s.trees)


def _repeated_nuisances(
    X: pd.DataFrame,
    dose: np.ndarray,
    rate: np.ndarray,
    hc: np.ndarray,
    team_ids: pd.Series,
    folds: np.ndarray,
    s: EngineSettings,
    teams: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold dose (m) and log leaver rate (log l) averaged over `s.repeats` team splits.

    Every prediction still comes from models that never saw the row's team, so the average is
    out-of-fold too; it only removes the luck of one split."""
    m_sum, l_sum = np.zeros(len(dose)), np.zeros(len(dose))
    dose_data = _binned("regression", X, dose, None, s)
    rate_data = _binned("poisson", X, rate, hc, s)
    m_rounds = l_rounds = None  # with `s.probe_once`, the first split's trees serve them all
    for r in range(max(1, s.repeats)):
        split = folds if r == 0 else team_folds(team_ids, s.folds, s.seed + 101 * r)
        m_hat, _, m_n = cross_fit(
            "regression", X, dose, None, split, s, teams, data=dose_data, rounds=m_rounds
        )
        log_l, _, l_n = cross_fit(
            "poisson", X, rate, hc, split, s, teams, data=rate_data, rounds=l_rounds
        )
        if s.probe_once:
            m_rounds, l_rounds = m_n, l_n
        m_sum += m_hat
        l_sum += np.exp(log_l)
    n = max(1, s.repeats)
    return m_sum / n, np.log(l_sum / n)


def cloglog_final(
    y: np.ndarray,
    n: np.ndarray,
    offset: np.ndarray,
    Z: np.ndarray,
    w: np.ndarray,
    ridge: float = 1e-6,
    iters: int = 25,
    start: np.ndarray | None = None,
) -> np.ndarray:
    """Coefficients b of y ~ Binomial(n, 1 - exp(-exp(offset + Z b))), weighted (Fisher scoring),
    from `start` (default zeros; a bootstrap starts from the point estimate, two or three steps
    away instead of ten).

    The complementary log-log link models the cumulative hazard over the horizon: a team can
    lose at most everyone, so when most of a team would leave anyway, a lower hazard saves
    fewer people than a rate model would claim.
    """
    b = np.zeros(Z.shape[1]) if start is None else np.array(start, dtype=np.float64)
    for _ in range(iters):
        mu = np.exp(np.clip(offset + Z @ b, -30, 5))
        p = np.clip(-np.expm1(-mu), 1e-12, 1 - 1e-12)
        dp = mu * np.exp(-mu)  # dp / d eta
        score = w * (y - n * p) * dp / (p * (1 - p))
        info = w * n * dp**2 / (p * (1 - p))
        grad = Z.T @ score - ridge * b
        hess = (Z * info[:, None]).T @ Z + ridge * np.eye(len(b))
        step = np.linalg.solve(hess, grad)
        b = b + step
        if np.max(np.abs(step)) < 1e-8:
            break
    return b


def cum_hazard(rate: np.ndarray) -> np.ndarray:
    """Cumulative hazard over the horizon of a share leaving (capped below 1)."""
    return -np.log1p(-np.clip(rate, 0.0, MAX_SHARE))


def shift_rate(rate: np.ndarray, log_ratio: np.ndarray) -> np.ndarray:
    """The share leaving when the cumulative hazard is multiplied by exp(log_ratio)."""
    # Clipped: a huge log ratio (an extreme VALUE) means "everyone" or "no one", not overflow.
    return -np.expm1(-cum_hazard(rate) * np.exp(np.clip(log_ratio, -30.0, 30.0)))


def weighted_ls(y: np.ndarray, Z: np.ndarray, w: np.ndarray, ridge: float = 1e-6) -> np.ndarray:
    A = (Z * w[:, None]).T @ Z + ridge * np.eye(Z.shape[1])
    return np.linalg.solve(A, (Z * w[:, None]).T @ y)


def natural_path_model(
    X: pd.DataFrame, dose: np.ndarray, ridge: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ridge regression of the dose on the signal's own history (linear, so it extrapolates
    to the most loaded teams instead of flattening like a tree). Returns (coef, mean, scale)."""
    A = X.to_numpy(dtype=np.float64)
    mean = np.nanmean(A, axis=0)
    mean = np.where(np.isnan(mean), 0.0, mean)
    scale = np.nanstd(A, axis=0)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    Z = _design(A, mean, scale)
    reg = ridge * np.eye(Z.shape[1])
    reg[0, 0] = 0.0
    coef = np.linalg.solve(Z.T @ Z + reg, Z.T @ dose)
    return coef, mean, scale


def _design(A: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    # Missing history (a new team, a suppressed survey) sits at the mean, with a flag.
    miss = np.isnan(A)
    filled = (np.where(miss, mean, A) - mean) / scale
    return np.column_stack([np.ones(len(A)), filled, miss.astype(np.float64)])


def predict_natural(
    model: tuple[np.ndarray, np.ndarray, np.ndarray], X: pd.DataFrame
) -> np.ndarray:
    coef, mean, scale = model
    return _design(X.to_numpy(dtype=np.float64), mean, scale) @ coef


# --------------------------------------------------------------------------- the fit


@dataclasses.dataclass
class EffectFit:
    """A fitted effect of one signal on one organisation (as of one month)."""

    signal: str
    horizon: int
    theta: float  # log per-head leaver rate per unit of the held signal
    theta_csat_direct: float  # CSAT points per unit of the signal, leavers held
    theta_csat_leavers: float  # CSAT points per unit of per-head leaver rate over the horizon
    boot: np.ndarray  # bootstrap draws: theta, theta_csat_direct, theta_csat_leavers, theta_risk
    theta_risk: float  # change of theta per sd of the team's log baseline cumulative hazard
    risk_scale: tuple[float, float, float, float]  # mean, sd, low and high of that log hazard
    controls: list[str]
    csat_controls: list[str]
    own: list[str]
    natural: tuple[np.ndarray, np.ndarray, np.ndarray]
    # Forecasts without the pair (no future inputs): used when `estimate` gets no pair.
    baseline_rate: lgb.Booster
    baseline_features: list[str]
    baseline_csat: lgb.Booster | None
    baseline_csat_features: list[str]
    n_rows: int
    dose_sd: float  # spread of the residual dose: the variation the effect is learned from
    dose_range: tuple[float, float]

    def metrics(self) -> dict[str, float]:
        lo, hi = np.quantile(self.boot[:, 0], [0.1, 0.9])
        return {
            "theta": self.theta,
            "theta_p10": float(lo),
            "theta_p90": float(hi),
            "theta_risk": self.theta_risk,
            "theta_csat_direct": self.theta_csat_direct,
            "theta_csat_leavers": self.theta_csat_leavers,
            "rows": float(self.n_rows),
            "residual_dose_sd": self.dose_sd,
        }


def _labelled_rows(frame: pd.DataFrame) -> pd.DataFrame:
    ok = frame["labelled"].fillna(False).astype(bool) & frame["dose"].notna()
    ok &= frame["leavers"].notna() & (frame["headcount"] >= 1)
    return frame.loc[ok.to_numpy()].reset_index(drop=True)


def fit_effect(
    frame: pd.DataFrame, signal: str, horizon: int, settings: EngineSettings | None = None
) -> EffectFit:
    """Fit the engine on panel rows joined with targets and the dose (`effect_frame`)."""
    s = settings or EngineSettings()
    rows = _labelled_rows(frame)
    if len(rows) < 200 or rows["team_id"].nunique() < 3 * s.folds:
        raise ModelError(
            f"too little history to estimate the effect of {signal}: {len(rows)} team-months "
            f"with a known {horizon}-month outcome and a value of the signal (need 200)."
        )
    controls = control_columns(
        list(frame.columns),
        signal,
        horizon,
        outcome="attrition",
        which=s.controls,
        own=s.own_controls,
    )
    csat_controls = control_columns(
        list(frame.columns), signal, horizon, outcome="csat", which=s.csat_controls
    )
    extra = [c for c in frame.columns if c.startswith(FUTURE)]
    monthly = [c for c in frame.columns if is_future(c) and not c.startswith(FUTURE)]
    monthly = monthly if s.concurrent_months else []  # a frame may hold them for another fit
    if s.concurrent:
        controls = controls + extra + monthly
    own = own_history_columns(list(frame.columns), signal)
    stage_controls = (
        csat_controls + (own if s.csat_own_controls else []) + (extra if s.csat_concurrent else [])
    )
    folds = team_folds(rows["team_id"], s.folds, s.seed)
    hc = rows["headcount"].to_numpy(np.float64)
    rate = rows["leavers"].to_numpy(np.float64) / hc
    dose = rows["dose"].to_numpy(np.float64)

    X = rows[controls].astype(np.float64)
    teams = rows["team_id"].astype(str).to_numpy()
    m_hat, log_l = _repeated_nuisances(X, dose, rate, hc, rows["team_id"], folds, s, teams)
    resid = dose - m_hat
    risk = np.log(cum_hazard(np.exp(log_l)))
    lo, hi = np.quantile(risk, [0.01, 0.99])
    risk_scale = (float(np.mean(risk)), float(np.std(risk)) or 1.0, float(lo), float(hi))
    zr = _risk_z(risk, risk_scale) if s.by_risk else None
    theta, theta_risk = _theta(rows, hc, log_l, resid, s, zr)

    csat = _csat_stage(rows, stage_controls, dose, rate, log_l, folds, s, hc)
    boot = _bootstrap(rows, hc, log_l, resid, csat, s, zr)
    natural = (
        natural_path_model(rows[own].astype(np.float64), dose)
        if own
        else (np.array([float(np.mean(dose))]), np.zeros(0), np.ones(0))
    )
    direct = (
        shrink(float(csat["coef"][0]), boot[:, 1])
        if s.shrink_csat_direct
        else float(csat["coef"][0])
    )
    raw_risk, theta_risk = theta_risk, shrink(theta_risk, boot[:, 3])
    # The draws describe the shrunk estimator too, so each interval sits around its point.
    boot[:, 3] *= theta_risk / raw_risk if raw_risk else 0.0
    point = np.array([theta, direct, csat["coef"][1], theta_risk])
    boot = point + s.interval_scale * (boot - point)
    dose_sd = float(np.std(resid))
    boot = with_error_floor(boot, dose_sd, s, csat_fitted=csat["Y"].size > 0)
    return EffectFit(
        signal=signal,
        horizon=horizon,
        theta=theta,
        theta_risk=theta_risk,
        risk_scale=risk_scale,
        theta_csat_direct=direct,
        theta_csat_leavers=csat["coef"][1],
        boot=boot,
        controls=controls,
        csat_controls=stage_controls,
        own=own,
        natural=natural,
        **_baselines(rows, controls, csat_controls, hc, rate, csat["rows"], s),
        n_rows=len(rows),
        dose_sd=dose_sd,
        dose_range=(float(np.min(dose)), float(np.max(dose))),
    )


def with_error_floor(
    boot: np.ndarray, dose_sd: float, s: EngineSettings, *, csat_fitted: bool = True
) -> np.ndarray:
    """The draws with the engine's systematic error added (`EngineSettings.effect_floor`,
    `csat_floor`): one independent normal draw per bootstrap draw, seeded, scaled to the
    residual dose's spread so that the floor is per standard deviation of the signal's
    unforeseen variation whatever the signal's unit. It is shared by every team of a what-if,
    as a bias would be. Without a CSAT stage (too few CSAT rows) the direct CSAT effect is no
    estimate but a zero, and gets no error."""
    if not (s.effect_floor or s.csat_floor) or not dose_sd > 0:
        return boot
    # A stream of its own: the bootstrap's weights come from seed + 1, team splits from seed.
    z = np.random.default_rng([s.seed, 2]).standard_normal((len(boot), 2))
    out = boot.copy()
    out[:, 0] += z[:, 0] * s.effect_floor / dose_sd
    if csat_fitted:
        out[:, 1] += z[:, 1] * s.csat_floor / dose_sd
    return out


def _risk_z(risk: np.ndarray, scale: tuple[float, float, float, float]) -> np.ndarray:
    mean, sd, lo, hi = scale
    # Clipped to the range seen in training: no extrapolating the variation of the effect.
    return (np.clip(risk, lo, hi) - mean) / sd


def _final_design(
    rows: pd.DataFrame,
    hc: np.ndarray,
    log_l: np.ndarray,
    resid: np.ndarray,
    zr: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(leavers, design, offset) of the final stage: leavers out of headcount; log l(X)
    carries the team's state (as a cumulative hazard), so theta only has to explain what the
    dose adds to it."""
    y = np.minimum(rows["leavers"].to_numpy(np.float64), hc)
    cols = [np.ones(len(y)), resid] + ([resid * zr] if zr is not None else [])
    return y, np.column_stack(cols), np.log(cum_hazard(np.exp(log_l)))


def _theta(
    rows: pd.DataFrame,
    hc: np.ndarray,
    log_l: np.ndarray,
    resid: np.ndarray,
    s: EngineSettings,
    zr: np.ndarray | None,
    w: np.ndarray | None = None,
) -> tuple[float, float]:
    y, Z, offset = _final_design(rows, hc, log_l, resid, zr)
    b = cloglog_final(y, hc, offset, Z, np.ones(len(y)) if w is None else w, s.ridge)
    return float(b[1]), float(b[2]) if zr is not None else 0.0


def _csat_stage(
    rows: pd.DataFrame,
    controls: list[str],
    dose: np.ndarray,
    rate: np.ndarray,
    log_l: np.ndarray,
    folds: np.ndarray,
    s: EngineSettings,
    hc: np.ndarray,
) -> dict[str, Any]:
    """Partially linear CSAT model with two residualised treatments: the dose, and the
    per-head leaver rate (so the CSAT effect can flow through the attrition effect, team by
    team: a team in crisis saves fewer people, and so less CSAT). Both are residualised on
    the CSAT stage's own controls; the attrition stage's prediction `log_l` serves when
    those are the attrition stage's state controls (issue 17's engine)."""
    w_all = rows["csat_weight"].fillna(1.0).to_numpy(np.float64)
    ok = rows["csat_change"].notna().to_numpy() & (w_all > 0)
    if ok.sum() < 100:
        return {
            "coef": np.zeros(2),
            "rows": ok,
            "Y": np.zeros(0),
            "D": np.zeros((0, 2)),
            "w": np.zeros(0),
        }
    co = [c for c in controls if c.startswith(FUTURE)] if s.csat_cotreat else []
    X = rows.loc[ok, [c for c in controls if c not in co]].astype(np.float64)
    X = X.reset_index(drop=True)
    y = rows.loc[ok, "csat_change"].to_numpy(np.float64)
    w = w_all[ok]
    c_hat, _, _ = cross_fit("regression", X, y, w, folds[ok], s)
    m_hat, _, _ = cross_fit("regression", X, dose[ok], None, folds[ok], s)
    if s.csat_own_controls or s.csat_concurrent:
        l_hat, _, _ = cross_fit("poisson", X, rate[ok], hc[ok], folds[ok], s)
    else:
        l_hat = log_l[ok]
    cols = [dose[ok] - m_hat, rate[ok] - np.exp(l_hat)]
    for c in co:
        v = rows.loc[ok, c].to_numpy(np.float64)
        filled = np.where(np.isnan(v), np.nanmean(v) if np.isfinite(v).any() else 0.0, v)
        v_hat, _, _ = cross_fit("regression", X, filled, None, folds[ok], s)
        cols.append(filled - v_hat)
    D = np.column_stack(cols)
    Y = y - c_hat
    out = {"rows": ok, "Y": Y, "D": D, "w": w}
    if s.csat_survey and SURVEY_MEAN in rows.columns:
        out.update(_survey_stage(rows.loc[ok].reset_index(drop=True), X, folds[ok], s))
    out["coef"] = _csat_coef(out, np.ones(len(Y)), s.ridge)
    return out


def _survey_stage(
    part: pd.DataFrame, X: pd.DataFrame, folds: np.ndarray, s: EngineSettings
) -> dict[str, Any]:
    """The survey over the horizon, residualised on the CSAT stage's controls (rows of the CSAT
    stage with a reading in the horizon and in the past window), twice: its mean (`S`, the
    signal's effect on it), and its change against the past window (`C`, CSAT's dependence on
    it), the latter without the survey's own past readings among the controls: CSAT is scored
    as a change, and a noisy past reading as a control leaves part of the past engagement in
    both, which dilutes CSAT's dependence on the change."""
    f = part[SURVEY_MEAN].to_numpy(np.float64)
    p = part[PAST_MEAN].to_numpy(np.float64)
    nf = part[SURVEY_NOISE].to_numpy(np.float64)
    np_ = part[PAST_NOISE].to_numpy(np.float64)
    sv = np.isfinite(f) & np.isfinite(p) & np.isfinite(nf) & np.isfinite(np_)
    if sv.sum() < 100:
        return {}
    s_hat, _, _ = cross_fit("regression", X.loc[sv], f[sv], None, folds[sv], s)
    mine = [c for c in X.columns if split_feature(c)[1] == s.csat_survey]
    Xc = X.loc[sv].drop(columns=mine)
    c_hat, _, _ = cross_fit("regression", Xc, f[sv] - p[sv], None, folds[sv], s)
    whole = (part[SURVEY_COVER].to_numpy() == 1) & (part[PAST_COVER].to_numpy() == 1)
    whole = whole[sv] if whole[sv].sum() >= MIN_WHOLE_ROWS else np.ones(sv.sum(), dtype=bool)
    return {
        "sv": sv,
        "S": f[sv] - s_hat,
        "C": f[sv] - p[sv] - c_hat,
        "noise": nf[sv] + np_[sv],
        "whole": whole,
    }


def _csat_coef(csat: dict[str, Any], w: np.ndarray, ridge: float) -> np.ndarray:
    """(the signal's own CSAT term per unit, CSAT per unit of leaver rate) under row weights
    `w` of the CSAT rows. Through the survey (`S` present): the signal's effect on the survey
    (its residual on the dose's and the co-treatments') times the survey's noise-corrected
    effect on the CSAT change (alongside the leaver rate and the co-treatments)."""
    if "S" not in csat:
        return weighted_ls(csat["Y"], csat["D"], csat["w"] * w, ridge)[:2]
    sv, D = csat["sv"], csat["D"][csat["sv"]]
    a = weighted_ls(csat["S"], np.delete(D, 1, axis=1), w[sv], ridge)[0]
    k = csat["whole"]
    Db = np.column_stack([csat["C"], D[:, 1:]])[k]
    wb = (csat["w"][sv] * w[sv])[k]
    b = eiv_ls(csat["Y"][sv][k], Db, wb, csat["noise"][k], 0, ridge)
    return np.array([a * b[0], b[1]])


def shrink(estimate: float, draws: np.ndarray) -> float:
    """Positive-part James-Stein shrinkage toward zero by the bootstrap variance: CSAT is a
    noisy outcome, and a direct effect the data barely show should not flip the sign the
    attrition path gives."""
    var = float(np.var(draws)) if len(draws) > 1 else 0.0
    if estimate == 0.0:
        return 0.0
    return estimate * max(0.0, 1.0 - var / estimate**2)


def _baselines(
    rows: pd.DataFrame,
    controls: list[str],
    csat_controls: list[str],
    hc: np.ndarray,
    rate: np.ndarray,
    csat_ok: np.ndarray,
    s: EngineSettings,
) -> dict[str, Any]:
    """Forecasts of the engine's own, from the state at t only (no future inputs)."""
    feats = [c for c in controls if not is_future(c)]
    cfeats = [c for c in csat_controls if not is_future(c)]
    rate_model = _fit("poisson", rows[feats].astype(np.float64), rate, hc, s)
    csat_model = None
    if csat_ok.sum() >= 100:
        part = rows.loc[csat_ok]
        csat_model = _fit(
            "regression",
            part[cfeats].astype(np.float64),
            part["csat_change"].to_numpy(np.float64),
            part["csat_weight"].fillna(1.0).to_numpy(np.float64),
            s,
        )
    return {
        "baseline_rate": rate_model,
        "baseline_features": feats,
        "baseline_csat": csat_model,
        "baseline_csat_features": cfeats,
    }


def _bootstrap(
    rows: pd.DataFrame,
    hc: np.ndarray,
    log_l: np.ndarray,
    resid: np.ndarray,
    csat: dict[str, Any],
    s: EngineSettings,
    zr: np.ndarray | None,
) -> np.ndarray:
    """Final-stage estimates under Poisson(1) weights per team (a cluster bootstrap: a team's
    months move together, since they share the team's unobserved make-up)."""
    rng = np.random.default_rng(s.seed + 1)
    teams, codes = np.unique(rows["team_id"].astype(str).to_numpy(), return_inverse=True)
    out = np.zeros((s.bootstrap, 4))
    csat_codes = codes[csat["rows"]]
    y, Z, offset = _final_design(rows, hc, log_l, resid, zr)
    point = cloglog_final(y, hc, offset, Z, np.ones(len(y)), s.ridge)
    for b in range(s.bootstrap):
        tw = rng.poisson(1.0, len(teams)).astype(np.float64)
        coef = cloglog_final(y, hc, offset, Z, tw[codes], s.ridge, start=point)
        out[b, 0], out[b, 3] = coef[1], coef[2] if zr is not None else 0.0
        if len(csat["Y"]):
            out[b, 1:3] = _csat_coef(csat, tw[csat_codes], s.ridge)
    return out


# --------------------------------------------------------------------------- estimates


def effect_frame(
    tables: Tables,
    specs: FeatureSpecs,
    setting: Settable,
    horizon: int,
    survey: str | None = None,
    months: bool = False,
) -> pd.DataFrame:
    """Panel + targets + dose, one row per (team, as_of); `survey` and `months` as in
    `dose_frame`."""

    panel = build_panel(tables, specs)
    targets = build_targets(tables, horizon)
    dose = dose_frame(tables, setting, horizon, survey, months)
    cols = ["leavers", "csat_change", "csat_weight", "labelled"]
    frame = panel.merge(
        targets[["team_id", "as_of", *cols]],
        on=["team_id", "as_of"],
        how="left",
        validate="one_to_one",
    )
    survey_columns = (SURVEY_MEAN, SURVEY_NOISE, SURVEY_COVER, PAST_MEAN, PAST_NOISE, PAST_COVER)
    keep = ["team_id", "as_of", "dose"]
    keep += [c for c in dose.columns if is_future(c) or c in survey_columns]
    return frame.merge(dose[keep], on=["team_id", "as_of"], how="left", validate="one_to_one")


def team_effects(
    fit: EffectFit,
    rows: pd.DataFrame,
    value: float,
    before_leavers: np.ndarray | None = None,
    before_csat: np.ndarray | None = None,
    csat_level: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per team (rows = panel rows at the as-of month): before and after with 80% intervals.

    `before_*` default to the engine's own nuisance predictions (used when no pair is given).
    `csat_level`: each team's recent CSAT level (signals.recent_csat; NaN or None: unknown).
    Every draw is kept on the scales (the shifted share leaving in [0, 1], recent CSAT level +
    change in 0..100) before the point, the intervals and the effects are read off it, so they
    agree.
    """
    hc = rows["headcount"].to_numpy(np.float64)
    c_lo, c_hi = csat_change_bounds(
        np.full(len(rows), np.nan) if csat_level is None else csat_level
    )
    natural = (
        predict_natural(fit.natural, rows[fit.own].astype(np.float64))
        if fit.own
        else (np.full(len(rows), fit.natural[0][0]))
    )
    gap = float(value) - natural
    if before_leavers is None:
        X = rows[fit.baseline_features].astype(np.float64)
        before_leavers = hc * np.exp(fit.baseline_rate.predict(X, raw_score=True))
    # Before and after on one scale, [0, headcount], as the CSAT change is kept within 0..100.
    before_leavers = np.clip(np.asarray(before_leavers, dtype=np.float64), 0.0, hc)
    if before_csat is None:
        before_csat = np.full(len(rows), np.nan)
        if fit.baseline_csat is not None:
            Xc = rows[fit.baseline_csat_features].astype(np.float64)
            before_csat = fit.baseline_csat.predict(Xc, raw_score=True)
    draws = np.vstack(
        [[fit.theta, fit.theta_csat_direct, fit.theta_csat_leavers, fit.theta_risk], fit.boot]
    )
    rate = before_leavers / hc
    z = _risk_z(np.log(cum_hazard(rate)), fit.risk_scale)
    # A team's effect never changes sign against the organisation's (risk only scales it).
    theta = draws[:, :1] + np.outer(draws[:, 3], z)
    theta = np.where(theta * draws[:, :1] > 0, theta, 0.0)
    shifted = np.clip(
        shift_rate(rate[None, :], theta * gap[None, :]) * hc[None, :], 0.0, hc[None, :]
    )
    # The effect is the shifted share against the unshifted one on the same scale: a forecast
    # of more leavers than MAX_SHARE of the team (backfills leave too) is capped there by the
    # hazard scale, and that cap is no effect of the signal.
    step = shifted - np.minimum(rate, MAX_SHARE)[None, :] * hc[None, :]
    # After stays on the headcount scale too, and the effect is what is left of the step there,
    # so the effect, the ratio and the CSAT via leavers agree with the after shown.
    after_l = np.clip(before_leavers[None, :] + step, 0.0, hc[None, :])
    d_leavers = after_l - before_leavers[None, :]
    ratio = after_l / np.maximum(before_leavers[None, :], 1e-12)
    d_rate = d_leavers / hc[None, :]
    before_csat = np.clip(np.asarray(before_csat, dtype=np.float64), c_lo, c_hi)
    d_csat = np.outer(draws[:, 1], gap) + draws[:, 2:3] * d_rate
    after_c = np.clip(before_csat[None, :] + d_csat, c_lo, c_hi)
    # The effect is what is left of it on the scale; with no CSAT forecast, as if it were 0.
    d_csat = np.where(
        np.isnan(before_csat)[None, :], np.clip(d_csat, c_lo, c_hi), after_c - before_csat[None, :]
    )
    lo, hi = (1 - INTERVAL_LEVEL) / 2, 1 - (1 - INTERVAL_LEVEL) / 2
    # Where no CSAT forecast exists (no recent CX), the CSAT effect alone is still shown.
    return pd.DataFrame(
        {
            "team_id": rows["team_id"].astype(str).to_numpy(),
            "headcount": hc,
            "natural_value": natural,
            "before_expected_leavers": before_leavers,
            "after_expected_leavers": after_l[0],
            "after_leavers_p10": np.quantile(after_l[1:], lo, axis=0),
            "after_leavers_p90": np.quantile(after_l[1:], hi, axis=0),
            "leavers_ratio": ratio[0],
            "before_csat_change": before_csat,
            "after_csat_change": after_c[0],
            "after_csat_change_p10": np.quantile(after_c[1:], lo, axis=0),
            "after_csat_change_p90": np.quantile(after_c[1:], hi, axis=0),
            "leavers_effect": d_leavers[0],
            "leavers_effect_p10": np.quantile(d_leavers[1:], lo, axis=0),
            "leavers_effect_p90": np.quantile(d_leavers[1:], hi, axis=0),
            "csat_effect": d_csat[0],
            "csat_effect_p10": np.quantile(d_csat[1:], lo, axis=0),
            "csat_effect_p90": np.quantile(d_csat[1:], hi, axis=0),
            "csat_effect_via_leavers": fit.theta_csat_leavers * d_rate[0],
        }
    )


log = logging.getLogger("forecast")


@dataclasses.dataclass
class CausalEngine:
    """`WhatIfEngine` of forecast.whatif: same `estimate` interface as `RescoringEngine`.

    Fits are cached per (tables, signal, as-of), so the report's several calls for one signal
    fit once. `stored` holds fits made ahead of time (by `forecast train`, saved with the pair:
    forecast.effects_store), by signal: one is used instead of fitting when the what-if has its
    horizon and is as of its month or later (never earlier: a fit from later data would leak
    into a what-if about an earlier month), and was made with the same settings and specs.
    """

    specs: FeatureSpecs = None
    settings: EngineSettings = dataclasses.field(default_factory=EngineSettings)
    horizon: int | None = None  # default: the pair's horizon, else 3
    name: str = "causal-dml"
    note: str = NOTE
    stored: dict[str, StoredFit] = dataclasses.field(default_factory=dict, repr=False)
    _cache: dict[tuple, tuple[EffectFit, pd.DataFrame]] = dataclasses.field(
        default_factory=dict, repr=False
    )
    _panels: dict[tuple, pd.DataFrame] = dataclasses.field(default_factory=dict, repr=False)

    def _specs(self) -> FeatureSpecs:
        if self.specs is None:
            self.specs = load_specs()
        return self.specs

    def fit(
        self,
        tables: Tables,
        signal: str,
        as_of: pd.Period | str | None = None,
        horizon: int | None = None,
    ) -> tuple[EffectFit, pd.DataFrame, pd.Period]:
        """The fitted effect and the effect frame, from the data known at the end of as-of.

        With a usable stored fit nothing is fitted, and the frame holds only the as-of month's
        panel rows (all `estimate` reads)."""

        specs = self._specs()
        setting = check_what_if_signal(tables, specs, signal)
        month = resolve_as_of(tables, as_of)
        h = int(horizon or self.horizon or 3)
        key = (id(tables), setting.signal, str(month), h)
        if key not in self._cache:
            stored = self._stored_fit(setting.signal, month, h)
            if stored is not None:
                self._cache[key] = (stored.fit, self._month_rows(tables, month))
            else:
                frame = effect_frame(
                    point_in_time(tables, month),
                    specs,
                    setting,
                    h,
                    self.settings.csat_survey,
                    self.settings.concurrent_months,
                )
                self._cache[key] = (fit_effect(frame, setting.signal, h, self.settings), frame)
        fit, frame = self._cache[key]
        return fit, frame, month

    def seed_month(self, tables: Tables, view: WhatIfMonth) -> None:
        """Use the month rows `view` holds (read from these tables) instead of building them:
        `forecast score` builds them once for the report's what-ifs and the what-if cache."""
        self._panels[(id(tables), str(view.month))] = view.rows

    def _month_rows(self, tables: Tables, month: pd.Period) -> pd.DataFrame:
        """The as-of month's panel rows, from the data known at its end: built once per month
        and shared by every signal answered by a stored fit (the report asks for several; a
        panel per signal was most of its what-if time)."""
        key = (id(tables), str(month))
        if key not in self._panels:
            self._panels[key] = month_rows(tables, self._specs(), month)
        return self._panels[key]

    def _stored_fit(
        self, signal: str, month: pd.Period, horizon: int, *, say: bool = True
    ) -> StoredFit | None:
        """The stored fit of `signal` when it may answer a what-if as of `month`, else None
        (`say`: log which, and why not)."""
        stored = self.stored.get(signal)
        if stored is None:
            return None
        why = stored.refusal(month, horizon, self.settings, self._specs().hash())
        if not say:
            return stored if why is None else None
        if why is not None:
            log.info(
                "what-if for %s: refitting the engine, the fit stored with the pair "
                "cannot be used (%s).",
                signal,
                why,
            )
            return None
        log.debug(
            "what-if for %s as of %s: using the fit stored with the pair (as of %s).",
            signal,
            month_str(month),
            stored.as_of,
        )
        return stored

    def estimate(
        self,
        tables: Tables,
        pair: Forecaster | None,
        teams: list[str],
        signal: str,
        value: float,
        as_of: pd.Period | str | None = None,
    ) -> pd.DataFrame:
        fit, frame, month = self.fit(tables, signal, as_of, self._horizon(pair))
        return self._answer(
            fit, frame, month, pair, teams, value, lambda t: recent_csat(tables, t, month)
        )

    def estimate_at(
        self,
        view: WhatIfMonth,
        pair: Forecaster | None,
        teams: list[str],
        signal: str,
        value: float,
    ) -> pd.DataFrame | None:
        """`estimate` from a `WhatIfMonth` instead of the tables: the same frame, when a stored
        fit answers the what-if; None when none can (the tables are needed to fit one)."""
        setting = check_settable(view.settable, view.history, signal)
        stored = self._answering_fit(setting.signal, view.month, pair, view.spec_hash)
        if stored is None:
            return None
        return self._answer(stored.fit, view.rows, view.month, pair, teams, value, view.recent_csat)

    def answers_from_store(
        self, signal: str, month: pd.Period, pair: Forecaster | None, spec_hash: str | None = None
    ) -> bool:
        """Whether a stored fit answers a what-if of `signal` as of `month` with `pair`'s
        horizon (and, given `spec_hash`, month inputs built with those specs). Logs nothing."""
        return self._answering_fit(signal, month, pair, spec_hash) is not None

    def _answering_fit(
        self, signal: str, month: pd.Period, pair: Forecaster | None, spec_hash: str | None
    ) -> StoredFit | None:
        if spec_hash is not None and spec_hash != self._specs().hash():
            return None
        return self._stored_fit(signal, month, self._horizon(pair), say=False)

    def _horizon(self, pair: Forecaster | None) -> int:
        horizon = getattr(getattr(pair, "config", None), "horizon", None)
        return int(horizon or self.horizon or 3)

    def _answer(
        self,
        fit: EffectFit,
        frame: pd.DataFrame,
        month: pd.Period,
        pair: Forecaster | None,
        teams: list[str],
        value: float,
        csat_level: Callable[[list[str]], np.ndarray],
    ) -> pd.DataFrame:
        """The what-if's frame from the fit and the effect frame's (or the month's) rows."""
        teams = list(dict.fromkeys(str(t) for t in teams))
        now = frame.loc[frame["as_of"] == month]
        now = now.assign(team_id=now["team_id"].astype(str)).set_index("team_id")
        unknown = [t for t in teams if t not in now.index]
        if unknown:
            raise ConfigError(
                f"`--team` must name a team with people at {month_str(month)}. Got "
                f"{unknown[0]!r} instead (not in the data at that month)."
            )
        rows = now.loc[teams].reset_index()
        before_l = before_c = None
        if pair is not None:
            pred = pair.predict(rows).assign(team_id=lambda f: f["team_id"].astype(str))
            pred = pred.set_index("team_id").loc[teams]
            before_l = pred["expected_leavers"].to_numpy(np.float64)
            before_c = pred["csat_change"].to_numpy(np.float64)
        level = csat_level(teams)
        eff = team_effects(fit, rows, value, before_l, before_c, level)
        if pair is not None:
            # The forecast's own intervals, as RescoringEngine gives them (before_*).
            for col in ("leavers_p10", "leavers_p90", "csat_change_p10", "csat_change_p90"):
                if col in pred.columns:
                    eff[f"before_{col}"] = pred[col].to_numpy(np.float64)
        eff = bound_result(eff, eff["headcount"].to_numpy(np.float64), level)
        return _result(eff, month, fit.signal, value, self.name)


def _result(
    eff: pd.DataFrame, month: pd.Period, signal: str, value: float, engine: str
) -> pd.DataFrame:
    out = eff.copy()
    out.insert(1, "as_of", month_str(month))
    out.insert(2, "signal", signal)
    out.insert(3, "value", float(value))
    out["engine"] = engine
    first = [c for c in RESULT_COLUMNS if c in out.columns]
    return out[first + [c for c in out.columns if c not in first]]


def make_engine(
    specs: FeatureSpecs = None,
    settings: EngineSettings | None = None,
    stored: dict[str, StoredFit] | None = None,
) -> CausalEngine:
    """The engine `forecast what-if` and the report should use (drop-in for RescoringEngine);
    `stored`: the pair's stored fits (forecast.effects_store.stored_fits), reused when they can
    answer the what-if."""
    return CausalEngine(
        specs=specs, settings=settings or EngineSettings(), stored=dict(stored or {})
    )


@dataclasses.dataclass(frozen=True)
class StoredFit:
    """An `EffectFit` made ahead of time, and what it may answer."""

    fit: EffectFit
    as_of: str  # YYYY-MM: the fit read the data known at the end of this month
    horizon: int
    settings: dict[str, Any]  # the EngineSettings it was made with (`settings_dict`)
    spec_hash: str = ""  # the feature specs its controls were built with

    def refusal(
        self, month: pd.Period, horizon: int, settings: EngineSettings, spec_hash: str = ""
    ) -> str | None:
        """Why this fit cannot answer a what-if as of `month` (None when it can)."""
        if int(horizon) != self.horizon:
            return f"it is for a {self.horizon}-month horizon, not {horizon}"
        if pd.Period(month, freq="M") < pd.Period(self.as_of, freq="M"):
            return (
                f"the what-if is as of {month_str(month)}, before the fit's month "
                f"{self.as_of} (a fit from later data would leak into it)"
            )
        if settings_dict(settings) != {**SETTINGS_ADDED_LATER, **self.settings}:
            return "it was made with other engine settings"
        if spec_hash and self.spec_hash and spec_hash != self.spec_hash:
            return "it was made with other feature specs"
        return None


# Settings added after fits were first stored, at the values those fits were made with: a fit
# stored before a setting existed still answers when the setting is at that value.
SETTINGS_ADDED_LATER: dict[str, Any] = {
    "csat_survey": None,
    "concurrent_months": False,
    "csat_controls": "state",
    "effect_floor": 0.0,
    "csat_floor": 0.0,
}


def settings_dict(settings: EngineSettings) -> dict[str, Any]:
    """The settings as the manifest keeps them (JSON values), so they compare after a load."""
    return json.loads(json.dumps(dataclasses.asdict(settings)))
