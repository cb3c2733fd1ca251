"""Benchmark `forecast serve` under load: 50 signed-in users for 60 s on a 1,500-team
organisation, on this machine's loopback only (issue 20).

    .venv/bin/python benchmarks/serve.py                        # 1,500 teams x 42 months
    .venv/bin/python benchmarks/serve.py --work /tmp/sb         # keep (and reuse) the setup
    .venv/bin/python benchmarks/serve.py --users 50 --seconds 60 --think 0.5 2.0

Setup (not timed): a training organisation (seed 1) and a held-out one (seed 7, the one served),
simulated as Parquet; one pair trained with `forecast train` (what_if.signals shortened to
after_hours_ratio for setup speed only: the served what-if answers from that stored fit); the
held-out organisation scored into ROOT as a schedule does: the latest month with the report's
files, the three before it backfilled with --no-report; a user store of 10 analysts and 40
leaders, each with one or two scopes (department, site) drawn with a fixed seed.

Timed: `forecast serve --out-root ROOT --data D` in its own process (uvicorn, one worker) on
127.0.0.1, and 50 users in this process (asyncio + httpx, one cookie jar each) who sign in and
then, for `--seconds`, click: overview, all teams, a team of theirs, trend, trust, the JSON
teams and team endpoints, and a live what-if of after_hours_ratio at a value drawn from the
range the data have seen; each waits `--think` seconds (uniform) between clicks, as a person
reading the page does (`--think 0 0` hammers the server instead). Printed: p50/p95/max latency
and errors per page and per what-if, requests per second, and the server's CPU time.

Baseline, in the same run: the same requests one at a time with nobody else on the server
(unloaded latency), and `forecast what-if` for one team as a whole process (what a what-if cost
before the served one). Goals (issue 20, 2 cores): pages p95 < 300 ms, what-ifs p95 < 1 s, no
error. Requests go to 127.0.0.1 only, and the run stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import train_on_two_organisations, work_dir

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"  # loopback only: this benchmark never sends a request anywhere else
TRAIN_SEED, HELD_OUT_SEED = 1, 7
SIGNAL = "after_hours_ratio"
PAGE_GOAL_S, WHAT_IF_GOAL_S = 0.300, 1.0
ANALYSTS = 10
PASSWORD = "benchmark-password-{}"
# Clicks of a user and how often each comes up.
CLICKS = {
    "overview": 3,
    "teams": 1,
    "team page": 4,
    "trend": 1,
    "trust": 1,
    "api teams": 1,
    "api team": 2,
    "what-if": 3,
}


# --------------------------------------------------------------------------- setup


def setup(work: Path, teams: int, months: int) -> tuple[Path, Path, str]:
    from forecast.commands.score import run_catch_up
    from forecast.data.contract import latest_complete_month, load_tables

    uri, seconds = train_on_two_organisations(
        work, teams, months, (TRAIN_SEED, HELD_OUT_SEED), [SIGNAL]
    )
    print(
        f"setup: trained a pair on {teams:,} teams x {months} months in "
        f"{seconds:.0f} s (what_if.signals: [{SIGNAL}], for setup speed only)"
    )
    data, root = work / "data", work / "monthly"
    latest = latest_complete_month(load_tables(data))
    t = time.perf_counter()
    run_catch_up(data, root, tracking_uri=uri)
    run_catch_up(data, root, since=str(latest - 3), tracking_uri=uri, report=False)
    print(f"setup: scored 4 months into {root} in {time.perf_counter() - t:.0f} s")
    return data, root, uri


def make_users(work: Path, root: Path, n: int) -> list[tuple[str, str]]:
    """`n` accounts in work/users.db: ANALYSTS analysts, the rest leaders of one or two scopes
    drawn from the latest month's departments and sites. Returns (name, password) pairs."""
    import pandas as pd

    from forecast.serve.users import UserStore

    path = work / "users.db"
    path.unlink(missing_ok=True)
    latest = sorted(p for p in root.iterdir() if p.is_dir())[-1]
    attrs = pd.read_parquet(latest / "team_attributes.parquet")
    choices = [("department", v) for v in sorted(attrs["department"].unique())]
    choices += [("site", v) for v in sorted(attrs["site"].unique())]
    rng = random.Random(20)
    store = UserStore(path, create=True)
    accounts = []
    for i in range(n):
        name = f"user{i:02d}"
        if i < ANALYSTS:
            store.add(name, "analyst", [], PASSWORD.format(i))
        else:
            picked = rng.sample(choices, rng.choice((1, 2)))
            store.add(name, "leader", [f"{k}={v}" for k, v in picked], PASSWORD.format(i))
        accounts.append((name, PASSWORD.format(i)))
    store.close()
    return accounts


# --------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(work: Path, data: Path, root: Path, uri: str) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    forecast = str(Path(sys.executable).with_name("forecast"))
    cmd = [forecast, "serve", "--out-root", str(root), "--data", str(data)]
    cmd += ["--users", str(work / "users.db"), "--host", HOST, "--port", str(port)]
    if not Path(forecast).exists():
        cmd = [sys.executable, "-m", "forecast", *cmd[1:]]
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri)
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://{HOST}:{port}"
    while True:
        try:
            httpx.get(f"{url}/login", timeout=2)
            break
        except httpx.TransportError:
            if proc.poll() is not None:
                raise SystemExit(
                    f"forecast serve did not start:\n{proc.communicate()[1]}"
                ) from None
            time.sleep(0.2)
    print(f"server: `forecast serve` ready in {time.perf_counter() - t:.1f} s at {url}")
    return proc, url


# --------------------------------------------------------------------------- the users


class User:
    """One signed-in person clicking through the pages."""

    def __init__(self, client, name: str, rng: random.Random) -> None:
        self.client, self.name, self.rng = client, name, rng
        self.token = ""
        self.teams: list[str] = []
        self.low, self.high = 0.0, 1.0

    async def sign_in(self, password: str) -> None:
        r = await self.client.post(
            "/api/session", json={"username": self.name, "password": password}
        )
        r.raise_for_status()
        self.token = r.json()["csrf_token"]
        r = await self.client.get("/api/teams")
        self.teams = [t["team_id"] for t in r.json()]

    def request(self, kind: str):
        team = self.rng.choice(self.teams) if self.teams else "T9999"
        c = self.client
        if kind == "overview":
            return c.get("/")
        if kind == "teams":
            return c.get("/teams")
        if kind == "team page":
            return c.get(f"/teams/{team}")
        if kind == "trend":
            return c.get("/trend")
        if kind == "trust":
            return c.get("/trust")
        if kind == "api teams":
            return c.get("/api/teams")
        if kind == "api team":
            return c.get(f"/api/teams/{team}")
        value = round(self.rng.uniform(self.low, self.high), 4)
        body = {"team_id": team, "signal": SIGNAL, "value": value}
        return c.post("/api/what-if", json=body, headers={"X-CSRF-Token": self.token})


async def run_load(
    url: str,
    accounts: list[tuple[str, str]],
    seconds: float,
    think: tuple[float, float],
    value_range: tuple[float, float],
) -> tuple[dict[str, list[float]], dict[str, list[str]], float]:
    import httpx

    kinds = [k for k, w in CLICKS.items() for _ in range(w)]
    latencies: dict[str, list[float]] = {k: [] for k in CLICKS}
    errors: dict[str, list[str]] = {k: [] for k in CLICKS}
    # One connection per user, as one browser tab keeps one alive.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [httpx.AsyncClient(base_url=url, timeout=60, limits=limits) for _ in accounts]
    users = [
        User(c, name, random.Random(i))
        for i, (c, (name, _)) in enumerate(zip(clients, accounts, strict=True))
    ]
    for u in users:
        u.low, u.high = value_range
    t = time.perf_counter()
    await asyncio.gather(*(u.sign_in(pw) for u, (_, pw) in zip(users, accounts, strict=True)))
    print(f"load: {len(users)} users signed in in {time.perf_counter() - t:.1f} s")
    deadline = time.perf_counter() + seconds

    async def clicks(user: User) -> None:
        await asyncio.sleep(user.rng.uniform(*think))  # users do not all click at once
        while time.perf_counter() < deadline:
            kind = user.rng.choice(kinds)
            start = time.perf_counter()
            try:
                r = await user.request(kind)
                if r.status_code != 200:
                    errors[kind].append(f"HTTP {r.status_code}: {r.text[:80]}")
            except httpx.HTTPError as exc:
                errors[kind].append(f"{type(exc).__name__}: {exc}")
            latencies[kind].append(time.perf_counter() - start)
            await asyncio.sleep(user.rng.uniform(*think))

    t = time.perf_counter()
    await asyncio.gather(*(clicks(u) for u in users))
    elapsed = time.perf_counter() - t
    for c in clients:
        await c.aclose()
    return latencies, errors, elapsed


async def unloaded(
    url: str, account: tuple[str, str], value_range, repeat: int
) -> dict[str, float]:
    """Median latency of each click with nobody else on the server (the baseline)."""
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        user = User(client, account[0], random.Random(99))
        user.low, user.high = value_range
        await user.sign_in(account[1])
        out = {}
        for kind in CLICKS:
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                r = await user.request(kind)
                times.append(time.perf_counter() - start)
                r.raise_for_status()
            out[kind] = statistics.median(times)
        return out


def cli_what_if_seconds(data: Path, uri: str, team: str, value: float) -> float:
    forecast = str(Path(sys.executable).with_name("forecast"))
    cmd = [forecast, "what-if", "--data", str(data), "--team", team, "--set", f"{SIGNAL}={value}"]
    if not Path(forecast).exists():
        cmd = [sys.executable, "-m", "forecast", *cmd[1:]]
    t = time.perf_counter()
    subprocess.run(
        cmd, env=dict(os.environ, MLFLOW_TRACKING_URI=uri), check=True, capture_output=True
    )
    return time.perf_counter() - t


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def report(latencies, errors, elapsed, base, cli_s, server_cpu) -> bool:
    print(
        f"\n{'click':<11} {'requests':>8} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} "
        f"{'unloaded ms':>11} {'p95/unloaded':>12} {'errors':>6}  goal (p95)"
    )
    ok, total = True, 0
    for kind, values in latencies.items():
        total += len(values)
        goal = WHAT_IF_GOAL_S if kind == "what-if" else PAGE_GOAL_S
        p50, p95 = quantile(values, 0.5), quantile(values, 0.95)
        met = p95 < goal and not errors[kind]
        ok &= met
        print(
            f"{kind:<11} {len(values):>8} {p50 * 1000:>7.0f} {p95 * 1000:>7.0f} "
            f"{max(values) * 1000:>7.0f} {base[kind] * 1000:>11.0f} {p95 / base[kind]:>11.1f}x "
            f"{len(errors[kind]):>6}  < {goal * 1000:.0f} ms: {'met' if met else 'NOT met'}"
        )
    pages = [v for k, vs in latencies.items() if k != "what-if" for v in vs]
    print(
        f"{'all pages':<11} {len(pages):>8} {quantile(pages, 0.5) * 1000:>7.0f} "
        f"{quantile(pages, 0.95) * 1000:>7.0f} {max(pages) * 1000:>7.0f}"
    )
    print(
        f"\n{total} requests in {elapsed:.1f} s ({total / elapsed:.0f} per second); server CPU "
        f"{server_cpu:.1f} s ({server_cpu / elapsed:.0%} of one core)"
    )
    what_if_p50 = quantile(latencies["what-if"], 0.5)
    print(
        f"baseline: `forecast what-if` for one team as a whole process: {cli_s:.1f} s; the served "
        f"what-if's p50 under load is {cli_s / what_if_p50:.0f}x faster"
    )
    for kind, errs in errors.items():
        for e in errs[:3]:
            print(f"error ({kind}): {e}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teams", type=int, default=1500)
    parser.add_argument("--months", type=int, default=42)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--think", type=float, nargs=2, default=(0.5, 2.0), metavar=("MIN", "MAX"))
    parser.add_argument("--work", type=Path, default=None, help="keep the setup here (reused)")
    args = parser.parse_args()
    import pandas as pd
    import psutil

    with work_dir(args.work) as work:
        if (work / "mlruns" / "mlflow.db").exists() and (work / "monthly").is_dir():
            data, root = work / "data", work / "monthly"
            uri = f"sqlite:///{work / 'mlruns' / 'mlflow.db'}"
            print(f"setup: reusing the organisations, the pair and ROOT in {work}")
        else:
            data, root, uri = setup(work, args.teams, args.months)
        accounts = make_users(work, root, args.users)
        w = pd.read_parquet(data / "workload.parquet")
        latest = w["month"].astype(str).max()
        values = w.loc[w["month"].astype(str) == latest, SIGNAL]
        value_range = (float(values.quantile(0.1)), float(values.quantile(0.9)))
        print(
            f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
            f"{args.users} users ({ANALYSTS} analysts), {args.seconds:.0f} s, think time "
            f"{args.think[0]}-{args.think[1]} s"
        )
        proc, url = start_server(work, data, root, uri)
        try:
            server = psutil.Process(proc.pid)
            # The server warms each account's views in the background after it starts: the
            # baseline waits until it is idle.
            waited = time.perf_counter()
            while server.cpu_percent(interval=1.0) > 10 and time.perf_counter() - waited < 120:
                pass
            print(f"server: idle after {time.perf_counter() - waited:.0f} s of warming up")
            base = asyncio.run(unloaded(url, accounts[0], value_range, repeat=5))
            cpu0 = sum(server.cpu_times()[:2])
            latencies, errors, elapsed = asyncio.run(
                run_load(url, accounts, args.seconds, tuple(args.think), value_range)
            )
            server_cpu = sum(server.cpu_times()[:2]) - cpu0
            print(f"machine: load average {os.getloadavg()[0]:.2f} at the end of the run")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        scores = pd.read_parquet(root / latest / "scores.parquet")
        team = str(scores.sort_values("expected_leavers")["team_id"].iloc[-1])
        cli_s = cli_what_if_seconds(data, uri, team, round(float(values.median()), 4))
        ok = report(latencies, errors, elapsed, base, cli_s, server_cpu)
        print(f"\ngoals: {'all met' if ok else 'NOT all met'}")


if __name__ == "__main__":
    main()
