"""`forecast individual`: the individual-level check on the IBM HR snapshot (aggregate results
only)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from forecast.data.atomic import check_writable_dir, json_text
from forecast.errors import ConfigError
from forecast.models.individual import IndividualResult, evaluate, read_ibm


def run_individual(
    data: Path | str,
    *,
    out_dir: Path | str | None = None,
    per_person: bool = False,
    folds: int = 5,
    seed: int = 0,
    include_protected: bool = False,
) -> IndividualResult:
    """Edge: read the file, evaluate, and write the aggregate summary (and, if asked, scores)."""
    if per_person and out_dir is None:
        raise ConfigError(
            "`--per-person` needs `--out DIR`: per-person scores are only ever "
            "written to a directory you choose."
        )
    if out_dir is not None:
        check_writable_dir(Path(out_dir), "--out")
    data = Path(data)
    frame = read_ibm(data)
    result = evaluate(
        frame, file=data.name, folds=folds, seed=seed, include_protected=include_protected
    )
    result.sha256 = hashlib.sha256(data.read_bytes()).hexdigest()
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        summary = out_dir / "individual_summary.json"
        summary.write_text(json_text(result.summary(), sort_keys=False), encoding="utf-8")
        result.written.append(str(summary))
        if per_person:
            assert result.oof is not None
            # Keyed by the 0-based data row of the input file only: no name, no EmployeeNumber.
            scores = result.oof.rename_axis("row_index").reset_index()
            scores["fold"] = scores["fold"].astype("int64")
            target = out_dir / "per_person.parquet"
            scores.to_parquet(target, index=False)
            result.written.append(str(target))
    return result
