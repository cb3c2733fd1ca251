"""Outputs stay byte-identical across refactors: scoring the fixture organisation with the
fixture pair must give the very bytes the fixture holds.

`tests/fixtures/scoring_golden/` was written by the code before the package was reshaped into
subpackages (issue 16): a simulated organisation (`data/`, 30 teams x 30 months, seed 23), a
small pair trained on it (`pair/`, the files `ModelPair.to_dir` writes) and what scoring the
latest complete month wrote (`out/`). A change that means to alter the outputs (a new feature, a
retuned model) regenerates the fixture in the same commit and says so.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from forecast.data.contract import latest_complete_month, load_tables
from forecast.features.specs import load_specs
from forecast.models.pair import ModelPair
from forecast.scoring.batch import build_batch
from forecast.scoring.output import write_batch_files

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "scoring_golden"
FILES = (
    "scores.parquet",
    "drivers.parquet",
    "drivers_by_family.parquet",
    "drift.parquet",
    "history.parquet",
    "scores.csv",
)


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tables = load_tables(GOLDEN / "data")
    pair = ModelPair.from_dir(GOLDEN / "pair")
    month = latest_complete_month(tables)
    assert month == pd.Period("2024-06", freq="M")
    batch = build_batch(
        tables, pair, load_specs(), as_of=month, reference=(pair.drift_reference, "model")
    )
    out = tmp_path_factory.mktemp("golden")
    write_batch_files(out, batch)
    return out


@pytest.mark.parametrize("name", FILES)
def test_scoring_the_fixture_gives_the_fixture_bytes(scored: Path, name: str) -> None:
    assert (scored / name).read_bytes() == (GOLDEN / "out" / name).read_bytes(), name
