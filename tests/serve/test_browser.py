"""`forecast serve` in a real browser: Playwright for Python drives the system's Chromium
(never a downloaded browser) through a leader's visit to the running server: sign in, see only
the scope's teams and totals, open a team, run a what-if and read its numbers, sign out. No
script error may occur, and the overview's and a team page's screenshots are not blank.

Skipped (with the reason) only when no browser or no Playwright is installed and CI is not set;
under CI that fails, so the check cannot silently disappear (as tests/report/test_browser.py).
`FORECAST_SCREENSHOTS=DIR` also saves the two screenshots there (docs/serve-*.png are made so).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from forecast.report import words
from tests.report.test_browser import BROWSERS, find_browser
from tests.serve.conftest import PASSWORDS


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(f"CI is set but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium():
    path = find_browser()
    if path is None:
        _unavailable(
            "no headless browser found (looked for " + ", ".join(BROWSERS) + "); install the "
            "Debian package `chromium` (scripts/install-system-deps.sh does)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (`pip install -e '.[dev]'`)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield browser
        browser.close()


def not_blank(png: Path) -> bool:
    import matplotlib.image as mpimg

    pixels = mpimg.imread(png)
    return pixels.shape[0] >= 600 and float(np.var(pixels[..., :3])) > 0.0


def test_a_leader_signs_in_sees_their_teams_runs_a_what_if_and_signs_out(
    chromium, live_server, tmp_path: Path
) -> None:
    org = live_server.org
    sales = org.teams_of("department", "Sales")
    s = org.scores.assign(team_id=org.scores["team_id"].astype(str))
    mine = s.loc[s["team_id"].isin(sales)]
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    page.goto(f"{live_server.url}/")
    assert page.url.endswith("/login")
    page.fill("#username", "sally")
    page.fill("#password", PASSWORDS["sally"])
    page.click("#sign-in")
    page.wait_for_selector("#h-headline")
    assert page.inner_text("#signed-in-as") == "sally"
    assert page.inner_text("#scope-label") == "department=Sales"
    assert page.inner_text("#total-expected") == words.fmt_count(
        float(mine["expected_leavers"].sum())
    )
    assert page.inner_text("#total-people") == f"{int(mine['headcount'].sum()):,}"
    listed = page.locator("a.team-link").all_inner_texts()
    assert listed and set(listed) <= sales
    assert page.evaluate("document.documentElement.dataset.ready") == "ok"  # app.js ran
    overview = tmp_path / "serve-overview.png"
    page.screenshot(path=str(overview), full_page=True)

    # All teams: the report's team-table.js, served as a module, sorts and filters the table.
    page.goto(f"{live_server.url}/teams")
    page.wait_for_selector("#team-table")
    n = len(mine.loc[mine["reportable"].astype(bool)])
    assert page.inner_text("#team-count") == f"{n} of {n} teams"
    page.click("#team-table th[data-key=team] button")
    ids = page.locator("#team-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.team)")
    assert ids == sorted(ids) and len(ids) == n
    page.fill("#team-filter", ids[-1])
    shown = page.locator("#team-table tbody tr:not([hidden])").all_inner_texts()
    assert len(shown) < n and all(ids[-1] in row for row in shown)
    page.goto(f"{live_server.url}/")

    page.click("a.team-link >> nth=0")
    page.wait_for_selector("#team-id")
    team = page.inner_text("#team-id")
    assert team == listed[0]
    page.select_option("#what-if-signal", "after_hours_ratio")
    page.fill("#what-if-value", "0.05")
    page.click("#what-if-run")
    page.wait_for_selector("#what-if-answer")
    leavers = page.inner_text("#what-if-leavers")
    change = page.inner_text("#what-if-leavers-change")
    assert re.fullmatch(r"\d+(\.\d)?", leavers) and re.fullmatch(r"[+−]?\d+(\.\d)?", change)
    # The numbers are the API's for the same what-if.
    api = page.request.post(
        f"{live_server.url}/api/what-if",
        data={"team_id": team, "signal": "after_hours_ratio", "value": 0.05},
        headers={
            "X-CSRF-Token": page.request.get(f"{live_server.url}/api/session").json()["csrf_token"]
        },
    ).json()
    assert leavers == words.fmt_count(api["after"]["expected_leavers"])
    team_png = tmp_path / "serve-team.png"
    page.screenshot(path=str(team_png), full_page=True)

    page.click("#sign-out")
    page.wait_for_selector("#login-form")
    page.goto(f"{live_server.url}/teams/{team}")
    assert "/login" in page.url  # signed out: the team page is no longer served
    assert errors == []
    assert not_blank(overview) and not_blank(team_png)
    target = os.environ.get("FORECAST_SCREENSHOTS")
    if target:
        for png in (overview, team_png):
            shutil.copy(png, Path(target) / png.name)
