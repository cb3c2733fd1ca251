"""Security of `forecast serve`, each check an HTTP request to the running server (conftest's
`live_server`, uvicorn on a loopback port): sign-in required everywhere, scope enforced on every
route, forged and expired cookies refused, CSRF, the lockout, hostile parameters, security
headers, and no employee id in any response."""

from __future__ import annotations

import re
import time
from urllib.parse import quote

import httpx
import pytest
from fastapi.routing import APIRoute
from itsdangerous import TimestampSigner

from forecast.report import words
from tests.serve.conftest import PASSWORDS, SECRET

OPEN = {("GET", "/login"), ("POST", "/login"), ("POST", "/api/session")}
OPEN_PREFIXES = ("/static/", "/favicon.ico")
HOSTILE = [
    "../../etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2fetc",
    "/etc/passwd",
    "..\\..\\windows\\win.ini",
    "' OR '1'='1",
    '"; DROP TABLE users; --',
    "<script>alert(1)</script>",
    "{{7*7}}",
    "${jndi:ldap://127.0.0.1/x}",
    "T0001\x00",
    "A" * 3000,
]


def other_team(live, scope_teams: set[str]) -> str:
    """A reportable team outside `scope_teams`."""
    s = live.org.scores
    outside = s.loc[s["reportable"] & ~s["team_id"].astype(str).isin(scope_teams), "team_id"]
    return str(sorted(outside.astype(str))[0])


def sales_team(live) -> str:
    s = live.org.scores
    sales = live.org.teams_of("department", "Sales")
    return str(sorted(s.loc[s["reportable"] & s["team_id"].isin(sales), "team_id"])[0])


# --------------------------------------------------------------------------- sign-in required


def app_routes(routes) -> list[APIRoute]:
    """Every route of the app, through included routers (FastAPI keeps them as routers)."""
    out = []
    for route in routes:
        if isinstance(route, APIRoute):
            out.append(route)
        elif getattr(route, "original_router", None) is not None:
            out += app_routes(route.original_router.routes)
    return out


def test_every_route_needs_a_sign_in(live_server) -> None:
    team = sales_team(live_server)
    checked = 0
    with live_server.client() as c:
        for route in app_routes(live_server.app.routes):
            if not isinstance(route, APIRoute) or route.path.startswith(OPEN_PREFIXES):
                continue
            path = route.path.replace("{team_id}", team)
            for method in route.methods - {"HEAD"}:
                if (method, route.path) in OPEN:
                    continue
                r = c.request(method, path, json={} if method in ("POST", "DELETE") else None)
                checked += 1
                if path.startswith("/api/"):
                    assert r.status_code == 401, (method, path, r.status_code)
                else:
                    assert r.status_code == 303, (method, path, r.status_code)
                    assert r.headers["location"].startswith("/login"), (method, path)
        # Paths that do not exist look the same to an anonymous caller.
        assert c.get("/api/no-such-route").status_code == 401
        assert c.get("/no-such-page").status_code == 303
    assert checked >= 12


def test_a_page_redirects_to_sign_in_and_back(live_server) -> None:
    team = sales_team(live_server)
    with live_server.client() as c:
        r = c.get(f"/teams/{team}")
        assert r.status_code == 303 and r.headers["location"] == f"/login?next=/teams/{team}"
        form = c.get(r.headers["location"])
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
        assert f'name="next" value="/teams/{team}"' in form.text
        signed = c.post(
            "/login",
            data={
                "csrf_token": token,
                "username": "sally",
                "password": PASSWORDS["sally"],
                "next": f"/teams/{team}",
            },
        )
        assert signed.status_code == 303 and signed.headers["location"] == f"/teams/{team}"
        assert c.get(f"/teams/{team}").status_code == 200


# --------------------------------------------------------------------------- scope


def test_a_leader_asking_for_another_scopes_team_gets_the_same_404(live_server) -> None:
    sales = live_server.org.teams_of("department", "Sales")
    outside = other_team(live_server, sales)
    c, token = live_server.signed_in("sally")
    with c:
        for path in (
            f"/api/teams/{outside}",
            f"/api/teams/{outside}?month={live_server.org.months[0]}",
        ):
            r, missing = c.get(path), c.get(path.replace(outside, "T9999"))
            assert r.status_code == missing.status_code == 404
            assert r.content == missing.content
        page, missing = c.get(f"/teams/{outside}"), c.get("/teams/T9999")
        assert page.status_code == missing.status_code == 404
        assert page.content == missing.content
        body = {"team_id": outside, "signal": "after_hours_ratio", "value": 0.05}
        r = c.post("/api/what-if", json=body, headers={"X-CSRF-Token": token})
        missing = c.post(
            "/api/what-if", json={**body, "team_id": "T9999"}, headers={"X-CSRF-Token": token}
        )
        assert r.status_code == missing.status_code == 404 and r.content == missing.content
        form = {"csrf_token": token, "signal": "after_hours_ratio", "value": "0.05"}
        assert c.post(f"/teams/{outside}/what-if", data=form).status_code == 404


def test_query_strings_cannot_widen_a_scope(live_server) -> None:
    sales = live_server.org.teams_of("department", "Sales")
    c, _ = live_server.signed_in("sally")
    with c:
        own = c.get("/api/teams").json()
        assert own and {t["team_id"] for t in own} <= sales
        for query in (
            "department=Billing",
            "scope=department%3DBilling",
            "role=analyst",
            f"team_id={other_team(live_server, sales)}",
        ):
            assert c.get(f"/api/teams?{query}").json() == own
        overview = c.get("/?department=Billing").text
    for department in set(live_server.org.attributes["department"]) - {"Sales"}:
        assert department not in overview


def test_a_leader_with_two_scopes_sees_teams_matching_either(live_server) -> None:
    org = live_server.org
    wanted = org.teams_of("department", "Billing") | org.teams_of("site", "Leeds")
    reportable = set(org.scores.loc[org.scores["reportable"], "team_id"].astype(str))
    c, _ = live_server.signed_in("bill")
    with c:
        got = {t["team_id"] for t in c.get("/api/teams").json()}
    assert got == wanted & reportable and got


def test_no_response_names_a_team_outside_the_scope(live_server) -> None:
    """Every page and endpoint a Sales leader can reach, every month: no other team's id."""
    org = live_server.org
    sales = org.teams_of("department", "Sales")
    others = set(org.attributes["team_id"].astype(str)) - sales
    pattern = re.compile(
        r"(?<![\w.])(" + "|".join(re.escape(t) for t in sorted(others)) + r")(?![\w.])"
    )
    c, _ = live_server.signed_in("sally")
    with c:
        bodies = []
        for month in org.months:
            for path in ("/", "/teams", "/trust", "/api/teams"):
                bodies.append(c.get(f"{path}?month={month}").text)
            for t in c.get(f"/api/teams?month={month}").json():
                bodies.append(c.get(f"/teams/{t['team_id']}?month={month}").text)
                bodies.append(c.get(f"/api/teams/{t['team_id']}?month={month}").text)
        bodies.append(c.get("/trend").text)
    found = {m for b in bodies for m in pattern.findall(b)}
    assert not found


def test_a_scope_without_teams_sees_nothing(live_server) -> None:
    c, _ = live_server.signed_in("nobody")
    with c:
        assert c.get("/api/teams").json() == []
        page = c.get("/").text
        assert 'id="no-teams"' in page and 'id="no-totals"' in page
        assert c.get(f"/api/teams/{sales_team(live_server)}").status_code == 404


# --------------------------------------------------------------------------- cookies


def test_a_forged_or_tampered_cookie_is_refused(live_server) -> None:
    c, _ = live_server.signed_in("sally")
    good = c.cookies["forecast_session"]
    c.close()
    sid, stamp, sig = good.split(".")
    forged = [
        "not-a-session",
        f"{sid}.{stamp}.{'A' * len(sig)}",
        f"{'B' * len(sid)}.{stamp}.{sig}",
        TimestampSigner(b"some other key", salt="forecast-session").sign(sid).decode(),
    ]
    for value in forged:
        with live_server.client() as other:
            other.cookies.set("forecast_session", value)
            assert other.get("/api/session").status_code == 401
            assert other.get("/").status_code == 303
    with live_server.client() as again:
        again.cookies.set("forecast_session", good)
        assert again.get("/api/session").status_code == 200


def test_an_expired_cookie_is_refused(live_server) -> None:
    """The server's own signature on the very session id, dated past the session's life."""

    class Backdated(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 9 * 3600

    c, _ = live_server.signed_in("sally")
    good = c.cookies["forecast_session"]
    c.close()
    sid = good.split(".")[0]
    old = Backdated(SECRET, salt="forecast-session").sign(sid).decode()
    with live_server.client() as other:
        other.cookies.set("forecast_session", old)
        assert other.get("/api/session").status_code == 401
    with live_server.client() as same:
        same.cookies.set("forecast_session", good)
        assert same.get("/api/session").status_code == 200


def test_session_cookie_flags(live_server) -> None:
    body = {"username": "sally", "password": PASSWORDS["sally"]}
    with live_server.client() as c:
        plain = c.post("/api/session", json=body).headers["set-cookie"].lower()
        # Behind a TLS proxy on this machine (X-Forwarded-Proto from 127.0.0.1 is trusted).
        tls = (
            c.post("/api/session", json=body, headers={"X-Forwarded-Proto": "https"})
            .headers["set-cookie"]
            .lower()
        )
    for cookie in (plain, tls):
        assert "httponly" in cookie and "samesite=strict" in cookie and "max-age=" in cookie
    assert "secure" not in plain and "secure" in tls


def test_signing_out_ends_the_session_for_a_copied_cookie(live_server) -> None:
    c, _ = live_server.signed_in("sally")
    cookie = c.cookies["forecast_session"]
    assert c.delete("/api/session").status_code == 200
    c.close()
    with live_server.client() as copy:
        copy.cookies.set("forecast_session", cookie)
        assert copy.get("/api/session").status_code == 401
        assert copy.get("/api/teams").status_code == 401


# --------------------------------------------------------------------------- CSRF


def test_a_post_without_the_csrf_token_is_refused(live_server) -> None:
    team = sales_team(live_server)
    body = {"team_id": team, "signal": "after_hours_ratio", "value": 0.05}
    c, token = live_server.signed_in("sally")
    _, other_token = live_server.signed_in("ana")
    with c:
        assert c.post("/api/what-if", json=body).status_code == 403
        for wrong in ("", "x" * 43, other_token):
            assert (
                c.post("/api/what-if", json=body, headers={"X-CSRF-Token": wrong}).status_code
                == 403
            )
        form = {"signal": "after_hours_ratio", "value": "0.05"}
        assert c.post(f"/teams/{team}/what-if", data=form).status_code == 403
        assert c.post("/logout", data={}).status_code == 403
        assert c.get("/api/session").status_code == 200  # still signed in: nothing ran
        ok = c.post("/api/what-if", json=body, headers={"X-CSRF-Token": token})
        assert ok.status_code == 200
    with live_server.client() as anon:  # the sign-in form without its token
        r = anon.post("/login", data={"username": "sally", "password": PASSWORDS["sally"]})
        assert r.status_code == 403 and "forecast_session" not in r.cookies


def test_a_cross_site_post_is_refused_by_its_origin(live_server) -> None:
    c, token = live_server.signed_in("sally")
    body = {"team_id": sales_team(live_server), "signal": "after_hours_ratio", "value": 0.05}
    with c:
        for origin in ("http://evil.example", "null"):
            r = c.post("/api/what-if", json=body, headers={"X-CSRF-Token": token, "Origin": origin})
            assert r.status_code == 403


# --------------------------------------------------------------------------- lockout


def test_the_sixth_wrong_password_locks_the_account(live_server) -> None:
    with live_server.client() as c:
        bodies = []
        for _ in range(5):
            r = c.post("/api/session", json={"username": "locky", "password": "wrong-password"})
            assert r.status_code == 401
            bodies.append(r.content)
        unknown = c.post("/api/session", json={"username": "ghost", "password": "wrong-password"})
        assert unknown.status_code == 401 and {*bodies, unknown.content} == {bodies[0]}
        sixth = c.post("/api/session", json={"username": "locky", "password": "wrong-password"})
        assert sixth.status_code == 429
        right = c.post("/api/session", json={"username": "locky", "password": PASSWORDS["locky"]})
        assert right.status_code == 429 and "forecast_session" not in right.cookies
        # The lock is per name: another account still signs in.
        assert (
            c.post(
                "/api/session", json={"username": "sally", "password": PASSWORDS["sally"]}
            ).status_code
            == 200
        )


def test_an_unknown_name_locks_the_same_way(live_server) -> None:
    with live_server.client() as c:
        codes = [
            c.post(
                "/api/session", json={"username": "no-one", "password": "guess-1234"}
            ).status_code
            for _ in range(6)
        ]
    assert codes == [401] * 5 + [429]


def test_the_sign_in_form_says_the_same_for_a_wrong_name_and_a_wrong_password(live_server) -> None:
    with live_server.client() as c:
        form = c.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
        wrong_password = c.post(
            "/login", data={"csrf_token": token, "username": "bill", "password": "nope-nope"}
        )
        wrong_name = c.post(
            "/login", data={"csrf_token": token, "username": "billy", "password": "nope-nope"}
        )
    assert wrong_password.status_code == wrong_name.status_code == 401
    assert wrong_password.content == wrong_name.content


# --------------------------------------------------------------------------- hostile input


def _refused(r: httpx.Response, text: str) -> None:
    assert r.status_code in (400, 401, 403, 404, 411, 413, 415, 422), (text[:40], r.status_code)
    if len(text) >= 5:
        assert text not in r.text, text[:40]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_strings_in_every_parameter_are_refused(live_server, text: str) -> None:
    team = sales_team(live_server)
    quoted = quote(text, safe="")
    c, token = live_server.signed_in("sally")
    with c:
        for path in (f"/teams/{quoted}", f"/api/teams/{quoted}"):
            _refused(c.get(path), text)
        _refused(c.post(f"/teams/{quoted}/what-if", data={"csrf_token": token}), text)
        for path in ("/", "/teams", "/trust", "/api/teams", f"/api/teams/{team}", f"/teams/{team}"):
            _refused(c.get(f"{path}?month={quoted}"), text)
        for key in ("team_id", "signal", "value", "month"):
            body = {"team_id": team, "signal": "after_hours_ratio", "value": 0.05, key: text}
            _refused(c.post("/api/what-if", json=body, headers={"X-CSRF-Token": token}), text)
        form = {"csrf_token": token, "signal": text, "value": "0.05", "month": ""}
        _refused(c.post(f"/teams/{team}/what-if", data=form), text)
        form = {"csrf_token": token, "signal": "after_hours_ratio", "value": text}
        _refused(c.post(f"/teams/{team}/what-if", data=form), text)
        login = c.get(f"/login?next={quoted}")
        assert 'name="next" value="/"' in login.text or login.status_code == 303
    with live_server.client() as anon:
        r = anon.post("/api/session", json={"username": text, "password": text})
        _refused(r, text)


def test_injection_leaves_the_user_store_intact(live_server) -> None:
    from forecast.serve.users import UserStore

    with live_server.client() as c:
        c.post("/api/session", json={"username": "x' OR '1'='1' --", "password": "' OR 1=1 --"})
    store = UserStore(live_server.users)
    try:
        assert {u.name for u in store.users()} == set(PASSWORDS)
    finally:
        store.close()


# --------------------------------------------------------------------------- what responses carry


def crawl(live, name: str) -> list[httpx.Response]:
    """Every page and endpoint `name` can reach, every month, with a what-if and errors."""
    c, token = live.signed_in(name)
    out = []
    with c:
        out.append(c.get("/api/session"))
        out.append(c.get("/trend"))
        for month in live.org.months:
            for path in ("/", "/teams", "/trust", "/api/teams"):
                out.append(c.get(f"{path}?month={month}"))
            teams = [t["team_id"] for t in c.get(f"/api/teams?month={month}").json()]
            for t in teams:
                out.append(c.get(f"/teams/{t}?month={month}"))
                out.append(c.get(f"/api/teams/{t}?month={month}"))
        team = teams[0]
        body = {"team_id": team, "signal": "after_hours_ratio", "value": 0.05}
        out.append(c.post("/api/what-if", json=body, headers={"X-CSRF-Token": token}))
        form = {"csrf_token": token, "signal": "after_hours_ratio", "value": "0.05"}
        out.append(c.post(f"/teams/{team}/what-if", data=form))
        out.append(c.get("/teams/T9999"))
        out.append(c.get("/api/teams/T9999"))
        for name in ("app.js", "app.css", "team-table.js", "report.css"):
            out.append(c.get(f"/static/{name}"))
    with live.client() as anon:
        out.append(anon.get("/login"))
        out.append(anon.get("/"))
    return out


@pytest.fixture(scope="module")
def crawled(live_server) -> list[httpx.Response]:
    return crawl(live_server, "ana") + crawl(live_server, "sally")


def test_no_response_carries_an_employee_id(live_server, crawled) -> None:
    ids = live_server.org.person_ids()
    assert len(ids) > 100
    pattern = re.compile("|".join(re.escape(i) for i in sorted(ids, key=len, reverse=True)))
    leaks = {
        (r.request.url.path, m.group(0))
        for r in crawled
        for m in [pattern.search(r.text)]
        if m is not None
    }
    assert not leaks
    assert all(r.status_code < 500 for r in crawled)


def test_every_response_carries_the_security_headers(crawled) -> None:
    for r in crawled:
        h = r.headers
        csp = h["content-security-policy"]
        script = re.search(r"script-src ([^;]*)", csp).group(1)
        assert "'unsafe-inline'" not in script and "'self'" in script, csp
        assert "frame-ancestors 'none'" in csp
        assert h["x-content-type-options"] == "nosniff"
        assert h["x-frame-options"] == "DENY"
        if r.headers.get("content-type", "").startswith("text/html"):
            # No inline script anywhere: every <script> loads a file from this server.
            assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", r.text), r.request.url.path
            assert h["cache-control"] == "no-store"


def test_a_leaders_totals_are_over_their_teams_only(live_server) -> None:
    org = live_server.org
    s = org.scores.assign(team_id=org.scores["team_id"].astype(str))
    sales = s.loc[s["team_id"].isin(org.teams_of("department", "Sales"))]
    c, _ = live_server.signed_in("sally")
    with c:
        page = c.get("/").text
    expected = re.search(r'id="total-expected">([^<]+)<', page).group(1)
    people = re.search(r'id="total-people">([^<]+)<', page).group(1)
    assert expected == words.fmt_count(float(sales["expected_leavers"].sum()))
    assert people == f"{int(sales['headcount'].sum()):,}"
    c, _ = live_server.signed_in("ana")
    with c:
        page = c.get("/").text
    everyone = re.search(r'id="total-expected">([^<]+)<', page).group(1)
    assert everyone != expected


def test_a_new_password_or_a_removed_account_ends_its_sessions(live_server) -> None:
    from forecast.serve.users import UserStore

    store = UserStore(live_server.users)
    try:
        store.add("temp", "leader", ["department=Sales"], "temporary-pass-1")
        with live_server.client() as c:
            assert (
                c.post(
                    "/api/session", json={"username": "temp", "password": "temporary-pass-1"}
                ).status_code
                == 200
            )
            assert c.get("/api/teams").status_code == 200
            time.sleep(1.1)  # password_changed_at has one-second resolution
            store.set_password("temp", "temporary-pass-2")
            assert c.get("/api/teams").status_code == 401
            assert (
                c.post(
                    "/api/session", json={"username": "temp", "password": "temporary-pass-2"}
                ).status_code
                == 200
            )
            store.remove("temp")
            assert c.get("/api/teams").status_code == 401
    finally:
        if store.get("temp") is not None:
            store.remove("temp")
        store.close()
