"""`forecast simulate`: write a synthetic organisation in the data contract's format."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from forecast.data.atomic import check_writable_dir
from forecast.errors import check_param
from forecast.simulate import CLI_OPTIONS, SimConfig, check_truth, simulate, write_simulation


@dataclass
class Simulated:
    paths: list[Path]
    spells: int


def run_simulate(
    out_dir: Path,
    *,
    teams: int,
    months: int,
    seed: int,
    truth: bool = False,
    fmt: str = "csv",
    progress: Callable[[int, int], None] | None = None,
) -> Simulated:
    """Simulate and write; options are checked by their command-line names."""
    check_param("--format", fmt, fmt in ("csv", "parquet"), "one of csv, parquet")
    check_writable_dir(out_dir, "--out")
    config = SimConfig(n_teams=teams, n_months=months, seed=seed, names=CLI_OPTIONS)
    if truth:
        check_truth(config, CLI_OPTIONS)
    result = simulate(config, with_interventions=truth, progress=progress)
    paths = write_simulation(result, out_dir, truth=truth, fmt=fmt)
    return Simulated(paths=paths, spells=len(result.frames["employees"]))
