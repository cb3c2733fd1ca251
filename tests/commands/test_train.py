"""`forecast train`: one MLflow run per training, a registered pair, aliases, lineage, and no
individual identifier anywhere in what is logged."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from forecast.cli import main
from forecast.commands.train import check_horizon, warn_protected
from forecast.errors import ConfigError, ModelError
from forecast.features.names import BASELINE_COLUMNS
from forecast.mlops.registry import resolve_pair
from forecast.mlops.tracking import ATTRITION_MODEL, CSAT_MODEL


def _client(uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_first_train_makes_the_pair_champion_and_challenger(registry_org):
    assert registry_org.first_aliases == ["challenger", "champion"]


def test_second_train_moves_only_challenger(registry_org):
    client = _client(registry_org.tracking_uri)
    first, second = registry_org.first.pair, registry_org.second.pair
    for name, v1, v2 in (
        (ATTRITION_MODEL, first.attrition_version, second.attrition_version),
        (CSAT_MODEL, first.csat_version, second.csat_version),
    ):
        assert str(client.get_model_version_by_alias(name, "champion").version) == v1
        assert str(client.get_model_version_by_alias(name, "challenger").version) == v2


def test_both_models_of_a_pair_come_from_one_run_and_name_each_other(registry_org):
    client = _client(registry_org.tracking_uri)
    ref = registry_org.first.pair
    att = client.get_model_version(ATTRITION_MODEL, ref.attrition_version)
    csat = client.get_model_version(CSAT_MODEL, ref.csat_version)
    assert att.run_id == csat.run_id == registry_org.first.run_id
    assert att.tags["pair_model"] == CSAT_MODEL and att.tags["pair_version"] == str(csat.version)
    assert csat.tags["pair_version"] == str(att.version)
    assert att.tags["pair_run_id"] == csat.run_id


def test_versions_record_what_is_needed_to_rerun_them(registry_org):
    tags = (
        _client(registry_org.tracking_uri)
        .get_model_version(ATTRITION_MODEL, registry_org.first.pair.attrition_version)
        .tags
    )
    assert tags["horizon"] == "3"
    assert re.fullmatch(r"[0-9a-f]{64}", tags["spec_hash"])
    assert tags["data_hash"] == registry_org.first.data_hash
    assert tags["backtest_origins"].split(",") == list(registry_org.first.backtest.origins)
    assert Path(tags["data_dir"]) == registry_org.data.resolve()


def test_run_logs_params_metrics_and_artifacts(registry_org):
    client = _client(registry_org.tracking_uri)
    run = client.get_run(registry_org.first.run_id)
    params, metrics = run.data.params, run.data.metrics
    for key in (
        "horizon",
        "feature_spec_hash",
        "data_hash",
        "model_config_hash",
        "attrition.learning_rate",
        "csat.num_leaves",
    ):
        assert key in params
    assert params["num_boost_round"] == "15"
    assert metrics["attrition.lightgbm.deviance"] == pytest.approx(
        registry_org.first.backtest.metric("lightgbm", "deviance")
    )
    assert "attrition.org_rate.deviance" in metrics
    root = Path(urlparse(run.info.artifact_uri).path)
    for rel in (
        "config/feature_spec.yaml",
        "config/model_config.yaml",
        "config/training.json",
        "features/feature_list.txt",
        "features/feature_catalog.csv",
        "features/importance.csv",
        "backtest/metrics.csv",
        "backtest/metrics.json",
        "backtest/calibration.png",
        "lineage.json",
        "model_card.md",
    ):
        assert (root / rel).is_file(), rel


def test_model_card_states_data_use_and_validation_limits(registry_org):
    run = _client(registry_org.tracking_uri).get_run(registry_org.first.run_id)
    card = (Path(urlparse(run.info.artifact_uri).path) / "model_card.md").read_text()
    assert registry_org.first.data_hash in card
    assert "teams: 30" in card
    assert "Never for decisions about individuals" in card
    assert "validated on simulated data only" in card
    assert "org_rate" in card and "long_run_shrunk" in card  # the baselines


def test_no_individual_identifier_in_any_logged_file(registry_org):
    employees = pd.read_csv(registry_org.data / "employees.csv", dtype=str)
    ids = set(employees["employee_id"]) | set(employees["manager_id"].dropna())
    files = [p for p in registry_org.store.rglob("*") if p.is_file() and p.suffix != ".db"]
    assert len(files) > 20
    for path in files:
        tokens = set(re.findall(r"[A-Za-z0-9_]+", path.read_bytes().decode("latin-1")))
        leaked = tokens & ids
        assert not leaked, f"{path}: {sorted(leaked)[:3]}"


def test_pair_resolves_the_same_by_alias_version_run_id_and_uri(registry_org):
    uri, ref = registry_org.tracking_uri, registry_org.first.pair
    panel = registry_org.first.record.panel.tail(40)
    refs = [
        "champion",
        ref.attrition_version,
        ref.run_id,
        f"models:/{ATTRITION_MODEL}/{ref.attrition_version}",
        f"models:/{ATTRITION_MODEL}@champion",
        f"models:/{ATTRITION_MODEL}/@champion",
    ]
    outs = [resolve_pair(r, tracking_uri=uri) for r in refs]
    assert {(o.ref.attrition_version, o.ref.csat_version, o.ref.run_id) for o in outs} == {
        (ref.attrition_version, ref.csat_version, ref.run_id)
    }
    expected = registry_org.first.record.pair.predict(panel)
    for o in outs:
        pd.testing.assert_frame_equal(o.pair.predict(panel), expected)


def test_challenger_resolves_to_the_second_pair(registry_org):
    got = resolve_pair("challenger", tracking_uri=registry_org.tracking_uri)
    assert got.ref.run_id == registry_org.second.run_id
    assert got.ref.horizon == 3


def test_nothing_registered_is_a_clear_model_error(empty_store):
    uri = empty_store
    with pytest.raises(
        ModelError,
        match=r"no model registered under alias champion in sqlite:"
        r".*; run `forecast train --data DIR` first\.",
    ):
        resolve_pair("champion", tracking_uri=uri)


def test_registered_pyfunc_models_match_the_pair(registry_org):
    mlflow.set_tracking_uri(registry_org.tracking_uri)
    mlflow.set_registry_uri(registry_org.tracking_uri)
    ref, pair = registry_org.first.pair, registry_org.first.record.pair
    panel = registry_org.first.record.panel.tail(25).reset_index(drop=True)
    expected = pair.predict(panel)
    # The attrition model also reads its baseline's inputs (the team's own long-run rate).
    inputs = panel[["headcount", *pair.features, *BASELINE_COLUMNS]].astype("float64")
    att = mlflow.pyfunc.load_model(f"models:/{ATTRITION_MODEL}/{ref.attrition_version}")
    np.testing.assert_allclose(
        att.predict(inputs)["expected_leavers"], expected["expected_leavers"], rtol=1e-9
    )
    csat = mlflow.pyfunc.load_model(f"models:/{CSAT_MODEL}/{ref.csat_version}")
    # Its input is the attrition rate before recalibration, as in training.
    rate = expected["expected_attrition_rate"]
    got = csat.predict(inputs[["headcount", *pair.features]].assign(expected_attrition_rate=rate))
    np.testing.assert_allclose(got["csat_change"], expected["csat_change"], rtol=1e-9)


def test_training_stores_the_what_if_fits_and_logs_their_effects(trained_org):
    """trained_org's configuration fits the what-if engine for after_hours_ratio."""
    resolved = resolve_pair("champion", trained_org.tracking_uri)
    fits = resolved.what_if_fits
    assert set(fits) == {"after_hours_ratio"}
    stored = fits["after_hours_ratio"]
    # The same labelled rows as the pair: the data's latest complete month, the pair's horizon.
    assert stored.as_of == trained_org.latest and stored.horizon == trained_org.horizon
    assert resolved.pair.trained_until < stored.as_of
    run = _client(trained_org.tracking_uri).get_run(resolved.ref.run_id)
    for key, value in stored.fit.metrics().items():
        assert run.data.metrics[f"whatif.{key}.after_hours_ratio"] == pytest.approx(value)
    assert run.data.tags["whatif_fits"] == "after_hours_ratio"
    table = pd.read_csv(Path(urlparse(run.info.artifact_uri).path) / "whatif_effects.csv")
    assert table["signal"].tolist() == ["after_hours_ratio"]
    assert table["status"].tolist() == ["fitted"]


def test_a_pair_trained_without_what_if_fits_has_none(registry_org):
    assert resolve_pair("champion", registry_org.tracking_uri).what_if_fits is None
    run = _client(registry_org.tracking_uri).get_run(registry_org.first.run_id)
    assert not any(k.startswith("whatif.") for k in run.data.metrics)


def test_cli_no_what_if_fit_skips_the_fit(tmp_path, monkeypatch, capsys):
    import forecast.commands.train

    seen = {}

    def fake(data, **kwargs):
        seen.update(kwargs)
        raise ConfigError("stop here")

    monkeypatch.setattr(forecast.commands.train, "run_training", fake)
    assert main(["train", "--data", str(tmp_path), "--no-what-if-fit"]) == 2
    assert seen["what_if_fit"] is False
    assert main(["train", "--data", str(tmp_path)]) == 2
    assert seen["what_if_fit"] is True


def test_horizon_is_validated_in_the_house_format():
    with pytest.raises(ConfigError) as err:
        check_horizon(0)
    assert str(err.value) == "`--horizon` must be an integer between 1 and 24. Got 0 instead."


def test_cli_rejects_a_bad_horizon_before_any_work(tmp_path, capsys):
    code = main(["train", "--data", str(tmp_path / "nowhere"), "--horizon", "25"])
    assert code == 2
    assert "`--horizon` must be an integer between 1 and 24. Got 25 instead." in (
        capsys.readouterr().err.replace("\n", " ")
    )


def test_protected_attribute_opt_in_is_logged(caplog):
    from forecast.features.specs import load_specs, specs_from_dict

    content = load_specs().to_dict()
    family = next(f for f in content["families"] if f["source"] == "employees")
    family["opt_in_protected"] = ["gender"]
    with caplog.at_level(logging.WARNING, logger="forecast"):
        assert warn_protected(specs_from_dict(content)) == ["gender"]
    assert "protected attribute(s) gender" in caplog.text


def test_report_signals_are_the_signals_the_leaders_report_moves(modelled_org):
    from forecast.commands.train import report_signals
    from forecast.features.specs import load_specs
    from forecast.models.fit import Fitted
    from forecast.scoring.batch import build_batch
    from forecast.scoring.extras import report_whatifs

    org, specs = modelled_org, load_specs()
    month = org.panel["as_of"].max()
    batch = build_batch(org.tables, org.pair, specs, as_of=month)
    moved: list[str] = []

    class Recorder:  # an engine that only notes which signals the report asks about
        def estimate(self, tables, pair, teams, signal, value, as_of=None):
            moved.append(signal)
            return pd.DataFrame({"team_id": teams})

    report_whatifs(
        org.tables, org.pair, specs, batch.scores, batch.drivers, month, engine=Recorder()
    )
    fitted = Fitted(
        features=org.pair.features,
        attrition=org.pair.attrition_booster,
        csat=org.pair.csat_booster,
        attrition_rounds=0,
        csat_rounds=0,
        trained_until=org.pair.trained_until,
        holdout=None,
    )
    assert moved
    assert report_signals(fitted, org.panel, org.tables, specs) == sorted(set(moved))
