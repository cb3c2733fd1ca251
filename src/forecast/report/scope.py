"""Which teams a reader may see ("row-level security"): one rule, shared by `forecast report OUT
--scope KEY=VALUE` and every page and endpoint of `forecast serve`.

A scope is a list of (attribute, value) pairs over the team attributes the report's roll-ups use
(`team_attributes.parquet`: department, site, manager, ...). A team is in the scope when any
pair matches it. `scope_inputs` cuts a whole output folder down to those teams, so that every
total, roll-up, interval and comparison built from it afterwards (by the same functions as the
full report) is computed over the scope's teams only; figures about the organisation as a whole
(the manifest's organisation total and interval, the fairness audit by composition band) are
dropped, never shown to a reader who may not see every team.

Pure: frames in, frames out; no files.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import TypeVar

import pandas as pd

from forecast.data.tables import is_protected
from forecast.errors import ConfigError

# `report.render.ReportInputs`, named by a type variable: render imports this module.
Inputs = TypeVar("Inputs")

Scope = tuple[tuple[str, str], ...]  # (attribute, value) pairs; a team matches any of them
KEY_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_ ]{0,63}$")
MAX_VALUE = 200


def parse_scope(texts: Iterable[str], option: str = "--scope") -> Scope:
    """`["department=Sales", "site=Leeds"]` -> (("department", "Sales"), ("site", "Leeds")):
    sorted and without duplicates, so one scope has one spelling (and one cache entry)."""
    pairs = set()
    for text in texts:
        key, sep, value = str(text).partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise ConfigError(
                f"`{option}` must be KEY=VALUE, e.g. department=Sales. Got {text!r} instead."
            )
        if not KEY_PATTERN.match(key) or len(value) > MAX_VALUE or any(ord(c) < 32 for c in value):
            raise ConfigError(
                f"`{option}` must name a team attribute (letters, digits, _) and a value of at "
                f"most {MAX_VALUE} printable characters. Got {text!r} instead."
            )
        if is_protected(key):
            raise ConfigError(
                f"`{option}` cannot use {key!r}: it is a protected attribute, never a team "
                f"attribute of the roll-ups."
            )
        pairs.add((key, value))
    return tuple(sorted(pairs))


def scope_text(scope: Scope) -> str:
    """The scope as a reader sees it: `department=Sales or site=Leeds`."""
    return " or ".join(f"{k}={v}" for k, v in scope)


def scope_keys(attributes: pd.DataFrame | None) -> list[str]:
    """The attributes a scope may name in this output folder."""
    if attributes is None:
        return []
    return sorted(c for c in attributes.columns if c != "team_id" and not is_protected(c))


def check_scope_keys(attributes: pd.DataFrame | None, scope: Scope, where: str) -> None:
    """A ConfigError naming the first scope attribute that `where` has no column for."""
    keys = scope_keys(attributes)
    for key, _ in scope:
        if key not in keys:
            raise ConfigError(
                f"`--scope {key}=...`: {where} has no team attribute {key!r} (it has: "
                f"{', '.join(keys) or 'none'})."
            )


def teams_in_scope(attributes: pd.DataFrame | None, scope: Scope) -> set[str]:
    """The team ids whose attributes match any pair of `scope` (exact, as text). A pair whose
    attribute the folder lacks matches nothing: a missing column never widens a scope."""
    if attributes is None or attributes.empty or not scope:
        return set()
    team = attributes["team_id"].astype("string")
    hit = pd.Series(False, index=attributes.index)
    for key, value in scope:
        if key in attributes.columns and not is_protected(key):
            hit |= (attributes[key].astype("string").str.strip() == value).fillna(False)
    return set(team[hit.to_numpy(dtype=bool)].dropna().tolist())


def _only(frame: pd.DataFrame | None, teams: set[str]) -> pd.DataFrame | None:
    if frame is None or "team_id" not in frame.columns:
        return frame
    return frame.loc[frame["team_id"].astype("string").isin(teams).fillna(False).to_numpy(bool)]


# `scoring.extras.team_attributes` names a person-referring attribute by the teams it covers
# ("manager of T0001, T0007 and 2 more", "manager of 2 small teams"), never by the person.
PERSON_LABEL = re.compile(
    r"^(?P<label>manager|supervisor|lead|leader|boss|mentor|coach|group) of (?P<teams>.+?)"
    r"(?: and (?P<more>\d+) more)?$"
)


def relabel_for_scope(attributes: pd.DataFrame, teams: set[str]) -> pd.DataFrame:
    """Team attributes of the scope's teams, with each person-referring label naming only teams
    of the scope (the organisation-wide label may name a team the reader may not see)."""
    out = attributes.copy()
    for col in [c for c in out.columns if c != "team_id"]:
        values = out[col].astype("string")
        present = values.dropna()
        if present.empty or not present.str.match(PERSON_LABEL).all():
            continue
        new = {}
        for value, group in out.groupby(values, dropna=True)["team_id"]:
            m = PERSON_LABEL.match(str(value))
            named = [t.strip() for t in m.group("teams").split(",")]
            kept = [t for t in named if t in teams]
            n = len(group)
            new[value] = (
                f"{m.group('label')} of {', '.join(kept)}"
                if kept
                else f"{m.group('label')} of {n} small team{'s' if n > 1 else ''}"
            )
        out[col] = values.map(new).astype("string")
    return out


def scope_review(review: pd.DataFrame | None, teams: set[str]) -> pd.DataFrame | None:
    """`forecast review`'s rows for the scope's teams: team rows only (the organisation's rows
    are the whole organisation's)."""
    if review is None:
        return None
    rows = review
    if "level" in rows.columns:
        rows = rows.loc[rows["level"].astype("string") == "team"]
    return _only(rows, teams)


def scope_inputs(inputs: Inputs, teams: set[str], label: str) -> Inputs:
    """An output folder (`report.render.ReportInputs`) cut down to `teams`: every per-team
    frame filtered, the organisation's total and interval and the fairness audit removed (they
    describe every team), the previous month's scores filtered the same way. `label` names the
    scope on the page."""
    teams = {str(t) for t in teams}
    manifest = {k: v for k, v in inputs.manifest.items() if k not in ("organisation", "rows")}
    previous = inputs.previous
    if previous is not None:
        previous = dataclasses.replace(
            previous, scores=_only(previous.scores, teams), org_total=None
        )
    return dataclasses.replace(
        inputs,
        scores=_only(inputs.scores, teams),
        manifest=manifest,
        drivers=_only(inputs.drivers, teams),
        drivers_by_family=_only(inputs.drivers_by_family, teams),
        history=_only(inputs.history, teams),
        whatif=_only(inputs.whatif, teams),
        team_attributes=None
        if inputs.team_attributes is None
        else relabel_for_scope(_only(inputs.team_attributes, teams), teams),
        fairness=None,
        review=scope_review(inputs.review, teams),
        previous=previous,
        scope=label,
        # The words ("above the organisation's typical level") still compare with every team.
        reference_drivers=inputs.reference_drivers
        if inputs.reference_drivers is not None
        else inputs.drivers,
    )


__all__ = [
    "Scope",
    "check_scope_keys",
    "parse_scope",
    "scope_inputs",
    "scope_keys",
    "scope_review",
    "scope_text",
    "teams_in_scope",
]
