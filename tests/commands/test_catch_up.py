"""`forecast score --out-root ROOT --catch-up`: only due months, never a rewrite."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from forecast.commands.score import run_catch_up
from forecast.scoring.schedule import due_months, month_folders


def P(m: str) -> pd.Period:
    return pd.Period(m, "M")


def test_empty_root_gets_only_the_latest_month() -> None:
    assert due_months([], P("2024-06")) == [P("2024-06")]


def test_months_after_the_latest_folder_are_due() -> None:
    assert due_months(["2024-01", "2024-03"], P("2024-06")) == [
        P("2024-04"),
        P("2024-05"),
        P("2024-06"),
    ]


def test_since_backfills_but_skips_existing_folders() -> None:
    got = due_months(["2024-03", "2024-06"], P("2024-06"), since=P("2024-02"))
    assert got == [P("2024-02"), P("2024-04"), P("2024-05")]


def test_up_to_date_root_has_nothing_due() -> None:
    assert due_months(["2024-06"], P("2024-06")) == []


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size)
        for p in sorted(root.rglob("*"))
    }


def test_catch_up_scores_only_missing_months_and_never_rewrites(trained_org, tmp_path) -> None:
    root = tmp_path / "root"
    kw = {"tracking_uri": trained_org.tracking_uri, "report": False}
    first = run_catch_up(trained_org.data, root, **kw)
    assert first.scored == [trained_org.latest] and month_folders(root) == [trained_org.latest]

    before = _snapshot(root)
    again = run_catch_up(trained_org.data, root, **kw)
    assert again.scored == [] and _snapshot(root) == before  # nothing new changes nothing

    since = str(P(trained_org.latest) - 2)
    back = run_catch_up(trained_org.data, root, since=since, **kw)
    assert back.scored == [since, str(P(trained_org.latest) - 1)]
    assert back.skipped == {trained_org.latest: "already scored with this model version"}
    latest = root / trained_org.latest
    assert {k: v for k, v in _snapshot(root).items() if k.startswith(trained_org.latest)} == {
        k: v for k, v in before.items() if k.startswith(trained_org.latest)
    }
    assert (latest / "scores.parquet").exists()
    for m in month_folders(root):
        assert (pd.read_parquet(root / m / "scores.parquet")["as_of"] == m).all()
