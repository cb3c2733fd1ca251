"""`forecast serve --trusted-header X-Forwarded-Email`: the identity an SSO proxy sets, against a
second running server over the same months and accounts."""

from __future__ import annotations

import httpx
import pytest

from forecast.commands.serve import check_binding
from forecast.errors import ConfigError
from tests.serve.conftest import start_server

HEADER = "X-Forwarded-Email"


@pytest.fixture(scope="module")
def sso_url(live_server):
    from forecast.serve.app import create_app
    from forecast.serve.context import ServeSettings

    ctx = live_server.app.state.ctx
    app = create_app(ctx.served, ctx.users, ctx.live, ServeSettings(trusted_header=HEADER))
    server, thread, url = start_server(app)
    yield url
    server.should_exit = True
    thread.join(timeout=10)


def test_without_the_header_nothing_is_served(sso_url) -> None:
    with httpx.Client(base_url=sso_url) as c:
        assert c.get("/api/session").status_code == 401
        assert c.get("/api/teams").status_code == 401
        assert c.get("/").status_code == 303
        assert c.get("/api/teams", headers={HEADER: "not-an-account"}).status_code == 401


def test_the_header_names_the_user_and_their_scope_applies(sso_url, live_server) -> None:
    sales = live_server.org.teams_of("department", "Sales")
    with httpx.Client(base_url=sso_url, headers={HEADER: "sally"}) as c:
        session = c.get("/api/session").json()
        assert session["username"] == "sally" and session["role"] == "leader"
        teams = {t["team_id"] for t in c.get("/api/teams").json()}
        assert teams and teams <= sales
        team = sorted(teams)[0]
        body = {"team_id": team, "signal": "after_hours_ratio", "value": 0.05}
        assert c.post("/api/what-if", json=body).status_code == 403
        ok = c.post("/api/what-if", json=body, headers={"X-CSRF-Token": session["csrf_token"]})
        assert ok.status_code == 200
        # The token is bound to the name: another user's does not pass.
        other = c.get("/api/session", headers={HEADER: "ana"}).json()["csrf_token"]
        assert c.post("/api/what-if", json=body, headers={"X-CSRF-Token": other}).status_code == 403
        # No password sign-in behind the proxy.
        assert c.post("/login", data={"username": "ana", "password": "x"}).status_code == 403


def test_a_trusted_header_binds_to_loopback_unless_told_otherwise() -> None:
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        check_binding(host, HEADER, allow_remote=False)
    for host in ("0.0.0.0", "192.0.2.10", "::"):
        with pytest.raises(ConfigError, match="loopback"):
            check_binding(host, HEADER, allow_remote=False)
        check_binding(host, HEADER, allow_remote=True)
        check_binding(host, None, allow_remote=False)  # password sign-in may listen anywhere
