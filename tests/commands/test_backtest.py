"""`forecast backtest`: the rolling-origin backtest of a data directory, with nothing registered.

Runs end to end on the converted MFG export (annual December origins, 12-month horizon) when the
shared file is present, and always on a small simulated organisation.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forecast.cli import main

MFG = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "data"
    / "real"
    / "MFG10YearTerminationData.csv"
)
BASELINES = {
    "lightgbm",
    "lightgbm_raw",
    "trailing_12",
    "org_rate",
    "long_run_shrunk",
    "long_run_tuned",
}


def _strict_json(path: Path) -> dict:
    """backtest.json must be standard JSON: no NaN or Infinity tokens."""

    def refuse(token: str) -> None:
        raise AssertionError(f"{path.name} holds {token}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def _no_network(page: str) -> None:
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "<link" not in page and "@import" not in page


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from an empty folder with a tracking URI that must never be created."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'never' / 'mlflow.db'}")
    return tmp_path


def _registers_nothing(root: Path) -> None:
    assert not (root / "mlruns").exists()
    assert not (root / "never").exists()


@pytest.fixture(scope="module")
def mfg_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not MFG.exists():
        pytest.skip(f"the shared MFG export is absent ({MFG}); see docs/real-data.md")
    from forecast.data.importers import import_source

    root = tmp_path_factory.mktemp("mfg")
    out = {}
    for variant, retirement in (("with", "voluntary"), ("without", "involuntary")):
        out[variant] = root / variant
        import_source("mfg", MFG, out[variant], retirement_as=retirement)
    return out


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from forecast.simulate import SimConfig, simulate, write_simulation

    data = tmp_path_factory.mktemp("sim") / "data"
    write_simulation(
        simulate(SimConfig(n_teams=30, n_months=32, seed=4, compute_truth=False)), data
    )
    return data


# --------------------------------------------------------------------------- MFG


@pytest.mark.parametrize("variant", ["with", "without"])
def test_mfg_backtest_uses_december_origins_and_writes_json_and_html(
    mfg_dirs: dict[str, Path], isolated: Path, variant: str
) -> None:
    out = isolated / "bt"
    code = main(
        [
            "-q",
            "backtest",
            "--data",
            str(mfg_dirs[variant]),
            "--horizon",
            "12",
            "--origins",
            "3",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    doc = _strict_json(out / "backtest.json")
    assert doc["horizon"] == 12 and doc["every_months"] == 12 and doc["registered"] is False
    assert doc["origins"] == ["2012-12", "2013-12", "2014-12"]
    assert doc["data"]["data_start"] == "2006-01" and doc["data"]["teams"] == 46
    assert set(doc["headline"]) == BASELINES
    for figures in doc["headline"].values():
        assert figures["deviance"] > 0 and figures["calibration"] > 0
    assert doc["headline"]["org_rate"]["d2_vs_company_rate"] == 0.0
    assert {r["origin"] for r in doc["by_origin"]} == set(doc["origins"])
    assert len(doc["calibration"]) == 10 and 0 <= doc["coverage"]["leavers"] <= 1
    per_origin = doc["coverage_by_origin"]  # next to the nominal level, origin by origin
    assert [r["origin"] for r in per_origin] == doc["origins"]
    assert all(r["nominal"] == 0.8 and 0 <= r["team_leavers"] <= 1 for r in per_origin)
    assert all(r["org_p10"] <= r["org_expected"] <= r["org_p90"] for r in per_origin)
    assert [f["baseline_weight"] for f in doc["folds"]] and doc["recalibration"]["log_rate"]
    page = (out / "backtest.html").read_text(encoding="utf-8")
    assert "company rate" in page and "trailing rate" in page and "2014-12" in page
    assert "org interval" in page
    _no_network(page)
    _registers_nothing(isolated)


def test_mfg_retirements_are_most_of_the_voluntary_leavers(mfg_dirs: dict[str, Path]) -> None:
    """The two variants differ only in retirements: they must reach the targets."""
    from forecast.data.contract import load_tables
    from forecast.features.targets import build_targets

    totals = {}
    for variant, data in mfg_dirs.items():
        t = build_targets(load_tables(data), 12)
        dec = t[t["as_of"].astype(str).str.endswith("-12") & t["labelled"].astype(bool)]
        totals[variant] = float(dec["leavers"].sum())
    assert totals["without"] < 0.6 * totals["with"]


# --------------------------------------------------------------------------- simulated org


def test_simulated_org_backtest_runs_end_to_end(sim_dir: Path, isolated: Path, capsys) -> None:
    out = isolated / "bt"
    assert (
        main(
            [
                "backtest",
                "--data",
                str(sim_dir),
                "--horizon",
                "3",
                "--origins",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    doc = _strict_json(out / "backtest.json")
    assert doc["horizon"] == 3 and len(doc["origins"]) == 2
    csat = [m for m in doc["metrics"] if m["target"] == "csat"]
    assert csat and all(m["rows"] > 0 for m in csat)  # the simulated org has CX
    _no_network((out / "backtest.html").read_text(encoding="utf-8"))
    assert "lowest attrition deviance" in capsys.readouterr().out
    _registers_nothing(isolated)


def test_origins_one_month_apart_warn_that_windows_overlap(
    sim_dir: Path, isolated: Path, capsys
) -> None:
    out = isolated / "bt"
    assert (
        main(
            [
                "backtest",
                "--data",
                str(sim_dir),
                "--horizon",
                "3",
                "--origins",
                "2",
                "--every-months",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    doc = _strict_json(out / "backtest.json")
    first, second = (int(o[-2:]) + 12 * int(o[:4]) for o in doc["origins"])
    assert second - first == 1
    assert "overlap" in capsys.readouterr().err


def test_pooled_single_origins_equal_run_backtest(sim_dir: Path) -> None:
    """The per-origin path (any spacing) against backtest.py's own multi-origin run."""
    import pandas as pd

    from forecast.commands.backtest import pool_results
    from forecast.data.contract import load_tables
    from forecast.features.panel import build_panel
    from forecast.features.specs import load_specs
    from forecast.features.targets import build_targets
    from forecast.models.backtest import run_backtest
    from forecast.models.config import load_model_config

    tables = load_tables(sim_dir)
    config = load_model_config(horizon=3).replace(num_boost_round=30, early_stopping_rounds=5)
    panel, targets = build_panel(tables, load_specs()), build_targets(tables, 3)
    whole = run_backtest(panel, targets, config, n_origins=2)
    parts = [run_backtest(panel, targets, config, n_origins=1, skip_last=skip) for skip in (3, 0)]
    pooled = pool_results(parts, config)
    assert pooled.origins == whole.origins
    pd.testing.assert_frame_equal(pooled.metrics, whole.metrics)
    assert pooled.coverage == pytest.approx(whole.coverage, nan_ok=True)
    assert pooled.dispersion == pytest.approx(whole.dispersion)


def test_bad_origins_option_is_one_line_and_exit_2(sim_dir: Path, isolated: Path, capsys):
    assert main(["backtest", "--data", str(sim_dir), "--origins", "0"]) == 2
    err = capsys.readouterr().err
    assert "`--origins` must be an integer between 1 and 24. Got 0 instead." in " ".join(
        err.split()
    )
    assert "Traceback" not in err


def test_too_little_history_is_an_error_not_a_traceback(sim_dir: Path, isolated: Path, capsys):
    assert main(["backtest", "--data", str(sim_dir), "--horizon", "24"]) == 2
    err = capsys.readouterr().err
    assert "too little history" in err and "Traceback" not in err
