"""`forecast features`: write the team-month feature panel for inspection."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from forecast.data.atomic import check_writable_parent
from forecast.data.months import parse_month_option
from forecast.data.sources import load_tables
from forecast.errors import check_param
from forecast.features.panel import build_panel, panel_warnings
from forecast.features.specs import load_specs


@dataclass
class WrittenPanel:
    path: Path
    rows: int
    features: int
    warnings: list[str]


def write_features(
    data: Path | str, out_file: Path, *, as_of: str | None = None, spec_dir: Path | None = None
) -> WrittenPanel:
    check_param("--out", str(out_file), out_file.suffix == ".parquet", "a path ending in .parquet")
    check_writable_parent(out_file, "--out")
    month = parse_month_option("--as-of", as_of)
    tables = load_tables(data, as_of=month)  # as of a month: only the rows known then
    specs = load_specs(spec_dir)
    warnings = panel_warnings(tables, specs)
    panel = build_panel(tables, specs, as_of=month)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    frame = panel.assign(as_of=panel["as_of"].astype("string"))
    frame.attrs = {}
    frame.to_parquet(out_file, index=False)
    return WrittenPanel(out_file, len(panel), panel.shape[1] - 3, warnings)
