"""`forecast demo`: the whole product from nothing, on a simulated organisation.

It keeps everything (data, tracking store, outputs) inside its own output folder, so it never
touches the user's MLflow `champion`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from forecast.contract import load_tables, summarize
from forecast.simulate import SimConfig, simulate, write_simulation


def run_demo(
    out_dir: Path,
    *,
    teams: int,
    months: int,
    seed: int,
    say: Callable[[str], None],
    progress: Callable,
) -> dict[str, Path]:
    data_dir = out_dir / "data"
    config = SimConfig(n_teams=teams, n_months=months, seed=seed)
    with progress() as bar:
        task = bar.add_task("simulating", total=months)
        result = simulate(
            config, progress=lambda done, total: bar.update(task, completed=done, total=total)
        )
    write_simulation(result, data_dir, truth=True)
    say(f"1. Simulated {teams} teams x {months} months -> {data_dir}")
    tables = load_tables(data_dir)
    summary = summarize(tables, str(data_dir))
    say(
        f"2. Validated: {summary.teams} teams, {summary.employees} employees, "
        f"signals {', '.join(s for v in summary.signals.values() for s in v)}; "
        f"latest complete month {summary.latest_complete_month}"
    )
    return {"data": data_dir}
