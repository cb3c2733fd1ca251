"""The `forecast` command line. Thin by design: each command parses its options, calls one
function of a module, and renders the result with Rich. No modelling logic lives here.

Errors: every `ForecastError` is printed as one line on stderr and exits with its code (2 for
bad input); `--debug` shows the traceback instead.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console

from forecast import __version__
from forecast.errors import ConfigError, ForecastError, NotBuiltError, check_param

app = typer.Typer(
    name="forecast",
    help="Team-level forecasts of voluntary leavers and the CSAT dip they cause, with drivers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
err = Console(stderr=True, highlight=False)
out = Console(highlight=False)


class State:
    quiet = False
    verbose = False
    debug = False


def _version(value: bool) -> None:
    if value:
        out.print(f"forecast {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and results.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="More detail.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    State.quiet, State.verbose, State.debug = quiet, verbose, debug
    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", stream=sys.stderr)
    for noisy in ("mlflow", "alembic", "urllib3", "git", "numba", "matplotlib", "shap"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def say(message: str) -> None:
    """Progress and context for a person; silenced by --quiet."""
    if not State.quiet:
        err.print(message)


def warn(message: str) -> None:
    if not State.quiet:
        err.print(f"[yellow]warning:[/] {message}", soft_wrap=True)


def progress():
    """A Rich progress bar on stderr, hidden with --quiet."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        disable=State.quiet,
        transient=True,
    )


# --------------------------------------------------------------------------- simulate / validate


@app.command()
def simulate(
    out_dir: Annotated[Path, typer.Option("--out", help="Directory to write the data into.")],
    teams: Annotated[int, typer.Option(help="Number of teams.")] = 200,
    months: Annotated[int, typer.Option(help="Number of months.")] = 36,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 1,
    truth: Annotated[
        bool, typer.Option("--truth", help="Also write the true expected values under truth/.")
    ] = False,
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
) -> None:
    """Write a synthetic organisation in the data contract's format."""
    from forecast.simulate import SimConfig, write_simulation
    from forecast.simulate import simulate as run_simulation

    check_param("--format", fmt, fmt in ("csv", "parquet"), "one of csv, parquet")
    config = SimConfig(n_teams=teams, n_months=months, seed=seed)
    with progress() as bar:
        task = bar.add_task("simulating", total=months)
        result = run_simulation(
            config,
            with_interventions=truth,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    paths = write_simulation(result, out_dir, truth=truth, fmt=fmt)
    emp = result.frames["employees"]
    say(
        f"Simulated {teams} teams x {months} months ({len(emp)} employee spells, seed {seed}) "
        f"into {out_dir} ({len(paths)} files)."
    )


@app.command()
def validate(
    data: Annotated[Path, typer.Argument(help="The data directory to check.")],
) -> None:
    """Check a data directory against the contract; exit 0 if usable."""
    from forecast.contract import load_tables, summarize

    tables = load_tables(data)
    summary = summarize(tables, str(data))
    _print_summary(summary)
    try:
        from forecast.features import features_by_table
        from forecast.specs import load_specs
    except ImportError:
        return
    feeds = features_by_table(tables, load_specs())
    for table, names in feeds.items():
        if names:
            say(f"  {table} feeds {len(names)} features (e.g. {', '.join(names[:3])})")


def _print_summary(s) -> None:
    from rich.table import Table

    t = Table(title=f"{s.source}: valid", show_header=True, header_style="bold")
    t.add_column("table")
    t.add_column("rows", justify="right")
    t.add_column("months")
    t.add_column("signals")
    for name, rows in s.tables.items():
        first, last = s.months.get(name, ("", ""))
        t.add_row(name, str(rows), f"{first} .. {last}", ", ".join(s.signals.get(name, [])))
    if not State.quiet:
        out.print(t)
    out.print(
        f"{s.teams} teams, {s.employees} employees; latest complete month "
        f"{s.latest_complete_month}" + (f"; data_start {s.data_start}" if s.data_start else "")
    )
    if s.protected:
        out.print(
            f"protected columns seen (never features unless a spec opts in): "
            f"{', '.join(s.protected)}"
        )
    for w in s.warnings:
        warn(w)


# --------------------------------------------------------------------------- not built yet


def _not_built(command: str, issue: str) -> None:
    raise NotBuiltError(f"`forecast {command}` is not built yet ({issue}).")


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Where the demo writes everything.")] = Path(
        "demo-output"
    ),
    teams: Annotated[int, typer.Option(help="Number of simulated teams.")] = 300,
    months: Annotated[int, typer.Option(help="Number of simulated months.")] = 36,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
) -> None:
    """From nothing: simulate an organisation, then validate it (train/score come later)."""
    from forecast.demo import run_demo

    run_demo(out_dir, teams=teams, months=months, seed=seed, say=say, progress=progress)


@app.command()
def train(
    data: Annotated[Path, typer.Option("--data", help="The data directory.")],
    horizon: Annotated[int, typer.Option(help="Months ahead to forecast.")] = 3,
) -> None:
    """Build features, backtest, train both models, log to MLflow and register them."""
    _not_built("train", "models issue")


@app.command()
def score(
    data: Annotated[Path, typer.Option("--data", help="The data directory.")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="Output directory.")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="YYYY-MM.")] = None,
    model: Annotated[str, typer.Option(help="Alias, version, run id or models:/ URI.")] = "champion",
) -> None:
    """Batch-score every team as of a month with the registered models."""
    _not_built("score", "scoring issue")


@app.command()
def promote(
    data: Annotated[Path | None, typer.Option("--data", help="The data directory.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Promote whatever the gate says.")] = False,
) -> None:
    """Move `champion` to the challenger when its backtest is not worse."""
    _not_built("promote", "models issue")


@app.command("what-if")
def what_if(
    data: Annotated[Path, typer.Option("--data", help="The data directory.")],
    team: Annotated[list[str], typer.Option("--team", help="Team id (repeatable).")],
    set_: Annotated[str, typer.Option("--set", help="SIGNAL=VALUE.")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="YYYY-MM.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Expected leavers and CSAT change if SIGNAL were held at VALUE from the as-of month on."""
    _not_built("what-if", "report and causal what-if issues")


# --------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    """Console-script entry: run the app, turn our errors into one line and an exit code."""
    command = typer.main.get_command(app)
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        command.main(args=args, prog_name="forecast", standalone_mode=False)
    except ForecastError as exc:
        if debug:
            raise
        err.print(f"[red]error:[/] {_one_line(str(exc))}", soft_wrap=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        err.print("aborted.")
        return 130
    except click.ClickException as exc:
        exc.show()
        return 2
    except KeyboardInterrupt:
        err.print("interrupted.")
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI edge: never a traceback without --debug
        if debug:
            raise
        err.print(
            f"[red]internal error:[/] {type(exc).__name__}: {_one_line(str(exc))} "
            f"(run with --debug for the traceback, and please report it)",
            soft_wrap=True,
        )
        return 1
    return 0


def _one_line(text: str) -> str:
    return " ".join(text.split())


__all__ = ["ConfigError", "NotBuiltError", "app", "main"]
