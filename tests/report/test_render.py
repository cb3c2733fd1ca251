"""The leaders' report: self-contained, names no one, hides small teams, says things in words.

Most tests run on a synthetic OUT folder that follows the contract (built here, fast); one test
runs the real `forecast score` outputs of the shared trained organisation and also scans the
MLflow artifacts and the logs for employee identifiers.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecast.cli import main
from forecast.models.fairness import composition_bands, fairness_audit
from forecast.report import words
from forecast.report.render import build_context, load_outputs, render, rollups, write_report
from forecast.report.words import audit_sentences
from forecast.scoring.extras import team_attributes
from tests.report_outputs import AS_OF, make_outputs, synthetic_employees


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame, str]:
    root = tmp_path_factory.mktemp("report")
    scores_stub = pd.DataFrame(
        {
            "team_id": [f"T{i:03d}" for i in range(40)],
            "headcount": np.random.default_rng(0).integers(6, 40, 40),
        }
    )
    scores_stub.loc[[3, 7], "headcount"] = [2, 4]
    emp = synthetic_employees(scores_stub, 0)
    prev = make_outputs(root / "2024-05", seed=1, as_of="2024-05", employees=emp)
    write_report(prev)
    out = make_outputs(root / AS_OF, seed=0, employees=emp)
    path = write_report(out, n_detail=20)
    return out, emp, path.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- privacy


def scan_for_people(text: str, employees: pd.DataFrame) -> list[str]:
    """Employee ids and name-like values of `employees` that occur in `text`."""
    found = []
    ids = set(employees["employee_id"].astype(str))
    tokens = set(re.findall(r"[A-Za-z0-9_]+", text))
    found += sorted(ids & tokens)
    for col in [c for c in employees.columns if re.search(r"name", c, re.IGNORECASE)]:
        found += [v for v in employees[col].dropna().astype(str).unique() if v in text]
    return found


def external_urls(html: str) -> list[str]:
    refs = re.findall(r"""(?:src|href|xlink:href)\s*=\s*["']([^"']*)["']""", html, re.IGNORECASE)
    refs += re.findall(r"""url\(\s*["']?([^)"']*)""", html)
    return [
        r
        for r in refs
        if re.match(r"^(?:[a-z][a-z0-9+.-]*:)?//", r, re.IGNORECASE)
        or (
            re.match(r"^[a-z][a-z0-9+.-]*:", r, re.IGNORECASE) and not r.lower().startswith("data:")
        )
    ]


def test_report_names_no_employee_and_no_manager_id(sample) -> None:
    _, emp, html = sample
    assert scan_for_people(html, emp) == []
    assert "manager of" in html  # managers are rolled up by the teams they lead instead


def test_report_fetches_nothing_from_the_network(sample) -> None:
    _, _, html = sample
    assert external_urls(html) == []
    assert "<link" not in html and "@import" not in html


def test_report_is_readable_by_others_like_the_other_outputs(sample) -> None:
    out, _, _ = sample
    assert (out / "report.html").stat().st_mode & 0o044 == 0o044


def test_suppressed_teams_have_no_section_and_are_counted(sample) -> None:
    _, _, html = sample
    for small in ("T003", "T007"):
        assert f'id="team-{small}"' not in html
        assert small not in html
    assert "2 teams below the minimum group size" in html


def test_detailed_sections_are_capped_and_the_rest_are_compact(sample) -> None:
    _, _, html = sample
    assert html.count('<section class="team"') == 20
    assert "Other reportable teams" in html


def test_every_chart_has_a_text_alternative(sample) -> None:
    _, _, html = sample
    svgs = re.findall(r"<svg\b[^>]*>(.*?)</svg>", html, re.DOTALL)
    assert len(svgs) > 80
    for tag in re.findall(r"<svg\b[^>]*>", html):
        assert 'role="img"' in tag and "aria-label=" in tag
    for body in svgs:
        assert body.startswith("<title>")
    for img in re.findall(r"<img\b[^>]*>", html):
        assert re.search(r'alt="[^"]{20,}"', img)


def test_headline_compares_with_the_previous_month_folder(sample) -> None:
    out, _, html = sample
    ctx = build_context(load_outputs(out))
    assert ctx["headline"]["previous"]["as_of"] == "2024-05"
    assert "as of 2024-05" in html


def test_drivers_are_in_plain_words_with_actionable_apart_from_history(sample) -> None:
    out, _, html = sample
    ctx = build_context(load_outputs(out), n_detail=5)
    team = ctx["detailed"][0]
    assert all(d["family"] in ("workload", "engagement") for d in team["actionable"])
    assert all(d["family"] not in ("workload", "engagement") for d in team["history"])
    sentences = [d["sentence"] for d in team["actionable"] + team["history"]]
    assert all("__" not in s for s in sentences)
    assert "workload__" not in re.sub(r"<[^>]+>", "", html.split("<main>")[1])


def test_ex_cx_link_is_reported_per_team(sample) -> None:
    out, _, _ = sample
    ctx = build_context(load_outputs(out), n_detail=10)
    with_link = [t for t in ctx["detailed"] if t["ex_cx"]]
    assert with_link and "attrition" in with_link[0]["ex_cx"]["sentence"]


def test_waterfall_adds_up_to_the_forecast(sample) -> None:
    out, _, _ = sample
    inputs = load_outputs(out)
    d = inputs.drivers
    team = d.loc[d["target"] == "attrition", "team_id"].iloc[0]
    rows = d.loc[(d["team_id"] == team) & (d["target"] == "attrition")]
    s = inputs.scores.set_index("team_id").loc[team]
    raw = rows["base_value"].iloc[0] + rows["shap_value"].sum()
    assert raw == pytest.approx(math.log(s["attrition_rate"]), abs=1e-9)


# --------------------------------------------------------------------------- words


def test_driver_sentence_for_vs_longrun_says_usual_level() -> None:
    s = words.describe_driver(
        "workload__after_hours_ratio__vs_longrun",
        family="workload",
        feature_label="after-hours work, vs. own long-run level",
        value=0.09,
        shap_value=0.2,
        target="attrition",
        spread=0.03,
    )
    assert s.startswith("After-hours work is well above this team's usual level")
    assert "raises the expected leaving rate by about 22%" in s


def test_driver_sentence_for_a_level_compares_with_the_organisation() -> None:
    s = words.describe_driver(
        "engagement__engagement__last",
        family="engagement",
        feature_label=None,
        value=55.0,
        shap_value=0.1,
        target="attrition",
        percentile=0.05,
        org_median=70.0,
    )
    assert "well below the organisation's typical level (55 against a typical 70)" in s


def test_csat_driver_sentence_is_in_points() -> None:
    s = words.describe_driver(
        "tenure__tenure__share_lt_6m",
        family="tenure",
        feature_label=None,
        value=0.4,
        shap_value=-0.8,
        target="csat",
        percentile=0.95,
    )
    assert s.startswith("40% of the team have under 6 months' tenure")
    assert "takes about 0.8 CSAT points off" in s


def test_numbers_are_rounded_sensibly() -> None:
    assert words.fmt_count(3.14159) == "3.1"
    assert words.fmt_count(123.6) == "124"
    assert words.fmt_points(-1.26) == "−1.3"
    assert words.round_sensibly(0.012345) == 0.012


# --------------------------------------------------------------------------- roll-ups


def test_team_attributes_keep_team_level_columns_only() -> None:
    scores = pd.DataFrame({"team_id": ["A", "B", "C"], "headcount": [6, 6, 1]})
    emp = synthetic_employees(scores)
    attrs = team_attributes(emp, AS_OF)
    assert set(attrs.columns) == {"team_id", "department", "site", "manager"}
    assert not attrs.isin(set(emp["employee_id"])).any().any()
    assert attrs.set_index("team_id").loc["A", "manager"] == "manager of A, B"


def test_rollup_suppresses_groups_below_the_minimum_or_of_small_teams_only() -> None:
    scores = pd.DataFrame(
        {
            "team_id": ["A", "B", "C", "D"],
            "headcount": [10, 3, 3, 3],
            "expected_leavers": [1.0, 0.5, 0.5, 0.2],
            "csat_change": [-1.0, 0.0, 0.0, 0.0],
            "risk_band": ["high", "low", "low", "low"],
            "reportable": [True, False, False, False],
        }
    )
    attrs = pd.DataFrame({"team_id": ["A", "B", "C", "D"], "site": ["X", "Y", "Y", "Z"]})
    [site] = rollups(scores, attrs, 5)
    assert [g["value"] for g in site["groups"]] == ["X"]
    assert site["suppressed"] == 2  # Y: 6 people but only small teams; Z: 3 people


# --------------------------------------------------------------------------- fairness


def test_fairness_bands_by_majority_and_median_age() -> None:
    scores = pd.DataFrame({"team_id": [f"T{i}" for i in range(12)], "headcount": [8] * 12})
    emp = synthetic_employees(scores, 3)
    bands = composition_bands(emp, AS_OF)
    assert set(bands["attribute"]) == {"gender", "median age"}
    assert (
        bands.loc[bands["attribute"] == "gender", "band"]
        .str.startswith(("majority", "no majority"))
        .all()
    )


def test_fairness_audit_suppresses_small_bands_and_flags_a_miscalibrated_one() -> None:
    frame = pd.DataFrame(
        {
            "team_id": [f"T{i}" for i in range(14)],
            "as_of": "2024-01",
            "attribute": "gender",
            "band": ["majority women"] * 10 + ["majority men"] * 4,
            "predicted": [2.0] * 10 + [1.0] * 4,
            "realised": [1.5] * 10 + [1.0] * 4,
        }
    )
    audit = fairness_audit(frame)
    men = audit.loc[audit["band"] == "majority men"].iloc[0]
    assert men["suppressed"] and np.isnan(men["predicted"])
    [sentence] = audit_sentences(audit)
    assert "majority women" in sentence and "over-forecast by 33%" in sentence


# --------------------------------------------------------------------------- CLI


def test_forecast_report_rebuilds_the_html_and_its_manifest_entry(tmp_path: Path) -> None:
    import hashlib

    out = make_outputs(tmp_path / AS_OF)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"] = {"scores.parquet": "kept as it was", "report.html": "stale"}
    (out / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert main(["report", str(out)]) == 0
    html = (out / "report.html").read_bytes()
    assert len(html) > 10_000
    files = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["files"]
    assert files == {
        "scores.parquet": "kept as it was",
        "report.html": hashlib.sha256(html).hexdigest(),
    }


def test_forecast_report_without_scores_is_a_one_line_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "forecast", "report", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "scores.parquet" in result.stderr and "Traceback" not in result.stderr


def test_forecast_report_rebuilds_the_same_bytes_from_the_folder_alone(tmp_path: Path) -> None:
    """The report is a pure function of the output folder: rebuilt later, by another process,
    it is the same file (its time is the manifest's, not the clock's)."""
    out = make_outputs(tmp_path / AS_OF)
    first = write_report(out).read_bytes()
    assert b"2024-07-02 08:00 UTC" in first  # the manifest's created_at
    assert main(["report", str(out)]) == 0  # what `forecast report OUT` runs
    assert (out / "report.html").read_bytes() == first


def test_render_is_pure_given_a_fixed_clock(sample) -> None:
    from datetime import UTC, datetime

    out, _, _ = sample
    now = datetime(2024, 7, 1, tzinfo=UTC)
    a = render(build_context(load_outputs(out), now=now))
    b = render(build_context(load_outputs(out), now=now))
    assert a == b


# --------------------------------------------------------------------------- the real pipeline


def test_real_score_outputs_report_and_mlflow_artifacts_name_no_one(
    trained_org, tmp_path: Path
) -> None:
    """`forecast score` on real (simulated) data with a `name` column added to employees: the
    report, every file in OUT, the MLflow artifacts and the command's logs hold no employee id
    and no name."""
    import os
    import shutil

    data = tmp_path / "data"
    shutil.copytree(trained_org.data, data)
    emp_path = data / "employees.csv"
    emp = pd.read_csv(emp_path, dtype=str, keep_default_na=False)
    emp["name"] = [f"Firstname{i:05d} Lastname" for i in range(len(emp))]
    emp.to_csv(emp_path, index=False)
    out = tmp_path / "scores" / trained_org.latest
    env = {**os.environ, "MLFLOW_TRACKING_URI": trained_org.tracking_uri}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "forecast",
            "--verbose",
            "score",
            "--data",
            str(data),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Team " in html and external_urls(html) == []
    assert scan_for_people(html, emp) == []
    assert scan_for_people(result.stdout + result.stderr, emp) == []
    texts = [p.read_bytes().decode("latin-1") for p in out.rglob("*") if p.is_file()]
    store = Path(trained_org.tracking_uri.removeprefix("sqlite:///")).parent
    texts += [p.read_bytes().decode("latin-1") for p in store.rglob("*") if p.is_file()]
    for text in texts:
        assert scan_for_people(text, emp) == []
    # Small teams: counted, never shown.
    scores = pd.read_parquet(out / "scores.parquet")
    for team in scores.loc[~scores["reportable"], "team_id"].astype(str):
        assert f'id="team-{team}"' not in html


def test_trust_section_shows_interval_coverage_per_origin_next_to_nominal(tmp_path: Path) -> None:
    out = make_outputs(tmp_path / AS_OF)
    pd.DataFrame(
        {
            "origin": ["2023-09", "2023-12"],
            "nominal": 0.8,
            "teams": [200, 210],
            "team_leavers": [0.79, 0.83],
            "csat_change": [0.8, 0.81],
            "org_expected": [101.5, 96.0],
            "org_p10": [88.0, 84.0],
            "org_p90": [116.0, 109.0],
            "org_realised": [97.0, 112.0],
            "org_total_covered": [True, False],
        }
    ).to_parquet(out / "backtest_coverage.parquet")
    html = write_report(out).read_text(encoding="utf-8")
    section = html[html.index("Do the intervals hold?") :]
    assert "held the realised number for 81% of team forecasts" in section
    assert "inside its 80% interval at 1 of 2 origins" in section
    for cell in ("2023-12", "80%", "83%", "84–109", "no"):
        assert f">{cell}<" in section


def test_driver_sentences_for_the_baseline_and_the_recalibration() -> None:
    from forecast.features.names import BASELINE_TERM, CALIBRATION_TERM

    base = words.describe_driver(
        BASELINE_TERM,
        family="people_flow",
        feature_label="the team's own long-run rate",
        value=0.06,
        shap_value=0.2,
        target="attrition",
    )
    assert base.startswith("This team's own long-run leaving rate (6.0% of its people")
    cal = words.describe_driver(
        CALIBRATION_TERM,
        family="calibration",
        feature_label=None,
        value=0.93,
        shap_value=-0.07,
        target="attrition",
    )
    assert "x0.93" in cal and "earlier forecasts" in cal
