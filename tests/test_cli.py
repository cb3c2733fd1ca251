"""The CLI's promises: exit codes, one-line errors without tracebacks, --version, --help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.contract_cases import CASES, GOOD, write_dir


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "forecast", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def test_version_and_help() -> None:
    assert run("--version").stdout.startswith("forecast ")
    helped = run("--help")
    assert helped.returncode == 0
    for command in (
        "simulate",
        "validate",
        "train",
        "score",
        "demo",
        "promote",
        "what-if",
        "serve",
        "users",
    ):
        assert command in helped.stdout
    for sub in ("add", "list", "remove", "passwd", "audit"):
        assert sub in run("users", "--help").stdout


def test_validate_good_directory_exits_0(tmp_path: Path) -> None:
    result = run("validate", str(write_dir(tmp_path, GOOD)))
    assert result.returncode == 0, result.stderr
    assert "3 teams" not in result.stdout and "2 teams" in result.stdout
    assert "gender" in result.stdout  # protected columns seen are reported


@pytest.mark.parametrize("case", ["exit_before_hire", "duplicate_team_month", "csat_out_of_range"])
def test_bad_input_exits_2_with_one_line_and_no_traceback(tmp_path: Path, case: str) -> None:
    tables, file, column, _, _ = CASES[case]
    result = run("validate", str(write_dir(tmp_path, tables)))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert file in lines[0] and f"column {column}" in lines[0]


def test_missing_directory_exits_2(tmp_path: Path) -> None:
    result = run("validate", str(tmp_path / "absent"))
    assert result.returncode == 2 and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_option_value_is_one_line_error(tmp_path: Path) -> None:
    result = run("simulate", "--out", str(tmp_path / "x"), "--teams", "0")
    assert result.returncode == 2
    assert "`n_teams` must be" in result.stderr or "`--teams` must be" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [("train", "--nope"), ("score",), ("no-such-command",)],
    ids=["option", "missing", "cmd"],
)
def test_usage_errors_exit_2_as_usage_not_internal_error(args: tuple[str, ...]) -> None:
    result = run(*args)
    assert result.returncode == 2, result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert "Usage: forecast" in result.stderr


def test_simulate_then_validate_exits_0(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    made = run(
        "--quiet", "simulate", "--out", str(out), "--teams", "30", "--months", "24", "--seed", "1"
    )
    assert made.returncode == 0, made.stderr
    result = run("validate", str(out))
    assert result.returncode == 0, result.stderr


def test_features_command_writes_panel(tmp_path: Path) -> None:
    import pandas as pd

    out = tmp_path / "sim"
    assert (
        run("--quiet", "simulate", "--out", str(out), "--teams", "20", "--months", "18").returncode
        == 0
    )
    target = tmp_path / "panel.parquet"
    result = run("features", "--data", str(out), "--out", str(target), "--as-of", "2023-03")
    assert result.returncode == 0, result.stderr
    panel = pd.read_parquet(target)
    assert set(panel["as_of"]) == {"2023-03"}
    assert any(c.startswith("workload__after_hours_ratio__") for c in panel.columns)
    bad = run("features", "--data", str(out), "--out", str(target), "--as-of", "March")
    assert bad.returncode == 2 and "`--as-of` must be a month YYYY-MM" in bad.stderr
