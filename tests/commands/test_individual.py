"""Individual-level view on the IBM HR sample: honest AUCs, aggregate output by default,
protected attributes out unless opted in, and a loud warning when the result looks leaky."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from forecast.cli import main
from forecast.commands.individual import run_individual
from forecast.errors import ConfigError, DataError
from forecast.models.individual import IndividualResult, evaluate, prepare, read_ibm

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
IBM = REAL / "WA_Fn-UseC_-HR-Employee-Attrition.csv"
PROTECTED = {"Age", "Gender", "MaritalStatus"}


@pytest.fixture(scope="module")
def ibm_path() -> Path:
    if not IBM.exists():
        pytest.skip(f"public data file {IBM} is absent (kept outside the repository)")
    return IBM


@pytest.fixture(scope="module")
def ibm(ibm_path: Path) -> pd.DataFrame:
    return read_ibm(ibm_path)


@pytest.fixture(scope="module")
def result(ibm: pd.DataFrame) -> IndividualResult:
    return evaluate(ibm, file=IBM.name, folds=5, seed=0)


def test_both_models_land_in_the_published_auc_band(result: IndividualResult) -> None:
    # Honest stratified CV on this file is 0.79-0.82 in the literature; far above means leakage.
    assert 0.70 <= result.lightgbm.auc_mean <= 0.90
    assert 0.70 <= result.logistic.auc_mean <= 0.90
    assert len(result.lightgbm.auc_folds) == 5
    assert 0 < result.lightgbm.auc_sd < 0.1
    assert not result.warnings


def test_protected_columns_are_not_features_by_default(result: IndividualResult) -> None:
    assert PROTECTED.isdisjoint(result.features)
    assert set(result.protected_excluded) == PROTECTED
    assert PROTECTED.isdisjoint(r["feature"] for r in result.shap)


def test_proxies_of_excluded_protected_columns_are_reported(result: IndividualResult) -> None:
    # Every Single employee has StockOptionLevel 0 in this file: dropping MaritalStatus alone
    # does not keep marital status out of the model, and the run must say so.
    pairs = {(p["feature"], p["protected"]) for p in result.proxies}
    assert ("StockOptionLevel", "MaritalStatus") in pairs
    assert all(p["protected"] in PROTECTED for p in result.proxies)
    assert ("JobRole", "Gender") not in pairs


def test_include_protected_uses_them_and_says_so(ibm: pd.DataFrame) -> None:
    prep = prepare(ibm, include_protected=True)
    assert set(prep.X.columns) >= PROTECTED
    assert set(prep.protected_included) == PROTECTED
    r = evaluate(ibm.head(600), folds=3, include_protected=True)
    assert any("protected attributes used" in w for w in r.warnings)


def test_constant_columns_and_the_id_are_dropped(ibm: pd.DataFrame) -> None:
    prep = prepare(ibm)
    dropped = {"EmployeeCount", "Over18", "StandardHours", "EmployeeNumber"}
    assert dropped <= set(prep.dropped)
    assert dropped.isdisjoint(prep.X.columns)
    assert "Attrition" not in prep.X.columns
    assert prep.y.sum() == 237 and len(prep.y) == 1470


def test_text_columns_become_categoricals_for_lightgbm(ibm: pd.DataFrame) -> None:
    prep = prepare(ibm)
    assert set(prep.categorical) == {
        "BusinessTravel",
        "Department",
        "EducationField",
        "JobRole",
        "OverTime",
    }
    assert all(isinstance(prep.X[c].dtype, pd.CategoricalDtype) for c in prep.categorical)
    others = [c for c in prep.X.columns if c not in prep.categorical]
    assert all(prep.X[c].dtype == "float64" for c in others)


def test_shap_ranks_every_feature_once(result: IndividualResult) -> None:
    names = [r["feature"] for r in result.shap]
    assert sorted(names) == sorted(result.features)
    values = [r["mean_abs_shap"] for r in result.shap]
    assert values == sorted(values, reverse=True) and values[0] > 0
    # OverTime is the file's best-known driver; a ranking without it near the top is suspect.
    assert "OverTime" in names[:3]


def test_a_leaky_column_trips_the_leakage_warning(ibm: pd.DataFrame) -> None:
    leaky = ibm.assign(ExitInterviewDone=(ibm["Attrition"] == "Yes").astype(int).astype(str))
    r = evaluate(leaky, folds=3)
    assert r.lightgbm.auc_mean > 0.90
    assert any("suspect leakage" in w for w in r.warnings)


def test_same_seed_gives_the_same_result(ibm: pd.DataFrame, result: IndividualResult) -> None:
    again = evaluate(ibm, file=IBM.name, folds=5, seed=0)
    assert again.lightgbm == result.lightgbm and again.logistic == result.logistic


def test_no_per_person_file_without_the_flag(ibm_path: Path, tmp_path: Path) -> None:
    r = run_individual(ibm_path, out_dir=tmp_path, folds=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["individual_summary.json"]
    summary = json.loads((tmp_path / "individual_summary.json").read_text())
    assert summary["lightgbm"]["auc_mean"] == r.lightgbm.auc_mean
    assert "oof" not in summary and "p_lightgbm" not in json.dumps(summary)


def test_per_person_needs_an_output_directory(ibm_path: Path) -> None:
    with pytest.raises(ConfigError, match="--per-person"):
        run_individual(ibm_path, per_person=True)


def test_per_person_file_is_keyed_by_row_index_without_identities(
    ibm_path: Path, tmp_path: Path
) -> None:
    run_individual(ibm_path, out_dir=tmp_path, per_person=True, folds=3)
    scores = pd.read_parquet(tmp_path / "per_person.parquet")
    assert list(scores.columns) == ["row_index", "fold", "p_lightgbm", "p_logistic"]
    assert scores["row_index"].tolist() == list(range(1470))
    assert scores[["p_lightgbm", "p_logistic"]].apply(lambda s: s.between(0, 1)).all().all()


def test_missing_column_names_file_and_column(ibm: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"x\.csv, column OverTime: required column"):
        prepare(ibm.drop(columns=["OverTime"]), file="x.csv")


def test_bad_target_value_names_the_row(ibm: pd.DataFrame) -> None:
    bad = ibm.copy()
    bad.loc[4, "Attrition"] = "Maybe"
    with pytest.raises(DataError, match=r"x\.csv, column Attrition, row 5: Attrition 'Maybe'"):
        prepare(bad, file="x.csv")


def test_cli_individual_missing_file_exits_2_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["individual", "--data", str(tmp_path / "none.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "none.csv" in err and "Traceback" not in err


def test_cli_individual_prints_both_models(
    ibm_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["individual", "--data", str(ibm_path), "--folds", "3"])
    text = capsys.readouterr().out
    assert code == 0
    assert "LightGBM" in text and "logistic regression" in text and "OverTime" in text
