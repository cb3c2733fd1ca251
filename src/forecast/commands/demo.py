"""`forecast demo`: the whole product from nothing, on a simulated organisation.

simulate -> validate -> train (backtest, MLflow run, registered pair) -> score -> report.
Everything (data, tracking store, outputs) stays inside the demo's own folder, so it never
touches the user's MLflow `champion`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from forecast.commands.score import run_score
from forecast.commands.train import STEPS, backtest_table, run_training
from forecast.data.atomic import check_writable_dir
from forecast.data.contract import load_tables, summarize
from forecast.simulate import CLI_OPTIONS, SimConfig, simulate, write_simulation
from forecast.whatif import validation


@dataclass
class DemoOutcome:
    data: Path
    tracking_uri: str
    scores: Path
    report: Path | None
    backtest_table: object


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
    data_dir, scores_dir = out_dir / "data", out_dir / "scores"
    # Checked by the options' names: they come from the command line.
    config = SimConfig(n_teams=teams, n_months=months, seed=seed, names=CLI_OPTIONS)
    with progress() as bar:
        task = bar.add_task("simulating", total=months)
        result = simulate(
            config, progress=lambda done, total: bar.update(task, completed=done, total=total)
        )
    if data_dir.exists():
        # A re-run starts from fresh data (the simulation is deterministic per seed).

        shutil.rmtree(data_dir)
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
            validate_what_if=True,
            # One seed's organisations (no effect, the default effect): the whole check
            # (`forecast train --validate-what-if`) would double the demo's time.
            validation_seeds=validation.VALIDATION_SEEDS[:1],
            progress=lambda step: bar.update(
                task, description=step, completed=STEPS.index(step) if step in STEPS else None
            ),
        )
    ref = outcome.pair
    say(
        f"3. Trained and registered {ref.attrition_name} v{ref.attrition_version} + "
        f"{ref.csat_name} v{ref.csat_version} (aliases {', '.join(ref.aliases)}) in {uri}"
    )
    scored = run_score(data_dir, scores_dir, tracking_uri=uri, model="champion")
    report = scores_dir / "report.html"
    say(
        f"4. Scored {scored.manifest['rows']['scores']} teams as of {scored.manifest['as_of']} "
        f"-> {scores_dir}"
    )
    return DemoOutcome(
        data=data_dir,
        tracking_uri=uri,
        scores=scores_dir,
        report=report if report.exists() else None,
        backtest_table=backtest_table(outcome.backtest),
    )
