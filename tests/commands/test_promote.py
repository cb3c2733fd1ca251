"""The promotion gate: not worse on the same backtest promotes, worse refuses (exit 1), --force
overrides, and pairs of different horizons are never compared."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from forecast.cli import main
from forecast.commands.promote import run_promotion
from forecast.errors import ConfigError
from forecast.mlops.promotion import gate
from forecast.mlops.tracking import ATTRITION_MODEL, CSAT_MODEL


def _gate(champion: float, challenger: float, *, force: bool = False, horizons=(3, 3)):
    return gate(
        champion_horizon=horizons[0],
        challenger_horizon=horizons[1],
        champion_deviance=champion,
        challenger_deviance=challenger,
        force=force,
    )


def test_gate_promotes_a_better_challenger():
    assert _gate(1.20, 1.10).promote


def test_gate_promotes_a_tie():
    assert _gate(1.20, 1.20).promote


def test_gate_refuses_a_worse_challenger():
    decision = _gate(1.10, 1.20)
    assert not decision.promote
    assert "worse" in decision.reason


def test_gate_force_promotes_a_worse_challenger():
    decision = _gate(1.10, 1.20, force=True)
    assert decision.promote and decision.forced


def test_gate_refuses_different_horizons():
    with pytest.raises(ConfigError, match="different horizons are never compared"):
        _gate(1.2, 1.1, horizons=(3, 6))


def test_gate_force_switches_horizon_without_comparing():
    decision = gate(
        champion_horizon=3,
        challenger_horizon=6,
        champion_deviance=None,
        challenger_deviance=None,
        force=True,
    )
    assert decision.promote and decision.forced


def _aliases(uri: str, alias: str) -> tuple[str, str]:
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return tuple(
        str(client.get_model_version_by_alias(name, alias).version)
        for name in (ATTRITION_MODEL, CSAT_MODEL)
    )


def test_promote_reruns_both_backtests_and_moves_champion_on_both_models(
    registry_org, registry_copy
):
    # Same data and configuration: the re-run backtests tie, and a tie promotes.
    outcome = run_promotion(tracking_uri=registry_copy)  # --data defaults to the recorded dir
    assert outcome.data_dir == registry_org.data.resolve()
    assert outcome.origins == list(registry_org.first.backtest.origins)
    dev = outcome.comparison.loc["attrition deviance (primary)"]
    assert dev.iloc[0] == pytest.approx(dev.iloc[1])
    assert dev.iloc[0] == pytest.approx(registry_org.first.backtest.metric("lightgbm", "deviance"))
    assert outcome.promoted
    second = registry_org.second.pair
    assert _aliases(registry_copy, "champion") == (second.attrition_version, second.csat_version)


@pytest.fixture
def fake_backtests(registry_org, monkeypatch):
    """Skip the re-run (the real one is tested above) and make the challenger look worse."""
    import forecast.commands.promote as promote

    monkeypatch.setattr(promote, "rerun_backtest", lambda *a: registry_org.first.backtest)
    calls = iter([1.0, 2.0])  # champion first, then challenger
    monkeypatch.setattr(promote, "attrition_deviance", lambda result, origins: next(calls))


def test_cli_promote_refuses_a_worse_challenger_with_exit_1(
    registry_org, registry_copy, fake_backtests, monkeypatch, capsys
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry_copy)
    assert main(["promote"]) == 1
    captured = capsys.readouterr()
    assert "champion v1" in captured.out  # the comparison table
    assert "not promoted: challenger deviance 2.0000 vs champion 1.0000: worse" in (
        " ".join(captured.err.split())
    )
    first = registry_org.first.pair
    assert _aliases(registry_copy, "champion") == (first.attrition_version, first.csat_version)


def test_cli_promote_force_promotes_a_worse_challenger(
    registry_org, registry_copy, fake_backtests, monkeypatch, capsys
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry_copy)
    assert main(["promote", "--force", "--data", str(registry_org.data)]) == 0
    assert "Promoted" in capsys.readouterr().out
    second = registry_org.second.pair
    assert _aliases(registry_copy, "champion") == (second.attrition_version, second.csat_version)


def test_cli_promote_refuses_different_horizons(registry_org, registry_copy, monkeypatch, capsys):
    client = MlflowClient(tracking_uri=registry_copy, registry_uri=registry_copy)
    client.set_model_version_tag(
        ATTRITION_MODEL, registry_org.second.pair.attrition_version, "horizon", "6"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry_copy)
    assert main(["promote"]) == 2
    err = capsys.readouterr().err
    assert "different horizons are never compared" in err.replace("\n", " ")
    assert "Traceback" not in err


def test_cli_models_lists_pairs_with_aliases_and_figures(registry_org, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry_org.tracking_uri)
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert registry_org.first.run_id in out and registry_org.second.run_id in out
    assert "champion" in out and "challenger" in out
    deviance = registry_org.first.backtest.metric("lightgbm", "deviance")
    assert f"{deviance:.3f}" in out
