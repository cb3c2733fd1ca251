"""A slow, obviously-correct reference for the feature panel and the targets, plus a small
random organisation in contract format for tests and benchmarks.

The reference loops over teams, months and employees and applies each definition literally;
the fast pipeline in `forecast.features` / `forecast.targets` must match it column by column.
It reuses only the column plan (which columns a spec produces), never the arithmetic.
"""

from __future__ import annotations

import itertools
import math
import statistics

import numpy as np
import pandas as pd

from forecast.data.contract import latest_complete_month, tables_from_frames
from forecast.data.tables import Tables
from forecast.features.panel import MIN_TREND_POINTS, plan_features
from forecast.features.specs import FeatureSpecs

# --------------------------------------------------------------------------- random data


def random_frames(
    n_teams: int = 8,
    n_months: int = 24,
    seed: int = 0,
    start: str = "2021-01",
    backfill: int = 18,
) -> dict[str, pd.DataFrame]:
    """A small organisation in contract format (text dates, `YYYY-MM` months)."""
    rng = np.random.default_rng(seed)
    start_p = pd.Period(start, freq="M")
    teams = [f"T{i:03d}" for i in range(n_teams)]
    rows: list[dict] = []
    open_spells: dict[int, int] = {}  # row index -> team index
    next_id = 0

    def day(month: pd.Period) -> str:
        return f"{month.year:04d}-{month.month:02d}-{int(rng.integers(1, 29)):02d}"

    def hire(team: int, month: pd.Period, emp: str | None = None, date: str | None = None):
        nonlocal next_id
        if emp is None:
            emp, next_id = f"E{next_id:05d}", next_id + 1
        rows.append(
            {
                "employee_id": emp,
                "team_id": teams[team],
                "hire_date": date or day(month),
                "exit_date": "",
                "exit_type": "",
                "gender": str(rng.choice(["F", "M", "X"])),
                "birth_year": str(rng.integers(1960, 2000)),
            }
        )
        open_spells[len(rows) - 1] = team

    for team in range(n_teams):
        for _ in range(int(rng.integers(0, 8))):
            hire(team, start_p - int(rng.integers(1, backfill + 1)))
    for m in range(n_months):
        month = start_p + m
        for idx in list(open_spells):
            if pd.Period(rows[idx]["hire_date"][:7], freq="M") > month:
                continue
            u = rng.random()
            kind = (
                "voluntary"
                if u < 0.04
                else "involuntary"
                if u < 0.055
                else ("transfer" if u < 0.07 else "")
            )
            if not kind:
                continue
            exit_date = day(month)
            if exit_date < rows[idx]["hire_date"]:
                exit_date = rows[idx]["hire_date"]
            rows[idx]["exit_date"], rows[idx]["exit_type"] = exit_date, kind
            del open_spells[idx]
            if kind == "transfer":
                dest = int(rng.integers(n_teams))
                hire(dest, month, emp=rows[idx]["employee_id"], date=exit_date)
        for team in range(n_teams):
            for _ in range(int(rng.poisson(0.5))):
                hire(team, month)
    # A few same-month hire-and-exit spells and exits after the data end (notice periods).
    for idx in list(open_spells)[:: max(len(open_spells) // 6, 1)]:
        h = rows[idx]["hire_date"]
        if rng.random() < 0.5:
            rows[idx]["exit_date"], rows[idx]["exit_type"] = h, "voluntary"
        else:
            later = start_p + n_months + int(rng.integers(0, 3))
            rows[idx]["exit_date"], rows[idx]["exit_type"] = day(later), "voluntary"
    employees = pd.DataFrame(rows)

    eng, work, cx = [], [], []
    for ti, team in enumerate(teams):
        quarterly = ti % 3 != 0
        level = rng.normal(70, 5)
        for m in range(n_months):
            month = (start_p + m).strftime("%Y-%m")
            if not quarterly or m % 3 == ti % 3:
                e = level + rng.normal(0, 3)
                ms = rng.normal(65, 8)
                eng.append(
                    {
                        "team_id": team,
                        "month": month,
                        "engagement": "" if rng.random() < 0.12 else f"{e:.2f}",
                        "manager_support": "" if rng.random() < 0.12 else f"{ms:.2f}",
                        "responses": str(int(rng.integers(3, 30))),
                    }
                )
            if rng.random() > 0.06 or m == n_months - 1:
                work.append(
                    {
                        "team_id": team,
                        "month": month,
                        "overtime_ratio": ""
                        if rng.random() < 0.05
                        else f"{rng.gamma(2, 0.04):.4f}",
                        "cases_per_head": f"{rng.normal(300, 40) + 2 * m:.1f}",
                        "site_code": str(100 + ti % 4),
                    }
                )
            if rng.random() > 0.08 or m == n_months - 1:
                resp = rng.integers(0, 60)
                cx.append(
                    {
                        "team_id": team,
                        "month": month,
                        "csat": ""
                        if resp == 0 and rng.random() < 0.5
                        else f"{rng.uniform(55, 95):.1f}",
                        "responses": "" if rng.random() < 0.1 else str(int(resp)),
                    }
                )
    return {
        "employees": employees,
        "engagement": pd.DataFrame(eng),
        "workload": pd.DataFrame(work),
        "cx": pd.DataFrame(cx),
    }


def random_tables(**kwargs) -> Tables:
    data_start = kwargs.pop("data_start", None)
    return tables_from_frames(random_frames(**kwargs), data_start=data_start)


# --------------------------------------------------------------------------- reference panel


def _month(value) -> int | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return pd.Period(value, freq="M").ordinal


def _window_months(first: int, last: int) -> list[int]:
    return list(range(first, last + 1))


def reference_months(tables: Tables) -> tuple[int, int]:
    last = latest_complete_month(tables).ordinal
    if tables.data_start is not None:
        return pd.Period(tables.data_start, freq="M").ordinal, last
    firsts = [_month(d) for d in tables.employees["hire_date"]]
    for name in ("engagement", "workload", "cx"):
        t = tables.table(name)
        if t is not None:
            firsts += [m.ordinal for m in t["month"]]
    return min(firsts), last


def _spells(tables: Tables) -> list[dict]:
    emp = tables.employees
    spells = []
    for i in range(len(emp)):
        r = emp.iloc[i]
        etype = "" if pd.isna(r["exit_type"]) else str(r["exit_type"])
        spells.append(
            {
                "row": i,
                "employee": r["employee_id"],
                "team": r["team_id"],
                "a": _month(r["hire_date"]),
                "b": _month(r["exit_date"]),
                "type": etype,
                "hire_date": r["hire_date"],
                "transfer_in": False,
            }
        )
    # The spell right before, in the employee's own history, ended by transfer: a move.
    for emp in {s["employee"] for s in spells}:
        own = sorted(
            (s for s in spells if s["employee"] == emp),
            key=lambda s: (s["hire_date"], s["b"] if s["b"] is not None else 10**9),
        )
        for prev, s in itertools.pairwise(own):
            s["transfer_in"] = prev["type"] == "transfer"
    return spells


def _employed(s: dict, t: int) -> bool:
    return s["a"] <= t and (s["b"] is None or s["b"] > t)


def _weighted_mean(pairs: list[tuple[float, float]]) -> float:
    total = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / total if total > 0 else math.nan


def _slope(points: list[tuple[int, float]]) -> float:
    if len(points) < MIN_TREND_POINTS:
        return math.nan
    xbar = sum(x for x, _ in points) / len(points)
    ybar = sum(y for _, y in points) / len(points)
    den = sum((x - xbar) ** 2 for x, _ in points)
    if den == 0:
        return math.nan
    return sum((x - xbar) * (y - ybar) for x, y in points) / den


def reference_panel(tables: Tables, specs: FeatureSpecs) -> pd.DataFrame:
    plan, _ = plan_features(tables, specs)
    first, last = reference_months(tables)
    months = _window_months(first, last)
    spells = _spells(tables)
    teams = sorted(set(tables.employees["team_id"]))
    by_team = {team: [s for s in spells if s["team"] == team] for team in teams}
    hc = {(team, t): sum(_employed(s, t) for s in by_team[team]) for team in teams for t in months}

    def events(team: str, signal: str, lo: int, hi: int) -> int:
        """Events of `signal` in months lo..hi (inclusive), never before the first month."""
        n = 0
        for s in by_team[team]:
            if signal in ("hires", "transfers_in"):
                month = s["a"]
                ok = s["transfer_in"] == (signal == "transfers_in")
            else:
                month = s["b"]
                kind = {
                    "transfers_out": "transfer",
                    "vol_leavers": "voluntary",
                    "invol_leavers": "involuntary",
                }[signal]
                ok = s["type"] == kind
            if ok and month is not None and max(lo, first) <= month <= hi:
                n += 1
        return n

    def rate_parts(team_list: list[str], kind: str, t: int) -> tuple[int, int]:
        leavers = sum(
            1
            for team in team_list
            for s in by_team[team]
            if s["type"] == kind and s["b"] is not None and s["a"] < s["b"] and first < s["b"] <= t
        )
        exposure = sum(hc[(team, m)] for team in team_list for m in range(first, t))
        return leavers, exposure

    monthly: dict[str, dict[tuple[str, int], pd.Series]] = {}
    for name in ("engagement", "workload", "cx"):
        table = tables.table(name)
        if table is not None:
            monthly[name] = {(r["team_id"], r["month"].ordinal): r for _, r in table.iterrows()}

    rows = []
    for team in teams:
        for t in months:
            if hc[(team, t)] == 0:
                continue
            employed = [s for s in by_team[team] if _employed(s, t)]
            row: dict[str, object] = {
                "team_id": team,
                "as_of": pd.Period(ordinal=t, freq="M"),
                "headcount": len(employed),
            }
            for p in plan:
                row[p.name] = _reference_value(
                    p,
                    specs,
                    tables,
                    team,
                    t,
                    first,
                    employed,
                    events,
                    rate_parts,
                    teams,
                    monthly,
                    hc,
                )
            # The attrition baseline's inputs (not features): the team's voluntary leavers and
            # person-months so far, and the organisation's voluntary rate over 12 months.
            lv, ex = rate_parts([team], "voluntary", t)
            org_lv = sum(
                1
                for other in teams
                for s in by_team[other]
                if s["type"] == "voluntary"
                and s["b"] is not None
                and s["a"] < s["b"]
                and max(first + 1, t - 11) <= s["b"] <= t
            )
            org_ex = sum(hc[(other, m)] for other in teams for m in range(max(first, t - 12), t))
            row["baseline_leavers"] = float(lv)
            row["baseline_person_months"] = float(ex)
            row["baseline_org_rate"] = org_lv / org_ex if org_ex > 0 else math.nan
            rows.append(row)
    out = pd.DataFrame(rows)
    out["team_id"] = out["team_id"].astype("string")
    out["as_of"] = out["as_of"].astype("period[M]")
    out["headcount"] = out["headcount"].astype("int64")
    return out


def _reference_value(
    p, specs, tables, team, t, first, employed, events, rate_parts, teams, monthly, hc
) -> float:
    tr = p.transform
    if p.source == "employees":
        if p.protected:
            values = [tables.employees.iloc[s["row"]][p.column] for s in employed]
            if p.category is None:
                nums = [float(v) for v in values if not pd.isna(v) and str(v).strip() != ""]
                return sum(nums) / len(nums) if nums else math.nan
            return sum(str(v).strip() == p.category for v in values if not pd.isna(v)) / len(
                employed
            )
        if tr.kind == "current":
            return float(len(employed))
        if tr.kind == "growth":
            before = t - tr.window
            then = hc.get((team, before), 0)
            return len(employed) / then - 1.0 if then > 0 else math.nan
        if tr.kind == "of_year":
            return float(pd.Period(ordinal=t, freq="M").month)
        tenures = [t - s["a"] for s in employed]
        if tr.kind == "share_lt":
            return sum(x < tr.window for x in tenures) / len(tenures)
        if tr.kind == "median":
            return float(statistics.median(tenures))
        if tr.kind == "sum":
            return float(events(team, p.column, t - tr.window + 1, t))
        if tr.kind == "longrun_rate_shrunk":
            kind = {
                "transfers_out": "transfer",
                "vol_leavers": "voluntary",
                "invol_leavers": "involuntary",
            }[p.column]
            lv, ex = rate_parts([team], kind, t)
            org_lv, org_ex = rate_parts(teams, kind, t)
            org = org_lv / org_ex if org_ex > 0 else math.nan
            return (lv + tr.prior * org) / (ex + tr.prior)
        raise AssertionError(tr.kind)

    rows = monthly[p.source]
    spec = specs.family(p.family)

    def value(m: int) -> float:
        r = rows.get((team, m))
        return math.nan if r is None or pd.isna(r[p.column]) else float(r[p.column])

    def weight(m: int) -> float:
        r = rows.get((team, m))
        if spec.weight is None or spec.weight not in r.index or pd.isna(r[spec.weight]):
            return 1.0
        return float(r[spec.weight])

    past = [m for m in range(first, t + 1)]  # only months on or before t, never before first
    observed = [m for m in past if not math.isnan(value(m))]
    if tr.kind == "current":
        return value(t)
    if tr.kind == "last":
        return value(observed[-1]) if observed else math.nan
    if tr.kind == "age_months":
        return float(t - observed[-1]) if observed else math.nan
    if tr.kind == "change":
        return value(observed[-1]) - value(observed[-2]) if len(observed) >= 2 else math.nan
    if tr.kind == "longrun_mean":
        return _weighted_mean([(value(m), weight(m)) for m in observed])
    if tr.kind == "vs_longrun":
        return value(t) - _weighted_mean([(value(m), weight(m)) for m in observed])
    recent = [m for m in observed if m > t - tr.window]
    if tr.kind == "mean":
        return _weighted_mean([(value(m), weight(m)) for m in recent])
    if tr.kind == "sum":
        return float(sum(value(m) for m in recent))
    if tr.kind == "trend":
        return _slope([(m, value(m)) for m in recent])
    raise AssertionError(tr.kind)


# --------------------------------------------------------------------------- reference targets


def reference_targets(tables: Tables, horizon: int) -> pd.DataFrame:
    first, last = reference_months(tables)
    spells = _spells(tables)
    teams = sorted(set(tables.employees["team_id"]))
    cx = {}
    if tables.cx is not None:
        for _, r in tables.cx.iterrows():
            if not pd.isna(r["csat"]):
                w = (
                    1.0
                    if "responses" not in r.index or pd.isna(r["responses"])
                    else float(r["responses"])
                )
                cx[(r["team_id"], r["month"].ordinal)] = (float(r["csat"]), w)

    def csat(team: str, lo: int, hi: int) -> tuple[float, float]:
        pairs = [cx[(team, m)] for m in range(max(lo, first), min(hi, last) + 1) if (team, m) in cx]
        return _weighted_mean(pairs), sum(w for _, w in pairs)

    rows = []
    for team in teams:
        for t in range(first, last + 1):
            cohort = [s for s in spells if s["team"] == team and _employed(s, t)]
            if not cohort:
                continue
            labelled = t + horizon <= last
            leavers = sum(
                1 for s in cohort if s["type"] == "voluntary" and t + 1 <= s["b"] <= t + horizon
            )
            after, weight = csat(team, t + 1, t + horizon)
            before, _ = csat(team, t - 2, t)
            rows.append(
                {
                    "team_id": team,
                    "as_of": pd.Period(ordinal=t, freq="M"),
                    "headcount": len(cohort),
                    "leavers": float(leavers) if labelled else math.nan,
                    "csat_change": after - before if labelled else math.nan,
                    "csat_weight": weight if labelled else math.nan,
                    "labelled": labelled,
                }
            )
    out = pd.DataFrame(rows)
    out["team_id"] = out["team_id"].astype("string")
    out["as_of"] = out["as_of"].astype("period[M]")
    out["headcount"] = out["headcount"].astype("int64")
    return out
