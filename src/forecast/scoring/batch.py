"""`forecast score`: batch-score every team as of a month and write the output folder.

The middle is pure (`build_batch`: tables and a model pair in, frames out); this module's edges
read the data directory, resolve the registered pair, and publish the folder atomically:
everything is written into a temporary directory beside OUT and swapped into place under a
lock, so a failed or killed run leaves an earlier OUT as it was, and two runs at once leave one
complete output. Parquet files carry no timestamps and keep a fixed row order and fixed types:
the same data, month and model versions give byte-identical files. Only manifest.json records
when it was made.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from forecast.data.lineage import MANIFEST, file_sha256, manifest_text
from forecast.data.months import month_str, parse_month_option
from forecast.data.tables import Tables
from forecast.errors import ConfigError, ModelError, OutputError, TrackingError, check_param
from forecast.models import drift as drift_mod
from forecast.models import explain

PRODUCER = "forecast score"
MIN_GROUP = 5
HISTORY_MONTHS = 12
# A scheduled run should not queue behind a hung one forever; 10 minutes covers the largest
# organisation we benchmark several times over.
LOCK_TIMEOUT_S = 600.0
ADDITIVITY_TOL = 1e-6
SCORE_COLUMNS = (
    "team_id", "as_of", "headcount", "expected_leavers", "attrition_rate", "csat_change",
    "reportable", "leavers_p10", "leavers_p90", "csat_change_p10", "csat_change_p90", "risk_band",
)
Say = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


# --------------------------------------------------------------------------- the pure middle


@dataclass
class ScoreBatch:
    """Everything one scoring run writes, before it is written."""

    as_of: str
    horizon: int
    scores: pd.DataFrame
    drivers: pd.DataFrame
    drivers_by_family: pd.DataFrame
    drift: pd.DataFrame
    history: pd.DataFrame
    calibration: pd.DataFrame | None
    organisation: dict[str, float]
    drift_summary: dict[str, Any]
    additivity: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    # Optional team-level files other parts of the project read (e.g. the report's roll-ups).
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)


def check_model_columns(pair: Any, panel: pd.DataFrame, specs: Any = None) -> None:
    """Refuse data that lack inputs the model was trained on: silently scoring a missing signal
    as "unknown" would shift every forecast without anyone noticing."""
    needed = [f for f in pair.features if f not in panel.columns]
    if not needed:
        return
    sources: dict[str, list[str]] = {}
    for name in needed:
        family, signal, _ = _split(name)
        table, column = _source_of(specs, family, signal)
        sources.setdefault(f"{table}.{column}" if table else name, []).append(name)
    missing = ", ".join(sources)
    raise ModelError(
        f"the data lack column(s) the model was trained on: {missing} (needed by "
        f"{len(needed)} feature(s), e.g. {needed[0]}). Add them to the data, or score with a "
        f"model trained without them."
    )


def _split(name: str) -> tuple[str, str, str]:
    parts = name.split("__")
    if len(parts) < 3:
        return "", name, ""
    return parts[0], "__".join(parts[1:-1]), parts[-1]


def _source_of(specs: Any, family: str, signal: str) -> tuple[str, str]:
    """(table, column) a feature's signal comes from, undoing a spec's `rename`."""
    try:
        spec = specs.family(family)
    except (AttributeError, KeyError):
        return "", signal
    back = {new: old for old, new in spec.rename.items()}
    return spec.source, back.get(signal, signal)


def scores_frame(predictions: pd.DataFrame, as_of: str, min_group: int) -> pd.DataFrame:
    """The contract's scores table: one row per team with headcount >= 1, sorted by team_id,
    with fixed types (ids as strings, `as_of` as YYYY-MM text, headcount int64)."""
    p = predictions.loc[predictions["headcount"].to_numpy() >= 1]
    out = pd.DataFrame({
        "team_id": p["team_id"].astype(str).to_numpy(dtype=object),
        "as_of": as_of,
        "headcount": p["headcount"].to_numpy(dtype=np.int64),
    })
    for col in ("expected_leavers", "attrition_rate", "csat_change", "leavers_p10",
                "leavers_p90", "csat_change_p10", "csat_change_p90"):
        out[col] = p[col].to_numpy(dtype=np.float64, na_value=np.nan)
    out["reportable"] = out["headcount"] >= min_group
    out["risk_band"] = p["risk_band"].astype(str).to_numpy(dtype=object)
    out["expected_attrition_rate"] = p["expected_attrition_rate"].to_numpy(dtype=np.float64)
    out = out.sort_values("team_id", kind="stable").reset_index(drop=True)
    return out[[*SCORE_COLUMNS, "expected_attrition_rate"]]


def explain_batch(
    pair: Any, panel: pd.DataFrame, scores: pd.DataFrame
) -> tuple[list[explain.TargetExplanation], dict[str, float]]:
    """TreeSHAP of both targets for the reportable teams, checked for additivity against the
    scores (1e-6): a mismatch means the explanation is not of the model that scored."""
    from forecast.models.fit import design_matrix

    rep = scores.loc[scores["reportable"], ["team_id", "attrition_rate", "csat_change",
                                            "expected_attrition_rate"]]
    rows = panel.set_index(panel["team_id"].astype(str)).loc[rep["team_id"].to_numpy()]
    rows = rows.reset_index(drop=True)
    X = design_matrix(rows, pair.features)
    out = [explain.explain_target("attrition", pair.attrition_booster, X, rep["team_id"])]
    errors = {"attrition": explain.additivity_error(out[0], np.log(rep["attrition_rate"]))}
    if pair.csat_booster is not None:
        has, Xc = csat_design(X, rep, pair)
        out.append(explain.explain_target("csat", pair.csat_booster, Xc, rep["team_id"][has]))
        errors["csat"] = explain.additivity_error(out[1], rep["csat_change"].to_numpy()[has])
    check_additivity(errors)
    return out, errors


def csat_design(
    X: pd.DataFrame, rep: pd.DataFrame, pair: Any
) -> tuple[np.ndarray, pd.DataFrame]:
    """The CSAT model's input for the rows that have a CSAT forecast: the features plus the
    attrition model's rate (the stacked input), in the model's column order."""
    from forecast.models.fit import RATE_FEATURE

    has = rep["csat_change"].notna().to_numpy()
    Xc = X.loc[has].copy()
    Xc[RATE_FEATURE] = rep["expected_attrition_rate"].to_numpy()[has]
    return has, Xc[list(pair.csat_features)]


def check_additivity(errors: dict[str, float]) -> None:
    """Drivers must add up to the model's output; anything else means a broken model pair."""
    worst = max(errors, key=errors.get)
    if errors[worst] > ADDITIVITY_TOL:
        raise ModelError(
            f"the {worst} drivers do not add up to the model's output (largest gap "
            f"{errors[worst]:.3g}); the loaded model pair is inconsistent, re-register it."
        )


def team_history(tables: Tables, as_of: pd.Period, months: int = HISTORY_MONTHS) -> pd.DataFrame:
    """Team-level monthly aggregates of the months up to `as_of` (for the report's sparklines):
    headcount at month end, voluntary leavers in the month, response-weighted CSAT. Built from
    the tables as known at the end of `as_of`, like the features, and never per person."""
    from forecast.features.grid import (
        event_counts,
        headcount_grid,
        make_grid,
        make_spells,
        monthly_grid,
        panel_months,
        point_in_time,
        weight_grid,
    )

    known = point_in_time(tables, as_of)
    start, _ = panel_months(tables)
    first = max(start, as_of - (months - 1))
    grid = make_grid(known, first, as_of)
    spells = make_spells(known.employees, grid)
    hc = headcount_grid(spells, grid.shape)
    vol = (spells.exit_type == "voluntary") & (spells.a < spells.b)
    leavers = event_counts(spells.team[vol], spells.b[vol], grid.shape)
    csat = np.full(grid.shape, np.nan)
    if known.cx is not None and "csat" in known.cx.columns:
        csat, _ = monthly_grid(known.cx, "csat", grid)
        responses = weight_grid(known.cx, "responses", grid)
        responses = np.where(np.isnan(csat), 0.0, responses)
    else:
        responses = np.zeros(grid.shape)
    keep = (hc > 0) | (leavers > 0)
    rows, cols = np.nonzero(keep)
    month_names = [month_str(first + j) for j in range(grid.n_months)]
    return pd.DataFrame({
        "team_id": grid.teams[rows].astype(str),
        "month": np.array(month_names, dtype=object)[cols] if len(cols) else np.zeros(0, object),
        "headcount": hc[rows, cols].astype(np.int64),
        "voluntary_leavers": leavers[rows, cols].astype(np.int64),
        "csat": csat[rows, cols],
        "csat_responses": responses[rows, cols],
    })


def batch_drift(
    tables: Tables, pair: Any, specs: Any, panel: pd.DataFrame, catalog: pd.DataFrame,
    reference: pd.DataFrame | None, reference_source: str,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    families = dict(zip(catalog["feature"], catalog["family"], strict=True)) if len(catalog) else {}
    if reference is None:
        drift = pd.DataFrame({c: [] for c in drift_mod.DRIFT_COLUMNS})
    else:
        drift = drift_mod.feature_drift(panel, reference, families)
    emp = tables.employees
    first = emp["hire_date"].dt.to_period("M").groupby(emp["team_id"].astype(str)).min()
    if tables.data_start is not None:
        first = first.clip(lower=pd.Period(tables.data_start, freq="M"))
    trained = pd.Period(pair.trained_until, freq="M") if pair.trained_until else None
    new = drift_mod.new_teams(panel["team_id"], first, trained)
    return drift, drift_mod.summarize(drift, len(new), len(panel), reference_source)


def training_reference(
    tables: Tables, pair: Any, specs: Any
) -> tuple[pd.DataFrame | None, str]:
    """The training distribution to measure drift against: saved with the model when it has one
    (`pair.drift_reference`), else rebuilt from these data at the model's last training month
    through the same feature path (the data directory normally holds the training history)."""
    saved = getattr(pair, "drift_reference", None)
    if isinstance(saved, pd.DataFrame) and len(saved):
        return saved, "model"
    from forecast.features.panel import build_panel

    try:
        panel = build_panel(tables, specs, as_of=pair.trained_until)
    except ConfigError:
        return None, "none (the data do not reach the model's last training month)"
    feats = [f for f in pair.features if f in panel.columns]
    return drift_mod.drift_reference(panel, feats), f"rebuilt from the data at {pair.trained_until}"


def build_batch(
    tables: Tables, pair: Any, specs: Any, *, as_of: pd.Period, min_group: int = MIN_GROUP,
    reference: tuple[pd.DataFrame | None, str] | None = None,
    calibration: pd.DataFrame | None = None,
) -> ScoreBatch:
    """Score, explain and check drift for one month. Pure: no files, no MLflow, no printing."""
    from forecast.features.names import feature_catalog
    from forecast.features.panel import build_panel

    panel = build_panel(tables, specs, as_of=as_of)
    check_model_columns(pair, panel, specs)
    as_of_text = month_str(as_of)
    scores = scores_frame(pair.predict(panel), as_of_text, min_group)
    catalog = feature_catalog(specs, list(panel.columns))
    explanations, additivity = explain_batch(pair, panel, scores)
    drivers = explain.long_form(explanations, as_of_text, catalog)
    by_family = explain.by_family(explanations, as_of_text, catalog)
    ref, source = reference if reference is not None else training_reference(tables, pair, specs)
    drift, summary = batch_drift(tables, pair, specs, panel, catalog, ref, source)
    organisation = {k: float(v) for k, v in pair.org_total_interval(scores).items()}
    if calibration is None:
        calibration = getattr(pair, "calibration_table", None)
    warnings = list(panel.attrs.get("warnings", [])) + drift_mod.warnings_for(summary)
    return ScoreBatch(
        as_of=as_of_text,
        horizon=int(pair.config.horizon),
        scores=scores.drop(columns=["expected_attrition_rate"]),
        drivers=drivers,
        drivers_by_family=by_family,
        drift=drift,
        history=team_history(tables, as_of),
        calibration=calibration if isinstance(calibration, pd.DataFrame) else None,
        organisation=organisation,
        drift_summary=summary,
        additivity=additivity,
        warnings=warnings,
    )


def report_extras(scorer: Scorer, batch: ScoreBatch, as_of: pd.Period) -> dict[str, pd.DataFrame]:
    """The team-level files the report needs to be rebuilt offline (team attributes for
    roll-ups, what-ifs, fairness input), when the report module exists; it alone decides what is
    safe to keep. Only with the report: not cheap for a very large organisation."""
    try:
        from forecast.report.render import score_extras
    except ImportError:
        return {}
    extras = score_extras(
        scorer.tables, scorer.pair, scorer.specs, batch.scores, batch.drivers, as_of,
        backtest_predictions=backtest_predictions(scorer.resolved),
    )
    return {
        name: frame.sort_values("team_id", kind="stable").reset_index(drop=True)
        if "team_id" in frame else frame
        for name, frame in extras.items()
    }


# --------------------------------------------------------------------------- parquet, stably


def _arrow_column(series: pd.Series) -> pa.Array:
    """Fixed Arrow types per pandas kind; categoricals stay dictionary-encoded (16 M driver rows
    would otherwise materialise gigabytes of repeated strings); NaN floats become nulls."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = pa.array(series.cat.codes.to_numpy(), type=pa.int32())
        return pa.DictionaryArray.from_arrays(
            codes, pa.array([str(c) for c in series.cat.categories], type=pa.string())
        )
    if pd.api.types.is_bool_dtype(series):
        return pa.array(series.to_numpy(dtype=bool), type=pa.bool_())
    if pd.api.types.is_integer_dtype(series):
        return pa.array(series.to_numpy(dtype=np.int64), type=pa.int64())
    if pd.api.types.is_float_dtype(series):
        return pa.array(series.to_numpy(dtype=np.float64, na_value=np.nan), type=pa.float64(),
                        from_pandas=True)
    values = series.astype(object).where(series.notna(), None).to_numpy(dtype=object)
    return pa.array([None if v is None else str(v) for v in values], type=pa.string())


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Deterministic Parquet: explicit types, no pandas index or metadata, no timestamps.
    `store_schema=False` makes dictionary columns read back as plain strings everywhere."""
    table = pa.table({c: _arrow_column(frame[c]) for c in frame.columns})
    pq.write_table(table, path, compression="zstd", store_schema=False)


def write_batch_files(directory: Path, batch: ScoreBatch) -> dict[str, str]:
    """The batch's files into `directory`; returns file name -> sha256 (parquet and csv)."""
    files = {
        "scores.parquet": batch.scores,
        "drivers.parquet": batch.drivers,
        "drivers_by_family.parquet": batch.drivers_by_family,
        "drift.parquet": batch.drift,
        "history.parquet": batch.history,
    }
    if batch.calibration is not None:
        files["backtest_calibration.parquet"] = batch.calibration
    files.update(batch.extra)
    for name, frame in files.items():
        write_parquet(frame, directory / name)
    # For spreadsheet users: same rows and columns as scores.parquet.
    batch.scores.to_csv(directory / "scores.csv", index=False, lineterminator="\n")
    return {name: file_sha256(directory / name) for name in [*files, "scores.csv"]}


# --------------------------------------------------------------------------- atomic folders


def _lock_path(out: Path) -> Path:
    return out.parent / f".{out.name}.lock"


def _tmp_prefix(out: Path) -> str:
    return f".{out.name}.tmp-"


def _backup_path(out: Path) -> Path:
    return out.parent / f".{out.name}.backup"


def read_manifest(out: Path) -> dict[str, Any] | None:
    """Our manifest in `out`, or None when there is none (or it is not ours)."""
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("producer") == PRODUCER else None


def check_replaceable(out: Path) -> None:
    """OUT may be absent, empty, or an earlier output of ours; anything else is someone's data."""
    if not out.exists():
        return
    if not out.is_dir():
        raise OutputError(f"{out} exists and is not a directory; choose another --out.")
    if any(out.iterdir()) and read_manifest(out) is None:
        raise OutputError(
            f"{out} is not empty and was not written by `forecast score` (no manifest.json of "
            f"ours); refusing to replace it. Choose another --out or empty it."
        )


def _recover(out: Path) -> None:
    """Undo what a killed run left beside OUT (we hold the lock, so no live run owns these)."""
    backup = _backup_path(out)
    if backup.exists():
        if out.exists():
            shutil.rmtree(backup)
        else:  # killed between the two renames of the fallback swap: the backup is the output
            os.replace(backup, out)
    for stale in out.parent.glob(_tmp_prefix(out) + "*"):
        shutil.rmtree(stale, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two directories (Linux renameat2 RENAME_EXCHANGE); False when the
    platform or file system cannot, and the caller falls back to two renames."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _fsync_tree(directory: Path) -> None:
    for path in [*directory.iterdir(), directory]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _swap_in(tmp: Path, out: Path) -> None:
    """Put `tmp` at `out`; the old `out` survives until the new one is in place."""
    if not out.exists():
        os.replace(tmp, out)
    elif _exchange(tmp, out):
        shutil.rmtree(tmp)
    else:
        backup = _backup_path(out)
        os.replace(out, backup)
        os.replace(tmp, out)
        shutil.rmtree(backup)
    fd = os.open(out.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(out: Path, write: Callable[[Path], None], *, lock: bool = True) -> None:
    """Write a complete folder with `write(tmp)` and swap it in as `out`, under a lock file
    beside `out`. Any failure (or a kill) before the swap leaves `out` as it was."""
    from filelock import FileLock, Timeout

    out = Path(os.path.abspath(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    guard = FileLock(str(_lock_path(out)), timeout=LOCK_TIMEOUT_S) if lock else None
    try:
        if guard is not None:
            guard.acquire()
    except Timeout:
        raise OutputError(
            f"another `forecast score` has been writing {out} for over {LOCK_TIMEOUT_S:.0f} s "
            f"(lock {_lock_path(out)}); try again when it has finished."
        ) from None
    try:
        _recover(out)
        check_replaceable(out)
        tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(out), dir=out.parent))
        try:
            os.chmod(tmp, 0o755)  # mkdtemp's 0700 would hide the output from colleagues
            write(tmp)
            _fsync_tree(tmp)
            _swap_in(tmp, out)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    finally:
        if guard is not None:
            guard.release()


# --------------------------------------------------------------------------- the edge


@dataclass
class Scorer:
    """What every month of a run shares: the data, the pair and where both came from."""

    data: Path
    tables: Tables
    specs: Any
    resolved: Any  # forecast.registry.ResolvedPair
    data_hash: str
    warnings: list[str] = field(default_factory=list)
    calibration: pd.DataFrame | None = None
    _reference: tuple[pd.DataFrame | None, str] | None = None

    @property
    def pair(self) -> Any:
        return self.resolved.pair

    def reference(self) -> tuple[pd.DataFrame | None, str]:
        # Built once per run: a catch-up over many months compares each with the same training.
        if self._reference is None:
            self._reference = training_reference(self.tables, self.pair, self.specs)
        return self._reference


@dataclass
class ScoreResult:
    out: Path
    manifest: dict[str, Any]
    batch: ScoreBatch


def parse_as_of(text: str | None, option: str = "--as-of") -> pd.Period | None:
    return parse_month_option(option, text)


def prepare(
    data: Path, *, model: str = "champion", horizon: int | None = None,
    tracking_uri: str | None = None, warn: Say = _quiet,
) -> Scorer:
    """Resolve the pair (fails within seconds when MLflow is unreachable), then read the data."""
    from forecast.data.contract import load_tables
    from forecast.data.lineage import data_hash
    from forecast.features.specs import load_specs
    from forecast.mlops.registry import resolve_pair

    resolved = resolve_pair(model, tracking_uri)
    pair = resolved.pair
    if horizon is not None and int(horizon) != int(pair.config.horizon):
        raise ConfigError(
            f"`--horizon` must match the model's horizon ({pair.config.horizon} months: "
            f"{resolved.ref.describe()}). Got {horizon} instead; the horizon comes from the model."
        )
    tables = load_tables(data)
    specs = load_specs()
    scorer = Scorer(data=Path(data), tables=tables, specs=specs, resolved=resolved,
                    data_hash=data_hash(data))
    if pair.spec_hash and pair.spec_hash != specs.hash():
        scorer.warnings.append(
            f"the feature specs under features/ changed since the model was trained (spec hash "
            f"{specs.hash()[:12]} vs {pair.spec_hash[:12]}); scores may not match training."
        )
    scorer.calibration = backtest_calibration(resolved)
    for w in scorer.warnings:
        warn(w)
    return scorer


def _run_artifact(resolved: Any, path: str) -> pd.DataFrame | None:
    """A table logged with the model's training run; None when the run has none."""
    from forecast.mlops.tracking import connect, tracking_errors

    try:
        tracking = connect(resolved.tracking_uri, create_experiment=False)
        with tracking_errors(tracking.uri), tempfile.TemporaryDirectory() as tmp:
            local = tracking.client.download_artifacts(resolved.ref.run_id, path, tmp)
            return pd.read_parquet(local) if path.endswith(".parquet") else pd.read_csv(local)
    except (TrackingError, OSError):
        return None


def backtest_calibration(resolved: Any) -> pd.DataFrame | None:
    """The training run's backtest calibration table (by decile of predicted rate), for the
    report's "how well did this model do" chart."""
    return _run_artifact(resolved, "backtest/calibration.csv")


def backtest_predictions(resolved: Any) -> pd.DataFrame | None:
    """The training run's team-level out-of-sample backtest predictions (fairness audit)."""
    return _run_artifact(resolved, "backtest/predictions.parquet")


def manifest_for(scorer: Scorer, batch: ScoreBatch, out: Path, files: dict[str, str],
                 min_group: int) -> dict[str, Any]:
    from forecast.data.lineage import package_versions

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
            "attrition": {"name": ref.attrition_name, "version": ref.attrition_version,
                          "run_id": ref.run_id},
            "csat": {"name": ref.csat_name, "version": ref.csat_version,
                     "run_id": ref.run_id if ref.csat_version else None},
            "trained_until": scorer.pair.trained_until,
            "trained_at": (
                scorer.resolved.ref.created.isoformat(timespec="seconds")
                if scorer.resolved.ref.created else None
            ),
        },
        "data": {"path": str(Path(os.path.abspath(scorer.data))), "hash": scorer.data_hash},
        "feature_spec_hash": {"scoring": scorer.specs.hash(), "training": scorer.pair.spec_hash},
        "rows": {
            "scores": len(scores),
            "reportable": int(scores["reportable"].sum()),
            "drivers": len(batch.drivers),
            "drivers_by_family": len(batch.drivers_by_family),
            "history": len(batch.history),
            "drift": len(batch.drift),
        },
        "organisation": {"expected_leavers": batch.organisation.get("expected"),
                         "leavers_p10": batch.organisation.get("p10"),
                         "leavers_p90": batch.organisation.get("p90"),
                         "headcount": int(scores["headcount"].sum())},
        "additivity_max_error": batch.additivity,
        "drift": batch.drift_summary,
        "warnings": [*scorer.warnings, *batch.warnings],
        "files": files,
        "packages": package_versions(),
        "output": str(out),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def score_month(
    scorer: Scorer, as_of: pd.Period, out: Path, *, min_group: int = MIN_GROUP,
    report: bool = True, lock: bool = True, warn: Say = _quiet,
    batch: ScoreBatch | None = None, engine: dict[str, Any] | None = None,
) -> ScoreResult:
    """Score one month into `out` (atomically) and tag the model version with it. Another
    engine (Spark) passes the `batch` it built; writing and publishing stay the same."""
    out = Path(os.path.abspath(out))
    check_replaceable(out)  # fail before the expensive part; re-checked under the lock
    if batch is None:
        batch = build_batch(scorer.tables, scorer.pair, scorer.specs, as_of=as_of,
                            min_group=min_group, reference=scorer.reference(),
                            calibration=scorer.calibration)
    for w in batch.warnings:
        warn(w)
    if report:
        batch.extra.update(report_extras(scorer, batch, as_of))
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

    publish(out, write, lock=lock)
    tag_model(scorer, batch.as_of, out, warn=warn)
    return ScoreResult(out=out, manifest=manifest, batch=batch)


def _write_report(directory: Path) -> bool:
    """The leaders' report, when the report module exists (another part of the project)."""
    try:
        from forecast.report.render import write_report
    except ImportError:
        return False
    write_report(directory)
    return (directory / "report.html").exists()


def tag_model(scorer: Scorer, as_of: str, out: Path, *, warn: Say = _quiet) -> None:
    """Record on the attrition model version (and its run) that it scored this month into this
    folder, so "which model scored April?" has an answer in MLflow. The output already exists,
    so a tracking failure here is a warning, not a failed run."""
    from forecast.mlops.tracking import ATTRITION_MODEL, connect, tracking_errors

    ref = scorer.resolved.ref
    key, value = f"scored.{as_of}", str(out)
    try:
        tracking = connect(scorer.resolved.tracking_uri, create_experiment=False)
        with tracking_errors(tracking.uri):
            tracking.client.set_model_version_tag(
                ATTRITION_MODEL, ref.attrition_version, key, value
            )
            tracking.client.set_tag(ref.run_id, key, value)
    except TrackingError as exc:
        warn(f"scores written, but tagging the model in MLflow failed: {exc}")


def run_score(
    data: Path, out: Path, *, as_of: str | None = None, model: str = "champion",
    min_group: int = MIN_GROUP, report: bool = True, horizon: int | None = None,
    tracking_uri: str | None = None, warn: Say = _quiet,
) -> ScoreResult:
    """`forecast score --data DIR --out OUT`: one month (default: the latest complete one)."""
    from forecast.data.contract import latest_complete_month

    check_param("--min-group", min_group, isinstance(min_group, int) and min_group >= 1,
                "an integer >= 1")
    month = parse_as_of(as_of)
    check_replaceable(Path(out))
    scorer = prepare(data, model=model, horizon=horizon, tracking_uri=tracking_uri, warn=warn)
    month = month if month is not None else latest_complete_month(scorer.tables)
    return score_month(scorer, month, Path(out), min_group=min_group, report=report, warn=warn)


__all__ = [
    "MANIFEST",
    "PRODUCER",
    "SCORE_COLUMNS",
    "ScoreBatch",
    "ScoreResult",
    "Scorer",
    "build_batch",
    "check_model_columns",
    "check_replaceable",
    "prepare",
    "publish",
    "read_manifest",
    "run_score",
    "score_month",
    "scores_frame",
    "team_history",
    "write_parquet",
]
