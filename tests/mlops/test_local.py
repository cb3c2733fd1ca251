"""A pair read straight from a local SQLite store (what `forecast what-if` does) is the pair
MLflow resolves, follows aliases as they move, and steps aside for anything it cannot tell;
the scoring run's MLflow side process answers and tags as MLflow itself would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from forecast.errors import ModelError
from forecast.mlops.local import local_pair, local_pair_dir
from forecast.mlops.registry import load_ref, resolve_pair, set_pair_alias
from forecast.mlops.sidecar import RegistrySide
from forecast.mlops.tracking import connect


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def _same_pair(local: tuple, resolved, tmp_path: Path) -> None:
    pair, fits = local
    pair.to_dir(tmp_path / "local")
    resolved.pair.to_dir(tmp_path / "mlflow")
    assert _files(tmp_path / "local") == _files(tmp_path / "mlflow")
    assert (fits is None) == (resolved.what_if_fits is None)
    assert sorted(fits or {}) == sorted(resolved.what_if_fits or {})


@pytest.mark.parametrize("ref", ["champion", "challenger", "1", "2"])
def test_the_local_pair_is_the_pair_mlflow_resolves(
    registry_copy: str, ref: str, tmp_path: Path
) -> None:
    _same_pair(local_pair(ref, registry_copy), resolve_pair(ref, registry_copy), tmp_path)


def test_the_local_pair_follows_an_alias_that_moved(registry_copy: str, tmp_path: Path) -> None:
    tracking = connect(registry_copy, create_experiment=False, read_only=True)
    before = local_pair_dir("champion", registry_copy)
    target = "2" if resolve_pair("champion", registry_copy).ref.attrition_version == "1" else "1"
    set_pair_alias(tracking, "champion", load_ref(tracking, target))
    after = local_pair_dir("champion", registry_copy)
    assert after != before
    assert after == local_pair_dir(target, registry_copy)
    _same_pair(
        local_pair("champion", registry_copy), resolve_pair("champion", registry_copy), tmp_path
    )


@pytest.mark.parametrize(
    "ref", ["no-such-alias", "99", "models:/forecast-attrition@champion", "0" * 32, ""]
)
def test_what_the_local_path_cannot_tell_is_left_to_mlflow(registry_copy: str, ref: str) -> None:
    assert local_pair_dir(ref, registry_copy) is None


def test_a_server_or_a_missing_store_is_left_to_mlflow(tmp_path: Path) -> None:
    assert local_pair_dir("champion", "http://127.0.0.1:9") is None
    missing = tmp_path / "no" / "mlflow.db"
    assert local_pair_dir("champion", f"sqlite:///{missing}") is None
    assert not missing.parent.exists()  # read-only: never creates a store


def test_what_if_on_a_local_store_never_imports_mlflow(trained_org, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from forecast.cli import main\n"
        f"code = main(['what-if', '--data', {str(trained_org.data)!r}, '--team', '007', "
        "'--set', 'after_hours_ratio=0.08', '--json'])\n"
        "print('mlflow imported:', 'mlflow' in sys.modules)\n"
        "sys.exit(code)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**_env(), "MLFLOW_TRACKING_URI": trained_org.tracking_uri},
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "mlflow imported: False" in proc.stdout


def test_the_side_process_answers_and_tags_as_mlflow_does(registry_copy: str) -> None:
    from mlflow import MlflowClient

    side = RegistrySide("champion", registry_copy)
    try:
        answer = side.answer()
        resolved = resolve_pair("champion", registry_copy)
        assert answer.ref == resolved.ref
        assert _files(answer.pair_dir) == _files(local_pair_dir("champion", registry_copy))
        side.tag("forecast-attrition", answer.ref.attrition_version, answer.ref.run_id, "k", "v")
    finally:
        side.close()
    assert not answer.pair_dir.exists()  # its folder goes with it
    client = MlflowClient(tracking_uri=registry_copy, registry_uri=registry_copy)
    version = client.get_model_version("forecast-attrition", answer.ref.attrition_version)
    assert version.tags["k"] == "v"
    assert client.get_run(answer.ref.run_id).data.tags["k"] == "v"


def test_the_side_process_raises_what_mlflow_raised(registry_copy: str) -> None:
    side = RegistrySide("no-such-alias", registry_copy)
    try:
        with pytest.raises(ModelError, match="no model registered under alias no-such-alias"):
            side.answer()
    finally:
        side.close()


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
