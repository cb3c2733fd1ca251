"""Alternative what-if engines, kept for the comparison in benchmarks/whatif.py.

They share `CausalEngine.fit` for the data (dose, controls, natural path) and differ in how the
effect is learned:

- `SLearnerEngine`: one LightGBM Poisson model of the leaver rate on the state controls plus
  the dose, with a monotone constraint on the dose and linear trees (so it extrapolates to the
  most loaded teams); the effect is its prediction at VALUE against the natural path.
- `StructuralEngine`: two linear stages, driver -> engagement (future survey mean) and driver
  + engagement -> leaving (complementary log-log), the effect being the direct plus mediated
  paths.

Not used by the product. Pure: frames in, frames out.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from forecast.data.months import month_str
from forecast.whatif.engine import (
    FUTURE,
    CausalEngine,
    EffectFit,
    _labelled_rows,
    _lgb,
    cloglog_final,
    cum_hazard,
    predict_natural,
    shift_rate,
    weighted_ls,
)


def _rows_now(frame: pd.DataFrame, month: pd.Period, teams: list[str]) -> pd.DataFrame:
    now = frame.loc[frame["as_of"] == month]
    now = now.assign(team_id=now["team_id"].astype(str)).set_index("team_id")
    return now.loc[teams].reset_index()


def _out(
    rows: pd.DataFrame,
    month: pd.Period,
    signal: str,
    value: float,
    before: np.ndarray,
    after: np.ndarray,
    csat_before: np.ndarray,
    d_csat: np.ndarray,
    name: str,
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "team_id": rows["team_id"].astype(str).to_numpy(),
            "as_of": month_str(month),
            "signal": signal,
            "value": float(value),
            "before_expected_leavers": before,
            "after_expected_leavers": after,
            "before_csat_change": csat_before,
            "after_csat_change": csat_before + d_csat,
            "engine": name,
        }
    )


def _natural(fit: EffectFit, rows: pd.DataFrame) -> np.ndarray:
    if not fit.own:
        return np.full(len(rows), fit.natural[0][0])
    return predict_natural(fit.natural, rows[fit.own].astype(np.float64))


@dataclasses.dataclass
class SLearnerEngine(CausalEngine):
    name: str = "lgbm-monotone-linear"

    def estimate(
        self, tables: Any, pair: Any, teams: list[str], signal: str, value: float, as_of: Any = None
    ) -> pd.DataFrame:
        fit, frame, month = self.fit(tables, signal, as_of)
        teams = [str(t) for t in teams]
        train = _labelled_rows(frame)
        feats = [*fit.controls, "dose"]
        hc = train["headcount"].to_numpy(np.float64)
        rate = train["leavers"].to_numpy(np.float64) / hc
        dose = train["dose"].to_numpy(np.float64)
        # Direction of the constraint from the data (a monotone model needs a sign).
        sign = 1 if np.corrcoef(dose, rate)[0, 1] >= 0 else -1
        params = {
            **_lgb("poisson", self.settings),
            "linear_tree": True,
            "linear_lambda": 1.0,
            "monotone_constraints": [0] * len(fit.controls) + [sign],
        }
        X = train[feats].astype(np.float64)
        booster = lgb.train(params, lgb.Dataset(X, rate, weight=hc), self.settings.trees)
        rows = _rows_now(frame, month, teams)
        nat = _natural(fit, rows)
        # The concurrent signals are unknown at t: the model sees them as missing both times.
        Xn = rows[feats].astype(np.float64).assign(dose=nat)
        Xv = Xn.assign(dose=float(value))
        hc_now = rows["headcount"].to_numpy(np.float64)
        before = hc_now * np.exp(booster.predict(Xn, raw_score=True))
        after = hc_now * np.exp(booster.predict(Xv, raw_score=True))
        csat = train["csat_change"].notna().to_numpy()
        cfeats = [*fit.csat_controls, "dose"]
        cb = lgb.train(
            {**_lgb("regression", self.settings), "linear_tree": True},
            lgb.Dataset(
                train.loc[csat, cfeats].astype(np.float64),
                train.loc[csat, "csat_change"].to_numpy(np.float64),
                weight=train.loc[csat, "csat_weight"].fillna(1.0),
            ),
            self.settings.trees,
        )
        cn = cb.predict(rows[cfeats].astype(np.float64).assign(dose=nat), raw_score=True)
        cv = cb.predict(rows[cfeats].astype(np.float64).assign(dose=float(value)), raw_score=True)
        return _out(rows, month, fit.signal, value, before, after, cn, cv - cn, self.name)


def _standardise(
    train: pd.DataFrame, rows: pd.DataFrame, cols: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    A = train[cols].to_numpy(np.float64)
    B = rows[cols].to_numpy(np.float64)
    mean = np.nan_to_num(np.nanmean(A, axis=0))
    sd = np.nanstd(A, axis=0)
    sd = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)
    return (np.nan_to_num((A - mean) / sd), np.nan_to_num((B - mean) / sd))


@dataclasses.dataclass
class StructuralEngine(CausalEngine):
    name: str = "structural-2stage"

    def estimate(
        self, tables: Any, pair: Any, teams: list[str], signal: str, value: float, as_of: Any = None
    ) -> pd.DataFrame:
        from forecast.features.grid import (
            assemble,
            headcount_grid,
            make_grid,
            make_spells,
            monthly_grid,
            panel_months,
        )
        from forecast.whatif.engine import _window_mean

        fit, frame, month = self.fit(tables, signal, as_of)
        teams = [str(t) for t in teams]
        # Mediator: the engagement survey's mean over the horizon.
        known = tables
        first, last = panel_months(known)
        grid = make_grid(known, first, last)
        hc_grid = headcount_grid(make_spells(known.employees, grid), grid.shape)
        med_cols = [c for c in (known.signals.get("engagement", [])) if c != signal][:1]
        arrays = {}
        for c in med_cols:
            vals, _ = monthly_grid(known.engagement, c, grid)
            arrays[f"med__{c}"] = _window_mean(vals, 1, fit.horizon)
        med = assemble(grid, hc_grid, arrays)
        frame = frame.merge(med, on=["team_id", "as_of", "headcount"], how="left")
        train = _labelled_rows(frame)
        mcols = list(arrays)
        ctrl = [c for c in fit.controls if not c.startswith(FUTURE)]
        rows = _rows_now(frame, month, teams)
        Xc, Xr = _standardise(train, rows, ctrl)
        dose = train["dose"].to_numpy(np.float64)
        alphas = []
        for c in mcols:  # stage 1: driver -> mediator
            ok = train[c].notna().to_numpy()
            Z = np.column_stack([np.ones(ok.sum()), dose[ok], Xc[ok]])
            alphas.append(
                weighted_ls(train.loc[ok, c].to_numpy(np.float64), Z, np.ones(ok.sum()), 1.0)[1]
            )
        M = (
            np.nan_to_num(
                train[mcols].to_numpy(np.float64)
                - np.nanmean(train[mcols].to_numpy(np.float64), axis=0)
            )
            if mcols
            else np.zeros((len(train), 0))
        )
        hc = train["headcount"].to_numpy(np.float64)
        y = np.minimum(train["leavers"].to_numpy(np.float64), hc)
        Z = np.column_stack([np.ones(len(train)), dose, M, Xc])
        b = cloglog_final(y, hc, np.zeros(len(train)), Z, np.ones(len(train)), 1.0)
        total = b[1] + sum(a * bm for a, bm in zip(alphas, b[2 : 2 + len(mcols)], strict=True))
        nat = _natural(fit, rows)
        hc_now = rows["headcount"].to_numpy(np.float64)
        Zr = np.column_stack([np.ones(len(rows)), nat, np.zeros((len(rows), len(mcols))), Xr])
        before_rate = 1 - np.exp(-np.exp(Zr @ b))
        after_rate = shift_rate(before_rate, total * (float(value) - nat))
        ok = train["csat_change"].notna().to_numpy()
        Zc = np.column_stack([np.ones(ok.sum()), dose[ok], M[ok], Xc[ok]])
        c = weighted_ls(
            train.loc[ok, "csat_change"].to_numpy(np.float64),
            Zc,
            train.loc[ok, "csat_weight"].fillna(1.0).to_numpy(np.float64),
            1.0,
        )
        c_total = c[1] + sum(a * cm for a, cm in zip(alphas, c[2 : 2 + len(mcols)], strict=True))
        d_csat = c_total * (float(value) - nat)
        zeros = np.zeros(len(rows))
        _ = cum_hazard  # same saturation as the chosen engine
        return _out(
            rows,
            month,
            fit.signal,
            value,
            before_rate * hc_now,
            after_rate * hc_now,
            zeros,
            d_csat,
            self.name,
        )
