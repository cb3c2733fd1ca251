"""`forecast review`: past forecasts whose horizon has passed against what happened."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecast.commands.review import run_review
from forecast.commands.score import run_catch_up
from forecast.data.contract import load_tables
from forecast.features.targets import build_targets


def test_review_compares_due_forecasts_with_realised_values(trained_org, tmp_path) -> None:
    root = tmp_path / "root"
    latest = pd.Period(trained_org.latest, "M")
    h = trained_org.horizon
    since = str(latest - h - 1)
    run_catch_up(
        trained_org.data, root, since=since, tracking_uri=trained_org.tracking_uri, report=False
    )
    result = run_review(trained_org.data, root)
    due = [str(latest - h - 1), str(latest - h)]
    assert result.reviewed == due
    assert result.pending == [str(m) for m in pd.period_range(latest - h + 1, latest, freq="M")]
    review = pd.read_parquet(root / "review.parquet")

    targets = build_targets(load_tables(trained_org.data), h)
    targets = targets[targets["as_of"].astype(str) == due[0]].set_index(
        targets["team_id"].astype(str)[targets["as_of"].astype(str) == due[0]]
    )
    teams = review[(review["level"] == "team") & (review["as_of"] == due[0])].set_index("team_id")
    np.testing.assert_allclose(teams["realised_leavers"], targets.loc[teams.index, "leavers"])
    scores = pd.read_parquet(root / due[0] / "scores.parquet").set_index("team_id")
    np.testing.assert_allclose(
        teams["predicted_leavers"], scores.loc[teams.index, "expected_leavers"]
    )
    inside = (teams["realised_leavers"] >= teams["leavers_p10"]) & (
        teams["realised_leavers"] <= teams["leavers_p90"]
    )
    assert (teams["leavers_covered"] == inside.astype(float)).all()

    org = review[(review["level"] == "organisation") & (review["as_of"] == due[0])].iloc[0]
    assert org["realised_leavers"] == teams["realised_leavers"].sum()
    assert np.isclose(org["predicted_leavers"], teams["predicted_leavers"].sum())
    assert np.isclose(org["leavers_coverage"], inside.mean())
    assert pd.isna(org["team_id"])


def test_review_file_is_readable_by_others(trained_org, tmp_path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    path = run_review(trained_org.data, root).path
    assert path.stat().st_mode & 0o044 == 0o044
