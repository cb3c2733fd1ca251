"""The JSON API of the contract's section 5, against the running server: the session, the
teams with the scores.parquet columns, one team with its drivers, and a live what-if that is
`forecast what-if --json`'s object for the same team, signal and value."""

from __future__ import annotations

import json
import math

import pandas as pd

from tests.serve.conftest import PASSWORDS


def test_the_session_endpoints(live_server) -> None:
    with live_server.client() as c:
        assert c.get("/api/session").status_code == 401
        r = c.post("/api/session", json={"username": "sally", "password": PASSWORDS["sally"]})
        assert r.status_code == 200 and "forecast_session" in r.cookies
        session = c.get("/api/session").json()
        assert set(session) == {"username", "role", "csrf_token"}
        assert session["username"] == "sally" and session["role"] == "leader"
        assert session == r.json() and len(session["csrf_token"]) >= 32
        assert c.delete("/api/session").status_code == 200
        assert c.get("/api/session").status_code == 401


def test_a_wrong_password_and_an_unknown_user_answer_the_same_401(live_server) -> None:
    with live_server.client() as c:
        wrong = c.post("/api/session", json={"username": "ana", "password": "not-her-password"})
        unknown = c.post("/api/session", json={"username": "zed", "password": "not-a-password"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.content == unknown.content
    assert "forecast_session" not in wrong.cookies


def test_the_sign_in_takes_json_only(live_server) -> None:
    """A cross-site form cannot send JSON: the sign-in refuses anything else."""
    with live_server.client() as c:
        r = c.post("/api/session", data={"username": "ana", "password": PASSWORDS["ana"]})
    assert r.status_code == 415


def test_teams_are_the_reportable_ones_with_the_scores_columns(live_server) -> None:
    org = live_server.org
    c, _ = live_server.signed_in("ana")
    with c:
        got = c.get("/api/teams").json()
        earlier = c.get(f"/api/teams?month={org.months[0]}").json()
    s = org.scores
    reportable = s.loc[s["reportable"]]
    assert {t["team_id"] for t in got} == set(reportable["team_id"].astype(str))
    assert all(set(t) == set(s.columns) for t in got)
    by_team = reportable.set_index(reportable["team_id"].astype(str))
    for t in got:
        row = by_team.loc[t["team_id"]]
        assert t["expected_leavers"] == float(row["expected_leavers"])
        assert t["headcount"] == int(row["headcount"]) and t["as_of"] == org.months[-1]
    # Ranked by expected leavers, as the report ranks them.
    assert [t["expected_leavers"] for t in got] == sorted(
        (t["expected_leavers"] for t in got), reverse=True
    )
    assert {t["as_of"] for t in earlier} == {org.months[0]}
    assert "007" in {t["team_id"] for t in got}  # ids stay text


def test_a_team_has_its_drivers(live_server) -> None:
    org = live_server.org
    drivers = pd.read_parquet(org.root / org.months[-1] / "drivers.parquet")
    team = "007"
    c, _ = live_server.signed_in("ana")
    with c:
        got = c.get(f"/api/teams/{team}").json()
        other_month = c.get(f"/api/teams/{team}?month={org.months[0]}").json()
    mine = drivers.loc[drivers["team_id"].astype(str) == team]
    assert got["team_id"] == team and len(got["drivers"]) == len(mine) > 0
    for target in ("attrition", "csat"):
        rows = [d for d in got["drivers"] if d["target"] == target]
        raw = rows[0]["base_value"] + sum(d["shap_value"] for d in rows)
        # The contract's additivity: log(attrition_rate) for attrition, csat_change for CSAT.
        expected = math.log(got["attrition_rate"]) if target == "attrition" else got["csat_change"]
        assert abs(raw - expected) < 1e-6
    assert other_month["as_of"] == org.months[0]


def test_unknown_or_malformed_months_are_404(live_server) -> None:
    c, _ = live_server.signed_in("ana")
    with c:
        for month in ("1999-01", "2024-13", "24-01", "latest"):
            assert c.get(f"/api/teams?month={month}").status_code == 404


def test_a_live_what_if_is_the_cli_s_json_object(live_server, monkeypatch, capsys) -> None:
    from forecast.cli import main

    org = live_server.org
    c, token = live_server.signed_in("sally")
    team = c.get("/api/teams").json()[0]["team_id"]
    body = {"team_id": team, "signal": "after_hours_ratio", "value": 0.05}
    with c:
        r = c.post("/api/what-if", json=body, headers={"X-CSRF-Token": token})
    assert r.status_code == 200, r.text
    monkeypatch.setenv("MLFLOW_TRACKING_URI", org.trained.tracking_uri)
    args = ["what-if", "--data", str(org.trained.data), "--team", team]
    assert main([*args, "--set", "after_hours_ratio=0.05", "--json"]) == 0
    assert [r.json()] == json.loads(capsys.readouterr().out)


def test_a_what_if_moves_leavers_the_simulators_way(live_server) -> None:
    """Less after-hours work, fewer expected leavers (the simulator's cause)."""
    c, token = live_server.signed_in("ana")
    team = c.get("/api/teams").json()[0]["team_id"]
    answers = {}
    with c:
        for value in (0.02, 0.2):
            body = {"team_id": team, "signal": "after_hours_ratio", "value": value}
            answers[value] = c.post(
                "/api/what-if", json=body, headers={"X-CSRF-Token": token}
            ).json()
    assert answers[0.02]["after"]["expected_leavers"] < answers[0.2]["after"]["expected_leavers"]
    assert answers[0.02]["before"] == answers[0.2]["before"]


def test_what_if_refusals(live_server) -> None:
    c, token = live_server.signed_in("ana")
    team = c.get("/api/teams").json()[0]["team_id"]
    h = {"X-CSRF-Token": token}
    with c:
        cases = {
            "protected": {"team_id": team, "signal": "gender", "value": 1},
            "history": {"team_id": team, "signal": "vol_leavers", "value": 1},
            "out of range": {"team_id": team, "signal": "after_hours_ratio", "value": 50},
            "not a number": {"team_id": team, "signal": "after_hours_ratio", "value": "lots"},
            "a bool": {"team_id": team, "signal": "after_hours_ratio", "value": True},
            "extra key": {"team_id": team, "signal": "after_hours_ratio", "value": 0.1, "x": 1},
            # A signal the model uses but whose what-if fit is not stored: the server never fits.
            "no stored fit": {"team_id": team, "signal": "cases_per_head", "value": 300},
        }
        for why, body in cases.items():
            r = c.post("/api/what-if", json=body, headers=h)
            assert r.status_code == 422, (why, r.status_code, r.text)
            assert "\n" not in r.json()["detail"]
        assert (
            c.post(
                "/api/what-if",
                content=b"{not json",
                headers={**h, "Content-Type": "application/json"},
            ).status_code
            == 400
        )


def test_every_action_is_audited_without_a_password(live_server) -> None:
    from forecast.serve.users import UserStore

    c, token = live_server.signed_in("bill")
    team = c.get("/api/teams").json()[0]["team_id"]
    with c:
        c.get(f"/teams/{team}")
        c.post(
            "/api/what-if",
            json={"team_id": team, "signal": "after_hours_ratio", "value": 0.05},
            headers={"X-CSRF-Token": token},
        )
        c.delete("/api/session")
    store = UserStore(live_server.users)
    try:
        rows = store.audit_rows(limit=1000, user="bill")
        everything = json.dumps(store.audit_rows(limit=100000))
    finally:
        store.close()
    actions = [r["action"] for r in rows]
    for action in ("signed in", "api: teams", "viewed team", "what-if", "signed out"):
        assert action in actions
    assert any(
        f"team {team}" in r["detail"] and "after_hours_ratio=0.05" in r["detail"] for r in rows
    )
    for password in PASSWORDS.values():
        assert password not in everything
