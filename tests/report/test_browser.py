"""The report in a real browser: headless Chromium opens it from a file:// URL, its scripts run
without errors, and a screenshot is not blank.

Skipped (with the reason) only when no browser is installed and CI is not set; under CI a
missing browser fails, so the check cannot silently disappear. `make test` installs Chromium
through scripts/install-system-deps.sh.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from forecast.report.render import write_report
from tests.report_outputs import make_outputs

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@pytest.fixture(scope="module")
def browser() -> str:
    path = find_browser()
    if path is None:
        reason = (
            "no headless browser found (looked for " + ", ".join(BROWSERS) + "); install "
            "the Debian package `chromium` (scripts/install-system-deps.sh does)"
        )
        if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
            pytest.fail(f"CI is set but {reason}")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = make_outputs(tmp_path_factory.mktemp("browser") / "2024-06")
    return write_report(out, n_detail=10)


def run_browser(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [browser, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_page_scripts_run_without_errors(browser: str, report: Path, tmp_path: Path) -> None:
    # The page's first script records any error (window.onerror, console.error) into
    # #report-errors and its last one marks the root element ready; --dump-dom prints the DOM
    # after the scripts ran, and Chromium's own log catches anything thrown before that.
    result = run_browser(
        browser,
        tmp_path / "profile",
        "--enable-logging=stderr",
        "--v=0",
        "--dump-dom",
        report.as_uri(),
    )
    dom = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'data-report-ready="ok"' in dom, result.stderr[-2000:]
    errors = re.search(r'<pre id="report-errors"[^>]*>(.*?)</pre>', dom, re.DOTALL)
    assert errors is not None and errors.group(1).strip() == ""
    assert "Uncaught" not in result.stderr
    assert not re.search(r"CONSOLE[:(]\d+.*(Error|error)", result.stderr)
    # The sortable table was wired up: the filter's counter was filled in by the script.
    assert re.search(r'id="team-count"[^>]*>\d+ of \d+ teams<', dom)


def test_screenshot_is_not_blank(browser: str, report: Path, tmp_path: Path) -> None:
    import matplotlib.image as mpimg

    png = tmp_path / "report.png"
    result = run_browser(
        browser,
        tmp_path / "profile",
        f"--screenshot={png}",
        "--window-size=1280,2000",
        report.as_uri(),
    )
    assert png.exists(), result.stderr[-2000:]
    pixels = mpimg.imread(png)
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1000
    assert float(np.var(pixels[..., :3])) > 0.0
