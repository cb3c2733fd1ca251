"""`forecast train`: data directory in, one MLflow run and a registered model pair out.

Order matters: options and the tracking store are checked before any data is read, so a typo or
an unreachable server fails in seconds, not after the backtest. The modelling itself lives in
`models.py` and `backtest.py`; this module only orchestrates and records.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import multiprocessing
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import yaml
from mlflow.entities import Metric, Param, RunTag
from rich.table import Table

from forecast import __version__
from forecast.data.atomic import json_text
from forecast.data.lineage import data_summary, package_versions
from forecast.data.sources import check_source, load_tables
from forecast.data.tables import MAX_HORIZON, Tables
from forecast.errors import check_param
from forecast.features.names import feature_catalog, split_feature
from forecast.features.panel import build_panel
from forecast.features.specs import FeatureSpecs, load_specs
from forecast.features.targets import build_targets
from forecast.mlops.pyfunc import log_pair_models
from forecast.mlops.registry import PairRef, register_pair, save_bundle
from forecast.mlops.tracking import EXPERIMENT, Tracking, connect, tracking_errors
from forecast.models import explain
from forecast.models.backtest import (
    BacktestResult,
    OriginPool,
    calibration_plot,
    combine_origins,
    end_pool,
    plan_backtest,
    run_origin,
)
from forecast.models.config import ModelConfig, load_model_config
from forecast.models.drift import month_reference
from forecast.models.fit import Fitted, design_matrix, predict_fitted
from forecast.models.pair import ModelPair, assemble_pair, fit_final
from forecast.scoring.batch import MIN_GROUP
from forecast.scoring.extras import WHATIF_TEAMS
from forecast.simulate.known_effects import known_effect_orgs
from forecast.whatif import validation
from forecast.whatif.engine import StoredFit
from forecast.whatif.signals import settable_signals
from forecast.whatif.store import (
    REPORT,
    FitJob,
    default_workers,
    fit_metrics,
    fit_table,
    what_if_signals,
)

log = logging.getLogger("forecast")

N_ORIGINS = 4
PRIMARY_METRIC = "attrition.lightgbm.deviance"

STEPS = (
    "reading data",
    "building features",
    "backtesting",
    "training",
    "fitting the what-if engine",
    "validating the what-if engine",
    "logging to MLflow",
)

Progress = Callable[[str], None]


@dataclass
class TrainingOutcome:
    run_id: str
    tracking_uri: str
    experiment: str
    pair: PairRef
    backtest: BacktestResult
    data_hash: str
    warnings: list[str] = field(default_factory=list)
    artifact_uri: str = ""
    # What was logged (pair, panel, backtest, configs): lets a caller log the same pair to
    # another store without retraining.
    record: TrainingRecord | None = field(default=None, repr=False)
    # Wall seconds of each step in this process, then of each fit wherever it ran
    # (`backtest origin YYYY-MM`, `what-if fit SIGNAL (main|worker N)`).
    timings: dict[str, float] = field(default_factory=dict)


class StepTimer:
    """Wall and CPU seconds (this process's) of each step of a training, in order. The steps
    follow one another in this process, so their wall times add up to the run's; worker
    processes work meanwhile (their fits' times: `TrainingOutcome.timings`)."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - wall
            self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - cpu

    def table(self) -> str:
        return "\n".join(
            f"  {name:<34} {self.wall[name]:7.1f} s wall {self.cpu[name]:7.1f} s CPU"
            for name in self.wall
        )


def validate_what_if_engine(
    seeds: tuple[int, ...] = validation.VALIDATION_SEEDS,
) -> tuple[dict[str, float], pd.DataFrame]:
    """The what-if engine against intervention truth on the simulated organisations of
    `forecast.whatif.validation` (metrics and table, as `TrainingRecord` keeps them); `seeds`:
    of those organisations' seeds, the ones to check (the demo checks one)."""
    return validation.validate_engine(
        known_effect_orgs(
            seeds,
            validation.VALIDATION_SCALES,
            validation.VALIDATION_TEAMS,
            validation.VALIDATION_MONTHS,
        )
    )


class ValidationJob:
    """`validate_what_if_engine` in a spawned worker process while training goes on (it is
    seeded and single-threaded, so where it runs never shows); in this process if the worker
    cannot start or dies."""

    def __init__(self, seeds: tuple[int, ...] = validation.VALIDATION_SEEDS) -> None:
        self.seeds = tuple(seeds)
        self._pool: ProcessPoolExecutor | None = ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn")
        )
        self._future = self._pool.submit(validate_what_if_engine, self.seeds)

    def result(self) -> tuple[dict[str, float], pd.DataFrame]:
        try:
            return self._future.result()
        except BrokenProcessPool:
            log.warning("the what-if validation's worker process ended early; validating here.")
            return validate_what_if_engine(self.seeds)
        finally:
            self.stop()

    def stop(self) -> None:
        """End the worker (a validation still running is dropped)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            end_pool(pool, self._future.done())


def report_signals(
    fitted: Fitted, panel: pd.DataFrame, tables: Tables, specs: FeatureSpecs
) -> list[str]:
    """The signals the leaders' report moves when these models score the latest month of
    `panel`: of the `WHATIF_TEAMS` reportable teams with the most expected leavers, each
    team's top actionable attrition driver (largest positive SHAP value of a settable
    signal's feature), as `forecast.scoring.extras.report_whatifs` picks them. Sorted."""
    now = panel.loc[panel["as_of"] == panel["as_of"].max()].reset_index(drop=True)
    pred = predict_fitted(fitted.attrition, fitted.csat, now, fitted.features, fitted.baseline)
    pred = pred.assign(team_id=pred["team_id"].astype(str))
    rep = pred.loc[pred["headcount"] >= MIN_GROUP].sort_values(
        ["expected_leavers", "team_id"], ascending=[False, True], kind="stable"
    )
    rows = now.loc[rep.index[:WHATIF_TEAMS]]
    contrib = explain.contributions(fitted.attrition, design_matrix(rows, fitted.features))
    settable = settable_signals(tables, specs, list(fitted.features))
    names = np.array(fitted.features, dtype=object)
    signal = np.array([split_feature(f)[1] if f.count("__") >= 2 else "" for f in names])
    usable = np.isin(signal, list(settable))
    out: set[str] = set()
    for values in contrib[:, :-1]:
        ok = np.flatnonzero(usable & (values > 0))
        if ok.size:
            # Largest SHAP value first; ties by feature name, as the report sorts them.
            best = min(ok, key=lambda j: (-values[j], names[j]))
            out.add(str(signal[best]))
    return sorted(out)


def check_horizon(horizon: object) -> None:
    ok = isinstance(horizon, int) and not isinstance(horizon, bool)
    check_param(
        "--horizon",
        horizon,
        ok and 1 <= horizon <= MAX_HORIZON,  # type: ignore[operator]
        f"an integer between 1 and {MAX_HORIZON}",
    )


def warn_protected(specs: FeatureSpecs) -> list[str]:
    """Protected attributes a feature spec opts in. The contract requires the run to say so;
    the run's tags and model card record it too."""
    opted = sorted({c for f in specs.families for c in f.opt_in_protected})
    if opted:
        log.warning(
            "feature specs opt in protected attribute(s) %s; these models use them.",
            ", ".join(opted),
        )
    return opted


def run_training(
    data_dir: Path | str,
    *,
    horizon: int | None = None,
    tracking_uri: str | None = None,
    progress: Progress | None = None,
    config_path: Path | None = None,
    spec_dir: Path | None = None,
    validate_what_if: bool = False,
    what_if_fit: bool = True,
    truth: pd.DataFrame | None = None,
    validation_seeds: tuple[int, ...] = validation.VALIDATION_SEEDS,
) -> TrainingOutcome:
    """Load, backtest, train, log one MLflow run and register the pair (see registry.py for
    the aliases a fresh pair gets). With `what_if_fit` (default), also fit the causal what-if
    engine for the signals of `what_if.signals` in the model configuration (`report`: those
    the leaders' report moves, `report_signals`) on the same data and save the fits with the
    pair (forecast.whatif.store), so `forecast what-if` and the report need not refit it; the
    fits run in this process and a worker (`FitJob`) while a second worker fits the older
    backtest origins (`OriginPool`). With `validate_what_if`, also run the what-if engine's
    validation against intervention truth on simulated organisations (about 40 s) and log it
    with the models (`validation_seeds`: on the organisations of these seeds; it runs in its
    own process meanwhile). `truth`: a simulation's true expected values (`forecast simulate
    --truth`), for the backtest's correlations with them (benchmarks)."""

    step = progress or (lambda _message: None)
    if horizon is not None:
        check_horizon(horizon)
    config = load_model_config(config_path, horizon=horizon)
    specs = load_specs(spec_dir)
    source = check_source(data_dir)  # a mistyped --data fails before the store is opened
    data_dir = source.location  # recorded with the pair: never a password
    tracking = connect(tracking_uri)

    timings = StepTimer()
    step("reading data")
    with timings("reading data"):
        tables = load_tables(source)
        digest = source.hash()
    wanted = config.what_if["signals"] if what_if_fit else []
    # A signal the configuration names but these data cannot set fails now, not after training;
    # `report` signals are known once the final models have scored the latest month.
    signals = None if wanted == REPORT else what_if_signals(tables, specs, wanted)
    workers = default_workers()
    # Three kinds of work share the CPUs: the backtest's older origins in a worker process
    # (`OriginPool`); the newest origin, the final models and then the what-if fits here; the
    # what-if fits also in a worker (`FitJob`, started as soon as its signals are known).
    # Every fit is seeded and single-threaded, so which process made it never shows.
    job = FitJob(tables, specs, signals or [], config.horizon)
    checking = None
    try:
        # The validation needs none of this run's data: it runs in its own process meanwhile.
        checking = ValidationJob(validation_seeds) if validate_what_if else None
        step("building features")
        with timings("features + targets"):
            panel = build_panel(tables, specs)
            warnings = list(panel.attrs.get("warnings", []))
            opted = warn_protected(specs)
            targets = build_targets(tables, config.horizon)
            plan = plan_backtest(panel, targets, config, n_origins=N_ORIGINS)
        step("backtesting")
        *older, newest = plan.origins
        with OriginPool(plan, older, workers - 1) as pool:
            with timings("backtest: newest origin"):
                outcomes = {newest: run_origin(plan, newest)}
            step("training")
            last = outcomes[newest][1]
            with timings("final fit"):
                # The trees early stopping chose at the newest origin (see train_pair).
                fitted = fit_final(
                    panel, targets, config, (last.attrition_rounds, last.csat_rounds)
                )
            if signals is None:
                with timings("report signals"):
                    signals = report_signals(fitted, panel, tables, specs)
                job.stop()
                job = FitJob(tables, specs, signals, config.horizon)
            skipped: dict[str, str] = {}
            what_if_fits = None  # no stored fits without signals, as with --no-what-if-fit
            if signals:
                step("fitting the what-if engine")
                with timings(f"what-if fits ({len(signals)})"):
                    what_if_fits, skipped = job.wait(
                        progress=lambda signal, i, n: step(
                            f"fitting the what-if engine: {signal} ({i + 1}/{n})"
                        ),
                    )
            step("collecting the backtest")
            with timings("backtest: older origins, rest"):
                for origin in older:
                    outcomes[origin] = pool.result(origin)
    except BaseException:
        if checking is not None:
            checking.stop()
        raise
    finally:
        job.stop()
    backtest = combine_origins(plan, outcomes, truth)
    pair = assemble_pair(fitted, config, spec_hash=specs.hash(), backtest=backtest)
    # Like with like: one month (the last trained on) against one scored month.
    pair.drift_reference = month_reference(panel, pair.features, pair.trained_until)
    for signal, why in skipped.items():
        message = f"what-if engine not fitted for {signal} (what-ifs will refit it): {why}"
        log.warning(message)
        warnings.append(message)

    whatif = None
    if checking is not None:
        step("validating the what-if engine")
        with timings("what-if validation (rest)"):
            whatif = checking.result()
    step("logging to MLflow")
    record = TrainingRecord(
        data_dir=data_dir,
        data_hash=digest,
        specs=specs,
        config=config,
        pair=pair,
        panel=panel,
        tables=tables,
        backtest=backtest,
        protected=opted,
        warnings=warnings,
        whatif_validation=whatif,
        whatif_skipped=skipped,
        what_if_fits=what_if_fits,
    )
    with timings("MLflow logging + registry"):
        run_id, artifact_uri, ref = log_and_register(tracking, record)
    fits = {f"what-if fit {s} ({where})": secs for s, (secs, where) in job.seconds.items()}
    origins = {f"backtest origin {f.origin}": f.seconds for f in backtest.folds}
    log.info("training steps (this process):\n%s", timings.table())
    log.info(
        "fits (in whichever process ran them):\n%s",
        "\n".join(f"  {k:<48} {v:7.1f} s" for k, v in {**origins, **fits}.items()),
    )
    return TrainingOutcome(
        run_id=run_id,
        tracking_uri=tracking.uri,
        experiment=EXPERIMENT,
        pair=ref,
        backtest=backtest,
        data_hash=digest,
        warnings=warnings,
        artifact_uri=artifact_uri,
        record=record,
        timings={
            **{k: timings.wall[k] for k in timings.wall},
            **origins,
            **fits,
        },
    )


@dataclass
class TrainingRecord:
    """Everything one training run records; built by `run_training`."""

    data_dir: Path | str
    data_hash: str
    specs: FeatureSpecs
    config: ModelConfig
    pair: ModelPair
    panel: pd.DataFrame
    tables: Tables
    backtest: BacktestResult
    protected: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # (metrics, per-organisation table) of the what-if engine against intervention truth.
    whatif_validation: tuple[dict[str, float], pd.DataFrame] | None = None
    # The what-if engine's fits saved with the pair (None: trained without them).
    what_if_fits: dict[str, StoredFit] | None = None
    # Signals whose what-if fit failed (too little data), with the reason; the fits themselves
    # are `pair.what_if_fits`.
    whatif_skipped: dict[str, str] = field(default_factory=dict)

    def training_config(self) -> dict[str, Any]:
        """What `forecast promote` needs to re-run this pair's backtest."""

        return {
            "horizon": self.config.horizon,
            "feature_spec": self.specs.to_dict(),
            "model_config": self.config.to_dict(),
            "spec_hash": self.specs.hash(),
            "model_config_hash": self.config.hash(),
            "data_hash": self.data_hash,
            "data_dir": str(self.data_dir),
            "n_origins": N_ORIGINS,
            "backtest_origins": list(self.backtest.origins),
            "trained_until": self.pair.trained_until,
            "forecast_version": __version__,
        }

    def version_tags(self) -> dict[str, str]:

        return {
            "horizon": str(self.config.horizon),
            "spec_hash": self.specs.hash(),
            "data_hash": self.data_hash,
            "model_config_hash": self.config.hash(),
            "trained_until": self.pair.trained_until,
            "data_dir": str(self.data_dir),
            "backtest_origins": ",".join(self.backtest.origins),
            "forecast_version": __version__,
        }

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "horizon": self.config.horizon,
            "feature_spec_hash": self.specs.hash(),
            "data_hash": self.data_hash,
            "model_config_hash": self.config.hash(),
            "n_features": len(self.pair.features),
            "backtest_origins": ",".join(self.backtest.origins),
            "trained_until": self.pair.trained_until,
        }
        for key, value in self.config.to_dict().items():
            if isinstance(value, dict):
                out |= {f"{key}.{k}": v for k, v in value.items()}
            else:
                out[key] = value
        return out


def backtest_table(backtest: BacktestResult) -> Table:
    """The backtest as a Rich table: each model against the baselines, per target."""

    columns = [
        ("deviance", "Poisson deviance"),
        ("d2_vs_null", "D² vs org rate"),
        ("calibration", "pred/real"),
        ("weighted_mae", "CSAT wMAE"),
        ("corr", "corr"),
    ]
    table = Table(
        title=f"Backtest, horizon {backtest.horizon} months, origins "
        f"{', '.join(backtest.origins)} (out of sample)",
        header_style="bold",
    )
    for name in ("target", "model", "rows", *(label for _, label in columns)):
        table.add_column(name, justify="left" if name in ("target", "model") else "right")
    for _, row in backtest.metrics.iterrows():
        cells = ["" if pd.isna(row.get(col)) else f"{row[col]:.3f}" for col, _ in columns]
        style = "bold" if row["model"] == "lightgbm" else None
        table.add_row(row["target"], row["model"], str(int(row["rows"])), *cells, style=style)
    cov = backtest.coverage
    table.caption = (
        f"interval coverage (nominal {cov.get('level', 0.8):.0%}): leavers "
        f"{cov.get('leavers', float('nan')):.2f}, CSAT {cov.get('csat_change', float('nan')):.2f}"
    )
    return table


def backtest_metrics(backtest: BacktestResult) -> dict[str, float]:
    """MLflow metric names may not contain everything pandas does; keep the flat summary keys
    (`attrition.lightgbm.deviance`, ...) and drop non-finite values, which MLflow rejects."""

    return {k: v for k, v in backtest.summary().items() if math.isfinite(v)}


def log_and_register(tracking: Tracking, record: TrainingRecord) -> tuple[str, str, PairRef]:

    with tracking_errors(tracking.uri):
        with (
            mlflow.start_run(experiment_id=tracking.experiment_id) as run,
            tempfile.TemporaryDirectory() as tmp,
        ):
            run_id = run.info.run_id
            tags = {
                "forecast.command": "train",
                "horizon": str(record.config.horizon),
                "data_hash": record.data_hash,
                "spec_hash": record.specs.hash(),
                "protected_opt_in": ",".join(record.protected) or "none",
                "whatif_engine": "causal-dml",
            }
            metrics = backtest_metrics(record.backtest)
            root = Path(tmp) / "run"
            write_run_artifacts(root, record, package_versions())
            if record.whatif_validation is not None:
                checks, table = record.whatif_validation
                metrics |= checks
                table.to_csv(root / "whatif_validation.csv", index=False)
            fit_metrics_, fit_tags = log_what_if_fits(root, record)
            # One call for every parameter, metric and tag: each call is a round trip (and a
            # transaction of the SQLite store).
            now = int(time.time() * 1000)
            mlflow.MlflowClient().log_batch(
                run_id,
                metrics=[Metric(k, float(v), now, 0) for k, v in (metrics | fit_metrics_).items()],
                params=[Param(k, str(v)) for k, v in record.params().items()],
                tags=[RunTag(k, v) for k, v in (tags | fit_tags).items()],
            )
            mlflow.log_artifacts(str(root))
            pair_dir = save_bundle(Path(tmp) / "pair", record.pair, record.what_if_fits)
            uris = log_pair_models(record.pair, str(pair_dir), record.panel)
            artifact_uri = run.info.artifact_uri
        ref = register_pair(
            tracking,
            run_id=run_id,
            attrition_uri=uris["attrition"],
            csat_uri=uris["csat"],
            tags=record.version_tags(),
        )
    return run_id, artifact_uri, ref


def log_what_if_fits(root: Path, record: TrainingRecord) -> tuple[dict[str, float], dict[str, str]]:
    """The stored what-if fits' effects (`EffectFit.metrics()`: theta, its 80% interval, CSAT
    thetas, rows) as metrics `whatif.<metric>.<signal>` and the tag `whatif_fits`, returned for
    the run's one batch, and `whatif_effects.csv` (one row per signal, skipped ones with the
    reason) written into the run folder `root`."""

    fits = record.what_if_fits
    if fits is None:
        return {}, {}
    fit_table(fits, record.whatif_skipped).to_csv(root / "whatif_effects.csv", index=False)
    metrics = {k: v for k, v in fit_metrics(fits).items() if math.isfinite(v)}
    return metrics, {"whatif_fits": ",".join(sorted(fits)) or "none"}


# --------------------------------------------------------------------------- artifacts


def write_run_artifacts(root: Path, record: TrainingRecord, packages: dict[str, str]) -> None:
    """The run's files. Layout:

    config/feature_spec.yaml, config/model_config.yaml, config/training.json
    features/feature_list.txt, features/feature_catalog.csv, features/importance.csv
    backtest/metrics.csv, backtest/metrics.json, backtest/calibration.csv,
    backtest/coverage.csv, backtest/predictions.parquet, backtest/calibration.png,
    backtest/report.txt
    lineage.json, model_card.md

    Team-level aggregates only: no employee id (nor team id) is written.
    """

    bt = record.backtest
    for sub in ("config", "features", "backtest"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    _yaml(root / "config/feature_spec.yaml", record.specs.to_dict())
    _yaml(root / "config/model_config.yaml", record.config.to_dict())
    _json(root / "config/training.json", record.training_config())

    (root / "features/feature_list.txt").write_text("\n".join(record.pair.features) + "\n")
    feature_catalog(record.specs, list(record.panel.columns)).to_csv(
        root / "features/feature_catalog.csv", index=False
    )
    feature_importance(record.pair).to_csv(root / "features/importance.csv", index=False)

    bt.metrics.to_csv(root / "backtest/metrics.csv", index=False)
    _json(
        root / "backtest/metrics.json",
        {
            "horizon": bt.horizon,
            "origins": list(bt.origins),
            "metrics": json.loads(bt.metrics.to_json(orient="records")),
            "coverage": bt.coverage,
            "coverage_by_origin": json.loads(bt.coverage_by_origin.to_json(orient="records")),
            "leaver_interval_level": bt.leaver_level,
            "recalibration": bt.recalibration.to_dict(),
            "dispersion": bt.dispersion,
            "csat_residual_q80": bt.csat_residual_q80,
            "org_total_model_sd": bt.org_total_model_sd,
            "risk_cuts": list(bt.risk_cuts),
        },
    )
    bt.calibration.to_csv(root / "backtest/calibration.csv", index=False)
    bt.coverage_by_origin.to_csv(root / "backtest/coverage.csv", index=False)
    # Team-level out-of-sample predictions (no person-level value): the report's fairness audit
    # checks calibration by team composition from these.
    keep = [
        "origin",
        "team_id",
        "as_of",
        "headcount",
        "leavers",
        "pred_model",
        "rate_model",
        "rate_model_raw",
    ]
    preds = bt.predictions[[c for c in keep if c in bt.predictions]].copy()
    preds["as_of"] = preds["as_of"].astype(str)
    preds.to_parquet(root / "backtest/predictions.parquet", index=False)
    calibration_plot(bt, root / "backtest/calibration.png")
    (root / "backtest/report.txt").write_text(bt.format_table() + "\n")

    summary = data_summary(record.tables)
    _json(
        root / "lineage.json",
        {
            "data": {"hash": record.data_hash, **summary},
            "panel_rows": len(record.panel),
            "packages": packages,
        },
    )
    (root / "model_card.md").write_text(model_card(record, summary))


def feature_importance(pair: ModelPair) -> pd.DataFrame:
    """Gain and split counts of each feature in each model (gain: how much a feature reduced
    the loss, a better guide than split counts)."""
    frames = []
    for target, booster in (("attrition", pair.attrition_booster), ("csat", pair.csat_booster)):
        if booster is None:
            continue
        frames.append(
            pd.DataFrame(
                {
                    "target": target,
                    "feature": booster.feature_name(),
                    "gain": booster.feature_importance("gain"),
                    "splits": booster.feature_importance("split"),
                }
            ).sort_values("gain", ascending=False)
        )
    return pd.concat(frames, ignore_index=True)


def model_card(record: TrainingRecord, summary: dict[str, Any]) -> str:
    bt = record.backtest

    def metric(model: str, column: str, target: str = "attrition") -> str:
        value = bt.metric(model, column, target)
        return "n/a" if pd.isna(value) else f"{value:.3f}"

    att_rows = "\n".join(
        f"| {m} | {metric(m, 'deviance')} | {metric(m, 'd2_vs_null')} | "
        f"{metric(m, 'calibration')} |"
        for m in bt.metrics.loc[bt.metrics["target"] == "attrition", "model"]
    )
    csat_rows = "\n".join(
        f"| {m} | {metric(m, 'mae', 'csat')} | {metric(m, 'weighted_mae', 'csat')} |"
        for m in bt.metrics.loc[bt.metrics["target"] == "csat", "model"]
    )
    rows = ", ".join(f"{k} {v}" for k, v in summary["rows"].items())
    protected = (
        f"**Protected attributes opted in by a feature spec: {', '.join(record.protected)}.** "
        "Review this choice before using the forecasts."
        if record.protected
        else "No protected attribute is used as a feature."
    )
    horizon = record.config.horizon
    return f"""# Model card: forecast-attrition / forecast-csat (horizon {horizon} months)

## What it predicts
Per team and as-of month: expected voluntary leavers over the next {record.config.horizon}
months (LightGBM Poisson, headcount as exposure, blended with the team's own shrunk long-run
rate{_baseline_words(record.pair)} and recalibrated by risk band on the backtest's
out-of-sample predictions) and the change in response-weighted CSAT over the same months
(LightGBM regression, with the attrition model's expected rate as an input).

## Intended use
Team-level workforce and service planning: where to look, how many leavers to plan for, how
large a CSAT dip to expect. **Never for decisions about individuals**: the models see team
aggregates only, and a team forecast says nothing about any one person. Teams below the minimum
group size are not reported.

## Data
- Data hash (sha256 of the input files): `{record.data_hash}`
- Rows: {rows}; teams: {summary["teams"]}; months: {summary["first_month"]} to
  {summary["last_month"]}; data_start: {summary["data_start"] or "not set"}
- Trained on as-of months up to {record.pair.trained_until}; team-months in the panel:
  {len(record.panel)}
- No individual identifiers are stored in this run or its models.
- {protected}

## Configuration
- Feature spec hash `{record.specs.hash()}` ({len(record.pair.features)} features; see
  `config/feature_spec.yaml`, `features/feature_catalog.csv`)
- Model config hash `{record.config.hash()}` (see `config/model_config.yaml`)

## Backtest (rolling origins {", ".join(bt.origins)}; out of sample)
Attrition (Poisson deviance per team-month, lower is better; D² vs the organisation-wide rate):

| model | deviance | D² vs org rate | predicted / realised |
|---|---|---|---|
{att_rows}

CSAT change (mean absolute error in CSAT points):

| model | MAE | response-weighted MAE |
|---|---|---|
{csat_rows}

Interval coverage (nominal {bt.coverage.get("level", 0.8):.0%}): leavers
{bt.coverage.get("leavers", float("nan")):.2f}, CSAT change
{bt.coverage.get("csat_change", float("nan")):.2f}. Calibration by decile:
`backtest/calibration.csv`, `backtest/calibration.png`.

## Limitations
- The link from attrition to CSAT (the CSAT model's use of the expected attrition rate, and
  any what-if built on it) **has been validated on simulated data only**; on real data it is
  an association learned from history, not a proven cause.
- Forecasts assume the future resembles the training months; re-train and re-run the backtest
  after reorganisations or changes to how data are recorded.
"""


def _baseline_words(pair: ModelPair) -> str:
    b = pair.baseline
    if b is None:
        return " (none: this configuration has no baseline)"
    return f" with weight {b.weight:.2f}, shrinkage {b.prior:,.0f} person-months"


def _yaml(path: Path, content: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")


def _json(path: Path, content: Any) -> None:
    path.write_text(json_text(content, sort_keys=False, default=_plain), encoding="utf-8")


def _plain(value: Any) -> Any:

    if isinstance(value, np.generic):
        return value.item()
    return str(value)
