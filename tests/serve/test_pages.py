"""The pages of `forecast serve`, against the running server: what a leader reads on the
overview, a team page (with its live what-if), the trend and trust pages."""

from __future__ import annotations

import re

from forecast.report import words
from tests.serve.conftest import PASSWORDS


def test_the_overview_ranks_the_scopes_teams_with_their_rollups(live_server) -> None:
    org = live_server.org
    c, _ = live_server.signed_in("sally")
    with c:
        page = c.get("/").text
    sales = org.teams_of("department", "Sales")
    s = org.scores.assign(team_id=org.scores["team_id"].astype(str))
    rep = s.loc[s["reportable"] & s["team_id"].isin(sales)].sort_values(
        ["expected_leavers", "team_id"], ascending=[False, True]
    )
    linked = re.findall(r'class="team-link" href="/teams/([^"?]+)\?', page)
    assert linked == rep["team_id"].tolist()[: len(linked)] and linked
    assert 'id="scope-label">department=Sales<' in page
    department = re.search(r"<h3>By department</h3>.*?<tbody>(.*?)</tbody>", page, re.S).group(1)
    assert re.findall(r"<tr><td>([^<]+)</td>", department) == ["Sales"]


def test_a_team_page_explains_in_words_and_runs_a_what_if(live_server) -> None:
    c, token = live_server.signed_in("ana")
    team = "007"
    with c:
        page = c.get(f"/teams/{team}").text
        assert "What leaders can act on" in page and 'class="waterfall"' in page
        assert "organisation baseline" in page  # the waterfall's first bar
        assert 'id="what-if-form"' in page and 'name="csrf_token"' in page
        form = {"csrf_token": token, "signal": "after_hours_ratio", "value": "0.05"}
        answered = c.post(f"/teams/{team}/what-if", data=form)
        api = c.post(
            "/api/what-if",
            json={"team_id": team, "signal": "after_hours_ratio", "value": 0.05},
            headers={"X-CSRF-Token": token},
        ).json()
    assert answered.status_code == 200
    shown = re.search(r'id="what-if-leavers">([^<]+)<', answered.text).group(1)
    assert shown == words.fmt_count(api["after"]["expected_leavers"])
    shown_csat = re.search(r'id="what-if-csat">([^<]+)<', answered.text).group(1)
    assert shown_csat == words.fmt_points(api["after"]["csat_change"])


def test_a_refused_what_if_says_why_on_the_page(live_server) -> None:
    c, token = live_server.signed_in("ana")
    with c:
        r = c.post(
            "/teams/007/what-if",
            data={"csrf_token": token, "signal": "after_hours_ratio", "value": "50"},
        )
    assert r.status_code == 422
    assert "outside the range the data have seen" in r.text


def test_the_trend_compares_past_forecasts_with_what_happened(live_server) -> None:
    org = live_server.org
    c, _ = live_server.signed_in("ana")
    with c:
        page = c.get("/trend").text
    rows = re.findall(r"<tr><td>(\d{4}-\d{2})</td>(.*?)</tr>", page, re.S)
    assert [m for m, _ in rows] == org.months
    cells = {m: re.findall(r'<td class="num">([^<]*)</td>', body) for m, body in rows}
    # The oldest month is past its 3-month horizon: what happened is known; the latest is not.
    assert cells[org.months[0]][3] not in ("not due yet", "–")
    assert cells[org.months[-1]][3] == "not due yet"
    assert 'class="trend"' in page  # the chart


def test_the_trust_page_names_the_model_and_the_data(live_server) -> None:
    import json

    manifest = json.loads(
        (live_server.org.root / live_server.org.months[-1] / "manifest.json").read_text()
    )
    c, _ = live_server.signed_in("sally")
    with c:
        page = c.get("/trust").text
    version = re.search(r'id="model-version">([^<]+)<', page).group(1)
    assert version == str(manifest["model"]["attrition"]["version"])
    assert "Backtest calibration" in page and "Data drift" in page


def test_signing_out_by_the_form(live_server) -> None:
    with live_server.client() as c:
        c.post("/api/session", json={"username": "sally", "password": PASSWORDS["sally"]})
        page = c.get("/").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        r = c.post("/logout", data={"csrf_token": token})
        assert r.status_code == 303 and r.headers["location"] == "/login"
        assert c.get("/").status_code == 303


def test_a_team_is_described_the_same_to_its_leader_and_to_an_analyst(live_server) -> None:
    """The words put a team's values against the whole organisation's typical levels, in a
    leader's view too (they say "the organisation's typical level")."""
    sales = sorted(live_server.org.teams_of("department", "Sales"))
    pages = {}
    for name in ("ana", "sally"):
        c, _ = live_server.signed_in(name)
        with c:
            team = next(t for t in sales if c.get(f"/api/teams/{t}").status_code == 200)
            pages[name] = c.get(f"/teams/{team}").text
    drivers = {n: re.findall(r'<ul class="drivers">(.*?)</ul>', p, re.S) for n, p in pages.items()}
    assert drivers["ana"] and drivers["ana"] == drivers["sally"]


def test_the_report_stylesheet_and_table_script_are_served_as_the_report_inlines_them(
    live_server,
) -> None:
    # One source for both views: what the served pages load is what the report carries inline.
    org = live_server.org
    report = (org.root / org.months[-1] / "report.html").read_text(encoding="utf-8")
    c, _ = live_server.signed_in("ana")
    with c:
        css, js = c.get("/static/report.css"), c.get("/static/team-table.js")
        page = c.get("/teams").text
    assert css.headers["content-type"].startswith("text/css") and css.text.startswith(":root")
    assert js.headers["content-type"].startswith("text/javascript") and "sortBy" in js.text
    assert f"<style>\n{css.text}</style>" in report
    assert "".join(f"  {line}\n" for line in js.text.splitlines()) in report
    assert '<link rel="stylesheet" href="/static/report.css">' in page
    assert '<script type="module" src="/static/team-table.js"></script>' in page
