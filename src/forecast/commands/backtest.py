"""`forecast backtest`: the rolling-origin backtest of a data directory, registering nothing.

The same panel, targets and models as `forecast train` (features.build_panel,
targets.build_targets, backtest.run_backtest), evaluated at origins `every` months apart and
written as OUT/backtest.json and a short self-contained OUT/backtest.html. Meant for real
exports such as the yearly MFG file: annual as-of points (December) and a 12-month horizon are
`--horizon 12` with the default `--every-months` (= the horizon).

This module must never open a tracking store or register anything: nothing here imports
MLflow, so a backtest of someone's data cannot move a `champion`.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecast import __version__
from forecast.commands.train import check_horizon
from forecast.data.atomic import check_writable_dir, json_text, write_text_atomic
from forecast.data.lineage import data_summary
from forecast.data.months import month_str, parse_month_option
from forecast.data.sources import check_source, load_tables
from forecast.errors import ModelError, check_param
from forecast.features.panel import build_panel
from forecast.features.specs import load_specs
from forecast.features.targets import build_targets
from forecast.models.backtest import (
    ATTRITION_MODELS,
    MIN_HISTORY_MONTHS,
    BacktestResult,
    decile_table,
    poisson_deviance,
    pooled_result,
    run_backtest,
)
from forecast.models.config import ModelConfig, load_model_config
from forecast.models.fit import attrition_rows, join_targets, months_of

MAX_ORIGINS = 24
MAX_EVERY = 120
# The baselines a reader compares against, in plain words (keys are backtest model names).
NAMES = {
    "lightgbm": "model (LightGBM)",
    "lightgbm_raw": "model before recalibration",
    "trailing_12": "team's trailing rate",
    "org_rate": "company rate",
    "long_run_shrunk": "team's long-run rate, shrunk",
    "long_run_tuned": "team's long-run rate, shrinkage tuned",
}
# The prediction column of each (backtest.ATTRITION_MODELS).
COLUMNS = {name: ATTRITION_MODELS[name] for name in NAMES}
Progress = Callable[[int, int], None]


@dataclass
class RealBacktest:
    """What `forecast backtest` produced."""

    result: BacktestResult
    document: dict[str, Any]
    json_path: Path
    html_path: Path
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- origins


def pick_origins(
    frame: pd.DataFrame,
    horizon: int,
    valid_months: int,
    n_origins: int,
    every: int,
    last: int | None = None,
) -> list[int]:
    """Up to `n_origins` labelled as-of months `every` months apart, newest first in the search,
    returned oldest first. The newest is `last` when given, else the latest labelled month.

    Same history rule as backtest.choose_origins (early-stopping months + purge + a year of
    history before an origin), so with `every == horizon` both pick the same months.
    """

    labelled = np.unique(months_of(attrition_rows(frame)))
    if labelled.size == 0:
        return []
    need = valid_months + horizon + MIN_HISTORY_MONTHS
    origin = int(labelled[-1]) if last is None else int(last)
    out: list[int] = []
    while len(out) < n_origins and origin - horizon - int(labelled[0]) + 1 >= need:
        if origin in labelled:
            out.append(origin)
        origin -= every
    return sorted(out)


def backtest_at(
    panel: pd.DataFrame,
    targets: pd.DataFrame,
    config: ModelConfig,
    origins: list[int],
    progress: Progress | None = None,
) -> BacktestResult:
    """The backtest of backtest.py at exactly these origins.

    Origins `horizon` apart are what run_backtest itself walks, so they go through it whole
    (`skip_last` moves its newest origin onto ours). Any other spacing runs run_backtest once
    per origin and pools the out-of-sample rows with backtest.py's public metric functions.
    """

    frame = join_targets(panel, targets, config.horizon)
    newest = int(np.unique(months_of(attrition_rows(frame)))[-1])
    spaced = all(b - a == config.horizon for a, b in itertools.pairwise(origins))
    if spaced:
        result = run_backtest(
            panel,
            targets,
            config,
            n_origins=len(origins),
            skip_last=newest - origins[-1],
            progress=progress,
        )
        if result.origins == [month_str(o) for o in origins]:
            return result
    # One origin at a time (threaded LightGBM fits crashed; see models.fit.fit_models).
    parts = []
    for i, o in enumerate(origins):
        parts.append(run_backtest(panel, targets, config, n_origins=1, skip_last=newest - o))
        if progress:
            progress(i + 1, len(origins))
    return pool_results(parts, config)


def pool_results(parts: list[BacktestResult], config: ModelConfig) -> BacktestResult:
    """One BacktestResult from single-origin results: metrics, calibration and leave-one-
    origin-out coverage recomputed on the pooled rows, exactly as backtest.py computes them."""

    drop = ["leavers_p10", "leavers_p90"]
    pred = pd.concat(
        [p.predictions.drop(columns=drop, errors="ignore") for p in parts], ignore_index=True
    )
    has_truth = bool(pred.get("true_leavers", pd.Series(dtype=float)).notna().any())
    return pooled_result(pred, [f for p in parts for f in p.folds], config, has_truth)


# --------------------------------------------------------------------------- the run


def check_options(horizon: int | None, n_origins: int, every: int | None) -> None:

    if horizon is not None:
        check_horizon(horizon)
    check_param(
        "--origins",
        n_origins,
        _int(n_origins) and 1 <= n_origins <= MAX_ORIGINS,
        f"an integer between 1 and {MAX_ORIGINS}",
    )
    if every is not None:
        check_param(
            "--every-months",
            every,
            _int(every) and 1 <= every <= MAX_EVERY,
            f"an integer between 1 and {MAX_EVERY}",
        )


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def run_real_backtest(
    data_dir: Path | str,
    out_dir: Path | str,
    *,
    horizon: int | None = None,
    n_origins: int = 4,
    every: int | None = None,
    last_origin: str | None = None,
    config_path: Path | None = None,
    progress: Callable[[str], None] | None = None,
    origin_progress: Progress | None = None,
) -> RealBacktest:
    """Read, build, backtest, write OUT/backtest.json and OUT/backtest.html."""

    step = progress or (lambda _message: None)
    check_options(horizon, n_origins, every)
    check_writable_dir(out_dir, "--out")  # before minutes of backtesting, not after
    last = parse_month_option("--last-origin", last_origin)
    config = load_model_config(config_path, horizon=horizon)
    every = every or config.horizon
    specs = load_specs()
    source = check_source(data_dir)
    step("reading data")
    tables = load_tables(source)
    step("building features")
    panel = build_panel(tables, specs)
    targets = build_targets(tables, config.horizon)
    frame = join_targets(panel, targets, config.horizon)
    origins = pick_origins(
        frame,
        config.horizon,
        config.valid_months,
        n_origins,
        every,
        None if last is None else int(last.ordinal),
    )
    if not origins:
        need = config.valid_months + config.horizon + MIN_HISTORY_MONTHS
        raise ModelError(
            f"too little history to backtest: the newest origin needs {need} labelled as-of "
            f"months before it plus its {config.horizon}-month outcome"
            + (f" (and --last-origin {last_origin} must be a labelled month)." if last else ".")
        )
    step("backtesting")
    result = backtest_at(panel, targets, config, origins, origin_progress)
    warnings = list(panel.attrs.get("warnings", []))
    if every < config.horizon and len(origins) > 1:
        warnings.append(
            f"origins {every} months apart with a {config.horizon}-month horizon: outcome "
            f"windows overlap, so neighbouring origins are not independent and the interval "
            f"coverage is optimistic."
        )
    document = backtest_document(
        result,
        every=every,
        requested=n_origins,
        config=config,
        spec_hash=specs.hash(),
        data={
            **source.describe(),
            "path": str(source.location),  # a URL without its password for a database
            "hash": source.hash(),
            **data_summary(tables),
        },
        warnings=warnings,
    )
    step("writing")
    out = Path(out_dir)
    json_path = _write_text(out / "backtest.json", _dumps(document))
    html_path = _write_text(out / "backtest.html", render_html(document))
    return RealBacktest(result, document, json_path, html_path, warnings)


def _write_text(path: Path, text: str) -> Path:
    """Write via a temporary sibling and rename: a reader never sees half a file."""
    return write_text_atomic(path, text)


# --------------------------------------------------------------------------- backtest.json


def backtest_document(
    result: BacktestResult,
    *,
    every: int,
    requested: int,
    config: ModelConfig,
    spec_hash: str,
    data: dict[str, Any],
    warnings: list[str],
) -> dict[str, Any]:
    """Plain JSON values: metrics against the baselines, per origin, calibration, coverage."""

    pred = result.predictions
    att = result.metrics[result.metrics["target"] == "attrition"].set_index("model")
    headline = {
        name: {
            "label": NAMES[name],
            "deviance": att.at[name, "deviance"],
            "d2_vs_company_rate": att.at[name, "d2_vs_null"],
            "d2_vs_trailing_rate": 1 - att.at[name, "deviance"] / att.at["trailing_12", "deviance"],
            "calibration": att.at[name, "calibration"],
            "worst_decile": att.at[name, "worst_decile"],
            "corr": att.at[name, "corr"],
        }
        for name in NAMES
        if name in att.index
    }
    doc = {
        "producer": "forecast backtest",
        "format": 1,
        "registered": False,
        "forecast_version": __version__,
        "data": data,
        "horizon": result.horizon,
        "every_months": every,
        "origins_requested": requested,
        "origins": list(result.origins),
        "rows": len(pred),
        "headline": headline,
        "best_attrition_model": min(headline, key=lambda k: headline[k]["deviance"]),
        "metrics": result.metrics.to_dict(orient="records"),
        "by_origin": by_origin(pred),
        "zero_predictions": zero_predictions(pred),
        "calibration": result.calibration.to_dict(orient="records"),
        "calibration_before_recalibration": decile_table(
            pred, "rate_model_raw", "pred_model_raw"
        ).to_dict(orient="records"),
        "recalibration": result.recalibration.to_dict(),
        "coverage": result.coverage,
        "coverage_by_origin": result.coverage_by_origin.to_dict(orient="records"),
        "leaver_interval_level": result.leaver_level,
        "org_totals": result.org_totals.to_dict(orient="records"),
        "dispersion": result.dispersion,
        "csat_residual_q80": result.csat_residual_q80,
        "org_total_model_sd": result.org_total_model_sd,
        "risk_cuts": list(result.risk_cuts),
        "folds": [
            {
                "origin": f.origin,
                "train_rows": len(f.train_rows),
                "test_rows": len(f.test_rows),
                "attrition_trees": f.attrition_rounds,
                "csat_trees": f.csat_rounds,
                "baseline_prior_person_months": f.baseline_prior,
                "baseline_scale_months": f.baseline_scale,
                "baseline_weight": f.baseline_weight,
            }
            for f in result.folds
        ],
        "model_config": config.to_dict(),
        "model_config_hash": config.hash(),
        "feature_spec_hash": spec_hash,
        "warnings": warnings,
    }
    return _plain(doc)


def by_origin(pred: pd.DataFrame) -> list[dict[str, Any]]:
    """Each origin alone: with ~50 teams, one unusual year moves the pooled figures a lot."""
    rows = []
    for origin, part in pred.groupby("origin", sort=True):
        y = part["leavers"].to_numpy()
        row: dict[str, Any] = {
            "origin": origin,
            "teams": len(part),
            "headcount": float(part["headcount"].sum()),
            "realised_leavers": float(y.sum()),
        }
        for name, col in COLUMNS.items():
            row[f"{name}_predicted"] = float(part[col].sum())
            row[f"{name}_deviance"] = poisson_deviance(y, part[col].to_numpy())
        rows.append(row)
    return rows


def zero_predictions(pred: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Rows a model predicted no leaver at all for, and how many of those had one. A zero
    forecast that meets a leaver costs a huge Poisson deviance: this is what sinks a raw
    trailing rate on small teams."""
    out = {}
    for name, col in COLUMNS.items():
        zero = pred[col].to_numpy() <= 0
        out[name] = {
            "rows": int(zero.sum()),
            "with_leavers": int((zero & (pred["leavers"].to_numpy() > 0)).sum()),
        }
    return out


def _plain(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN and infinities to null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, pd.Period):
        return month_str(value)
    return value


def _dumps(doc: dict[str, Any]) -> str:
    return json_text(doc, sort_keys=False, allow_nan=False)


# --------------------------------------------------------------------------- backtest.html


def _f(value: Any, spec: str = ".3f") -> str:
    return "–" if value is None else format(value, spec)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _calibration_svg(cal: list[dict[str, Any]]) -> str:
    """Predicted vs realised leavers by decile as inline SVG bars (no script, no network)."""
    if not cal:
        return ""
    top = max(max(r["predicted"] or 0, r["realised"] or 0) for r in cal) or 1.0
    w, h, pad, bar = 520, 200, 30, 18
    parts = [
        f'<svg width="{w}" height="{h + 40}" role="img" '
        f'aria-label="predicted and realised leavers by decile">'
    ]
    for i, r in enumerate(cal):
        x = pad + i * (bar * 2 + 10)
        for j, (key, colour) in enumerate((("predicted", "#4a78b5"), ("realised", "#d9822b"))):
            height = (r[key] or 0) / top * h
            parts.append(
                f'<rect x="{x + j * bar}" y="{h - height + 10:.1f}" width="{bar - 2}" '
                f'height="{height:.1f}" fill="{colour}"><title>decile {r["decile"]} '
                f"{key} {r[key] or 0:.1f}</title></rect>"
            )
        parts.append(
            f'<text x="{x + bar}" y="{h + 26}" font-size="11" '
            f'text-anchor="middle">{r["decile"]}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def render_html(doc: dict[str, Any]) -> str:
    """A one-page summary a person can open offline: headline, per origin, calibration."""
    d = doc["data"]
    head = _table(
        [
            "forecast",
            "Poisson deviance",
            "D² vs company rate",
            "D² vs trailing rate",
            "predicted / realised",
            "corr",
        ],
        [
            [
                v["label"],
                _f(v["deviance"]),
                _f(v["d2_vs_company_rate"]),
                _f(v["d2_vs_trailing_rate"]),
                _f(v["calibration"]),
                _f(v["corr"]),
            ]
            for v in doc["headline"].values()
        ],
    )
    origins = _table(
        [
            "origin",
            "teams",
            "realised",
            "model",
            "trailing",
            "company",
            "model dev.",
            "trailing dev.",
            "company dev.",
        ],
        [
            [
                r["origin"],
                str(r["teams"]),
                _f(r["realised_leavers"], ".0f"),
                _f(r["lightgbm_predicted"], ".1f"),
                _f(r["trailing_12_predicted"], ".1f"),
                _f(r["org_rate_predicted"], ".1f"),
                _f(r["lightgbm_deviance"]),
                _f(r["trailing_12_deviance"]),
                _f(r["org_rate_deviance"]),
            ]
            for r in doc["by_origin"]
        ],
    )
    cal = _table(
        ["decile", "teams", "mean rate", "predicted", "realised", "ratio"],
        [
            [
                str(r["decile"]),
                str(r["rows"]),
                _f(r["mean_rate"], ".4f"),
                _f(r["predicted"], ".1f"),
                _f(r["realised"], ".0f"),
                _f(r["ratio"], ".2f"),
            ]
            for r in doc["calibration"]
        ],
    )
    cov = doc["coverage"]
    coverage = _table(
        ["origin", "nominal", "team leavers", "CSAT change", "org total", "org interval"],
        [
            [
                r["origin"],
                _f(r["nominal"], ".0%"),
                _f(r["team_leavers"], ".0%"),
                _f(r["csat_change"], ".0%"),
                f"{_f(r['org_realised'], '.0f')} realised, {_f(r['org_expected'], '.1f')} expected",
                f"{_f(r['org_p10'], '.0f')}–{_f(r['org_p90'], '.0f')} "
                f"({'covered' if r['org_total_covered'] else 'missed'})",
            ]
            for r in doc.get("coverage_by_origin", [])
        ],
    )
    zero = doc["zero_predictions"].get("trailing_12", {})
    notes = "".join(f"<li>{html.escape(w)}</li>" for w in doc["warnings"])
    best = doc["headline"][doc["best_attrition_model"]]["label"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Backtest: {html.escape(Path(d["path"]).name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 0.25em 0.7em; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
.muted {{ color: #666; font-size: 0.9em; }}
</style></head><body>
<h1>Backtest of {html.escape(Path(d["path"]).name)}</h1>
<p>{d["teams"]} teams, {d["employee_spells"]} employee spells, months {d["first_month"]} to
{d["last_month"]} (data_start {d["data_start"] or "not set"}). Horizon {doc["horizon"]} months;
origins every {doc["every_months"]} months: {", ".join(doc["origins"])} ({doc["rows"]} team
forecasts, all out of sample). Nothing was registered.</p>
<h2>Voluntary leavers: model against simple forecasts</h2>
<p>Lowest deviance: <strong>{html.escape(best)}</strong>. Lower deviance is better; D² is the
share of the comparison's deviance removed (negative: worse than it).</p>
{head}
<p class="muted">The trailing rate predicted no leaver at all for {zero.get("rows", 0)} team
forecasts, {zero.get("with_leavers", 0)} of which did lose someone.</p>
<h2>Per origin</h2>
{origins}
<h2>Calibration of the model by decile of predicted rate (pooled origins)</h2>
{_calibration_svg(doc["calibration"])}
<p class="muted">Blue: predicted leavers; orange: realised.</p>
{cal}
<h2>Interval coverage (nominal {_f(cov.get("level"), ".0%")})</h2>
<p>Team leavers {_f(cov.get("leavers"), ".2f")}; organisation total
{_f(cov.get("org_total"), ".2f")} over {_f(cov.get("org_total_origins"), ".0f")} origins; CSAT
change {_f(cov.get("csat_change"), ".2f")}. Each origin is calibrated on the other origins only.</p>
{coverage}
{"<h2>Notes</h2><ul>" + notes + "</ul>" if notes else ""}
<p class="muted">forecast {html.escape(doc["forecast_version"])}, model config
{html.escape(doc["model_config_hash"])}, feature specs {html.escape(doc["feature_spec_hash"][:12])},
data sha256 {html.escape(d["hash"][:12])}.</p>
</body></html>
"""


__all__ = [
    "RealBacktest",
    "backtest_at",
    "backtest_document",
    "pick_origins",
    "pool_results",
    "render_html",
    "run_real_backtest",
]
