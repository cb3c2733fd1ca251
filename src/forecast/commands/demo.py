"""`forecast demo`: the whole product from nothing, on a simulated organisation.

simulate -> validate -> train (backtest, MLflow run, registered pair) -> score -> report, and
two demo accounts for `forecast serve`. Everything (data, tracking store, outputs, accounts)
stays inside the demo's own folder, so it never touches the user's MLflow `champion`.

The scores go where a schedule puts them (`forecast score --out-root ROOT --catch-up`):
OUT/monthly/YYYY-MM/ for the latest complete month, and the month a horizon before it (without
the report, as a backfill would), so that the served view's trend has a forecast to set against
what happened.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from forecast.commands.score import prepare, score_month
from forecast.commands.train import STEPS, backtest_table, run_training
from forecast.data.atomic import check_writable_dir
from forecast.data.contract import load_tables, summarize
from forecast.data.months import month_str
from forecast.serve.users import UserStore
from forecast.simulate import CLI_OPTIONS, SimConfig, simulate, write_simulation


@dataclass
class DemoOutcome:
    data: Path
    tracking_uri: str
    scores: Path
    report: Path | None
    backtest_table: object
    root: Path  # the scoring ROOT that `forecast serve --out-root` takes
    users: Path
    accounts: list[tuple[str, str, str]]  # (name, password, what they see)


def demo_tracking_uri(out_dir: Path) -> str:
    return f"sqlite:///{(out_dir / 'mlruns').resolve()}/mlflow.db"


def run_demo(
    out_dir: Path,
    *,
    teams: int,
    months: int,
    seed: int,
    say: Callable[[str], None],
    progress: Callable,
) -> DemoOutcome:

    out_dir = out_dir.resolve()
    check_writable_dir(out_dir, "--out")
    data_dir, root = out_dir / "data", out_dir / "monthly"
    # Checked by the options' names: they come from the command line.
    config = SimConfig(n_teams=teams, n_months=months, seed=seed, names=CLI_OPTIONS)
    with progress() as bar:
        task = bar.add_task("simulating", total=months)
        result = simulate(
            config, progress=lambda done, total: bar.update(task, completed=done, total=total)
        )
    for own in (data_dir, root):
        if own.exists():
            # A re-run starts from fresh data (the simulation is deterministic per seed) and
            # leaves no month of an earlier run in the served ROOT.
            shutil.rmtree(own)
    write_simulation(result, data_dir, truth=True)
    say(f"1. Simulated {teams} teams x {months} months (seed {seed}) -> {data_dir}")

    summary = summarize(load_tables(data_dir), str(data_dir))
    say(
        f"2. Validated: {summary.teams} teams, {summary.employees} employees, latest complete "
        f"month {summary.latest_complete_month}"
    )

    uri = demo_tracking_uri(out_dir)
    with progress() as bar:
        task = bar.add_task("training", total=len(STEPS))
        outcome = run_training(
            data_dir,
            tracking_uri=uri,
            # No what-if validation: its organisations' engine fits were a third of the
            # demo's time once the engine's CSAT stage grew (issue 18); the demo's minute is
            # issue 17's goal. `forecast train --validate-what-if` runs it (README, What-if).
            validate_what_if=False,
            progress=lambda step: bar.update(
                task, description=step, completed=STEPS.index(step) if step in STEPS else None
            ),
        )
    ref = outcome.pair
    say(
        f"3. Trained and registered {ref.attrition_name} v{ref.attrition_version} + "
        f"{ref.csat_name} v{ref.csat_version} (aliases {', '.join(ref.aliases)}) in {uri}"
    )
    latest = pd.Period(summary.latest_complete_month, freq="M")
    scores_dir = root / month_str(latest)
    # One read of the data and one loaded pair for both months, as `--catch-up` scores them.
    root.mkdir(parents=True, exist_ok=True)
    scorer = prepare(data_dir, model="champion", tracking_uri=uri)
    try:
        scored = score_month(scorer, latest, scores_dir)
        earlier = month_str(latest - int(scored.manifest["horizon"]))
        score_month(scorer, pd.Period(earlier, freq="M"), root / earlier, report=False)
    finally:
        scorer.close()
    report = scores_dir / "report.html"
    say(
        f"4. Scored {scored.manifest['rows']['scores']} teams as of {scored.manifest['as_of']} "
        f"-> {scores_dir} (and {earlier}, a horizon earlier, for the trend)"
    )
    users, accounts = demo_accounts(out_dir, scores_dir)
    say(f"5. Two accounts for `forecast serve` in {users}")
    return DemoOutcome(
        data=data_dir,
        tracking_uri=uri,
        scores=scores_dir,
        report=report if report.exists() else None,
        backtest_table=backtest_table(outcome.backtest),
        root=root,
        users=users,
        accounts=accounts,
    )


def demo_accounts(out_dir: Path, scored: Path) -> tuple[Path, list[tuple[str, str, str]]]:
    """A fresh user store with an analyst and the leader of the department with most teams,
    each with a random password (shown once, by the demo; kept nowhere in clear)."""
    path = out_dir / "forecast-users.db"
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)
    attributes = pd.read_parquet(scored / "team_attributes.parquet")
    department = str(attributes["department"].value_counts().sort_index().idxmax())
    store = UserStore(path, create=True)
    accounts = []
    try:
        for name, role, scope in (
            ("analyst", "analyst", []),
            ("leader", "leader", [f"department={department}"]),
        ):
            password = secrets.token_urlsafe(12)
            user = store.add(name, role, scope, password)
            accounts.append((name, password, user.describe_scope()))
    finally:
        store.close()
    return path, accounts
