"""`forecast score` end to end on a small simulated organisation with a registered pair."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecast.commands import score
from forecast.errors import ConfigError, DataError, ModelError, OutputError, TrackingError
from forecast.scoring import output

PARQUETS = (
    "scores.parquet",
    "drivers.parquet",
    "drivers_by_family.parquet",
    "drift.parquet",
    "history.parquet",
)


def _score(org, out: Path, data: Path | None = None, **kwargs) -> score.ScoreResult:
    kwargs.setdefault("report", False)
    return score.run_score(data or org.data, out, tracking_uri=org.tracking_uri, **kwargs)


def _bytes(out: Path) -> dict[str, bytes]:
    return {
        name: (out / name).read_bytes()
        for name in sorted(os.listdir(out))
        if name != "manifest.json"
    }


@pytest.fixture(scope="module")
def scored(trained_org, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("score") / "out"
    _score(trained_org, out)
    return out


def test_scores_have_contract_columns_types_and_one_row_per_team(scored, trained_org) -> None:
    s = pd.read_parquet(scored / "scores.parquet")
    assert list(s.columns[:7]) == [
        "team_id",
        "as_of",
        "headcount",
        "expected_leavers",
        "attrition_rate",
        "csat_change",
        "reportable",
    ]
    assert {"leavers_p10", "leavers_p90", "csat_change_p10", "csat_change_p90", "risk_band"} <= set(
        s.columns
    )
    assert s["team_id"].is_unique and (s["headcount"] >= 1).all()
    assert s["headcount"].dtype == np.int64 and s["reportable"].dtype == bool
    assert (s["as_of"] == trained_org.latest).all()
    assert (s["reportable"] == (s["headcount"] >= 5)).all()
    assert set(s["risk_band"]) <= {"low", "medium", "high"}
    np.testing.assert_allclose(s["attrition_rate"], s["expected_leavers"] / s["headcount"])
    csv = pd.read_csv(scored / "scores.csv", dtype={"team_id": str})
    assert csv["team_id"].tolist() == s["team_id"].tolist()


def test_ids_like_007_survive_to_every_output(scored) -> None:
    for name in ("scores.parquet", "drivers.parquet", "history.parquet"):
        assert "007" in set(pd.read_parquet(scored / name)["team_id"]), name
    assert "007" in (scored / "scores.csv").read_text()


def test_drivers_add_up_to_the_model_output_for_both_targets(scored) -> None:
    s = pd.read_parquet(scored / "scores.parquet").set_index("team_id")
    d = pd.read_parquet(scored / "drivers.parquet")
    assert set(d["target"]) == {"attrition", "csat"}
    total = d.groupby(["target", "team_id"])["shap_value"].sum()
    base = d.groupby(["target", "team_id"])["base_value"].first()
    raw = base + total
    att = raw["attrition"]
    np.testing.assert_allclose(att, np.log(s.loc[att.index, "attrition_rate"]), atol=1e-6)
    cs = raw["csat"]
    np.testing.assert_allclose(cs, s.loc[cs.index, "csat_change"], atol=1e-6)
    # The CSAT model's stacked input is shown as people risk.
    ear = d[(d["target"] == "csat") & (d["feature"] == "expected_attrition_rate")]
    assert len(ear) == len(cs) and (ear["family"] == "attrition").all()
    fam = pd.read_parquet(scored / "drivers_by_family.parquet")
    by = (
        fam.groupby(["target", "team_id"])["shap_value"].sum()
        + fam.groupby(["target", "team_id"])["base_value"].first()
    )
    np.testing.assert_allclose(by.loc[raw.index], raw, atol=1e-9)


def test_non_reportable_teams_have_no_driver_rows(trained_org, tmp_path) -> None:
    out = tmp_path / "out"
    _score(trained_org, out, min_group=10)
    s = pd.read_parquet(out / "scores.parquet")
    small = set(s.loc[~s["reportable"], "team_id"])
    assert small, "the fixture should have teams below 10"
    for name in ("drivers.parquet", "drivers_by_family.parquet"):
        assert not small & set(pd.read_parquet(out / name)["team_id"]), name


def test_same_inputs_give_byte_identical_files(scored, trained_org, tmp_path) -> None:
    again = tmp_path / "again"
    _score(trained_org, again)
    assert _bytes(again) == _bytes(scored)


def _truncate(src: Path, dst: Path, month: str) -> None:
    """The data as they were at the end of `month`: later rows and events removed."""
    shutil.copytree(src, dst)
    end = pd.Period(month, "M").end_time.normalize()
    emp = pd.read_csv(dst / "employees.csv", dtype=str, keep_default_na=False)
    emp = emp[pd.to_datetime(emp["hire_date"]) <= end]
    later = pd.to_datetime(emp["exit_date"].replace("", None)) > end
    emp.loc[later.to_numpy(), ["exit_date", "exit_type"]] = ""
    if "exit_reason" in emp:
        emp.loc[later.to_numpy(), "exit_reason"] = ""
    emp.to_csv(dst / "employees.csv", index=False)
    for name in ("engagement", "workload", "cx"):
        path = dst / f"{name}.csv"
        if path.exists():
            t = pd.read_csv(path, dtype=str, keep_default_na=False)
            t[t["month"] <= month].to_csv(path, index=False)


def test_future_rows_do_not_change_scores_as_of_t(trained_org, tmp_path) -> None:
    month = str(pd.Period(trained_org.latest, "M") - 2)
    past = tmp_path / "past"
    _truncate(trained_org.data, past, month)
    _score(trained_org, tmp_path / "full", as_of=month)
    _score(trained_org, tmp_path / "trunc", data=past, as_of=month)
    for name in (
        "scores.parquet",
        "drivers.parquet",
        "drivers_by_family.parquet",
        "history.parquet",
    ):
        assert (tmp_path / "full" / name).read_bytes() == (tmp_path / "trunc" / name).read_bytes()


def test_corrupt_input_after_a_good_run_leaves_out_unchanged(scored, trained_org, tmp_path):
    before = {**_bytes(scored), "manifest.json": (scored / "manifest.json").read_bytes()}
    bad = tmp_path / "bad"
    shutil.copytree(trained_org.data, bad)
    lines = (bad / "employees.csv").read_text().splitlines()
    lines[3] = lines[3].replace("-", "/", 1)  # an unparseable date
    (bad / "employees.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError):
        _score(trained_org, scored, data=bad)
    assert {**_bytes(scored), "manifest.json": (scored / "manifest.json").read_bytes()} == before


def test_crash_mid_write_leaves_out_intact(scored, trained_org, monkeypatch) -> None:
    before = _bytes(scored)
    real = output.write_parquet

    def dying(frame, path):
        real(frame, path)
        if path.name == "drivers.parquet":
            raise OSError("disk full")

    monkeypatch.setattr(output, "write_parquet", dying)
    with pytest.raises(OSError, match="disk full"):
        _score(trained_org, scored)
    assert _bytes(scored) == before
    assert not list(scored.parent.glob(".out.tmp-*"))


KILLED = """
import sys, time
from pathlib import Path
from forecast.scoring.output import publish
def write(tmp):
    (tmp / "scores.parquet").write_bytes(b"half")
    Path(sys.argv[2]).write_text("started")
    time.sleep(60)
publish(Path(sys.argv[1]), write)
"""


def test_kill_9_mid_write_leaves_out_intact_and_the_next_run_cleans_up(scored, tmp_path):
    before = _bytes(scored)
    flag = tmp_path / "flag"
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(scored), str(flag)])
    deadline = time.time() + 30
    while not flag.exists() and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _bytes(scored) == before
    assert list(scored.parent.glob(".out.tmp-*"))  # the killed run's leftovers...
    score.publish(scored, lambda tmp: shutil.copytree(scored, tmp, dirs_exist_ok=True))
    assert not list(scored.parent.glob(".out.tmp-*"))  # ...are gone after the next run
    assert _bytes(scored) == before


def test_two_runs_at_once_leave_one_complete_output(trained_org, tmp_path) -> None:
    scorer = score.prepare(trained_org.data, tracking_uri=trained_org.tracking_uri)
    month = pd.Period(trained_org.latest, "M")
    out, errors = tmp_path / "out", []

    def run() -> None:
        try:
            score.score_month(scorer, month, out, report=False)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["files"]) == sorted(
        p.name for p in out.iterdir() if p.name != "manifest.json"
    )


def test_refuses_to_replace_a_folder_it_did_not_write(trained_org, tmp_path) -> None:
    foreign = tmp_path / "thesis"
    foreign.mkdir()
    (foreign / "chapter1.docx").write_text("precious")
    with pytest.raises(OutputError, match="not written by `forecast score`"):
        _score(trained_org, foreign)
    assert (foreign / "chapter1.docx").read_text() == "precious"


def test_data_without_a_signal_the_model_needs_is_refused_by_name(trained_org, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(trained_org.data, data)
    workload = pd.read_csv(data / "workload.csv", dtype=str)
    workload.drop(columns=["after_hours_ratio"]).to_csv(data / "workload.csv", index=False)
    with pytest.raises(ModelError, match=r"workload\.after_hours_ratio"):
        _score(trained_org, tmp_path / "out", data=data)
    assert not (tmp_path / "out").exists()


def test_horizon_other_than_the_models_is_an_error(trained_org, tmp_path) -> None:
    with pytest.raises(ConfigError, match="horizon"):
        _score(trained_org, tmp_path / "out", horizon=trained_org.horizon + 1)


def test_unreachable_tracking_server_fails_fast_and_says_so(trained_org, tmp_path) -> None:
    started = time.time()
    with pytest.raises(TrackingError, match="unreachable"):
        score.run_score(trained_org.data, tmp_path / "out", tracking_uri="http://127.0.0.1:9")
    assert time.time() - started < 15


def test_manifest_records_lineage_and_the_model_is_tagged(scored, trained_org) -> None:
    from mlflow import MlflowClient

    m = json.loads((scored / "manifest.json").read_text())
    assert m["as_of"] == trained_org.latest and m["horizon"] == trained_org.horizon
    assert m["model"]["attrition"]["version"] == "1" and "champion" in m["model"]["aliases"]
    assert len(m["data"]["hash"]) == 64 and m["rows"]["scores"] > 0
    assert m["drift"]["features"] > 0 and "created_at" in m
    client = MlflowClient(
        tracking_uri=trained_org.tracking_uri, registry_uri=trained_org.tracking_uri
    )
    tags = client.get_model_version("forecast-attrition", "1").tags
    assert tags[f"scored.{trained_org.latest}"]


def test_drift_is_measured_against_the_training_distribution_saved_with_the_model(
    scored, trained_org
) -> None:
    """The pair carries its training features' quantile bins, so drift compares this batch with
    what the model learned from (not with one recent month rebuilt from the data)."""
    from forecast.mlops.registry import resolve_pair

    pair = resolve_pair("champion", trained_org.tracking_uri).pair
    reference = pair.drift_reference
    assert reference is not None and set(reference["feature"]) == set(pair.features)
    m = json.loads((scored / "manifest.json").read_text())
    assert m["drift"]["reference"] == "model"
