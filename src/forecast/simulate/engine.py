"""The simulator's hidden state and its one-month transition (see `forecast.simulate`).

Everything here works on numpy arrays, vectorised over teams and people, so that the only
Python loop is over months. The same `step` serves the main run and the what-if
continuations (many replicas of a few teams), which is what makes the intervention truth
exact: a continuation is the simulator itself, not a model of it.

This module never builds data frames, never writes files and never reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

# Reference levels: effects are expressed relative to these, so a team at the reference has
# the base hazard. They are organisation constants, not team attributes.
AH_REF = 0.08  # after-hours ratio
AH_UNIT = 0.10  # effects on after-hours are "per +0.10 of after_hours_ratio"
CPH_REF = 300.0  # cases per head per month
H_MAX = 0.5  # cap on a monthly voluntary hazard (keeps competing risks below 1)
NEW_6, NEW_12 = 6, 12  # tenure bands (months) of the new-joiner effects
RECENT = 3  # months of recent voluntary leavers that feed contagion

# Dynamics that are not effect sizes (kept fixed so `Effects.none()` still gives living data).
RHO_DEMAND, SD_DEMAND = 0.80, 0.06
P_SHOCK, SHOCK_MEAN, SHOCK_SD = 0.02, 0.30, 0.10  # demand shocks (log scale)
RHO_AH, SD_AH = 0.75, 0.12
RHO_ABS, SD_ABS = 0.70, 0.006
RHO_UP, SD_UP = 0.60, 0.25
RHO_EMAIL, SD_EMAIL = 0.80, 0.02
SD_ENG = 0.12  # latent engagement's monthly noise (its persistence is a SimConfig knob)
P_MANAGER_CHANGE = 0.015
SEASON_AMP = 0.06
MANAGER_SUPPORT_MEAN, MANAGER_SUPPORT_PER_Q = 65.0, 10.0
ENGAGEMENT_MEAN, ENGAGEMENT_PER_E = 70.0, 8.0
INVOL_NEW_MULT = 2.0  # probation: involuntary exits are twice as likely in the first 6 months
CX_OUTAGE = 0.02  # share of team-months without CX responses
LAG_CUTS = (0.35, 0.80)  # backfill lag 1, 2 or 3 months with probabilities .35/.45/.20

# Exit codes and reasons (codes index REASONS).
VOL, INVOL, TRANSFER = 1, 2, 3
EXIT_TYPES = ("", "voluntary", "involuntary", "transfer")
REASONS = (
    "",
    "resignation",
    "resignation - better pay",
    "resignation - relocation",
    "resignation - career change",
    "retirement",
    "dismissal",
    "end of contract",
    "redundancy",
    "transfer",
    "transfer - team closed",
)
R_RESIGN = (1, 2, 3, 4)
R_RETIRE, R_DISMISS, R_EOC, R_REDUNDANT, R_TRANSFER, R_CLOSED = 5, 6, 7, 8, 9, 10


@dataclass(frozen=True)
class Params:
    """Numbers `step` needs: the effect sizes plus base rates (built from a SimConfig)."""

    engagement_on_exit: float
    after_hours_on_exit: float
    cases_on_exit: float
    new_joiner_6m: float
    new_joiner_12m: float
    contagion: float
    after_hours_on_engagement: float
    cases_on_engagement: float
    manager_on_engagement: float
    engagement_on_csat: float
    inexperience_on_csat: float
    cases_on_csat: float
    understaffing_on_cases: float
    cases_on_after_hours: float
    vol_rate: float
    invol_rate: float
    transfer_rate: float
    start_ordinal: int
    engagement_persistence: float  # share of last month's latent engagement carried over


TEAM_FIELDS = (
    "target",
    "dept",
    "group",
    "site",
    "launch",
    "close",
    "quarterly",
    "lvl_cph",
    "lvl_ah",
    "lvl_abs",
    "u_eng",
    "q",
    "mgr",
    "csat0",
    "cx_rate",
    "svy_rate",
    "canteen0",
    "d_dem",
    "d_ah",
    "d_abs",
    "d_up",
    "d_email",
    "eng",
    "hc",
    "recent",
    "pipeline",
)
PERSON_FIELDS = (
    "pid",
    "team",
    "spell_start",
    "spell_day",
    "company_start",
    "logfrail",
    "gender",
    "byear",
    "role",
    "cohort",
)


@dataclass
class SimState:
    """Hidden state at the end of month `month` (month index 0 = config.start).

    Team arrays have one entry per team (`recent` is teams x RECENT, `pipeline` teams x 3:
    hires arriving in 1, 2, 3 months). Person arrays have one entry per open spell.
    `cohort` marks, in a continuation, the people whose expected exits are being counted.
    """

    month: int
    next_pid: int
    next_mgr: int
    # teams
    target: np.ndarray
    dept: np.ndarray
    group: np.ndarray  # transfer pool: replica * n_dept + dept
    site: np.ndarray
    launch: np.ndarray
    close: np.ndarray
    quarterly: np.ndarray
    lvl_cph: np.ndarray
    lvl_ah: np.ndarray
    lvl_abs: np.ndarray
    u_eng: np.ndarray
    q: np.ndarray
    mgr: np.ndarray
    csat0: np.ndarray
    cx_rate: np.ndarray
    svy_rate: np.ndarray
    canteen0: np.ndarray
    d_dem: np.ndarray
    d_ah: np.ndarray
    d_abs: np.ndarray
    d_up: np.ndarray
    d_email: np.ndarray
    eng: np.ndarray
    hc: np.ndarray
    recent: np.ndarray
    pipeline: np.ndarray
    # people (open spells)
    pid: np.ndarray
    team: np.ndarray
    spell_start: np.ndarray
    spell_day: np.ndarray
    company_start: np.ndarray
    logfrail: np.ndarray
    gender: np.ndarray
    byear: np.ndarray
    role: np.ndarray
    cohort: np.ndarray

    def copy(self) -> SimState:
        return SimState(
            **{
                f.name: (v.copy() if isinstance(v, np.ndarray) else v)
                for f in fields(self)
                for v in [getattr(self, f.name)]
            }
        )

    def take_people(self, keep: np.ndarray) -> None:
        for name in PERSON_FIELDS:
            setattr(self, name, getattr(self, name)[keep])

    def append_people(self, new: dict[str, np.ndarray]) -> None:
        for name in PERSON_FIELDS:
            setattr(self, name, np.concatenate([getattr(self, name), new[name]]))

    @property
    def n_teams(self) -> int:
        return len(self.target)


class Draws:
    """Random streams of one run. Separate streams keep common random numbers intact.

    Team dynamics draw fixed shapes every month, so two runs from the same state differ only
    through what an intervention changes. Person-level draws are a hash of (person, month,
    salt) rather than a stream, so a person gets the same numbers whatever else happened
    (who else left, how many were hired): that is what makes baseline and intervention
    comparable person by person. Observation noise (surveys, CX sampling, exit days and
    reasons) has its own stream because binomial and Poisson draws consume a
    data-dependent amount of randomness.
    """

    def __init__(self, seed: np.random.SeedSequence) -> None:
        dyn, person, hires, obs = seed.spawn(4)
        self.dyn = np.random.Generator(np.random.PCG64(dyn))
        self.salt = np.uint64(person.generate_state(1, np.uint64)[0])
        self.hires = np.random.Generator(np.random.PCG64(hires))
        self.obs = np.random.Generator(np.random.PCG64(obs))

    def person_uniforms(self, pid: np.ndarray, month: int) -> np.ndarray:
        """Two uniforms per person: exit draw and transfer-destination draw."""
        key = _mix(pid.astype(np.uint64) ^ self.salt)
        key = key + np.uint64((month + 1000) * 2)
        return np.stack([_unit(_mix(key)), _unit(_mix(key + np.uint64(1)))])


_M1, _M2, _M3 = (
    np.uint64(0x9E3779B97F4A7C15),
    np.uint64(0xBF58476D1CE4E5B9),
    np.uint64(0x94D049BB133111EB),
)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a fast, well-mixed 64-bit hash (wrapping arithmetic)."""
    z = x + _M1
    z = (z ^ (z >> np.uint64(30))) * _M2
    z = (z ^ (z >> np.uint64(27))) * _M3
    return z ^ (z >> np.uint64(31))


def _unit(z: np.ndarray) -> np.ndarray:
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


@dataclass
class Override:
    """Signals held at a value from the first continued month on, for the teams in `mask`."""

    mask: np.ndarray
    after_hours_ratio: float | None = None
    cases_per_head: float | None = None
    manager_support: float | None = None
    system_uptime: float | None = None


@dataclass
class MonthOut:
    """What one month produced, per team (index = team), plus closed spells."""

    open_: np.ndarray  # team running this month (people at risk of leaving voluntarily)
    hc_end: np.ndarray
    cph: np.ndarray
    ah: np.ndarray
    absence: np.ndarray
    uptime: np.ndarray
    email: np.ndarray
    eng: np.ndarray
    q: np.ndarray
    lpv: np.ndarray  # team part of the log voluntary hazard
    tr_ok: np.ndarray  # a transfer destination exists
    p_csat: np.ndarray  # noise-free probability of a satisfied response
    vol: np.ndarray  # realised voluntary leavers
    cohort_hv: np.ndarray  # sum of voluntary hazards of cohort people at risk
    closed: dict[str, np.ndarray]  # spells that ended this month


def hazards(
    lpv: np.ndarray, tr_ok: np.ndarray, tenure: np.ndarray, logfrail: np.ndarray, p: Params
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Monthly voluntary, involuntary and transfer probabilities of people at risk.

    `lpv`, `tr_ok` are the person's team values; `tenure` is months since company hire.
    Shared by `step` and the truth, so the truth uses the very numbers that drew the exits.
    """
    new6 = tenure < NEW_6
    new12 = (tenure >= NEW_6) & (tenure < NEW_12)
    lv = lpv + p.new_joiner_6m * new6 + p.new_joiner_12m * new12 + logfrail
    hv = np.minimum(np.exp(lv), H_MAX)
    hi = p.invol_rate * np.where(new6, INVOL_NEW_MULT, 1.0)
    ht = np.where(tr_ok & ~new6, p.transfer_rate, 0.0)
    return hv, hi, ht


def days_in_month(ordinal: int) -> int:
    first = np.datetime64("1970-01", "M") + ordinal
    return int(((first + 1).astype("datetime64[D]") - first.astype("datetime64[D]")).item().days)


def _season(month: int, p: Params) -> float:
    month_of_year = (p.start_ordinal + month) % 12
    return SEASON_AMP * float(np.cos(2 * np.pi * month_of_year / 12))


def _workload(
    st: SimState,
    m: int,
    staff: np.ndarray,
    z: np.ndarray,
    u: np.ndarray,
    p: Params,
    ov: Override | None,
) -> tuple[np.ndarray, ...]:
    """Advance the workload processes; understaffing raises cases per head and after-hours."""
    shock = (u[0] < P_SHOCK) * (SHOCK_MEAN + SHOCK_SD * z[1])
    st.d_dem = RHO_DEMAND * st.d_dem + SD_DEMAND * z[0] + shock
    st.d_ah = RHO_AH * st.d_ah + SD_AH * z[2]
    st.d_abs = RHO_ABS * st.d_abs + SD_ABS * z[3]
    st.d_up = RHO_UP * st.d_up + SD_UP * z[4]
    st.d_email = RHO_EMAIL * st.d_email + SD_EMAIL * z[5]
    # Demand is fixed per team, so fewer staff means more cases each (capped at 3x target).
    short = np.minimum(st.target / staff, 3.0)
    cph = st.lvl_cph * np.exp(st.d_dem + _season(m, p)) * short**p.understaffing_on_cases
    if ov is not None and ov.cases_per_head is not None:
        cph = np.where(ov.mask, ov.cases_per_head, cph)
    load = cph / st.lvl_cph
    ah = np.clip(st.lvl_ah * np.exp(st.d_ah) * load**p.cases_on_after_hours, 0.0, 0.6)
    if ov is not None and ov.after_hours_ratio is not None:
        ah = np.where(ov.mask, ov.after_hours_ratio, ah)
    # Absence is a symptom of last month's engagement, never a cause of exits.
    absence = np.clip(st.lvl_abs + st.d_abs - 0.01 * st.eng, 0.0, 0.5)
    uptime = np.clip(99.4 + st.d_up, 90.0, 100.0)
    if ov is not None and ov.system_uptime is not None:
        uptime = np.where(ov.mask, ov.system_uptime, uptime)
    email = np.clip(0.25 + st.d_email, 0.0, 1.0)
    return cph, ah, absence, uptime, email


def _engagement(
    st: SimState, cph: np.ndarray, ah: np.ndarray, z: np.ndarray, p: Params, ov: Override | None
) -> None:
    q = st.q
    if ov is not None and ov.manager_support is not None:
        # manager_support measures manager quality: holding it at v means a manager whose
        # expected score is v.
        q_v = (ov.manager_support - MANAGER_SUPPORT_MEAN) / MANAGER_SUPPORT_PER_Q
        q = np.where(ov.mask, q_v, q)
        st.q = q
    target = (
        st.u_eng
        + p.manager_on_engagement * q
        - p.after_hours_on_engagement * (ah - AH_REF) / AH_UNIT
        - p.cases_on_engagement * np.log(cph / CPH_REF)
    )
    rho = p.engagement_persistence
    st.eng = rho * st.eng + (1 - rho) * target + SD_ENG * z


def _pick_dest(
    src: np.ndarray, u: np.ndarray, group: np.ndarray, eligible: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A uniformly chosen other eligible team of the same group for each `src` team.

    Returns (dest, ok); `ok` is false where the group has no other eligible team. Called
    with `src = arange(n_teams)` it gives the per-team `tr_ok`.
    """
    n = len(group)
    elig = np.flatnonzero(eligible)
    order = elig[np.argsort(group[elig], kind="stable")]
    n_groups = int(group.max()) + 1 if n else 1
    counts = np.bincount(group[order], minlength=n_groups)
    starts = np.cumsum(counts) - counts
    pos = np.full(n, -1, dtype=np.int64)
    pos[order] = np.arange(len(order)) - starts[group[order]]
    g = group[src]
    self_pos = pos[src]
    n_choice = counts[g] - (self_pos >= 0)
    ok = n_choice >= 1
    k = np.floor(u * np.maximum(n_choice, 1)).astype(np.int64)
    k = k + ((self_pos >= 0) & (k >= self_pos))
    idx = np.where(ok, starts[g] + k, 0)
    dest = order[idx] if len(order) else np.zeros(len(src), dtype=np.int64)
    return np.where(ok, dest, -1), ok


def step(
    st: SimState,
    m: int,
    p: Params,
    dr: Draws,
    ov: Override | None = None,
    *,
    transfers_leave: bool = False,
) -> MonthOut:
    """Advance `st` (end of month m-1) through month `m`, in place.

    `transfers_leave` (continuations of a subset of teams): a transferee leaves the simulated
    teams instead of joining a sister team, so a team's transfer hazard does not depend on
    which other teams happen to be simulated with it.
    """
    n_t = st.n_teams
    z = dr.dyn.standard_normal((8, n_t))
    u_t = dr.dyn.random((3, n_t))
    open_ = (st.launch <= m) & (m < st.close)
    closing = st.close == m
    running = open_ & ~closing  # the team exists all month: its people may leave normally
    # Manager changes bring a new manager of fresh quality.
    change = u_t[1] < P_MANAGER_CHANGE
    st.q = np.where(change, z[7], st.q)
    st.mgr = np.where(change, st.next_mgr + np.cumsum(change) - 1, st.mgr)
    st.next_mgr += int(change.sum())

    launching = st.launch == m
    arrivals = np.where(launching, st.target, st.pipeline[:, 0]) * running
    st.pipeline = np.concatenate([st.pipeline[:, 1:], np.zeros((n_t, 1), np.int64)], axis=1)
    staff = np.maximum(st.hc + arrivals, 1)
    cph, ah, absence, uptime, email = _workload(st, m, staff, z, u_t, p, ov)
    _engagement(st, cph, ah, z[6], p, ov)

    hc_prev = np.maximum(st.hc, 1)
    recent_rate = np.minimum(st.recent.sum(axis=1) / hc_prev, 1.0)
    lpv = (
        np.log(p.vol_rate)
        - p.engagement_on_exit * st.eng
        + p.after_hours_on_exit * (ah - AH_REF) / AH_UNIT
        + p.cases_on_exit * np.log(cph / CPH_REF)
        + p.contagion * recent_rate
    )
    if transfers_leave:
        tr_ok = running.copy()
    else:
        _, tr_ok = _pick_dest(np.arange(n_t), np.zeros(n_t), st.group, running)

    exits, vol, cohort_hv = _exits(st, m, p, dr, lpv, tr_ok, running, closing, transfers_leave)
    st.recent[:, m % RECENT] = vol
    _hire(st, m, p, dr, arrivals)
    _open_requisitions(st, u_t[2], running)
    hc_end = np.bincount(st.team, minlength=n_t)
    st.hc = hc_end
    new = np.bincount(st.team[m - st.company_start < NEW_6], minlength=n_t)
    share_new = new / np.maximum(hc_end, 1)
    logit = (
        st.csat0
        + p.engagement_on_csat * st.eng
        - p.inexperience_on_csat * share_new
        - p.cases_on_csat * np.log(cph / CPH_REF)
    )
    st.month = m
    return MonthOut(
        open_=running,
        hc_end=hc_end,
        cph=cph,
        ah=ah,
        absence=absence,
        uptime=uptime,
        email=email,
        eng=st.eng.copy(),
        q=st.q.copy(),
        lpv=lpv,
        tr_ok=tr_ok,
        p_csat=1.0 / (1.0 + np.exp(-logit)),
        vol=vol,
        cohort_hv=cohort_hv,
        closed=exits,
    )


def _exits(
    st: SimState,
    m: int,
    p: Params,
    dr: Draws,
    lpv: np.ndarray,
    tr_ok: np.ndarray,
    running: np.ndarray,
    closing: np.ndarray,
    transfers_leave: bool,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Draw this month's exits and transfers; move transferees; return closed spells."""
    n_t = st.n_teams
    team = st.team
    uu = dr.person_uniforms(st.pid, m)
    at_risk = running[team]
    tenure = m - st.company_start
    hv, hi, ht = hazards(lpv[team], tr_ok[team], tenure, st.logfrail, p)
    hv, hi, ht = hv * at_risk, hi * at_risk, ht * at_risk
    cohort_hv = np.bincount(team, weights=hv * st.cohort, minlength=n_t)
    u = uu[0]
    is_vol = u < hv
    is_inv = ~is_vol & (u < hv + hi)
    is_tr = ~is_vol & ~is_inv & (u < hv + hi + ht)
    # A closing team's people move to a sister team, or are made redundant if there is none.
    closed_team = closing[team]
    dest, ok = _pick_dest(team, uu[1], st.group, running)
    if transfers_leave:
        ok[:] = True
    is_tr |= closed_team & ok
    is_inv |= closed_team & ~ok
    ended = is_vol | is_inv | is_tr
    idx = np.flatnonzero(ended)
    code = np.where(is_vol[idx], VOL, np.where(is_inv[idx], INVOL, TRANSFER))
    dim = days_in_month(p.start_ordinal + m)
    end_day = np.floor(dr.obs.random(len(idx)) * dim).astype(np.int16)
    reason = _reasons(st, idx, code, closed_team[idx], m, p, dr)
    closed = {name: getattr(st, name)[idx] for name in PERSON_FIELDS}
    closed.update(
        end_month=np.full(len(idx), m, np.int32),
        end_day=end_day,
        exit_code=code.astype(np.int8),
        reason=reason,
    )
    vol = np.bincount(team[is_vol], minlength=n_t)
    # Transferees continue as a new spell in the destination team, starting the day they left.
    tr_idx = np.flatnonzero(is_tr)
    st.team[tr_idx] = dest[tr_idx]
    st.spell_start[tr_idx] = m
    st.spell_day[tr_idx] = end_day[np.searchsorted(idx, tr_idx)]
    st.cohort[tr_idx] = False
    st.take_people(~(is_vol | is_inv | (is_tr & transfers_leave)))
    return closed, vol, cohort_hv


def _reasons(
    st: SimState,
    idx: np.ndarray,
    code: np.ndarray,
    closing: np.ndarray,
    m: int,
    p: Params,
    dr: Draws,
) -> np.ndarray:
    """Free-text exit reasons. Age changes the wording only, never whether anyone leaves."""
    u = dr.obs.random(len(idx))
    year = (p.start_ordinal + m) // 12 + 1970
    retire = year - st.byear[idx] >= 60
    resign = np.asarray(R_RESIGN)[np.minimum((u * len(R_RESIGN)).astype(int), 3)]
    vol_r = np.where(retire, R_RETIRE, resign)
    inv_r = np.where(closing, R_REDUNDANT, np.where(u < 0.7, R_DISMISS, R_EOC))
    tr_r = np.where(closing, R_CLOSED, R_TRANSFER)
    return np.select([code == VOL, code == INVOL], [vol_r, inv_r], tr_r).astype(np.int8)


def new_people(
    dr_hires: np.random.Generator,
    team: np.ndarray,
    month: np.ndarray,
    company_start: np.ndarray,
    first_pid: int,
    p: Params,
) -> dict[str, np.ndarray]:
    """Attributes of people joining `team` in `month` (protected attributes drive nothing)."""
    n = len(team)
    g = dr_hires
    u = g.random((4, n))
    age = 18 + np.minimum(g.gamma(2.0, 6.0, n), 46)
    year = (p.start_ordinal + month) // 12 + 1970
    dim = np.array([days_in_month(p.start_ordinal + int(x)) for x in np.unique(month)])
    day_max = dim[np.searchsorted(np.unique(month), month)] if n else np.zeros(0)
    sigma = 0.5  # person frailty: lognormal with mean 1
    return {
        "pid": first_pid + np.arange(n, dtype=np.int64),
        "team": team.astype(np.int64),
        "spell_start": month.astype(np.int32),
        "spell_day": np.floor(u[0] * day_max).astype(np.int16),
        "company_start": company_start.astype(np.int32),
        "logfrail": (sigma * g.standard_normal(n) - sigma**2 / 2).astype(np.float64),
        "gender": np.searchsorted([0.55, 0.98], u[1]).astype(np.int8),  # F, M, X
        "byear": (year - age).astype(np.int16),
        "role": np.searchsorted([0.85, 0.95], u[2]).astype(np.int8),
        "cohort": np.zeros(n, dtype=bool),
    }


def _hire(st: SimState, m: int, p: Params, dr: Draws, arrivals: np.ndarray) -> None:
    team = np.repeat(np.arange(st.n_teams), arrivals)
    months = np.full(len(team), m, dtype=np.int32)
    new = new_people(dr.hires, team, months, months, st.next_pid, p)
    st.next_pid += len(team)
    st.append_people(new)


def _open_requisitions(st: SimState, u: np.ndarray, running: np.ndarray) -> None:
    """Backfill toward the target: open requisitions arrive 1-3 months later."""
    hc = np.bincount(st.team, minlength=st.n_teams)
    gap = np.maximum(st.target - hc - st.pipeline.sum(axis=1), 0) * running
    lag = np.searchsorted(LAG_CUTS, u)  # 0, 1, 2 -> arrives in 1, 2, 3 months
    st.pipeline[np.arange(st.n_teams), lag] += gap


def make_ids(prefix: str, nums: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded string identifiers, e.g. T0007 (identifiers are strings in the contract)."""
    return np.char.add(prefix, np.char.zfill(nums.astype(str), width)).astype(object)
