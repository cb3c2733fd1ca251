"""What one reader sees of the scored months: the report's own headline, ranking, roll-ups,
drivers in words, waterfalls and trust figures, computed over the reader's teams only.

`Served` holds the scoring ROOT's months (each read once, when first asked for) and builds a
`ScopedView` per (month, scope), cached: the first page of a scope pays for its roll-ups and
grouped drivers, the next ones only render. The scope rule is `forecast.report.scope`'s, the
same as `forecast report OUT --scope`: an analyst (scope None) sees every team, a leader the
teams whose attributes match any pair of their scope that month. Teams below the minimum group
size are counted but never shown on their own; a scope whose teams hold fewer people than that
gets no totals.

Never writes; never carries an employee id or name (everything comes from team-level files).
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecast.report import render, words
from forecast.report.render import ReportInputs, load_outputs
from forecast.report.scope import Scope, scope_inputs, scope_text, teams_in_scope
from forecast.report.trend import trend_chart, trend_rows, trend_table

TOP_TEAMS = 25  # teams with sparklines on the overview; the teams page lists every one
CACHE_VIEWS = 256


def json_value(value: Any) -> Any:
    """A cell of a frame as JSON: NaN and NA as null, numpy scalars as Python ones."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, str):
        return value
    return str(value)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of `frame` as JSON objects."""
    cols = list(frame.columns)
    return [
        {c: json_value(v) for c, v in zip(cols, row, strict=True)}
        for row in frame.itertuples(index=False, name=None)
    ]


def min_group_of(inputs: ReportInputs) -> int:
    value = inputs.manifest.get("min_group") or render.MIN_GROUP
    try:
        return int(value)
    except (TypeError, ValueError):
        return render.MIN_GROUP


@dataclass
class ScopedView:
    """One month as one scope sees it (an analyst: `scope` None)."""

    month: str
    scope: Scope | None
    inputs: ReportInputs
    min_group: int
    scores: pd.DataFrame  # the scope's teams, team_id as text
    reportable: list[str]  # reportable teams, most expected leavers first
    rows: dict[str, dict[str, Any]]  # score row of each reportable team
    headline: dict[str, Any] | None  # None: the scope holds too few people for totals
    top: list[dict[str, Any]]
    ranking: list[dict[str, Any]]
    rollups: list[dict[str, Any]]
    org_drivers: dict[str, Any] | None
    grouped: render.TeamDrivers | None
    whatifs: dict[str, dict[str, Any]]
    trust: dict[str, Any]
    suppressed: int
    _recent: dict[str, tuple] | None = field(default=None, repr=False)
    _driver_index: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def scope_label(self) -> str:
        return "whole organisation" if self.scope is None else scope_text(self.scope)

    def can_see(self, team_id: str) -> bool:
        return team_id in self.rows

    def team_records(self) -> list[dict[str, Any]]:
        """`GET /api/teams`: the reportable teams, each with every column of scores.parquet."""
        rep = self.scores.loc[self.scores["team_id"].isin(self.rows)]
        rep = rep.set_index("team_id", drop=False).loc[self.reportable]
        return records(rep.reset_index(drop=True))

    def team_record(self, team_id: str) -> dict[str, Any]:
        """`GET /api/teams/{team_id}`: its scores and drivers (long form, as drivers.parquet)."""
        row = records(self.scores.loc[self.scores["team_id"] == team_id])[0]
        drivers = self.inputs.drivers
        if drivers is None:
            row["drivers"] = []
            return row
        if self._driver_index is None:  # one grouping per view, not a scan per request
            self._driver_index = drivers.groupby(drivers["team_id"].astype(str)).indices
        found = self._driver_index.get(team_id)
        row["drivers"] = records(drivers.iloc[found]) if found is not None else []
        return row

    def team_section(self, team_id: str) -> dict[str, Any]:
        return render.team_section(self.rows[team_id], self.grouped, self.whatifs)

    def recent(self, team_id: str) -> tuple[list, list, list[str]]:
        """The team's last 12 months of voluntary leavers and CSAT, and their months."""
        if self._recent is None:
            self._recent = render.history_by_team(self.inputs.history)
        return self._recent.get(team_id, ([], [], []))


def ranking_rows(scores: pd.DataFrame) -> list[dict[str, Any]]:
    """The whole ranked table, without sparklines (the overview has them for the top teams)."""
    rep = scores.loc[scores["reportable"].astype(bool)].sort_values(
        ["expected_leavers", "team_id"], ascending=[False, True]
    )
    out = []
    for rank, r in enumerate(rep.to_dict("records"), start=1):
        csat = r.get("csat_change")
        csat = float(csat) if csat is not None and pd.notna(csat) else None
        lo, hi = r.get("leavers_p10"), r.get("leavers_p90")
        out.append(
            {
                "rank": rank,
                "team_id": str(r["team_id"]),
                "headcount": int(r["headcount"]),
                "expected": words.fmt_count(float(r["expected_leavers"])),
                "expected_sort": round(float(r["expected_leavers"]), 4),
                "interval": f"{lo:.0f} to {hi:.0f}" if pd.notna(lo) and pd.notna(hi) else "",
                "rate": words.fmt_pct(float(r["attrition_rate"]), 1),
                "rate_sort": round(float(r["attrition_rate"]), 6),
                "csat": words.fmt_points(csat),
                "csat_sort": round(csat, 4) if csat is not None else 999.0,
                "band": str(r.get("risk_band") or ""),
                "band_sort": {"high": 0, "medium": 1, "low": 2}.get(str(r.get("risk_band")), 3),
            }
        )
    return out


def build_view(inputs: ReportInputs, month: str, scope: Scope | None) -> ScopedView:
    """The view of one month for one scope (pure: frames in, plain values out)."""
    if scope is not None:
        teams = teams_in_scope(inputs.team_attributes, scope)
        inputs = scope_inputs(inputs, teams, scope_text(scope))
    min_group = min_group_of(inputs)
    scores = inputs.scores.assign(team_id=inputs.scores["team_id"].astype(str))
    if "reportable" not in scores:
        scores["reportable"] = scores["headcount"] >= min_group
    scores["reportable"] = scores["reportable"].astype(bool)
    inputs = _with_scores(inputs, scores)
    rep = scores.loc[scores["reportable"]].sort_values(
        ["expected_leavers", "team_id"], ascending=[False, True]
    )
    reportable = rep["team_id"].tolist()
    people = int(scores["headcount"].sum())
    drivers = inputs.drivers
    if drivers is not None:
        # Defence in depth, as in the report: never a driver of a team below the group size.
        drivers = drivers.loc[drivers["team_id"].astype(str).isin(set(reportable))]
    suppressed = int((~scores["reportable"]).sum())
    return ScopedView(
        month=month,
        scope=scope,
        inputs=inputs,
        min_group=min_group,
        scores=scores,
        reportable=reportable,
        rows={str(r["team_id"]): r for r in rep.to_dict("records")},
        headline=render.headline(scores, inputs.manifest, inputs.previous)
        if people >= min_group
        else None,
        top=render.team_table(rep.head(TOP_TEAMS), inputs.history),
        ranking=ranking_rows(scores),
        rollups=render.rollups(scores, inputs.team_attributes, min_group),
        org_drivers=render.org_drivers(drivers, beeswarm=False),
        grouped=render.group_drivers(drivers, set(reportable), inputs.reference_drivers),
        whatifs=render.whatif_by_team(inputs.whatif),
        trust=render.trust_view(inputs, suppressed),
        suppressed=suppressed,
    )


def _with_scores(inputs: ReportInputs, scores: pd.DataFrame) -> ReportInputs:
    return dataclasses.replace(inputs, scores=scores)


@dataclass
class MonthFiles:
    """The light part of a month, for the trend and a team's history over the months."""

    scores: pd.DataFrame
    attributes: pd.DataFrame | None
    min_group: int


@dataclass
class Served:
    """The scored months under ROOT, read on first use and kept; views cached per scope."""

    root: Path
    months: list[str]
    review: pd.DataFrame | None = None  # `forecast review`'s rows, team and organisation
    # Team attributes of a month whose folder has none (scored with --no-report), from the
    # data when the server has them; without either, leaders' scopes match no team that month.
    attributes_for: Callable[[str], pd.DataFrame] | None = None
    cache_views: int = CACHE_VIEWS
    _inputs: dict[str, ReportInputs] = field(default_factory=dict, repr=False)
    _light: dict[str, MonthFiles] = field(default_factory=dict, repr=False)
    _views: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _trends: dict = field(default_factory=dict, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _building: dict = field(default_factory=dict, repr=False)

    @property
    def latest(self) -> str:
        return self.months[-1]

    def has_month(self, month: str) -> bool:
        return month in self.months

    def inputs(self, month: str) -> ReportInputs:
        with self._lock:
            if month not in self._inputs:
                inputs = load_outputs(self.root / month)
                if self.review is not None:
                    inputs = dataclasses.replace(inputs, review=self.review)
                if inputs.team_attributes is None and self.attributes_for is not None:
                    inputs = dataclasses.replace(inputs, team_attributes=self.attributes_for(month))
                self._inputs[month] = inputs
            return self._inputs[month]

    def light(self, month: str) -> MonthFiles:
        with self._lock:
            if month not in self._light:
                folder = self.root / month
                inputs = self._inputs.get(month)
                if inputs is not None:
                    scores, attrs, mg = inputs.scores, inputs.team_attributes, min_group_of(inputs)
                else:
                    scores = pd.read_parquet(folder / "scores.parquet")
                    path = folder / "team_attributes.parquet"
                    attrs = pd.read_parquet(path) if path.exists() else None
                    if attrs is None and self.attributes_for is not None:
                        attrs = self.attributes_for(month)
                    mg = render.MIN_GROUP
                scores = scores.assign(team_id=scores["team_id"].astype(str))
                self._light[month] = MonthFiles(scores, attrs, mg)
            return self._light[month]

    def _cached(self, key: tuple, build: Callable[[], Any]) -> Any:
        """`build()` once per key (others asking meanwhile wait for it), least recently used
        views dropped past `cache_views`."""
        with self._lock:
            if key in self._views:
                self._views.move_to_end(key)
                return self._views[key]
            gate = self._building.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                if key in self._views:
                    return self._views[key]
            value = build()
            with self._lock:
                self._views[key] = value
                self._building.pop(key, None)
                while len(self._views) > self.cache_views:
                    self._views.popitem(last=False)
            return value

    def view(self, month: str, scope: Scope | None) -> ScopedView:
        return self._cached(
            ("view", month, scope), lambda: build_view(self.inputs(month), month, scope)
        )

    def _scoped_scores(self, month: str, scope: Scope | None) -> pd.DataFrame:
        files = self.light(month)
        if scope is None:
            return files.scores

        def build() -> pd.DataFrame:
            teams = teams_in_scope(files.attributes, scope)
            return files.scores.loc[files.scores["team_id"].isin(teams)]

        return self._cached(("scores", month, scope), build)

    def warm(self, scopes: list[Scope | None]) -> None:
        """Build the latest month's view and the trend of each scope (the accounts' scopes,
        at start-up, in the background), so that no reader waits for their first page."""
        for scope in dict.fromkeys(scopes):
            self.view(self.latest, scope)
            self.trend(scope)

    def trend(self, scope: Scope | None) -> dict[str, Any]:
        """Every scored month over the scope's teams (each month's own scope), against what
        happened."""

        def build() -> dict[str, Any]:
            scored = {m: self._scoped_scores(m, scope) for m in self.months}
            min_group = self.light(self.latest).min_group
            rows = trend_rows(scored, self.review, min_group)
            return {
                "rows": trend_table(rows),
                "chart": trend_chart(rows),
                "reviewed": sum(1 for r in rows if r.get("reviewed")),
                "suppressed": sum(1 for r in rows if r["suppressed"]),
            }

        return self._cached(("trend", scope), build)

    def _realised(self) -> dict[tuple[str, str], float]:
        """What happened, by (month, team), from the review's team rows (built once)."""
        with self._lock:
            if "realised" not in self._trends:
                review, found = self.review, {}
                if review is not None and len(review):
                    if "level" in review.columns:
                        review = review.loc[review["level"].astype("string") == "team"]
                    review = review.loc[review["realised_leavers"].notna()]
                    found = {
                        (str(m), str(t)): float(v)
                        for m, t, v in zip(
                            review["as_of"],
                            review["team_id"],
                            review["realised_leavers"],
                            strict=True,
                        )
                    }
                self._trends["realised"] = found
            return self._trends["realised"]

    def team_history(self, scope: Scope | None, team_id: str) -> list[dict[str, str]]:
        """The team's forecast in every scored month in which the reader could see it, and what
        happened once known."""
        realised_of = self._realised()
        out = []
        for month in self.months:
            s = self._scoped_scores(month, scope)
            row = s.loc[s["team_id"] == team_id]
            if row.empty or not bool(row["reportable"].iloc[0]):
                continue
            r = row.iloc[0]
            realised = realised_of.get((month, team_id))
            out.append(
                {
                    "as_of": month,
                    "expected": words.fmt_count(float(r["expected_leavers"])),
                    "interval": f"{r['leavers_p10']:.0f} to {r['leavers_p90']:.0f}"
                    if "leavers_p10" in r and pd.notna(r["leavers_p10"])
                    else "",
                    "csat": words.fmt_points(
                        float(r["csat_change"]) if pd.notna(r["csat_change"]) else None
                    ),
                    "realised": words.fmt_count(realised)
                    if realised is not None
                    else "not due yet",
                }
            )
        return out


__all__ = ["ScopedView", "Served", "build_view", "json_value", "records"]
