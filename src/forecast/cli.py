"""The `forecast` command line. Thin by design: each command parses its options, calls one
function of a module, and renders the result with Rich. No modelling logic lives here.

Errors: every `ForecastError` is printed as one line on stderr and exits with its code (2 for
bad input); `--debug` shows the traceback instead.

Each command imports its `forecast.commands` module inside the function, on purpose: importing
them all up front pulls in MLflow, LightGBM, SHAP and pandera and makes `forecast --help` take
seconds instead of a fraction of one (measured in the closing note of issue 16).
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from forecast import __version__
from forecast.errors import ConfigError, ForecastError, Interrupted, NotBuiltError, check_param

if TYPE_CHECKING:  # for annotations only: importing it at run time would slow `--help`
    from forecast.data.contract import Summary
    from forecast.mlops.sidecar import RegistrySide

app = typer.Typer(
    name="forecast",
    help="Team-level forecasts of voluntary leavers and the CSAT dip they cause, with drivers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
err = Console(stderr=True, highlight=False)
# Tables are wide: keep them readable when output goes to a file or a CI log.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 140)


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


# Every `--data`: a folder, a SQLAlchemy URL or a source file (docs/data-contract.md). Text, not a
# Path: a URL is not a file name.
DATA_HELP = (
    "The data directory, a database URL (postgresql+psycopg://USER@HOST/DB, sqlite:///hr.db, "
    "duckdb:///lake.duckdb; password from FORECAST_DB_PASSWORD) or a source .yaml."
)


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
    from forecast.commands.simulate import run_simulate

    with progress() as bar:
        task = bar.add_task("simulating", total=months)
        done = run_simulate(
            out_dir,
            teams=teams,
            months=months,
            seed=seed,
            truth=truth,
            fmt=fmt,
            progress=lambda i, total: bar.update(task, completed=i, total=total),
        )
    say(
        f"Simulated {teams} teams x {months} months ({done.spells} employee spells, seed {seed}) "
        f"into {out_dir} ({len(done.paths)} files)."
    )


@app.command()
def validate(
    data: Annotated[str, typer.Argument(help=DATA_HELP)],
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Only the rows known at the end of this month (YYYY-MM)."),
    ] = None,
) -> None:
    """Check a data directory or a database against the contract; exit 0 if usable."""
    from forecast.commands.validate import run_validate

    summary, feeds = run_validate(data, as_of=as_of)
    _print_summary(summary)
    for table, names in feeds.items():
        if names:
            say(f"  {table} feeds {len(names)} features (e.g. {', '.join(names[:3])})")


def _print_summary(s: Summary) -> None:
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


@app.command()
def features(
    data: Annotated[str, typer.Option("--data", help=DATA_HELP)],
    out_file: Annotated[Path, typer.Option("--out", help="Parquet file to write the panel to.")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="Only this month (YYYY-MM).")] = None,
    spec_dir: Annotated[
        Path | None, typer.Option("--features", help="Feature spec directory (default: features/).")
    ] = None,
) -> None:
    """Write the team-month feature panel (one row per team and as-of month) for inspection."""
    from forecast.commands.features import write_features

    written = write_features(data, out_file, as_of=as_of, spec_dir=spec_dir)
    for w in written.warnings:
        warn(w)
    say(f"Wrote {written.rows} team-months x {written.features} features to {written.path}")


@app.command("backtest")
def backtest_command(
    data: Annotated[str, typer.Option("--data", help=DATA_HELP)],
    horizon: Annotated[
        int | None, typer.Option(help="Months ahead to forecast (default: training/model.yaml).")
    ] = None,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Where backtest.json and backtest.html go.")
    ] = Path("backtest-output"),
    origins: Annotated[int, typer.Option("--origins", help="Number of origins.")] = 4,
    every_months: Annotated[
        int | None,
        typer.Option(
            "--every-months",
            help="Months between origins (default: the horizon; 12 for annual as-of points).",
        ),
    ] = None,
    last_origin: Annotated[
        str | None,
        typer.Option(
            "--last-origin",
            help="YYYY-MM of the newest origin (default: the latest labelled month).",
        ),
    ] = None,
) -> None:
    """Rolling-origin backtest against simple baselines; registers nothing, no MLflow."""
    from forecast.commands.backtest import run_real_backtest
    from forecast.commands.train import backtest_table

    with progress() as bar:
        task = bar.add_task("backtest", total=None)
        done = run_real_backtest(
            data,
            out_dir,
            horizon=horizon,
            n_origins=origins,
            every=every_months,
            last_origin=last_origin,
            progress=lambda step: bar.update(task, description=step),
        )
    out.print(backtest_table(done.result))
    for w in done.warnings:
        warn(w)
    best = done.document["headline"][done.document["best_attrition_model"]]["label"]
    out.print(f"lowest attrition deviance: {best}; wrote {done.json_path} and {done.html_path}")


# --------------------------------------------------------------------------- not built yet


def _not_built(command: str, issue: str) -> None:
    raise NotBuiltError(f"`forecast {command}` is not built yet ({issue}).")


@app.command()
def demo(
    out_dir: Annotated[
        Path, typer.Option("--out", help="Where the demo writes everything.")
    ] = Path("demo-output"),
    teams: Annotated[int, typer.Option(help="Number of simulated teams.")] = 300,
    months: Annotated[int, typer.Option(help="Number of simulated months.")] = 36,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
) -> None:
    """From nothing: simulate an organisation, train, register, score and write the report."""
    from forecast.commands.demo import run_demo

    outcome = run_demo(out_dir, teams=teams, months=months, seed=seed, say=say, progress=progress)
    out.print(outcome.backtest_table)
    out.print(f"Data:            {outcome.data}")
    out.print(f"MLflow store:    {outcome.tracking_uri}")
    out.print(f"Scores, drivers: {outcome.scores}")
    if outcome.report is not None:
        out.print(f"Leaders' report: {outcome.report}  (open it in a browser)")
    # One line each, never wrapped: the command is meant to be copied.
    out.print(
        f"Served view:     forecast serve --out-root {outcome.root} --data {outcome.data} "
        f"--users {outcome.users}",
        soft_wrap=True,
    )
    out.print("                 then open http://127.0.0.1:8000/ and sign in as", soft_wrap=True)
    for name, password, sees in outcome.accounts:
        out.print(f"                 {name} / {password}  ({sees})", soft_wrap=True)


@app.command()
def train(
    data: Annotated[str, typer.Option("--data", help=DATA_HELP)],
    horizon: Annotated[
        int | None, typer.Option(help="Months ahead to forecast (default: training/model.yaml).")
    ] = None,
    validate_what_if: Annotated[
        bool,
        typer.Option(
            "--validate-what-if",
            help="Also validate the what-if engine against simulated intervention truth and "
            "log it with the models (about 40 s).",
        ),
    ] = False,
    no_what_if_fit: Annotated[
        bool,
        typer.Option(
            "--no-what-if-fit",
            help="Do not fit the what-if engine with the pair (`what_if` in "
            "training/model.yaml); what-ifs with this pair then fit it on every call.",
        ),
    ] = False,
) -> None:
    """Build features, backtest, train both models, fit the what-if engine, log to MLflow and
    register them."""
    from forecast.commands.train import STEPS, backtest_table, run_training

    with progress() as bar:
        task = bar.add_task("training", total=len(STEPS))
        outcome = run_training(
            data,
            horizon=horizon,
            validate_what_if=validate_what_if,
            what_if_fit=not no_what_if_fit,
            # A step's sub-steps (e.g. one signal of the what-if fit) keep the bar where it is.
            progress=lambda step: bar.update(
                task, description=step, completed=STEPS.index(step) if step in STEPS else None
            ),
        )
    out.print(backtest_table(outcome.backtest))
    ref = outcome.pair
    out.print(
        f"MLflow run {outcome.run_id} in {outcome.tracking_uri} (experiment "
        f"{outcome.experiment}); artifacts at {outcome.artifact_uri}"
    )
    out.print(
        f"Registered {ref.attrition_name} v{ref.attrition_version} and {ref.csat_name} "
        f"v{ref.csat_version or '-'} as a pair; aliases: {', '.join(ref.aliases)}"
    )
    fits = outcome.record.what_if_fits if outcome.record is not None else None
    if fits:
        month = next(iter(fits.values())).as_of
        say(
            f"What-if engine fitted as of {month} for {len(fits)} signal(s) "
            f"({', '.join(sorted(fits))}), saved with the pair."
        )


@app.command()
def score(
    data: Annotated[str, typer.Option("--data", help=DATA_HELP)],
    out_dir: Annotated[Path | None, typer.Option("--out", help="Output directory.")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="YYYY-MM.")] = None,
    model: Annotated[
        str, typer.Option(help="Alias, version, run id or models:/ URI.")
    ] = "champion",
    min_group: Annotated[
        int, typer.Option("--min-group", help="Smallest team shown with drivers (privacy).")
    ] = 5,
    no_report: Annotated[bool, typer.Option("--no-report", help="Skip report.html.")] = False,
    horizon: Annotated[
        int | None, typer.Option(help="Must equal the model's horizon if given.")
    ] = None,
    out_root: Annotated[
        Path | None, typer.Option("--out-root", help="With --catch-up: ROOT/YYYY-MM/ folders.")
    ] = None,
    catch_up: Annotated[
        bool, typer.Option("--catch-up", help="Score every month due under --out-root.")
    ] = False,
    since: Annotated[
        str | None, typer.Option("--since", help="With --catch-up: backfill from YYYY-MM.")
    ] = None,
    engine: Annotated[
        str, typer.Option("--engine", help="local, or spark (forecast[spark]; docs/spark.md).")
    ] = "local",
    master: Annotated[
        str, typer.Option("--master", help="--engine spark: local[N], spark://HOST:7077, yarn.")
    ] = "local[2]",
) -> None:
    """Batch-score every team as of a month with the registered models."""
    check_param("--engine", engine, engine in ("local", "spark"), "one of local, spark")
    if catch_up:
        if out_root is None or out_dir is not None or as_of is not None:
            raise ConfigError("`--catch-up` needs `--out-root ROOT` (not --out or --as-of).")
        side = _registry_side(model)
        from forecast.commands.score import run_catch_up

        done = run_catch_up(
            data,
            out_root,
            since=since,
            model=model,
            min_group=min_group,
            report=not no_report,
            horizon=horizon,
            say=say,
            warn=warn,
            engine=engine,
            master=master,
            side=side,
        )
        for month, why in done.skipped.items():
            say(f"{month}: {why}")
        out.print(
            f"scored {', '.join(done.scored)} into {done.root}"
            if done.scored
            else f"nothing to score: {done.root} is up to date "
            f"(latest complete month {done.latest})"
        )
        return
    if out_dir is None or out_root is not None or since is not None:
        raise ConfigError("`forecast score` needs `--out OUT` (or `--out-root ROOT --catch-up`).")
    side = _registry_side(model)
    try:  # Ctrl-C while the command's modules load: nothing was written yet
        if engine == "spark":
            from forecast.commands.score import run_score_spark as run_score
        else:
            from forecast.commands.score import run_score
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; {Path(os.path.abspath(out_dir))} left as it was") from None
    extra = {"master": master} if engine == "spark" else {}
    result = run_score(
        data,
        out_dir,
        as_of=as_of,
        model=model,
        min_group=min_group,
        report=not no_report,
        horizon=horizon,
        warn=warn,
        side=side,
        **extra,
    )
    m = result.manifest
    org = m["organisation"]
    out.print(
        f"scored {m['rows']['scores']} teams as of {m['as_of']} (horizon {m['horizon']} months) "
        f"with {m['model']['attrition']['name']} v{m['model']['attrition']['version']}: "
        f"{org['expected_leavers']:.1f} expected leavers "
        f"(80% interval {org['leavers_p10']:.0f}-{org['leavers_p90']:.0f}) -> {result.out}"
    )


def _registry_side(model: str) -> RegistrySide:
    """MLflow's side process for `forecast score`, started before the command's imports: MLflow's
    import and SQL store (about 3 s) then run on the other core while pandas, LightGBM and the
    data load here (forecast.mlops.sidecar, issue 17)."""
    from forecast.mlops.sidecar import RegistrySide

    return RegistrySide(model)


@app.command()
def review(
    data: Annotated[str, typer.Option("--data", help=DATA_HELP)],
    out_root: Annotated[Path, typer.Option("--out-root", help="ROOT of scored month folders.")],
) -> None:
    """Compare past forecasts under ROOT whose horizon has passed with what happened."""
    from forecast.commands.review import run_review

    result = run_review(data, out_root)
    org = result.review[result.review["level"] == "organisation"]
    for row in org.itertuples():
        out.print(
            f"{row.as_of}: predicted {row.predicted_leavers:.1f} leavers, realised "
            f"{row.realised_leavers:.0f}; team interval coverage {row.leavers_coverage:.0%}"
        )
    if result.pending:
        say(f"not yet due (horizon not passed): {', '.join(result.pending)}")
    out.print(f"reviewed {len(result.reviewed)} forecast(s) -> {result.path}")


@app.command()
def promote(
    data: Annotated[str | None, typer.Option("--data", help=DATA_HELP)] = None,
    force: Annotated[bool, typer.Option("--force", help="Promote whatever the gate says.")] = False,
) -> None:
    """Move `champion` to the challenger when its backtest is not worse.

    Rule: the challenger is promoted when its mean Poisson deviance of attrition over the
    shared backtest origins is not higher than the champion's. Exits 1 when the gate refuses.
    """
    from forecast.commands.promote import run_promotion
    from forecast.errors import PromotionRefused
    from forecast.mlops.promotion import RULE, comparison_rich

    with progress() as bar:
        task = bar.add_task("promotion", total=None)
        outcome = run_promotion(
            data, force=force, progress=lambda step: bar.update(task, description=step)
        )
    if outcome.comparison is not None:
        out.print(comparison_rich(outcome))
    say(f"Rule: {RULE}.")
    if outcome.note:
        out.print(outcome.note)
    elif outcome.promoted:
        out.print(
            f"Promoted: champion is now {outcome.challenger.describe()} "
            f"({outcome.decision.reason})."
        )
    else:
        # A ForecastError with exit code 1: `main` turns it into one line and the exit code.
        raise PromotionRefused(
            f"not promoted: {outcome.decision.reason}; champion stays "
            f"{outcome.champion.describe() if outcome.champion else '-'}. "
            f"Use --force to promote anyway."
        )


@app.command()
def models() -> None:
    """List registered model pairs: versions, aliases, horizon, run id, date, backtest."""
    from forecast.mlops.registry import list_pairs, models_table

    pairs = list_pairs()
    if not pairs:
        out.print("No models registered yet; run `forecast train --data DIR` first.")
        return
    # Run ids must print whole (they are `--model` values): off a terminal, print 120 wide.
    (out if out.is_terminal else Console(highlight=False, width=120)).print(models_table(pairs))


@app.command("what-if")
def what_if(
    data: Annotated[str, typer.Option("--data", help=DATA_HELP)],
    team: Annotated[list[str], typer.Option("--team", help="Team id (repeatable).")],
    set_: Annotated[str, typer.Option("--set", help="SIGNAL=VALUE.")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="YYYY-MM.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    model: Annotated[
        str, typer.Option(help="Alias, version, run id or models:/ URI.")
    ] = "champion",
) -> None:
    """Expected leavers and CSAT change if SIGNAL were held at VALUE from the as-of month on."""
    import json

    from rich.table import Table

    from forecast.commands.what_if import run_what_if
    from forecast.whatif.engine import NOTE
    from forecast.whatif.signals import as_json_records

    result = run_what_if(data, team, set_, as_of=as_of, model=model)
    records = as_json_records(result)
    if as_json:
        typer.echo(json.dumps(records))
        return
    t = Table(
        title=f"what if {records[0]['signal']} = {records[0]['value']:g} "
        f"(as of {records[0]['as_of']})",
        header_style="bold",
    )
    for col in (
        "team",
        "leavers before",
        "leavers after",
        "80% interval",
        "CSAT before",
        "CSAT after",
        "80% interval",
    ):
        t.add_column(col, justify="left" if col == "team" else "right")

    def fmt(v: float | None, spec: str) -> str:
        return "-" if v is None or v != v else format(v, spec)

    def interval(row: object, lo: str, hi: str, spec: str) -> str:
        get = getattr(row, "get", lambda _k: None)
        return f"{fmt(get(lo), spec)} to {fmt(get(hi), spec)}" if get(lo) is not None else "-"

    for r, (_, row) in zip(records, result.iterrows(), strict=True):
        b, a = r["before"], r["after"]
        t.add_row(
            r["team_id"],
            fmt(b["expected_leavers"], ".2f"),
            fmt(a["expected_leavers"], ".2f"),
            interval(row, "after_leavers_p10", "after_leavers_p90", ".2f"),
            fmt(b["csat_change"], "+.2f"),
            fmt(a["csat_change"], "+.2f"),
            interval(row, "after_csat_change_p10", "after_csat_change_p90", "+.2f"),
        )
    out.print(t)
    say(NOTE)


@app.command()
def report(
    out_dir: Annotated[Path, typer.Argument(help="A `forecast score` output folder.")],
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="KEY=VALUE (a team attribute, e.g. department=Sales; repeat for more): write a "
            "report of the matching teams only, the rule `forecast serve` applies.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", help="With --scope: the file to write (default OUT/report-<scope>.html)."
        ),
    ] = None,
) -> None:
    """Rebuild OUT/report.html from the outputs already in OUT (or, with --scope, write a
    report limited to one scope)."""
    if scope:
        from forecast.report.render import write_scoped_report
        from forecast.report.scope import parse_scope, scope_text

        chosen = parse_scope(scope)
        path, teams = write_scoped_report(out_dir, chosen, output)
        out.print(f"report of {teams} teams ({scope_text(chosen)}) written to {path}")
        return
    if output is not None:
        raise ConfigError(
            "`--output` goes with `--scope`; `forecast report OUT` writes OUT/report.html."
        )
    from forecast.report.render import write_report

    path = write_report(out_dir)
    out.print(f"report written to {path}")


# --------------------------------------------------------------------------- serve / users

DEFAULT_USERS = Path("forecast-users.db")
USERS_HELP = "The user store, an SQLite file (default forecast-users.db in this directory)."

users_app = typer.Typer(
    name="users",
    help="Accounts of `forecast serve`: add, list, remove, passwd, audit.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(users_app, name="users")


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="User name (an e-mail address works).")],
    role: Annotated[str, typer.Option("--role", help="analyst (whole organisation) or leader.")],
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="KEY=VALUE: a team attribute a leader's teams match (department=Sales, "
            "site=Leeds; repeat: a team matching any is seen).",
        ),
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    users: Annotated[Path, typer.Option("--users", help=USERS_HELP)] = DEFAULT_USERS,
) -> None:
    """Create an account (the password is hashed with argon2, never stored in clear)."""
    from forecast.commands.users import add_user, read_password
    from forecast.serve.users import check_name, check_role_scope

    check_name(name)
    check_role_scope(role, list(scope or []))  # refused before a password is asked for
    user = add_user(users, name, role, list(scope or []), read_password(password_stdin))
    out.print(f"added {user.name} ({user.role}, {user.describe_scope()}) to {users}")


@users_app.command("list")
def users_list(
    users: Annotated[Path, typer.Option("--users", help=USERS_HELP)] = DEFAULT_USERS,
) -> None:
    """List the accounts: name, role, scope, dates, and whether failed sign-ins lock it."""
    from rich.table import Table

    from forecast.commands.users import list_users

    rows = list_users(users)
    t = Table(title=f"{len(rows)} account(s) in {users}")
    for col in ("name", "role", "scope", "created", "password changed", "locked"):
        t.add_column(col)
    for r in rows:
        t.add_row(
            *(r[c] for c in ("name", "role", "scope", "created", "password changed", "locked"))
        )
    out.print(t)


@users_app.command("remove")
def users_remove(
    name: Annotated[str, typer.Argument(help="User name.")],
    users: Annotated[Path, typer.Option("--users", help=USERS_HELP)] = DEFAULT_USERS,
) -> None:
    """Remove an account (its sessions end at its next request)."""
    from forecast.commands.users import remove_user

    remove_user(users, name)
    out.print(f"removed {name} from {users}")


@users_app.command("passwd")
def users_passwd(
    name: Annotated[str, typer.Argument(help="User name.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    users: Annotated[Path, typer.Option("--users", help=USERS_HELP)] = DEFAULT_USERS,
) -> None:
    """Set a new password (ends the account's sessions and clears its failed sign-ins)."""
    from forecast.commands.users import change_password, read_password, user_exists

    user_exists(users, name)
    change_password(users, name, read_password(password_stdin))
    out.print(f"password of {name} changed in {users}")


@users_app.command("audit")
def users_audit(
    limit: Annotated[int, typer.Option("--limit", help="The latest N entries.")] = 100,
    user: Annotated[str | None, typer.Option("--user", help="One user's entries only.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
    users: Annotated[Path, typer.Option("--users", help=USERS_HELP)] = DEFAULT_USERS,
) -> None:
    """The audit log: sign-ins, sign-outs, pages and teams viewed, what-ifs run (never a
    password)."""
    import json

    from rich.table import Table

    from forecast.commands.users import audit_log

    rows = audit_log(users, limit=limit, user=user)
    if as_json:
        for r in rows:
            print(json.dumps(r, ensure_ascii=False))
        return
    t = Table(title=f"audit log of {users} (latest {len(rows)})")
    for col in ("at", "user", "action", "detail", "address"):
        t.add_column(col)
    for r in rows:
        t.add_row(*(r[c] for c in ("at", "user", "action", "detail", "address")))
    out.print(t)


@app.command()
def serve(
    out_root: Annotated[
        Path, typer.Option("--out-root", help="ROOT of scored month folders (score --catch-up).")
    ],
    data: Annotated[
        str | None,
        typer.Option("--data", help=DATA_HELP + " Needed for live what-ifs and the trend."),
    ] = None,
    users: Annotated[Path, typer.Option("--users", help=USERS_HELP)] = DEFAULT_USERS,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="The pair for what-ifs (alias, version, run id or models:/ URI; default: the "
            "pair that scored the latest month).",
        ),
    ] = None,
    trusted_header: Annotated[
        str | None,
        typer.Option(
            "--trusted-header",
            help="Take the user name from this request header, set by an SSO proxy in front "
            "(e.g. X-Forwarded-Email); the server then listens on loopback only.",
        ),
    ] = None,
    allow_remote: Annotated[
        bool,
        typer.Option(
            "--allow-remote",
            help="With --trusted-header: allow a non-loopback --host (only behind a firewall "
            "that lets nothing but the proxy in).",
        ),
    ] = False,
    secure_cookies: Annotated[
        bool,
        typer.Option(
            "--secure-cookies",
            help="Mark cookies Secure even when the proxy does not say the request was HTTPS.",
        ),
    ] = False,
    session_hours: Annotated[
        float, typer.Option("--session-hours", help="How long a sign-in lasts.")
    ] = 8.0,
) -> None:
    """Serve the scored months to signed-in users: each leader sees only their teams."""
    import re

    from forecast.commands.serve import check_binding, check_port, prepare_serve, run_serve
    from forecast.serve.context import ServeSettings

    check_param("--port", port, 1 <= port <= 65535, "an integer between 1 and 65535")
    check_param(
        "--session-hours", session_hours, 0 < session_hours <= 720, "hours between 0 and 720"
    )
    if trusted_header is not None and not re.fullmatch(r"[A-Za-z0-9-]{1,64}", trusted_header):
        raise ConfigError(
            f"`--trusted-header` must be a header name such as X-Forwarded-Email. Got "
            f"{trusted_header!r} instead."
        )
    check_binding(host, trusted_header, allow_remote)
    check_port(host, port)
    secret = os.environ.get("FORECAST_SERVE_SECRET", "").strip()
    settings = ServeSettings(
        trusted_header=trusted_header,
        session_seconds=session_hours * 3600,
        secure_cookies=secure_cookies,
        secret=bytes.fromhex(secret) if re.fullmatch(r"(?:[0-9a-fA-F]{2}){16,}", secret) else None,
    )
    prepared = prepare_serve(
        out_root, data=data, users=users, model=model, settings=settings, say=say, warn=warn
    )
    live = (
        f"live what-ifs of {', '.join(prepared.live.signals(prepared.months[-1]).choices)}"
        if prepared.live is not None
        else f"no live what-ifs ({prepared.live_note})"
    )
    shown = f"[{host}]" if ":" in host else host
    out.print(
        f"serving {len(prepared.months)} scored month(s) of {prepared.root} (latest "
        f"{prepared.months[-1]}) to {prepared.accounts} account(s) at http://{shown}:{port}/ ; "
        f"{live}; Ctrl-C stops it"
    )
    run_serve(prepared, host=host, port=port)


# --------------------------------------------------------------------------- import / individual


@app.command("import")
def import_(
    source: Annotated[str, typer.Argument(help="Export format: mfg or hrdataset.")],
    path: Annotated[Path, typer.Argument(help="The exported CSV file.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Data directory to write.")],
    team_by: Annotated[
        str | None,
        typer.Option(
            "--team-by", help="mfg: store|store-department; hrdataset: department|manager."
        ),
    ] = None,
    retirement_as: Annotated[
        str,
        typer.Option(
            "--retirement-as", help="mfg: exit_type of retirements (voluntary|involuntary)."
        ),
    ] = "voluntary",
    min_group: Annotated[
        int, typer.Option("--min-group", help="hrdataset: suppress survey cells under N.")
    ] = 5,
    data_start: Annotated[
        str | None, typer.Option("--data-start", help="YYYY-MM for meta.json (overrides).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing data dir.")] = False,
) -> None:
    """Convert a public HR export into a validated data directory (docs/adapters.md)."""
    from rich.table import Table

    from forecast.data.importers import import_source

    r = import_source(
        source,
        path,
        out_dir,
        team_by=team_by,
        retirement_as=retirement_as,
        min_group=min_group,
        data_start=data_start,
        fmt=fmt,
        force=force,
    )
    t = Table(title=f"{r.source}: {r.rows_in} source rows -> {r.out_dir} (valid)")
    t.add_column("figure")
    t.add_column("value", justify="right")
    for k, v in r.stats.items():
        if k != "snapshot_check":
            t.add_row(k, str(v))
    for name, rows in r.tables.items():
        t.add_row(f"{name} rows", str(rows))
    if not State.quiet:
        out.print(t)
        check = r.stats.get("snapshot_check")
        if check:
            out.print(
                "December headcount vs source ACTIVE snapshots: "
                + ", ".join(f"{c['year']} {c['ours']}/{c['source_active']}" for c in check)
            )
        for note in r.notes:
            say(f"  {note}")
    out.print(
        f"{r.teams} teams, {r.employees} employees"
        + (f"; data_start {r.data_start}" if r.data_start else "")
    )
    for w in r.warnings:
        warn(w)


@app.command()
def individual(
    data: Annotated[Path, typer.Option("--data", help="IBM HR attrition CSV.")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="Where to write results.")] = None,
    per_person: Annotated[
        bool, typer.Option("--per-person", help="Also write out-of-fold scores (needs --out).")
    ] = False,
    folds: Annotated[int, typer.Option(help="Stratified CV folds.")] = 5,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    include_protected: Annotated[
        bool, typer.Option("--include-protected", help="Use Age, Gender, MaritalStatus.")
    ] = False,
) -> None:
    """Individual-level check: cross-validated LightGBM vs logistic AUC, with SHAP drivers."""
    from rich.table import Table

    from forecast.commands.individual import run_individual

    # Seeds reach scikit-learn and LightGBM (seed + fold), which take 0 .. 2**31 - 1.
    check_param("--seed", seed, 0 <= seed <= 10**9, "an integer between 0 and 1000000000")
    r = run_individual(
        data,
        out_dir=out_dir,
        per_person=per_person,
        folds=folds,
        seed=seed,
        include_protected=include_protected,
    )
    t = Table(title=f"{r.file}: {r.rows} rows, {r.leavers} leavers, {r.folds}-fold CV")
    t.add_column("model")
    t.add_column("ROC-AUC mean ± sd", justify="right")
    t.add_column("folds")
    for name, s in (("LightGBM", r.lightgbm), ("logistic regression", r.logistic)):
        t.add_row(
            name, f"{s.auc_mean:.3f} ± {s.auc_sd:.3f}", " ".join(f"{a:.3f}" for a in s.auc_folds)
        )
    out.print(t)
    if not State.quiet:
        d = Table(title="LightGBM drivers: mean |SHAP| (log-odds)")
        d.add_column("feature")
        d.add_column("mean |SHAP|", justify="right")
        for row in r.shap[:10]:
            d.add_row(str(row["feature"]), f"{row['mean_abs_shap']:.3f}")
        out.print(d)
        if r.protected_excluded:
            say(f"protected columns not used: {', '.join(r.protected_excluded)}")
        if r.proxies:
            say(
                "but these features carry them (normalised mutual information): "
                + "; ".join(f"{p['feature']} ~ {p['protected']} {p['nmi']:.2f}" for p in r.proxies)
            )
    for w in r.warnings:
        warn(w)
    for p in r.written:
        say(f"wrote {p}")


# --------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    """Console-script entry: run the app, turn our errors into one line and an exit code.

    As the console script (`argv` None), the process then ends without tearing the interpreter
    down module by module: with pandas, LightGBM, MLflow and SHAP loaded that took about a
    second of every `forecast score` and `forecast what-if` (issue 17). Output is flushed and
    the exit handlers run first (logging, temporary folders, child processes), and a thread
    still running gets the ordinary exit."""
    code = _main(argv)
    if argv is None and threading.active_count() == 1:
        sys.stdout.flush()
        sys.stderr.flush()
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _main(argv: list[str] | None) -> int:
    command = typer.main.get_command(app)
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        returned = command.main(args=args, prog_name="forecast", standalone_mode=False)
    except Interrupted as exc:
        # Ctrl-C is not an error: one plain line saying what was left behind.
        err.print(_one_line(str(exc)), soft_wrap=True, markup=False)
        return exc.exit_code
    except ForecastError as exc:
        if debug:
            raise
        err.print(f"[red]error:[/] {_one_line(str(exc))}", soft_wrap=True)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err.print("aborted.")
        return 130
    # Typer vendors click, so its usage errors (unknown option, missing parameter, no such
    # command) are `typer.TyperException`, not `click.ClickException`.
    except typer.TyperException as exc:
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            err.print(f"[red]error:[/] {_one_line(exc.format_message())}", soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err.print("interrupted.")
        return 130
    except Exception as exc:  # the CLI edge: never a traceback without --debug
        if debug:
            raise
        err.print(
            f"[red]internal error:[/] {type(exc).__name__}: {_one_line(str(exc))} "
            f"(run with --debug for the traceback, and please report it)",
            soft_wrap=True,
        )
        return 1
    # With standalone_mode=False click returns a typer.Exit's code instead of exiting.
    return returned if isinstance(returned, int) else 0


def _one_line(text: str) -> str:
    return " ".join(text.split())


__all__ = ["ConfigError", "NotBuiltError", "app", "main"]
