"""The simulator's truth: what a perfect forecaster would say, computed from its own hazards.

- `expected_truth`: per team and as-of month t, the expected voluntary leavers during
  t+1..t+h among the people employed at the end of t, as the product of survival along the
  realised team path: for each person, sum over s of P(still in the team at s-1) * h_vol(s),
  where all competing risks (voluntary, involuntary, transfer, team closure) remove people,
  and every hazard is the one `step` used for its draws (`simulate_engine.hazards`). It
  removes the person-level coin flips but keeps the realised team conditions (workload,
  engagement, recent leavers) of t+1..t+h. CSAT likewise: the noise-free CSAT of the
  realised path, weighted by expected responses, minus the observed CSAT of t-2..t.
- `intervention_truth`: expected leavers and CSAT change when a signal is held at a value
  from t+1 on, against no intervention, by continuing the simulator from its hidden state
  at the end of t (replicated, with common random numbers). This averages over future team
  conditions too, so its baseline differs from `expected_truth` by the path noise only.

Nothing here draws data that ends up in the tables, so truth never changes the data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecast.data.months import month_str
from forecast.simulate.config import SimConfig
from forecast.simulate.engine import (
    MANAGER_SUPPORT_MEAN,
    MANAGER_SUPPORT_PER_Q,
    PERSON_FIELDS,
    TEAM_FIELDS,
    Draws,
    Override,
    Params,
    SimState,
    hazards,
    make_ids,
    step,
)

SIGNALS = ("after_hours_ratio", "cases_per_head", "manager_support", "system_uptime")
TEAM_SETS = ("most_after_hours", "least_engaged")
TRUTH_COLUMNS = [
    "team_id",
    "as_of",
    "horizon",
    "headcount",
    "true_expected_leavers",
    "true_attrition_rate",
    "true_csat_change",
]
INTERVENTION_COLUMNS = [
    "team_id",
    "as_of",
    "signal",
    "value",
    "horizon",
    "baseline_expected_leavers",
    "intervened_expected_leavers",
    "baseline_csat_change",
    "intervened_csat_change",
    "team_set",
]


def _team_ids(n_teams: int) -> np.ndarray:
    return make_ids("T", np.arange(n_teams), max(4, len(str(n_teams))))


def observed_csat(h: dict[str, np.ndarray], t: int) -> np.ndarray:
    """Response-weighted observed CSAT over t-2..t per team (NaN without any)."""
    lo = max(t - 2, 0)
    csat = h["csat"][lo : t + 1]
    resp = h["cx_resp"][lo : t + 1].astype(np.float64)
    has = h["cx_row"][lo : t + 1] & ~np.isnan(csat)
    w = np.where(has, resp, 0.0)
    total = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (w * np.nan_to_num(csat)).sum(axis=0) / total, np.nan)


def expected_truth(
    config: SimConfig,
    p: Params,
    h: dict[str, np.ndarray],
    spells: dict[str, np.ndarray],
    cx_rate: np.ndarray,
) -> pd.DataFrame:
    """True expected leavers and CSAT change per team and as-of month (see module doc)."""
    horizon, n_m, n_t = config.horizon, config.n_months, config.n_teams
    team_ids = _team_ids(n_t)
    frames = []
    for t in range(0, n_m - horizon):
        in_team = (spells["spell_start"] <= t) & (spells["end_month"] > t)
        team = spells["team"][in_team]
        leavers = _expected_leavers(
            p,
            h,
            t,
            horizon,
            team,
            spells["company_start"][in_team],
            spells["logfrail"][in_team],
            n_t,
        )
        hc = np.bincount(team, minlength=n_t)
        w = cx_rate * h["hc_end"][t + 1 : t + 1 + horizon]
        future = (w * 100 * h["p_csat"][t + 1 : t + 1 + horizon]).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            future = np.where(w.sum(axis=0) > 0, future / w.sum(axis=0), np.nan)
        keep = np.flatnonzero(hc >= 1)
        frames.append(
            pd.DataFrame(
                {
                    "team_id": team_ids[keep],
                    "as_of": month_str(p.start_ordinal + t),
                    "horizon": horizon,
                    "headcount": hc[keep].astype(np.int64),
                    "true_expected_leavers": leavers[keep],
                    "true_attrition_rate": leavers[keep] / hc[keep],
                    "true_csat_change": (future - observed_csat(h, t))[keep],
                }
            )
        )
    if not frames:
        return pd.DataFrame({c: [] for c in TRUTH_COLUMNS})
    out = pd.concat(frames, ignore_index=True).sort_values(["team_id", "as_of"], kind="stable")
    out = out.reset_index(drop=True)
    for c in ("team_id", "as_of"):
        out[c] = out[c].astype("str")
    return out


def _expected_leavers(
    p: Params,
    h: dict[str, np.ndarray],
    t: int,
    horizon: int,
    team: np.ndarray,
    company_start: np.ndarray,
    logfrail: np.ndarray,
    n_t: int,
) -> np.ndarray:
    alive = np.ones(len(team))
    expected = np.zeros(len(team))
    for s in range(t + 1, t + 1 + horizon):
        running = h["open_"][s, team]
        hv, hi, ht = hazards(h["lpv"][s, team], h["tr_ok"][s, team], s - company_start, logfrail, p)
        expected += alive * hv * running
        # A team closure moves everyone out at the start of the month.
        alive = alive * (1 - hv - hi - ht) * running
    return np.bincount(team, weights=expected, minlength=n_t)


# ----------------------------------------------------------------------------- what-if


def intervention_as_ofs(config: SimConfig) -> list[int]:
    """The last month with a full horizon ahead, and the month a year before it."""
    last = config.n_months - 1 - config.horizon
    return [m for m in (last - 12, last) if m >= 2]


def intervention_truth(
    state: SimState, t: int, h: dict[str, np.ndarray], config: SimConfig, p: Params
) -> pd.DataFrame:
    """Expected leavers and CSAT change with each signal held at its org median (from t+1)."""
    hc = h["hc_end"][t]
    # Teams that exist through the horizon, so a what-if is about people, not a closure.
    eligible = np.flatnonzero((hc >= 1) & (state.close > t + config.horizon))
    k = min(config.intervention_teams, len(eligible))
    sets = {
        "most_after_hours": eligible[np.argsort(-h["ah"][t][eligible], kind="stable")[:k]],
        "least_engaged": eligible[np.argsort(h["eng"][t][eligible], kind="stable")[:k]],
    }
    staffed = hc >= 1
    values = {
        "after_hours_ratio": float(np.median(h["ah"][t][staffed])),
        "cases_per_head": float(np.median(h["cph"][t][staffed])),
        "manager_support": float(
            np.median(MANAGER_SUPPORT_MEAN + MANAGER_SUPPORT_PER_Q * h["q"][t][staffed])
        ),
        "system_uptime": float(np.median(h["uptime"][t][staffed])),
    }
    past = observed_csat(h, t)
    team_ids = _team_ids(config.n_teams)
    rows = []
    for set_code, (name, teams) in enumerate(sets.items()):
        if len(teams) == 0:
            continue
        # The same key for baseline and every intervention: common random numbers.
        seed = (config.seed, 104729, t + 1000, set_code)
        base_l, base_c = _continue(state, teams, t, config, p, seed, None)
        for signal in SIGNALS:
            ov = Override(
                mask=np.ones(len(teams) * config.intervention_reps, dtype=bool),
                **{signal: values[signal]},
            )
            int_l, int_c = _continue(state, teams, t, config, p, seed, ov)
            rows.append(
                pd.DataFrame(
                    {
                        "team_id": team_ids[teams],
                        "as_of": month_str(p.start_ordinal + t),
                        "signal": signal,
                        "value": values[signal],
                        "horizon": config.horizon,
                        "baseline_expected_leavers": base_l,
                        "intervened_expected_leavers": int_l,
                        "baseline_csat_change": base_c - past[teams],
                        "intervened_csat_change": int_c - past[teams],
                        "team_set": name,
                    }
                )
            )
    out = (
        pd.concat(rows, ignore_index=True)
        if rows
        else pd.DataFrame({c: [] for c in INTERVENTION_COLUMNS})
    )
    for c in ("team_id", "as_of", "signal", "team_set"):
        out[c] = out[c].astype("str")
    return out[INTERVENTION_COLUMNS]


def _continue(
    state: SimState,
    teams: np.ndarray,
    t: int,
    config: SimConfig,
    p: Params,
    seed: tuple[int, ...],
    ov: Override | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean expected leavers and expected future CSAT of `teams` over t+1..t+h.

    Each replication sums, month by month, the voluntary hazards of the people in the team
    at the end of t who are still there (conditional expectation of the count given the
    path, so far less noisy than counting exits); the mean over replications integrates
    over future team conditions. The same `seed` for baseline and intervention gives common
    random numbers.
    """
    reps, n_sub = config.intervention_reps, len(teams)
    st = replicate(state, teams, reps)
    dr = Draws(np.random.SeedSequence(list(seed)))
    leavers = np.zeros(n_sub * reps)
    w_sum = np.zeros(n_sub * reps)
    wp_sum = np.zeros(n_sub * reps)
    for m in range(t + 1, t + 1 + config.horizon):
        out = step(st, m, p, dr, ov, transfers_leave=True)
        leavers += out.cohort_hv
        w = st.cx_rate * out.hc_end
        w_sum += w
        wp_sum += w * 100 * out.p_csat
    leavers = leavers.reshape(reps, n_sub).mean(axis=0)
    w_tot = w_sum.reshape(reps, n_sub).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        csat = np.where(w_tot > 0, wp_sum.reshape(reps, n_sub).sum(axis=0) / w_tot, np.nan)
    return leavers, csat


def replicate(state: SimState, teams: np.ndarray, reps: int) -> SimState:
    """`reps` independent copies of the given teams and their people, as one state.

    Replica r holds teams r*len(teams) .. (r+1)*len(teams)-1; person ids are offset per
    replica so the hashed person draws are independent across replicas.
    """
    n_sub = len(teams)
    out = state.copy()
    for name in TEAM_FIELDS:
        arr = getattr(state, name)[teams]
        setattr(out, name, np.tile(arr, (reps, 1)) if arr.ndim == 2 else np.tile(arr, reps))
    n_dept = int(state.dept.max()) + 1
    out.group = np.repeat(np.arange(reps), n_sub) * n_dept + np.tile(state.dept[teams], reps)
    local = np.full(state.n_teams, -1)
    local[teams] = np.arange(n_sub)
    sel = np.flatnonzero(local[state.team] >= 0)
    rep = np.repeat(np.arange(reps), len(sel))
    for name in PERSON_FIELDS:
        setattr(out, name, np.tile(getattr(state, name)[sel], reps))
    out.team = np.tile(local[state.team[sel]], reps) + rep * n_sub
    out.pid = out.pid + (rep.astype(np.int64) << 40)
    out.cohort = np.ones(len(out.team), dtype=bool)
    return out
