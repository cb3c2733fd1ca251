"""The served view's fixtures: one scoring ROOT of two months from the session's trained
organisation (tests/conftest.py `trained_org`), one user store, and one real uvicorn server on a
free loopback port, shared by the module's HTTP tests.

Accounts: an analyst (whole organisation), a Sales leader, a leader of two scopes (Billing or
the Leeds site), a leader whose scope matches no team, and one the lockout test locks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest

SECRET = bytes(range(32))  # the live server's cookie key, so a test can sign an expired cookie
PASSWORDS = {
    "ana": "analyst-password-1",
    "sally": "sales-password-1",
    "bill": "billing-password-1",
    "nobody": "nobody-password-1",
    "locky": "lockout-password-1",
}
ACCOUNTS = {
    "ana": ("analyst", []),
    "sally": ("leader", ["department=Sales"]),
    "bill": ("leader", ["department=Billing", "site=Leeds"]),
    "nobody": ("leader", ["department=No Such Department"]),
    "locky": ("leader", ["department=Sales"]),  # the lockout test's own account
}


@dataclass
class ServedOrg:
    trained: object  # tests.conftest.TrainedOrg
    root: Path
    months: list[str]
    employees: pd.DataFrame
    attributes: pd.DataFrame  # the latest month's team attributes
    scores: pd.DataFrame  # the latest month's scores

    def teams_of(self, column: str, value: str) -> set[str]:
        a = self.attributes
        return set(a.loc[a[column] == value, "team_id"].astype(str))

    def person_ids(self) -> set[str]:
        """Every identifier of a person in the fixture's data: employees and their managers."""
        ids = set(self.employees["employee_id"].astype(str))
        if "manager_id" in self.employees:
            ids |= set(self.employees["manager_id"].dropna().astype(str))
        return ids


@pytest.fixture(scope="session")
def served_org(trained_org, tmp_path_factory: pytest.TempPathFactory) -> ServedOrg:
    from forecast.commands.score import run_catch_up, run_score

    root = tmp_path_factory.mktemp("served") / "monthly"
    kw = {"tracking_uri": trained_org.tracking_uri}
    # The latest month as a schedule scores it (with the report's team files), and the month a
    # horizon earlier, past its horizon, backfilled with --no-report: the server takes its team
    # attributes from the data.
    run_catch_up(trained_org.data, root, **kw)
    earlier = str(pd.Period(trained_org.latest, freq="M") - trained_org.horizon)
    run_score(trained_org.data, root / earlier, as_of=earlier, report=False, **kw)
    latest = root / trained_org.latest
    return ServedOrg(
        trained=trained_org,
        root=root,
        months=sorted(p.name for p in root.iterdir() if p.is_dir()),
        employees=pd.read_csv(trained_org.data / "employees.csv", dtype=str),
        attributes=pd.read_parquet(latest / "team_attributes.parquet"),
        scores=pd.read_parquet(latest / "scores.parquet"),
    )


@pytest.fixture(scope="session")
def users_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from forecast.serve.users import UserStore

    path = tmp_path_factory.mktemp("users") / "users.db"
    store = UserStore(path, create=True)
    for name, (role, scope) in ACCOUNTS.items():
        store.add(name, role, scope, PASSWORDS[name])
    store.close()
    return path


class Client(httpx.Client):
    """An httpx client that may be used in a `with` block after its first request."""

    def __enter__(self) -> Client:
        return self


@dataclass
class LiveServer:
    url: str
    app: object
    org: ServedOrg
    users: Path

    def client(self) -> Client:
        """A fresh browser-like client (its own cookie jar)."""
        return Client(base_url=self.url, follow_redirects=False, timeout=30)

    def signed_in(self, name: str) -> tuple[Client, str]:
        """A client signed in as `name`, and its CSRF token."""
        c = self.client()
        r = c.post("/api/session", json={"username": name, "password": PASSWORDS[name]})
        assert r.status_code == 200, r.text
        return c, r.json()["csrf_token"]


def start_server(app) -> tuple[object, threading.Thread, str]:
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def live_server(served_org: ServedOrg, users_db: Path) -> Iterator[LiveServer]:
    """`forecast serve --data` over the fixture's ROOT, in a thread of this process."""
    from forecast.commands.serve import prepare_serve
    from forecast.serve.context import ServeSettings

    prepared = prepare_serve(
        served_org.root,
        data=served_org.trained.data,
        users=users_db,
        # The delay doubles per failure (auth.failure_delay, tested on its own); a small base
        # keeps the lockout tests short.
        settings=ServeSettings(secret=SECRET, failure_delay=0.01),
    )
    assert prepared.live is not None, prepared.live_note
    server, thread, url = start_server(prepared.app)
    yield LiveServer(url, prepared.app, served_org, users_db)
    server.should_exit = True
    thread.join(timeout=10)
    prepared.live.close()  # the what-if worker process
