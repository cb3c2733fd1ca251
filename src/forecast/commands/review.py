"""`forecast review`: compare past forecasts under ROOT whose horizon has passed with what
happened."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from forecast.data.atomic import check_writable_dir, write_atomic
from forecast.data.contract import latest_complete_month
from forecast.data.sources import load_tables
from forecast.data.tables import Tables
from forecast.errors import OutputError
from forecast.features.targets import build_targets
from forecast.scoring.output import read_manifest, write_parquet
from forecast.scoring.review import REVIEW_COLUMNS, REVIEW_FILE, organisation_row, team_review
from forecast.scoring.schedule import month_folders


@dataclass
class ReviewResult:
    path: Path | None
    review: pd.DataFrame
    reviewed: list[str]
    pending: list[str]  # month folders whose horizon has not passed yet


def run_review(data: Path | str, root: Path) -> ReviewResult:
    """Review every due forecast under ROOT and write ROOT/review.parquet."""
    root = Path(os.path.abspath(root))
    if not root.is_dir():
        raise OutputError(
            f"{root} is not a directory of scored months; run `forecast score "
            f"--out-root {root} --catch-up` first."
        )
    check_writable_dir(root, "--out-root")  # review.parquet goes there; known before reading
    review, reviewed, pending = review_frame(load_tables(data), root)
    path = root / REVIEW_FILE
    write_atomic(path, lambda tmp: write_parquet(review, tmp))
    return ReviewResult(path=path, review=review, reviewed=reviewed, pending=pending)


def review_frame(tables: Tables, root: Path) -> tuple[pd.DataFrame, list[str], list[str]]:
    """`forecast review`'s rows for every month folder under ROOT whose horizon has passed
    (team rows and one organisation row per month), the months reviewed and those not due
    yet; writes nothing (`forecast serve` keeps the rows in memory)."""
    latest = latest_complete_month(tables)
    targets: dict[int, pd.DataFrame] = {}
    frames, reviewed, pending = [], [], []
    for name in month_folders(root):
        manifest = read_manifest(root / name)
        if manifest is None or not (root / name / "scores.parquet").exists():
            continue
        as_of, horizon = pd.Period(manifest["as_of"], freq="M"), int(manifest["horizon"])
        if as_of + horizon > latest:
            pending.append(name)
            continue
        if horizon not in targets:  # one target build per horizon, not per month
            t = build_targets(tables, horizon)
            targets[horizon] = t.assign(as_of=t["as_of"].astype(str))
        t = targets[horizon]
        realised = t[t["as_of"] == manifest["as_of"]]
        teams = team_review(pd.read_parquet(root / name / "scores.parquet"), realised)
        org = organisation_row(teams, manifest.get("organisation", {}))
        version = str(manifest.get("model", {}).get("attrition", {}).get("version", ""))
        org_frame = pd.DataFrame([org]).assign(as_of=manifest["as_of"])
        month = pd.concat([org_frame, teams], ignore_index=True)
        frames.append(month.assign(horizon=horizon, model_version=version))
        reviewed.append(name)
    review = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame({c: [] for c in REVIEW_COLUMNS})
    )
    review = review.reindex(columns=list(REVIEW_COLUMNS))
    review = review.astype(
        {
            "level": "string",
            "as_of": "string",
            "team_id": "string",
            "model_version": "string",
            "horizon": "int64",
            "teams": "int64",
            "headcount": "int64",
            **{c: "float64" for c in REVIEW_COLUMNS[7:]},
        }
    )
    return review, reviewed, pending
