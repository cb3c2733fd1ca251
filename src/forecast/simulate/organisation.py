"""Simulate a contact-centre organisation with known causes, in the contract's data format.

What it is for: demos, tests and benchmarks need data whose causes are known, so a test can
say "a team whose after-hours load rises loses more people" and a benchmark can compare a
forecast with the true expected number of leavers. What it must never do: read real data,
depend on the clock or on anything but its config (same config -> byte-identical files),
or let a protected attribute (`gender`, `birth_year`) or a distractor column
(`system_uptime`, `canteen_rating`, `email_share`) influence anything.

Causal structure (month m, team j, person i; `Effects` holds the coefficients, defaults in
brackets; docs/simulator.md has the full description):

    staff_jm   = headcount(j, m-1) + hires arriving in m          (backfill lags 1-3 months)
    cph_jm     = level_j * exp(d_jm + season_m)
                 * min(target_j / staff_jm, 3) ** understaffing_on_cases [1.0]
    ah_jm      = clip(level_ah_j * exp(a_jm) * (cph_jm / level_j) ** cases_on_after_hours [1.0],
                      0, 0.6)
                 (d, a: AR(1) around the team level; d has occasional demand shocks)
    E*_jm      = u_j + manager_on_engagement [0.5] * q_jm
                 - after_hours_on_engagement [0.3] * (ah_jm - 0.08) / 0.10
                 - cases_on_engagement [0.5] * log(cph_jm / 300)
    E_jm       = rho E_j,m-1 + (1 - rho) E*_jm + N(0, 0.12)          (latent engagement;
                 rho = SimConfig.engagement_persistence [0.7]: how slowly it recovers)
    log h_vol  = log(vol_rate [0.016]) - engagement_on_exit [0.35] * E_jm
                 + after_hours_on_exit [0.3] * (ah_jm - 0.08) / 0.10
                 + cases_on_exit [0.6] * log(cph_jm / 300)
                 + contagion [2.0] * (voluntary leavers of j in m-3..m-1) / headcount(j, m-1)
                 + new_joiner_6m [0.7] * [tenure < 6] + new_joiner_12m [0.35] * [6 <= tenure < 12]
                 + log frailty_i                                  (lognormal, mean 1)
    h_invol    = invol_rate [0.003] (x2 in the first 6 months);  h_transfer = transfer_rate [0.004]
    logit p_jm = c_j + engagement_on_csat [0.25] * E_jm
                 - inexperience_on_csat [1.2] * share of staff with tenure < 6
                 - cases_on_csat [0.3] * log(cph_jm / 300)
    csat_jm    = 100 * Binomial(n_jm, p_jm) / n_jm,   n_jm (responses) ~ Poisson(rate_j * headcount)

Observed: `workload` (cases_per_head, after_hours_ratio, absence_rate = a symptom of last
month's engagement, system_uptime = distractor), `engagement` (survey of the latent
engagement, `manager_support` = 65 + 10 q plus sampling noise, `canteen_rating` =
distractor; monthly or quarterly per team; values empty when responses < 5), `cx`.

Truth: `true_expected_leavers` is the product-of-survival expectation along the realised
team path (see `forecast.simulate_truth`); intervention truth continues the simulator from
its checkpointed hidden state with common random numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from forecast.data.atomic import json_text, write_atomic
from forecast.data.months import month_str, parse_month
from forecast.errors import OutputError, check_param
from forecast.simulate.config import SimConfig, validate_config
from forecast.simulate.engine import (
    AH_REF,
    CPH_REF,
    CX_OUTAGE,
    ENGAGEMENT_MEAN,
    ENGAGEMENT_PER_E,
    EXIT_TYPES,
    MANAGER_SUPPORT_MEAN,
    MANAGER_SUPPORT_PER_Q,
    PERSON_FIELDS,
    REASONS,
    RECENT,
    Draws,
    MonthOut,
    Params,
    SimState,
    make_ids,
    new_people,
    step,
)
from forecast.simulate.truth import expected_truth, intervention_as_ofs, intervention_truth

DEPARTMENTS = ("Customer Service", "Technical Support", "Billing", "Sales", "Retention")
SITES = ("Leeds", "Manila", "Krakow", "Austin", "Cape Town", "Porto")
ROLES = ("agent", "senior agent", "team lead")
GENDERS = ("F", "M", "X")
NEVER = 10**9


def check_truth(config: SimConfig, names: Mapping[str, str] | None = None) -> None:
    """The intervention truth needs an as-of month with 2 months before it and the horizon
    after it (truth.intervention_as_ofs): refuse, naming the months, when there is none."""
    check_param(
        (names or {}).get("n_months", "n_months"),
        config.n_months,
        bool(intervention_as_ofs(config)),
        f"at least {config.horizon + 3} for the intervention truth",
    )


@dataclass
class SimResult:
    frames: dict[str, pd.DataFrame]
    truth: pd.DataFrame | None
    interventions: pd.DataFrame | None
    config: SimConfig


def params_of(config: SimConfig) -> Params:
    return Params(
        **asdict(config.effects),
        vol_rate=config.vol_rate,
        invol_rate=config.invol_rate,
        transfer_rate=config.transfer_rate,
        start_ordinal=int(parse_month(config.start).ordinal),
        engagement_persistence=config.engagement_persistence,
    )


# ----------------------------------------------------------------------------- initial state


def initial_state(config: SimConfig, p: Params, rng: np.random.Generator) -> SimState:
    """The organisation at the end of the month before burn-in starts."""
    n, m0 = config.n_teams, -config.burn_in
    z = rng.standard_normal((9, n))
    target = np.clip(np.round(12 * np.exp(0.65 * z[0])), 3, 60).astype(np.int64)
    dept = rng.integers(0, len(DEPARTMENTS), n)
    site = rng.integers(0, len(SITES), n)
    launch, close = _launch_and_close(config, rng)
    site_canteen = 3.4 + 0.4 * rng.standard_normal(len(SITES))
    u_eng, q = 0.5 * z[1], z[2]
    running = launch < m0
    hc0 = np.maximum(np.round(target * rng.uniform(0.85, 1.0, n)), 1).astype(np.int64) * running
    team = np.repeat(np.arange(n), hc0)
    # Tenure of the initial staff: exponential, mean 30 months, at most 30 years.
    start = m0 - 1 - np.minimum(np.floor(rng.exponential(30.0, len(team))), 360).astype(int)
    st = SimState(
        month=m0 - 1,
        next_pid=len(team),
        next_mgr=n,
        target=target,
        dept=dept,
        group=dept.copy(),
        site=site,
        launch=launch,
        close=close,
        quarterly=rng.random(n) < config.quarterly_share,
        lvl_cph=CPH_REF * np.exp(0.15 * z[3]),
        lvl_ah=AH_REF * np.exp(0.5 * z[4]),
        lvl_abs=0.04 * np.exp(0.3 * z[5]),
        u_eng=u_eng,
        q=q,
        mgr=np.arange(n, dtype=np.int64),
        csat0=np.log(0.8 / 0.2) + 0.35 * z[6],
        cx_rate=6.0 * np.exp(0.4 * z[7]),
        svy_rate=rng.beta(8.0, 2.0, n),
        canteen0=site_canteen[site] + 0.2 * z[8],
        d_dem=np.zeros(n),
        d_ah=np.zeros(n),
        d_abs=np.zeros(n),
        d_up=np.zeros(n),
        d_email=np.zeros(n),
        eng=u_eng + p.manager_on_engagement * q,
        hc=np.zeros(n, np.int64),
        recent=np.zeros((n, RECENT), np.int64),
        pipeline=np.zeros((n, 3), np.int64),
        **new_people(rng, team, start, start, 0, p),
    )
    st.hc = np.bincount(team, minlength=n)
    return st


def _launch_and_close(config: SimConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A few teams open or close during the recorded span (months with 0 headcount)."""
    n, n_months = config.n_teams, config.n_months
    launch = np.full(n, -config.burn_in - 1, dtype=np.int64)
    close = np.full(n, NEVER, dtype=np.int64)
    u = rng.random((4, n))
    if n_months >= 8:
        late = u[0] < 0.04
        launch[late] = 1 + np.floor(u[1][late] * (n_months - 4)).astype(np.int64)
        shut = ~late & (u[2] < 0.03)
        close[shut] = 4 + np.floor(u[3][shut] * (n_months - 4)).astype(np.int64)
    return launch, close


# ----------------------------------------------------------------------------- the run


@dataclass
class History:
    """Per-month team arrays of the recorded span, stacked (months x teams) at the end."""

    rows: dict[str, list[np.ndarray]] = field(default_factory=dict)
    spells: list[dict[str, np.ndarray]] = field(default_factory=list)

    def add(self, **arrays: np.ndarray) -> None:
        for k, v in arrays.items():
            self.rows.setdefault(k, []).append(v)

    def stacked(self) -> dict[str, np.ndarray]:
        return {k: np.stack(v) for k, v in self.rows.items()}


def simulate(
    config: SimConfig,
    *,
    with_interventions: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SimResult:
    """Run the simulator; `progress(done, total)` is called once per simulated month."""
    validate_config(config)
    if with_interventions:
        check_truth(config)
    p = params_of(config)
    root = np.random.SeedSequence([config.seed, 20240611])
    init_seed, run_seed = root.spawn(2)
    st = initial_state(config, p, np.random.Generator(np.random.PCG64(init_seed)))
    dr = Draws(run_seed)
    hist = History()
    as_ofs = intervention_as_ofs(config) if with_interventions else []
    what_if: list[pd.DataFrame] = []
    total = config.burn_in + config.n_months
    for i, m in enumerate(range(-config.burn_in, config.n_months)):
        out = step(st, m, p, dr)
        if m >= 0:
            hist.spells.append(out.closed)
            hist.add(**_month_arrays(out, st), **_observe(out, st, m, p, dr))
        if m in as_ofs:
            what_if.append(intervention_truth(st.copy(), m, hist.stacked(), config, p))
        if progress is not None:
            progress(i + 1, total)
    hist.spells.append(_open_spells(st))
    h = hist.stacked()
    spells = {k: np.concatenate([s[k] for s in hist.spells]) for k in hist.spells[0]}
    frames = build_frames(config, st, h, spells)
    truth = expected_truth(config, p, h, spells, st.cx_rate) if config.compute_truth else None
    interventions = pd.concat(what_if, ignore_index=True) if with_interventions else None
    return SimResult(frames=frames, truth=truth, interventions=interventions, config=config)


def _month_arrays(out: MonthOut, st: SimState) -> dict[str, np.ndarray]:
    return {
        "open_": out.open_,
        "hc_end": out.hc_end,
        "cph": out.cph,
        "ah": out.ah,
        "absence": out.absence,
        "uptime": out.uptime,
        "email": out.email,
        "eng": out.eng,
        "q": out.q,
        "lpv": out.lpv,
        "tr_ok": out.tr_ok,
        "p_csat": out.p_csat,
        "vol": out.vol,
        "mgr": st.mgr.copy(),
    }


def _observe(out: MonthOut, st: SimState, m: int, p: Params, dr: Draws) -> dict[str, np.ndarray]:
    """Survey and CX observations of month m (sampling noise only; nothing feeds back)."""
    n, hc, g = st.n_teams, out.hc_end, dr.obs
    quarter_end = (p.start_ordinal + m) % 3 == 2  # March, June, September, December
    svy_row = (hc >= 1) & (~st.quarterly | quarter_end)
    svy_resp = g.binomial(hc, st.svy_rate)
    # The vendor suppresses every value of a survey with fewer than 5 responses.
    shown = np.where(svy_resp >= 5, 1.0, np.nan)
    se = 1.0 / np.sqrt(np.maximum(svy_resp, 1))
    zz = g.standard_normal((3, n))
    eng = np.clip(ENGAGEMENT_MEAN + ENGAGEMENT_PER_E * out.eng + 12 * se * zz[0], 0, 100)
    ms = np.clip(MANAGER_SUPPORT_MEAN + MANAGER_SUPPORT_PER_Q * out.q + 15 * se * zz[1], 0, 100)
    canteen = np.clip(st.canteen0 + 0.8 * se * zz[2], 1, 5)
    cx_resp = g.poisson(st.cx_rate * hc)
    outage = g.random(n) < CX_OUTAGE
    drop = outage & (g.random(n) < 0.5)  # half the outages leave no row at all
    cx_resp = np.where(outage, 0, cx_resp)
    satisfied = g.binomial(cx_resp, out.p_csat)
    csat = np.where(cx_resp > 0, 100.0 * satisfied / np.maximum(cx_resp, 1), np.nan)
    return {
        "svy_row": svy_row,
        "svy_resp": svy_resp,
        "eng_obs": eng * shown,
        "ms_obs": ms * shown,
        "canteen": canteen * shown,
        "cx_row": (hc >= 1) & ~drop,
        "cx_resp": cx_resp,
        "csat": csat,
    }


def _open_spells(st: SimState) -> dict[str, np.ndarray]:
    n = len(st.pid)
    out = {name: getattr(st, name) for name in PERSON_FIELDS}
    out.update(
        end_month=np.full(n, NEVER, np.int64),
        end_day=np.zeros(n, np.int16),
        exit_code=np.zeros(n, np.int8),
        reason=np.zeros(n, np.int8),
    )
    return out


# ----------------------------------------------------------------------------- frames


def build_frames(
    config: SimConfig, st: SimState, h: dict[str, np.ndarray], spells: dict[str, np.ndarray]
) -> dict[str, pd.DataFrame]:
    team_ids = make_ids("T", np.arange(config.n_teams), max(4, len(str(config.n_teams))))
    months = np.array(
        [month_str(int(o)) for o in params_of(config).start_ordinal + np.arange(config.n_months)],
        dtype=object,
    )
    return {
        "employees": _employees(config, st, h, spells, team_ids),
        "engagement": _monthly(
            team_ids,
            months,
            h["svy_row"],
            {
                "responses": h["svy_resp"],
                "engagement": np.round(h["eng_obs"], 1),
                "manager_support": np.round(h["ms_obs"], 1),
                "canteen_rating": np.round(h["canteen"], 2),
            },
        ),
        "workload": _monthly(
            team_ids,
            months,
            h["hc_end"] >= 1,
            {
                "cases_per_head": np.round(h["cph"], 1),
                "after_hours_ratio": np.round(h["ah"], 4),
                "absence_rate": np.round(h["absence"], 4),
                "system_uptime": np.round(h["uptime"], 3),
            },
        ),
        "cx": _monthly(
            team_ids,
            months,
            h["cx_row"],
            {
                "csat": np.round(h["csat"], 2),
                "responses": h["cx_resp"],
                "email_share": np.round(h["email"], 4),
            },
        ),
    }


def _monthly(
    team_ids: np.ndarray, months: np.ndarray, row: np.ndarray, cols: dict[str, np.ndarray]
) -> pd.DataFrame:
    """Long table from (months x teams) arrays, team-major, keeping rows where `row`."""
    t_idx, m_idx = np.nonzero(row.T)
    data: dict[str, object] = {
        "team_id": pd.array(team_ids[t_idx], dtype="str"),
        "month": pd.array(months[m_idx], dtype="str"),
    }
    for name, arr in cols.items():
        v = arr.T[t_idx, m_idx]
        data[name] = v.astype(np.int64) if arr.dtype.kind in "iu" else v.astype(np.float64)
    return pd.DataFrame(data)


def _dates(ordinal: np.ndarray, day: np.ndarray) -> np.ndarray:
    d = (np.datetime64("1970-01", "M") + ordinal).astype("datetime64[D]") + day
    return np.datetime_as_string(d, unit="D")


def _employees(
    config: SimConfig,
    st: SimState,
    h: dict[str, np.ndarray],
    spells: dict[str, np.ndarray],
    team_ids: np.ndarray,
) -> pd.DataFrame:
    s = spells
    order = np.lexsort((s["spell_start"], s["pid"]))
    s = {k: v[order] for k, v in s.items()}
    ord0 = params_of(config).start_ordinal
    open_ = s["end_month"] >= NEVER
    exit_dates = _dates(ord0 + np.where(open_, 0, s["end_month"]), s["end_day"])
    # The manager on the row is the team's manager when the spell ended (or now, if open).
    m_last = np.minimum(s["end_month"], config.n_months - 1)
    manager = h["mgr"][m_last, s["team"]]
    width = max(7, len(str(int(st.next_pid))))
    return pd.DataFrame(
        {
            "employee_id": pd.array(make_ids("E", s["pid"], width), dtype="str"),
            "team_id": pd.array(team_ids[s["team"]], dtype="str"),
            "hire_date": pd.array(_dates(ord0 + s["spell_start"], s["spell_day"]), dtype="str"),
            "exit_date": pd.array(np.where(open_, "", exit_dates), dtype="str"),
            "exit_type": pd.array(
                np.asarray(EXIT_TYPES, dtype=object)[s["exit_code"]], dtype="str"
            ),
            "exit_reason": pd.array(np.asarray(REASONS, dtype=object)[s["reason"]], dtype="str"),
            "role": pd.array(np.asarray(ROLES, dtype=object)[s["role"]], dtype="str"),
            "department": pd.array(
                np.asarray(DEPARTMENTS, dtype=object)[st.dept[s["team"]]], dtype="str"
            ),
            "site": pd.array(np.asarray(SITES, dtype=object)[st.site[s["team"]]], dtype="str"),
            "manager_id": pd.array(make_ids("M", manager, 6), dtype="str"),
            "gender": pd.array(np.asarray(GENDERS, dtype=object)[s["gender"]], dtype="str"),
            "birth_year": s["byear"].astype(np.int64),
        }
    )


# ----------------------------------------------------------------------------- writing


def write_simulation(
    result: SimResult, out_dir: Path, *, truth: bool = False, fmt: str = "csv"
) -> list[Path]:
    """Write the four tables (and `meta.json`); with `truth`, also `truth/*`.

    `meta.json` sets `data_start` to the first simulated month: the employees table, like
    an HRIS export, holds only people still employed when the history begins.
    """
    check_param("fmt", fmt, fmt in ("csv", "parquet"), "'csv' or 'parquet'")
    out_dir = Path(out_dir)
    other = "parquet" if fmt == "csv" else "csv"
    for name in result.frames:
        clash = out_dir / f"{name}.{other}"
        if clash.exists():
            raise OutputError(
                f"{clash} already exists; writing {name}.{fmt} beside it would leave both "
                "formats in one data directory. Remove it or choose another output folder."
            )
    if truth and result.truth is None:
        check_param(
            "truth",
            truth,
            False,
            "False when the result has no truth (SimConfig.compute_truth=False)",
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [_write_frame(df, out_dir / f"{name}.{fmt}") for name, df in result.frames.items()]
    meta = {"data_start": result.config.start}
    written.append(_write_text(json_text(meta), out_dir / "meta.json"))
    if truth:
        written += _write_truth(result, out_dir / "truth")
    return written


def _write_truth(result: SimResult, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    assert result.truth is not None
    written = [_write_frame(result.truth, folder / "expected.parquet")]
    if result.interventions is not None:
        written.append(_write_frame(result.interventions, folder / "interventions.parquet"))
    cfg = asdict(result.config)
    cfg["truth_method"] = (
        "expected leavers: product of survival along the realised team path; "
        "interventions: continuation from the checkpointed hidden state, common random "
        f"numbers, {result.config.intervention_reps} replications"
    )
    written.append(_write_text(json_text(cfg), folder / "config.json"))
    return written


def _atomic(path: Path, write: Callable[[Path], None]) -> Path:
    """Write through a temporary file so a crash never leaves a half-written table."""
    return write_atomic(path, write)


def _write_frame(df: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        return _atomic(path, lambda p: df.to_csv(p, index=False, lineterminator="\n"))
    return _atomic(path, lambda p: df.to_parquet(p, index=False))


def _write_text(text: str, path: Path) -> Path:
    return _atomic(path, lambda p: p.write_text(text, encoding="utf-8"))
