"""A contract-following `forecast score` output folder built without a model (fast): shared by
the report's tests and its browser test."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from forecast.models.fairness import fairness_audit, fairness_input
from forecast.scoring.extras import team_attributes
from forecast.whatif.engine import NOTE as WHATIF_NOTE

AS_OF = "2024-06"


FEATURES = [
    (
        "workload__after_hours_ratio__vs_longrun",
        "workload",
        "after-hours work, vs. own long-run level",
    ),
    ("workload__after_hours_ratio__mean_3m", "workload", "after-hours work, 3-month average"),
    ("workload__cases_per_head__current", "workload", "cases per head, this month"),
    ("engagement__engagement__last", "engagement", "engagement, latest survey"),
    (
        "engagement__manager_support__change",
        "engagement",
        "manager support, change since previous survey",
    ),
    ("engagement__engagement__age_months", "engagement", "engagement, months since last survey"),
    ("people_flow__vol_leavers__sum_6m", "people_flow", "voluntary leavers, last 6 months"),
    (
        "people_flow__vol_leavers__longrun_rate_shrunk",
        "people_flow",
        "voluntary leavers, long-run rate per person-month",
    ),
    ("tenure__tenure__share_lt_6m", "tenure", "tenure, share under 6 months"),
    ("tenure__tenure__median", "tenure", "tenure, median (months)"),
    ("tenure__headcount__current", "tenure", "team size, this month"),
    ("cx__csat__mean_3m", "cx", "CSAT, 3-month average"),
]


def synthetic_employees(teams: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Spells for the teams' current headcounts plus some leavers; a `name` column and manager
    ids that are themselves employee ids (the hard case for privacy)."""
    rng = np.random.default_rng(seed)
    rows, n = [], 0
    depts = ["Billing", "Support", "Sales"]
    for i, t in enumerate(teams.itertuples()):
        manager = f"E{9000 + i // 2:06d}"  # every two teams share a manager who is an employee
        for k in range(int(t.headcount) + 2):
            n += 1
            left = k >= t.headcount
            rows.append(
                {
                    "employee_id": f"E{n:06d}",
                    "team_id": t.team_id,
                    "hire_date": f"20{rng.integers(15, 23)}-0{rng.integers(1, 9)}-15",
                    "exit_date": "2024-02-15" if left else None,
                    "exit_type": "voluntary" if left else None,
                    "name": f"Person Surname{n:05d}",
                    "department": depts[i % 3] if i != len(teams) - 1 else "Tiny Unit",
                    "site": ["Leeds", "Porto"][i % 2],
                    "manager_id": manager,
                    "gender": rng.choice(
                        ["F", "M"], p=[0.7 if i % 2 else 0.3, 0.3 if i % 2 else 0.7]
                    ),
                    "birth_year": int(rng.integers(1965, 2002)),
                }
            )
    emp = pd.DataFrame(rows)
    emp["hire_date"] = pd.to_datetime(emp["hire_date"])
    emp["exit_date"] = pd.to_datetime(emp["exit_date"])
    return emp


def make_outputs(
    out: Path,
    *,
    n_teams: int = 40,
    seed: int = 0,
    as_of: str = AS_OF,
    employees: pd.DataFrame | None = None,
) -> Path:
    """A contract-following OUT folder: scores, additive drivers, history, calibration, drift,
    manifest, team attributes, fairness input and what-ifs."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    teams = [f"T{i:03d}" for i in range(n_teams)]
    headcount = rng.integers(6, 40, n_teams)
    headcount[[3, 7]] = [2, 4]  # below the minimum group size
    base_att, base_cs = math.log(0.05), -0.3
    att_shap = rng.normal(0, 0.25, (n_teams, len(FEATURES)))
    cs_shap = rng.normal(0, 0.4, (n_teams, len(FEATURES) + 1))
    values = rng.normal(0, 1, (n_teams, len(FEATURES)))
    values[:, 1] = rng.uniform(0.02, 0.3, n_teams)  # after-hours ratio
    rate = np.exp(base_att + att_shap.sum(axis=1))
    csat = base_cs + cs_shap.sum(axis=1)
    exp_leavers = rate * headcount
    scores = pd.DataFrame(
        {
            "team_id": teams,
            "as_of": as_of,
            "headcount": headcount.astype("int64"),
            "expected_leavers": exp_leavers,
            "attrition_rate": rate,
            "csat_change": csat,
            "leavers_p10": np.floor(exp_leavers * 0.4),
            "leavers_p90": np.ceil(exp_leavers * 1.8),
            "csat_change_p10": csat - 1.5,
            "csat_change_p90": csat + 1.5,
            "risk_band": np.where(rate > 0.08, "high", np.where(rate > 0.04, "medium", "low")),
            "reportable": headcount >= 5,
        }
    )
    scores.loc[5, "csat_change"] = np.nan  # a team without recent CSAT
    scores.to_parquet(out / "scores.parquet")
    rows = []
    for i, team in enumerate(teams):
        if headcount[i] < 5:
            continue
        for j, (feat, fam, label) in enumerate(FEATURES):
            rows.append(
                (team, as_of, "attrition", feat, values[i, j], att_shap[i, j], base_att, fam, label)
            )
            rows.append(
                (team, as_of, "csat", feat, values[i, j], cs_shap[i, j], base_cs, fam, label)
            )
        rows.append(
            (
                team,
                as_of,
                "csat",
                "expected_attrition_rate",
                rate[i],
                cs_shap[i, -1],
                base_cs,
                "attrition",
                "expected attrition (people risk)",
            )
        )
    drivers = pd.DataFrame(
        rows,
        columns=[
            "team_id",
            "as_of",
            "target",
            "feature",
            "feature_value",
            "shap_value",
            "base_value",
            "family",
            "feature_label",
        ],
    )
    drivers.to_parquet(out / "drivers.parquet")
    months = pd.period_range(end=as_of, periods=12, freq="M").astype(str)
    pd.DataFrame(
        {
            "team_id": np.repeat(teams, 12),
            "month": np.tile(months, n_teams),
            "vol_leavers": rng.poisson(0.4, 12 * n_teams).astype(float),
            "csat": rng.normal(80, 4, 12 * n_teams).round(1),
        }
    ).to_parquet(out / "history.parquet")
    pd.DataFrame(
        {
            "decile": np.arange(1, 11),
            "rows": 40,
            "headcount": 800,
            "mean_rate": np.linspace(0.01, 0.12, 10),
            "predicted": np.linspace(4, 60, 10),
            "realised": np.linspace(5, 55, 10),
        }
    ).to_parquet(out / "backtest_calibration.parquet")
    pd.DataFrame(
        {"feature": [FEATURES[0][0], FEATURES[3][0]], "psi": [0.41, 0.05], "warn": [True, False]}
    ).to_parquet(out / "drift.parquet")
    emp = employees if employees is not None else synthetic_employees(scores, seed)
    team_attributes(emp, as_of).to_parquet(out / "team_attributes.parquet")
    bt = pd.DataFrame(
        {
            "team_id": np.repeat(teams, 3),
            "as_of": np.tile(["2023-09", "2023-12", "2024-03"], n_teams),
            "pred_model": rng.gamma(2, 0.8, 3 * n_teams),
            "leavers": rng.poisson(1.6, 3 * n_teams),
        }
    )
    fairness_audit(fairness_input(bt, emp)).to_parquet(out / "fairness.parquet")
    top = scores.loc[scores["reportable"]].nlargest(5, "expected_leavers")
    pd.DataFrame(
        {
            "team_id": top["team_id"],
            "as_of": as_of,
            "signal": "after_hours_ratio",
            "value": 0.08,
            "current_value": 0.21,
            "before_expected_leavers": top["expected_leavers"],
            "after_expected_leavers": top["expected_leavers"] * 0.85,
            "before_csat_change": top["csat_change"],
            "after_csat_change": top["csat_change"] + 0.3,
        }
    ).to_parquet(out / "whatif.parquet")
    total = float(exp_leavers.sum())
    manifest = {  # the shape score.py writes
        "as_of": as_of,
        "horizon": 3,
        "min_group": 5,
        "model": {
            "attrition": {"name": "forecast-attrition", "version": "3", "run_id": "a" * 32},
            "run_id": "a" * 32,
            "aliases": ["champion"],
            "trained_until": "2024-03",
            "trained_at": "2024-07-01",
        },
        "organisation": {
            "expected_leavers": total,
            "leavers_p10": total * 0.8,
            "leavers_p90": total * 1.2,
            "headcount": int(headcount.sum()),
        },
        "data": {"hash": "f" * 64},
        "warnings": [
            "1 feature(s) drifted from the training data (PSI > 0.25), e.g. "
            "workload__after_hours_ratio__vs_longrun; see drift.parquet."
        ],
        "created_at": "2024-07-02T08:00:00+00:00",
        "whatif_note": WHATIF_NOTE,
    }
    (out / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return out
