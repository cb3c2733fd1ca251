"""The feature panel: the fast pipeline against a slow reference, point-in-time safety (the
leakage test), the scoring path, and the spec rules (renamed signals, protected attributes,
data_start, spec errors)."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecast.data.contract import tables_from_frames
from forecast.errors import SpecError
from forecast.features.names import BASELINE_COLUMNS, FEATURE_SEP, feature_catalog, is_feature_name
from forecast.features.panel import build_panel, features_by_table, panel_warnings
from forecast.features.specs import default_spec_dir, load_specs
from tests.reference import random_frames, reference_panel

FAMILIES = ("tenure", "people_flow", "engagement", "workload", "cx")


@pytest.fixture(scope="module")
def specs():
    return load_specs()


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return random_frames(n_teams=7, n_months=26, seed=11)


@pytest.fixture(scope="module")
def tables(frames):
    return tables_from_frames(frames)


@pytest.fixture(scope="module")
def panel(tables, specs) -> pd.DataFrame:
    return build_panel(tables, specs)


def _features(panel: pd.DataFrame) -> list[str]:
    """The feature columns: after the keys, before the attrition baseline's inputs."""
    assert tuple(panel.columns[-len(BASELINE_COLUMNS) :]) == BASELINE_COLUMNS
    return list(panel.columns[3 : -len(BASELINE_COLUMNS)])


def test_the_baseline_inputs_end_the_panel_and_are_not_features(panel):
    assert not any(is_feature_name(c) for c in BASELINE_COLUMNS)
    assert all(is_feature_name(c) for c in _features(panel))
    leavers, exposure, org = (panel[c] for c in BASELINE_COLUMNS)
    # Cumulative per team: never falling from one month to the next within a team.
    steps = panel.assign(lv=leavers, ex=exposure).groupby("team_id")[["lv", "ex"]].diff()
    assert (steps.dropna() >= 0).all().all()
    assert ((org.dropna() >= 0) & (org.dropna() < 1)).all()


def assert_same_columns(fast: pd.DataFrame, ref: pd.DataFrame) -> None:
    assert list(fast.columns) == list(ref.columns)
    pd.testing.assert_frame_equal(
        fast[["team_id", "as_of", "headcount"]], ref[["team_id", "as_of", "headcount"]]
    )
    for col in fast.columns[3:]:
        np.testing.assert_allclose(
            fast[col].to_numpy(),
            ref[col].to_numpy(dtype=float),
            rtol=1e-9,
            atol=1e-9,
            equal_nan=True,
            err_msg=col,
        )


def test_fast_panel_matches_slow_reference_column_by_column(tables, specs, panel):
    assert_same_columns(panel, reference_panel(tables, specs))


def test_fast_panel_matches_reference_on_simulated_organisation(specs):
    from forecast.simulate import SimConfig, simulate

    sim = simulate(SimConfig(n_teams=6, n_months=18, seed=4, compute_truth=False))
    tables = tables_from_frames(sim.frames, data_start=sim.config.start)
    fast = build_panel(tables, specs)
    assert fast["as_of"].min() == pd.Period(sim.config.start, freq="M")
    assert_same_columns(fast, reference_panel(tables, specs))


def test_fast_panel_matches_reference_with_data_start(frames, specs):
    tables = tables_from_frames(frames, data_start="2021-07")
    fast = build_panel(tables, specs)
    assert fast["as_of"].min() == pd.Period("2021-07", freq="M")
    assert_same_columns(fast, reference_panel(tables, specs))


def test_every_family_produces_features_named_family_signal_transform(panel):
    assert list(panel.columns[:3]) == ["team_id", "as_of", "headcount"]
    features = _features(panel)
    assert {c.split(FEATURE_SEP)[0] for c in features} == set(FAMILIES)
    assert all(len(c.split(FEATURE_SEP)) == 3 for c in features)
    for name in (
        "workload__overtime_ratio__mean_3m",
        "engagement__engagement__age_months",
        "cx__csat__mean_3m",
        "tenure__tenure__share_lt_6m",
        "people_flow__vol_leavers__longrun_rate_shrunk",
    ):
        assert name in features


def test_panel_types_order_and_rows(panel):
    assert isinstance(panel["team_id"].dtype, pd.StringDtype)
    assert isinstance(panel["as_of"].dtype, pd.PeriodDtype)
    assert panel["headcount"].dtype == np.int64
    assert (panel["headcount"] >= 1).all()
    assert all(panel[c].dtype == np.float64 for c in panel.columns[3:])
    keys = panel[["team_id", "as_of"]]
    assert not keys.duplicated().any()
    assert keys.equals(keys.sort_values(["team_id", "as_of"]).reset_index(drop=True))


def test_panel_is_deterministic(tables, specs, panel):
    pd.testing.assert_frame_equal(build_panel(tables, specs), panel, check_exact=True)


def _cut_at(frames: dict[str, pd.DataFrame], month: str) -> dict[str, pd.DataFrame]:
    """The data as an export made at the end of `month` would hold them."""
    emp = frames["employees"].copy()
    emp = emp[emp["hire_date"].str[:7] <= month].copy()
    later = emp["exit_date"].str[:7] > month
    emp.loc[later, ["exit_date", "exit_type"]] = ""
    out = {"employees": emp}
    for name in ("engagement", "workload", "cx"):
        out[name] = frames[name][frames[name]["month"] <= month]
    return out


def test_future_rows_do_not_change_features_as_of_t(frames, specs):
    t = "2021-12"
    past = tables_from_frames(_cut_at(frames, t))
    # The full data append, after t: hires, exits filled into spells open at t (the look-ahead
    # trap of HRIS exports), and survey, workload and CX rows; plus a team that starts later.
    future = {k: v.copy() for k, v in frames.items()}
    emp = future["employees"]
    open_at_t = (emp["hire_date"].str[:7] <= t) & (emp["exit_date"] == "")
    first_open = emp.index[open_at_t][0]
    emp.loc[first_open, ["exit_date", "exit_type"]] = ["2022-02-14", "voluntary"]
    new = emp.iloc[[0]].assign(
        employee_id="NEW1", team_id="T999", hire_date="2022-01-03", exit_date="", exit_type=""
    )
    future["employees"] = pd.concat([emp, new], ignore_index=True)
    assert (
        (future["employees"]["hire_date"].str[:7] <= t)
        & (future["employees"]["exit_date"].str[:7] > t)
    ).any()
    full = tables_from_frames(future)

    before = build_panel(past, specs)
    after = build_panel(full, specs)
    after = after[after["as_of"] <= pd.Period(t, freq="M")].reset_index(drop=True)
    pd.testing.assert_frame_equal(after, before, check_exact=True)
    scored = build_panel(full, specs, as_of=t)
    pd.testing.assert_frame_equal(
        scored,
        before[before["as_of"] == pd.Period(t, freq="M")].reset_index(drop=True),
        check_exact=True,
    )


@pytest.mark.parametrize("month", ["2021-03", "2022-06", "2023-02"])
def test_scoring_path_equals_training_rows(tables, specs, panel, month):
    scored = build_panel(tables, specs, as_of=pd.Period(month, freq="M"))
    expected = panel[panel["as_of"] == pd.Period(month, freq="M")].reset_index(drop=True)
    assert len(scored) > 0
    pd.testing.assert_frame_equal(scored, expected, check_exact=True)


def test_renamed_signal_columns_still_produce_features(frames, specs, panel):
    renamed = dict(frames)
    renamed["workload"] = frames["workload"].rename(
        columns={"overtime_ratio": "after_hours_share", "cases_per_head": "tickets_per_fte"}
    )
    renamed["engagement"] = frames["engagement"].rename(columns={"engagement": "pulse_score"})
    out = build_panel(tables_from_frames(renamed), specs)
    for old, new in [
        ("workload__overtime_ratio", "workload__after_hours_share"),
        ("workload__cases_per_head", "workload__tickets_per_fte"),
        ("engagement__engagement", "engagement__pulse_score"),
    ]:
        for transform in ("mean_3m", "trend_12m") if old.startswith("workload") else ("last",):
            np.testing.assert_array_equal(out[f"{new}__{transform}"], panel[f"{old}__{transform}"])


def test_identifier_like_columns_are_not_signals(panel):
    assert not [c for c in panel.columns if "site_code" in c]


def test_protected_attributes_never_enter_by_default(frames, specs, caplog):
    with_age = dict(frames)
    with_age["workload"] = frames["workload"].assign(age=41.0)
    tables = tables_from_frames(with_age)
    with caplog.at_level(logging.WARNING, logger="forecast"):
        out = build_panel(tables, specs)
    for attr in ("gender", "birth_year", "age"):
        assert not [c for c in out.columns if c.split(FEATURE_SEP)[1:2] == [attr]]
    assert panel_warnings(tables, specs) == []


def _specs_with(tmp_path: Path, file: str, extra: str) -> Path:
    directory = tmp_path / "features"
    shutil.copytree(default_spec_dir(), directory)
    with open(directory / file, "a", encoding="utf-8") as f:
        f.write(extra)
    return directory


def test_protected_attribute_opted_in_becomes_feature_and_run_warns(tmp_path, tables, caplog):
    extra = "opt_in_protected: [gender, birth_year]\n"
    specs = load_specs(_specs_with(tmp_path, "tenure.yaml", extra))
    with caplog.at_level(logging.WARNING, logger="forecast"):
        out = build_panel(tables, specs)
    assert {
        "tenure__gender__share_f",
        "tenure__gender__share_m",
        "tenure__birth_year__mean",
    } <= set(out.columns)
    assert out["tenure__gender__share_f"].between(0, 1).all()
    assert out["tenure__birth_year__mean"].between(1960, 2000).all()
    warned = [r.getMessage() for r in caplog.records if "gender" in r.getMessage()]
    assert warned and "protected" in warned[0]
    assert any("birth_year" in w for w in panel_warnings(tables, specs))
    assert any("gender" in w for w in out.attrs["warnings"])


def test_data_start_months_feed_no_feature(frames, specs):
    start = "2021-07"
    base = build_panel(tables_from_frames(frames, data_start=start), specs)
    assert base["as_of"].min() == pd.Period(start, freq="M")
    # Change everything dated before data_start: drop the monthly rows and the spells that
    # ended before it, and scramble the earlier CSAT. Nothing may move.
    changed = {k: v.copy() for k, v in frames.items()}
    emp = changed["employees"]
    changed["employees"] = emp[(emp["exit_date"] == "") | (emp["exit_date"].str[:7] >= start)]
    changed["workload"] = frames["workload"][frames["workload"]["month"] >= start]
    changed["engagement"] = frames["engagement"][frames["engagement"]["month"] >= start]
    cx = frames["cx"].copy()
    cx.loc[cx["month"] < start, "csat"] = "1.0"
    changed["cx"] = cx
    again = build_panel(tables_from_frames(changed, data_start=start), specs)
    pd.testing.assert_frame_equal(again, base, check_exact=True)


def test_missing_optional_tables_yield_no_columns(frames, specs):
    tables = tables_from_frames({"employees": frames["employees"], "cx": frames["cx"]})
    out = build_panel(tables, specs)
    families = {c.split(FEATURE_SEP)[0] for c in _features(out)}
    assert families == {"tenure", "people_flow", "cx"}
    assert set(features_by_table(tables, specs)) == {"employees", "cx"}


def test_engagement_carries_last_survey_forward_with_its_age_never_interpolates(specs):
    employees = pd.DataFrame(
        {
            "employee_id": ["E1"],
            "team_id": ["T1"],
            "hire_date": ["2020-01-01"],
            "exit_date": [""],
            "exit_type": [""],
        }
    )
    engagement = pd.DataFrame(
        {
            "team_id": ["T1", "T1", "T1"],
            "month": ["2020-01", "2020-04", "2020-07"],
            "engagement": ["60", "", "90"],
        }
    )
    workload = pd.DataFrame(
        {"team_id": "T1", "month": [f"2020-{m:02d}" for m in range(1, 9)], "load": "1.0"}
    )
    tables = tables_from_frames(
        {"employees": employees, "engagement": engagement, "workload": workload}
    )
    out = build_panel(tables, specs).set_index("as_of")
    june = out.loc[pd.Period("2020-06", freq="M")]
    assert june["engagement__engagement__last"] == 60  # suppressed April: January carries
    assert june["engagement__engagement__age_months"] == 5
    assert np.isnan(june["engagement__engagement__change"])
    july = out.loc[pd.Period("2020-07", freq="M")]
    assert july["engagement__engagement__last"] == 90
    assert july["engagement__engagement__change"] == 30
    assert july["engagement__engagement__age_months"] == 0


def test_feature_catalog_describes_every_feature_in_plain_words(specs, panel):
    catalog = feature_catalog(specs, list(panel.columns))
    assert list(catalog.columns) == [
        "feature",
        "family",
        "signal",
        "transform",
        "label",
        "actionable",
        "source_table",
    ]
    assert list(catalog["feature"]) == _features(panel)
    row = catalog.set_index("feature").loc["workload__overtime_ratio__mean_3m"]
    assert row["label"] == "overtime, 3-month average"
    assert row["actionable"] and row["source_table"] == "workload"
    actionable = set(catalog.loc[catalog["actionable"], "family"])
    assert actionable == {"workload", "engagement"}


def test_features_by_table_names_what_each_table_feeds(tables, specs, panel):
    feeds = features_by_table(tables, specs)
    assert set(feeds) == {"employees", "engagement", "workload", "cx"}
    assert sorted(c for names in feeds.values() for c in names) == sorted(_features(panel))
    assert all(c.startswith(("tenure__", "people_flow__")) for c in feeds["employees"])


def test_spec_error_names_file_and_key(tmp_path):
    directory = tmp_path / "features"
    shutil.copytree(default_spec_dir(), directory)
    text = (
        (directory / "workload.yaml")
        .read_text()
        .replace("{kind: trend, window: 12}", "{kind: trend, window: 0}")
    )
    (directory / "workload.yaml").write_text(text)
    with pytest.raises(SpecError) as err:
        load_specs(directory)
    assert str(err.value) == (
        "workload.yaml: `transforms[3].window` must be an integer >= 1. Got 0 instead."
    )


@pytest.mark.parametrize(
    "extra, key",
    [
        ("bogus: 1\n", "`bogus`"),
        ("opt_in_protected: [team_size]\n", "`opt_in_protected[0]`"),
    ],
)
def test_spec_error_on_unknown_key_or_unprotected_opt_in(tmp_path, extra, key):
    with pytest.raises(SpecError, match=re.escape(key)):
        load_specs(_specs_with(tmp_path, "cx.yaml", extra))


def test_spec_hash_is_stable_and_tracks_content(tmp_path, specs):
    assert load_specs().hash() == specs.hash()
    changed = load_specs(_specs_with(tmp_path, "cx.yaml", "actionable: true\n"))
    assert changed.hash() != specs.hash()


def test_month_of_year_is_available_as_a_calendar_family(tables, tmp_path) -> None:
    """Seasonality can be declared in a spec (measured in issue 18: it did not help the
    backtest, so the shipped specs leave it out)."""
    for spec in default_spec_dir().glob("*.yaml"):
        shutil.copy(spec, tmp_path / spec.name)
    (tmp_path / "calendar.yaml").write_text(
        "family: calendar\nsource: employees\nsignals: [month]\ntransforms:\n  - {kind: of_year}\n",
        encoding="utf-8",
    )
    specs = load_specs(tmp_path)
    panel = build_panel(tables, specs)
    months = panel["as_of"].dt.month.to_numpy(dtype=float)
    np.testing.assert_array_equal(panel["calendar__month__of_year"].to_numpy(), months)
    assert_same_columns(panel, reference_panel(tables, specs))
