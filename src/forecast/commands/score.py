"""`forecast score`: resolve the registered pair, read the data, build the batch (local or
Spark), write the output folder atomically, then the report; and `--catch-up`, which scores
every month that is due into ROOT/YYYY-MM/.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from forecast.commands.what_if import keep_month
from forecast.data.atomic import check_writable_dir, check_writable_parent, output_lock
from forecast.data.contract import latest_complete_month
from forecast.data.lineage import MANIFEST, manifest_text, package_versions
from forecast.data.months import month_str, parse_month_option
from forecast.data.sources import Source, load_tables, open_source
from forecast.data.tables import Tables
from forecast.errors import (
    ConfigError,
    Interrupted,
    OutputError,
    TrackingError,
    check_param,
)
from forecast.features.specs import FeatureSpecs, load_specs
from forecast.mlops.local import ResolvedPair, load_bundle
from forecast.mlops.names import ATTRITION_MODEL
from forecast.mlops.sidecar import BACKTEST_CALIBRATION, BACKTEST_PREDICTIONS, RegistrySide
from forecast.models.pair import ModelPair
from forecast.report.render import load_beeswarm_libraries, write_report
from forecast.scoring.batch import (
    MIN_GROUP,
    Say,
    ScoreBatch,
    _quiet,
    build_batch,
    training_reference,
)
from forecast.scoring.extras import score_extras
from forecast.scoring.output import (
    LOCK_TIMEOUT_S,
    PRODUCER,
    check_replaceable,
    publish,
    read_manifest,
    write_batch_files,
)
from forecast.scoring.schedule import due_months, month_folders
from forecast.scoring.spark import DEFAULT_MASTER
from forecast.whatif.engine import NOTE as WHATIF_NOTE
from forecast.whatif.month import WhatIfMonth, what_if_month


def keep_what_if_month(scorer: Scorer, month_inputs: WhatIfMonth) -> None:
    """Keep the scored month's what-if inputs in the user's cache (forecast.data.cache), so
    the first `forecast what-if` on these files reads no table: under its name, and as "the
    latest" when it is. Only for a data directory read whole: what `forecast what-if` reads
    itself (a cut read may lack a table that is empty up to the month)."""
    if scorer.data.directory is None or scorer.read_as_of is not None:
        return
    month = month_inputs.month
    months = [month] + ([None] if month == scorer.latest() else [])
    keep_month(scorer.data.directory, scorer.data_hash, month_inputs, months)


def report_extras(
    scorer: Scorer, batch: ScoreBatch, as_of: pd.Period, *, warn: Say = _quiet
) -> dict[str, pd.DataFrame]:
    """The team-level files the report needs to be rebuilt offline (team attributes for
    roll-ups, what-ifs, the fairness audit). Only with the report. What it has to say (e.g.
    teams left without a what-if) goes to `warn` and into the batch's warnings (the manifest,
    and the report's list of warnings)."""

    def note(message: str) -> None:
        batch.warnings.append(message)
        warn(message)

    assert scorer.tables is not None
    # Built once for the report's what-ifs and for the what-if cache; only with stored fits
    # (without them neither uses the month's rows).
    fits = scorer.resolved.what_if_fits
    month_inputs = what_if_month(scorer.tables, scorer.specs, as_of) if fits else None
    extras = score_extras(
        scorer.tables,
        scorer.pair,
        scorer.specs,
        batch.scores,
        batch.drivers,
        as_of,
        what_if_fits=scorer.resolved.what_if_fits,
        backtest_predictions=scorer.backtest_predictions,
        warn=note,
        month_inputs=month_inputs,
    )
    if month_inputs is not None:
        keep_what_if_month(scorer, month_inputs)
    return {
        name: frame.sort_values("team_id", kind="stable").reset_index(drop=True)
        if "team_id" in frame
        else frame
        for name, frame in extras.items()
    }


@dataclass
class Scorer:
    """What every month of a run shares: the data, the pair and where both came from."""

    data: Source
    tables: Tables | None  # None with the Spark engine: the rows stay on the executors
    specs: FeatureSpecs
    resolved: ResolvedPair
    data_hash: str
    # The process that talks to MLflow for this run (it tags the model version after each
    # month); `close()` ends it.
    side: RegistrySide = field(repr=False)
    warnings: list[str] = field(default_factory=list)
    calibration: pd.DataFrame | None = None
    # The training run's out-of-sample backtest predictions per team (fairness audit).
    backtest_predictions: pd.DataFrame | None = None
    # The Spark engine: its session and the validated tables it read (scoring.spark).
    spark: Any = field(default=None, repr=False)
    spark_tables: Any = field(default=None, repr=False)
    # The month the tables were cut at when read (`--as-of`); None: every row was read.
    read_as_of: pd.Period | None = None
    _reference: tuple[pd.DataFrame | None, str] | None = None
    _first_months: pd.Series | None = None

    @property
    def pair(self) -> ModelPair:
        return self.resolved.pair

    def latest(self) -> pd.Period:
        """The data's latest complete month."""
        if self.spark_tables is not None:
            return self.spark_tables.latest
        assert self.tables is not None
        return latest_complete_month(self.tables)

    def reference(self) -> tuple[pd.DataFrame | None, str]:
        # Built once per run: a catch-up over many months compares each with the same training.
        if self._reference is None:
            if self.spark_tables is not None:
                from forecast.scoring.spark import spark_reference

                self._reference = spark_reference(
                    self.spark, self.spark_tables, self.pair, self.specs
                )
            else:
                assert self.tables is not None
                self._reference = training_reference(self.tables, self.pair, self.specs)
        return self._reference

    def first_months(self) -> pd.Series:
        """Each team's first month (the Spark engine's drift check of new teams)."""
        if self._first_months is None:
            from forecast.scoring.spark import team_first_months

            self._first_months = team_first_months(self.spark_tables)
        return self._first_months

    def close(self) -> None:
        self.side.close()
        if self.spark_tables is not None:
            self.spark_tables.close()


@dataclass
class ScoreResult:
    out: Path
    manifest: dict[str, Any]
    batch: ScoreBatch


def parse_as_of(text: str | None, option: str = "--as-of") -> pd.Period | None:
    return parse_month_option(option, text)


def prepare(
    data: Path | str | Source,
    *,
    model: str = "champion",
    horizon: int | None = None,
    tracking_uri: str | None = None,
    warn: Say = _quiet,
    as_of: pd.Period | None = None,
    side: RegistrySide | None = None,
    spark: Any = None,
    report: bool = False,
) -> Scorer:
    """Resolve the pair and read the data (as of a month: only the rows known at its end; a
    database filters them in the query) at the same time: MLflow's calls run in a side process
    (`forecast.mlops.sidecar`, which fails within seconds when MLflow is unreachable) while
    this one reads the data. `side`: one already started for `model` and `tracking_uri` (the
    CLI starts it before its imports); it is closed when preparing fails. `spark`: a session
    that reads and validates the data itself (the Spark engine: no table on this process)."""

    side = side if side is not None else RegistrySide(model, tracking_uri)
    spark_tables = None
    try:
        source = open_source(data)
        if spark is None:
            # A directory's files are hashed before reading (`keep_what_if_month` hashes them
            # again, to tell files rewritten meanwhile); a database's hash is of the rows read.
            files = source.hash() if source.directory is not None else None
            tables = load_tables(source, as_of=as_of)
            data_hash = files if files is not None else source.hash()
        else:
            from forecast.data.spark_contract import read_and_validate, spark_data_hash

            tables = None
            spark_tables = read_and_validate(spark, source, as_of=as_of)
            data_hash = spark_data_hash(source, spark_tables)
        if spark is None:
            _preload(report)
        answer = side.answer()
        pair, fits = load_bundle(answer.pair_dir)
        resolved = ResolvedPair(
            pair=pair, ref=answer.ref, tracking_uri=answer.tracking_uri, what_if_fits=fits
        )
        if horizon is not None and int(horizon) != int(pair.config.horizon):
            raise ConfigError(
                f"`--horizon` must match the model's horizon ({pair.config.horizon} months: "
                f"{resolved.ref.describe()}). Got {horizon} instead; the horizon comes from the "
                f"model."
            )
        specs = load_specs()
        scorer = Scorer(
            data=source,
            tables=tables,
            specs=specs,
            resolved=resolved,
            data_hash=data_hash,
            side=side,
            calibration=_read_table(answer.artifacts.get(BACKTEST_CALIBRATION)),
            backtest_predictions=_read_table(answer.artifacts.get(BACKTEST_PREDICTIONS)),
            spark=spark,
            spark_tables=spark_tables,
            read_as_of=as_of,
        )
    except BaseException:
        side.close()
        if spark_tables is not None:
            spark_tables.close()
        raise
    if pair.spec_hash and pair.spec_hash != specs.hash():
        scorer.warnings.append(
            f"the feature specs under features/ changed since the model was trained (spec hash "
            f"{specs.hash()[:12]} vs {pair.spec_hash[:12]}); scores may not match training."
        )
    for w in scorer.warnings:
        warn(w)
    return scorer


def _preload(report: bool) -> None:
    """Import what this run will import anyway while MLflow's side process resolves the pair
    (this process would only wait for it, about 2 s): LightGBM for the drivers (TreeSHAP)
    and, with the report, the beeswarm's matplotlib and SHAP (together about 2-4 s of
    imports, measured; README, Benchmarks)."""
    with contextlib.suppress(ImportError):
        import lightgbm  # noqa: F401
    if report:
        load_beeswarm_libraries()


def _read_table(path: Path | None) -> pd.DataFrame | None:
    """A table logged with the pair's training run (None: the run has none)."""
    if path is None:
        return None
    try:
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except OSError:
        return None


def manifest_for(
    scorer: Scorer, batch: ScoreBatch, out: Path, files: dict[str, str], min_group: int
) -> dict[str, Any]:

    ref = scorer.resolved.ref
    scores = batch.scores
    return {
        "producer": PRODUCER,
        "format": 1,
        "as_of": batch.as_of,
        "horizon": batch.horizon,
        "min_group": min_group,
        "model": {
            "tracking_uri": scorer.resolved.tracking_uri,
            "run_id": ref.run_id,
            "aliases": list(ref.aliases),
            "attrition": {
                "name": ref.attrition_name,
                "version": ref.attrition_version,
                "run_id": ref.run_id,
            },
            "csat": {
                "name": ref.csat_name,
                "version": ref.csat_version,
                "run_id": ref.run_id if ref.csat_version else None,
            },
            "trained_until": scorer.pair.trained_until,
            "trained_at": (
                scorer.resolved.ref.created.isoformat(timespec="seconds")
                if scorer.resolved.ref.created
                else None
            ),
        },
        "data": {**scorer.data.describe(), "hash": scorer.data_hash, **_spark_read(scorer)},
        "feature_spec_hash": {"scoring": scorer.specs.hash(), "training": scorer.pair.spec_hash},
        "rows": {
            "scores": len(scores),
            "reportable": int(scores["reportable"].sum()),
            "drivers": len(batch.drivers),
            "drivers_by_family": len(batch.drivers_by_family),
            "history": len(batch.history),
            "drift": len(batch.drift),
        },
        "organisation": {
            "expected_leavers": batch.organisation.get("expected"),
            "leavers_p10": batch.organisation.get("p10"),
            "leavers_p90": batch.organisation.get("p90"),
            "headcount": int(scores["headcount"].sum()),
        },
        "additivity_max_error": batch.additivity,
        "drift": batch.drift_summary,
        "warnings": [*scorer.warnings, *batch.warnings],
        "files": files,
        # The sentence that stands next to every what-if number in the report.
        **({"whatif_note": WHATIF_NOTE} if "whatif.parquet" in files else {}),
        "packages": package_versions(),
        "output": str(out),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _spark_read(scorer: Scorer) -> dict[str, Any]:
    """How the Spark engine read the data (the manifest's `data.read`): by table, the reader
    and the as-of rule pushed into the read; and what the hash is of."""
    st = scorer.spark_tables
    if st is None or st.read is None:
        return {}
    out: dict[str, Any] = {
        "read": {
            name: {
                "by": raw.how,
                **({"as_of": st.read.pushed[name]} if name in st.read.pushed else {}),
            }
            for name, raw in st.read.raws.items()
        }
    }
    if scorer.data.is_database:
        out["hash_of"] = "rows as Spark read them (an order-free sum of row hashes, spark-rows-1)"
    return out


def score_month(
    scorer: Scorer,
    as_of: pd.Period,
    out: Path,
    *,
    min_group: int = MIN_GROUP,
    report: bool = True,
    lock: bool = True,
    warn: Say = _quiet,
    batch: ScoreBatch | None = None,
    engine: dict[str, Any] | None = None,
) -> ScoreResult:
    """Score one month into `out` (atomically) and tag the model version with it. Another
    engine (Spark) passes the `batch` it built; writing and publishing stay the same. Ctrl-C
    becomes `Interrupted`, saying whether `out` was replaced."""
    out = Path(os.path.abspath(out))
    manifest: dict[str, Any] = {}

    def write(tmp: Path) -> None:
        files = write_batch_files(tmp, batch)
        manifest.update(manifest_for(scorer, batch, out, files, min_group))
        if engine:
            manifest["engine"] = engine
        # The report reads the manifest, so it goes first; the report then lists itself in it.
        (tmp / MANIFEST).write_text(manifest_text(manifest), encoding="utf-8")
        if report and _write_report(tmp):
            manifest.update(json.loads((tmp / MANIFEST).read_text(encoding="utf-8")))

    try:
        check_replaceable(out)  # fail before the expensive part; re-checked under the lock
        if batch is None:
            batch = build_batch(
                scorer.tables,
                scorer.pair,
                scorer.specs,
                as_of=as_of,
                min_group=min_group,
                reference=scorer.reference(),
                calibration=scorer.calibration,
            )
        for w in batch.warnings:
            warn(w)
        if report and scorer.tables is not None:
            batch.extra.update(report_extras(scorer, batch, as_of, warn=warn))
        elif report:
            note = (
                "the report has no roll-ups by team attribute, what-ifs or fairness audit: with "
                "`--engine spark` the employee rows stay on the executors (docs/spark.md); "
                "score with `--engine local` for them."
            )
            batch.warnings.append(note)
            warn(note)
        publish(out, write, lock=lock)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; {out} left as it was") from None
    try:
        tag_model(scorer, batch.as_of, out, warn=warn)
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted after {out} was written; the model version was not tagged with it"
        ) from None
    return ScoreResult(out=out, manifest=manifest, batch=batch)


def _write_report(directory: Path) -> bool:
    """The leaders' report, built from the folder's files alone."""
    write_report(directory)
    return (directory / "report.html").exists()


def tag_model(scorer: Scorer, as_of: str, out: Path, *, warn: Say = _quiet) -> None:
    """Record on the attrition model version (and its run) that it scored this month into this
    folder, so "which model scored April?" has an answer in MLflow. The output already exists,
    so a tracking failure here is a warning, not a failed run."""
    ref = scorer.resolved.ref
    key, value = f"scored.{as_of}", str(out)
    try:
        scorer.side.tag(ATTRITION_MODEL, ref.attrition_version, ref.run_id, key, value)
    except TrackingError as exc:
        warn(f"scores written, but tagging the model in MLflow failed: {exc}")


def _prepare_month(
    data: Path | str,
    out: Path,
    *,
    as_of: str | None,
    model: str,
    min_group: int,
    horizon: int | None,
    tracking_uri: str | None,
    warn: Say,
    side: RegistrySide | None,
    start_spark: Callable[[], Any] | None = None,
    report: bool = False,
) -> tuple[Scorer, pd.Period, Path]:
    """What `score` checks and loads before it builds the month's batch, on either engine: the
    options, where the output goes, then the pair and the data. Returns the scorer, the month
    (default: the latest complete one) and OUT made absolute. `start_spark`: the Spark
    engine's session, started only once the options and OUT have passed (it takes seconds)."""
    check_param(
        "--min-group", min_group, isinstance(min_group, int) and min_group >= 1, "an integer >= 1"
    )
    month = parse_as_of(as_of)
    out = Path(os.path.abspath(out))
    try:
        # Where the output goes is checked before MLflow or the data are touched: a bad --out
        # must not cost a whole scoring run.
        check_writable_parent(out, "--out")
        check_replaceable(out)
        scorer = prepare(
            data,
            model=model,
            horizon=horizon,
            tracking_uri=tracking_uri,
            warn=warn,
            as_of=month,
            side=side,
            spark=start_spark() if start_spark is not None else None,
            report=report,
        )
        month = month if month is not None else scorer.latest()
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; {out} left as it was") from None
    return scorer, month, out


def run_score(
    data: Path | str,
    out: Path,
    *,
    as_of: str | None = None,
    model: str = "champion",
    min_group: int = MIN_GROUP,
    report: bool = True,
    horizon: int | None = None,
    tracking_uri: str | None = None,
    warn: Say = _quiet,
    side: RegistrySide | None = None,
) -> ScoreResult:
    """`forecast score --data DIR --out OUT`: one month (default: the latest complete one).
    `side`: the MLflow side process, when the caller started it early (see `prepare`)."""
    scorer, month, out = _prepare_month(
        data,
        out,
        as_of=as_of,
        model=model,
        min_group=min_group,
        horizon=horizon,
        tracking_uri=tracking_uri,
        warn=warn,
        side=side,
        report=report,
    )
    try:
        return score_month(scorer, month, out, min_group=min_group, report=report, warn=warn)
    finally:
        scorer.close()


def run_score_spark(
    data: Path | str,
    out: Path,
    *,
    as_of: str | None = None,
    model: str = "champion",
    min_group: int = MIN_GROUP,
    report: bool = True,
    horizon: int | None = None,
    tracking_uri: str | None = None,
    warn: Say = _quiet,
    master: str = DEFAULT_MASTER,
    spark: Any = None,
    side: RegistrySide | None = None,
) -> ScoreResult:
    """`forecast score --engine spark`: score.run_score with the data read, validated and
    scored by Spark (scoring.spark), written by score.py's own writer and published the same
    atomic way. `spark`: a session to use (else one is started, and stopped at the end)."""

    batches = SparkBatches(master, spark)
    try:
        scorer, month, out = _prepare_month(
            data,
            out,
            as_of=as_of,
            model=model,
            min_group=min_group,
            horizon=horizon,
            tracking_uri=tracking_uri,
            warn=warn,
            side=side,
            start_spark=batches.start,
        )
        try:
            built = batches.build(scorer, month, min_group)
            return score_month(
                scorer, month, out, min_group=min_group, report=report, warn=warn, **built
            )
        finally:
            scorer.close()
    finally:
        batches.stop()


def _root_lock_path(root: Path) -> Path:
    # Beside ROOT, not in it: a run with nothing to do must leave ROOT untouched.
    return root.parent / f".{root.name}.lock"


def run_catch_up(
    data: Path | str,
    root: Path,
    *,
    since: str | None = None,
    model: str = "champion",
    min_group: int = 5,
    report: bool = True,
    horizon: int | None = None,
    tracking_uri: str | None = None,
    say: Say = _quiet,
    warn: Say = _quiet,
    engine: str = "local",
    master: str = DEFAULT_MASTER,
    spark: Any = None,
    side: RegistrySide | None = None,
) -> CatchUpResult:
    """Score every due month into ROOT/YYYY-MM/ with one loaded pair and one read of the data.
    `engine="spark"`: each month's batch is built on Spark (one session for the run, started
    only when a month is due), written and published as the local engine's."""
    check_param(
        "--min-group", min_group, isinstance(min_group, int) and min_group >= 1, "an integer >= 1"
    )
    since_month = parse_as_of(since, "--since")
    root = Path(os.path.abspath(root))
    if root.exists() and not root.is_dir():
        raise OutputError(f"{root} exists and is not a directory; choose another --out-root.")
    try:
        # The lock goes beside ROOT, and ROOT may have to be created: both checked up front.
        check_writable_parent(root, "--out-root")
        batches = SparkBatches(master, spark) if engine == "spark" else None
        try:
            scorer = prepare(
                data,
                model=model,
                horizon=horizon,
                tracking_uri=tracking_uri,
                warn=warn,
                side=side,
                spark=batches.start() if batches is not None else None,
                report=report,
            )
        except BaseException:
            if batches is not None:
                batches.stop()
            raise
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; {root} left as it was") from None
    latest = scorer.latest()
    if since_month is not None and since_month > latest:
        raise ConfigError(
            f"`--since` must be on or before the latest complete month {month_str(latest)}. "
            f"Got {month_str(since_month)} instead."
        )
    result = CatchUpResult(root=root, latest=month_str(latest))
    root.parent.mkdir(parents=True, exist_ok=True)
    busy = f"another catch-up has held {root} for over {LOCK_TIMEOUT_S:.0f} s; try again later."
    try:
        with output_lock(
            _root_lock_path(root), timeout=LOCK_TIMEOUT_S, busy=busy, option="--out-root"
        ):
            _score_due(
                scorer,
                root,
                result,
                latest,
                since_month,
                min_group=min_group,
                report=report,
                say=say,
                warn=warn,
                spark=batches,
            )
    except KeyboardInterrupt:
        if not result.scored:
            raise Interrupted(f"interrupted; {root} left as it was") from None
        raise Interrupted(
            f"interrupted; scored {', '.join(result.scored)} into {root}, no other month written"
        ) from None
    except Interrupted as exc:  # from the month being scored, which says what it left
        if not result.scored:
            raise
        raise Interrupted(f"{exc}; {', '.join(result.scored)} scored before it") from None
    finally:
        scorer.close()
        if batches is not None:
            batches.stop()
    return result


def _score_due(
    scorer: Scorer,
    root: Path,
    result: CatchUpResult,
    latest: pd.Period,
    since_month: pd.Period | None,
    *,
    min_group: int,
    report: bool,
    say: Say,
    warn: Say,
    spark: SparkBatches | None = None,
) -> None:
    """Decided under the lock: a run that waited sees what the other one wrote."""
    existing = month_folders(root)
    version = scorer.resolved.ref.attrition_version
    if since_month is not None:
        for name in existing:
            if since_month <= pd.Period(name, freq="M") <= latest:
                previous = read_manifest(root / name) or {}
                by = previous.get("model", {}).get("attrition", {}).get("version")
                result.skipped[name] = (
                    "already scored with this model version"
                    if by == version
                    else f"already scored (model version {by or 'unknown'}); never rewritten"
                )
    months = due_months(existing, latest, since_month)
    if not months:
        return
    check_writable_dir(root, "--out-root")  # only now: a run with nothing to do touches nothing
    root.mkdir(parents=True, exist_ok=True)
    for month in months:
        name = month_str(month)
        say(f"scoring {name} into {root / name}")
        built = spark.build(scorer, month, min_group) if spark is not None else {}
        # The root lock already serialises writers; a per-month lock file would litter ROOT.
        score_month(
            scorer,
            month,
            root / name,
            min_group=min_group,
            report=report,
            lock=False,
            warn=warn,
            **built,
        )
        result.scored.append(name)


@dataclass
class SparkBatches:
    """The Spark engine's session for a run (one for every month of a catch-up): the one given,
    an active one, or one started by `start()` and stopped by `stop()`."""

    master: str = DEFAULT_MASTER
    session: Any = None
    own: bool = False

    def start(self) -> Any:
        if self.session is None:
            from forecast.scoring.spark import borrow

            self.session, self.own = borrow(self.master)
        return self.session

    def build(self, scorer: Scorer, month: pd.Period, min_group: int) -> dict[str, Any]:
        """score_month's `batch` and `engine` for one month."""
        from forecast.scoring.spark import build_batch_spark, n_buckets_for

        session = self.start()
        batch = build_batch_spark(
            session,
            scorer.spark_tables,
            scorer.pair,
            scorer.specs,
            as_of=month,
            min_group=min_group,
            reference=scorer.reference(),
            first_months=scorer.first_months(),
            calibration=scorer.calibration,
        )
        engine = {
            "name": "spark",
            "master": self.master,
            "buckets": n_buckets_for(session, scorer.spark_tables.teams),
        }
        return {"batch": batch, "engine": engine}

    def stop(self) -> None:
        if self.own and self.session is not None:
            self.session.stop()
        self.session, self.own = None, False


@dataclass
class CatchUpResult:
    root: Path
    latest: str
    scored: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # month -> why
