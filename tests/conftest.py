"""Shared fixtures. Add yours; do not remove others'."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

# A tiny model: few trees, small leaves, so the whole scoring suite trains once in seconds.
TINY_MODEL = {
    "num_boost_round": 25,
    "early_stopping_rounds": 5,
    "attrition": {"min_data_in_leaf": 20},
    "csat": {"min_data_in_leaf": 20},
}


@dataclass
class TrainedOrg:
    """A small simulated organisation, written as CSV, with a pair trained and registered in a
    temporary MLflow store (alias champion)."""

    data: Path
    tracking_uri: str
    root: Path
    horizon: int
    latest: str  # latest complete month of `data`


@pytest.fixture(scope="session")
def trained_org(tmp_path_factory: pytest.TempPathFactory) -> TrainedOrg:
    from forecast.contract import latest_complete_month, load_tables
    from forecast.models import DEFAULT_CONFIG_PATH
    from forecast.months import month_str
    from forecast.simulate import SimConfig, simulate, write_simulation
    from forecast.training import run_training

    root = tmp_path_factory.mktemp("scoring_org")
    result = simulate(SimConfig(n_teams=40, n_months=30, seed=11, compute_truth=False))
    # Ids like 007 must survive as text all the way to the outputs.
    emp = result.frames["employees"]
    first_team = sorted(emp["team_id"].unique())[0]
    for frame in result.frames.values():
        if frame is not None and "team_id" in frame:
            frame["team_id"] = frame["team_id"].replace({first_team: "007"})
    data = root / "data"
    write_simulation(result, data)

    config = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
    for key, value in TINY_MODEL.items():
        if isinstance(value, dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    config_path = root / "model.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")

    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    outcome = run_training(data, tracking_uri=uri, config_path=config_path)
    latest = month_str(latest_complete_month(load_tables(data)))
    return TrainedOrg(data=data, tracking_uri=uri, root=root,
                      horizon=int(outcome.backtest.horizon), latest=latest)
