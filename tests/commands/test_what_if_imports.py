"""`forecast what-if` answered from the fits stored with the pair imports none of the model,
validation, database or tracking libraries (issue 17: they were three of its four and a half
seconds), and answers what LightGBM's boosters answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from forecast.data.contract import load_tables
from forecast.whatif.engine import make_engine
from forecast.whatif.signals import as_json_records

# Each is loaded only by a path this what-if does not take: fitting or training (LightGBM,
# which imports scikit-learn and SciPy), SHAP, forecast intervals (SciPy), a value out of
# range (pandera, which imports pyspark), a database (SQLAlchemy), a store this process
# cannot read itself (MLflow), charts (matplotlib).
NOT_IMPORTED = (
    "lightgbm",
    "sklearn",
    "scipy",
    "shap",
    "pandera",
    "pyspark",
    "sqlalchemy",
    "mlflow",
    "matplotlib",
)
# Runs the console script's `main` and writes the top-level packages it loaded, and how many
# times the command read the tables, to a file.
RUN = """
import json, sys
import forecast.commands.what_if as command
reads = []
real = command.load_tables
command.load_tables = lambda *a, **k: reads.append(1) or real(*a, **k)
from forecast.cli import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as out:
    json.dump([sorted({name.split(".")[0] for name in sys.modules}), len(reads)], out)
sys.exit(code)
"""


@pytest.fixture(scope="module")
def org(trained_org):
    from forecast.mlops.registry import resolve_pair

    tables = load_tables(trained_org.data)
    resolved = resolve_pair("champion", trained_org.tracking_uri)
    assert "after_hours_ratio" in (resolved.what_if_fits or {})
    return trained_org, tables, resolved


def test_what_if_from_a_stored_fit_imports_no_model_library(org, tmp_path) -> None:
    trained, tables, resolved = org
    w = tables.workload
    latest = w["month"] == pd.Period(trained.latest, freq="M")
    teams = sorted(w.loc[latest, "team_id"].astype(str).unique())[:3]
    loaded = tmp_path / "modules.json"
    args = ["what-if", "--data", str(trained.data), "--set", "after_hours_ratio=0.05", "--json"]
    for team in teams:
        args += ["--team", team]
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": trained.tracking_uri,
        "FORECAST_CACHE_DIR": str(tmp_path / "cache"),
    }
    # The first run reads the tables; the second answers from the month it kept (the cache).
    outputs = []
    for reads in (1, 0):
        result = subprocess.run(
            [sys.executable, "-c", RUN, str(loaded), *args],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            env=env,
        )
        assert result.returncode == 0, result.stderr
        listed, read = json.loads(loaded.read_text())
        modules = set(listed)
        assert "forecast" in modules and "pandas" in modules  # the listing is real
        assert sorted(modules & set(NOT_IMPORTED)) == []
        assert read == reads
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1]

    # The same bytes as the engine gives with the pair's LightGBM boosters (built here).
    pair = resolved.pair
    assert pair.attrition_booster is not None and pair.csat_booster is not None
    expected = make_engine(stored=resolved.what_if_fits).estimate(
        tables, pair, teams, "after_hours_ratio", 0.05, None
    )
    assert result.stdout == json.dumps(as_json_records(expected)) + "\n"
