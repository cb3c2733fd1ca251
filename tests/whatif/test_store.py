"""Stored what-if fits: made once, saved with the pair byte for byte, reused by the engine for a
what-if as of their month or later, never for an earlier month."""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from forecast.data.contract import latest_complete_month, tables_from_frames
from forecast.data.months import month_str
from forecast.errors import ConfigError, ModelError
from forecast.features.specs import load_specs
from forecast.whatif import engine as effects
from forecast.whatif.engine import (
    SETTINGS_ADDED_LATER,
    CausalEngine,
    EngineSettings,
    settings_dict,
)
from forecast.whatif.store import (
    MANIFEST,
    FitJob,
    fit_metrics,
    load_fits,
    save_fits,
    what_if_signals,
)

SIGNAL = "after_hours_ratio"
# The shipped settings with a short bootstrap: the store does not care how long a fit took.
FAST = dataclasses.replace(EngineSettings(), bootstrap=40)


@dataclass
class Small:
    tables: object
    specs: object
    latest: pd.Period
    teams: list[str]
    fits: dict  # signal -> StoredFit, made by FitJob in this process
    fresh: pd.DataFrame  # the estimate of an engine that fits (no stored fit)


def teams_at(tables, month: pd.Period) -> list[str]:
    w = tables.workload
    return sorted(w.loc[w["month"] == month, "team_id"].astype(str).unique())[:4]


@pytest.fixture(scope="module")
def small() -> Small:
    from forecast.simulate import SimConfig, simulate

    result = simulate(SimConfig(n_teams=40, n_months=30, seed=11, compute_truth=False))
    tables = tables_from_frames(result.frames)
    specs = load_specs()
    latest = latest_complete_month(tables)
    fits, skipped = FitJob(tables, specs, [SIGNAL], 3, settings=FAST, workers=1).wait()
    assert skipped == {}
    teams = teams_at(tables, latest)
    fresh = CausalEngine(specs=specs, settings=FAST).estimate(tables, None, teams, SIGNAL, 0.05)
    return Small(tables, specs, latest, teams, fits, fresh)


def _no_fitting(*_args, **_kwargs):
    raise AssertionError("the engine fitted although a stored fit could answer")


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_stored_fit_records_the_month_and_horizon_of_the_fit(small):
    stored = small.fits[SIGNAL]
    assert stored.as_of == month_str(small.latest) and stored.horizon == 3
    assert stored.fit.signal == SIGNAL and stored.spec_hash == small.specs.hash()


def test_round_trip_gives_the_estimate_of_a_fresh_fit(small, tmp_path, monkeypatch):
    save_fits(tmp_path / "fits", small.fits)
    loaded = load_fits(tmp_path / "fits")
    assert set(loaded) == {SIGNAL} and loaded[SIGNAL].as_of == month_str(small.latest)
    monkeypatch.setattr(effects, "fit_effect", _no_fitting)
    engine = CausalEngine(specs=small.specs, settings=FAST, stored=loaded)
    # No pair: the before values come from the fit's own (round-tripped) LightGBM boosters.
    got = engine.estimate(small.tables, None, small.teams, SIGNAL, 0.05)
    pd.testing.assert_frame_equal(got, small.fresh, check_exact=True)


def test_a_later_as_of_reuses_the_stored_fit(small, monkeypatch):
    earlier = dataclasses.replace(small.fits[SIGNAL], as_of=month_str(small.latest - 2))
    monkeypatch.setattr(effects, "fit_effect", _no_fitting)
    engine = CausalEngine(specs=small.specs, settings=FAST, stored={SIGNAL: earlier})
    got = engine.estimate(small.tables, None, small.teams, SIGNAL, 0.05, small.latest)
    pd.testing.assert_frame_equal(got, small.fresh, check_exact=True)


def test_an_as_of_before_the_stored_month_refits(small, monkeypatch, caplog):
    fitted: list[str] = []
    real = effects.fit_effect

    def counting(frame, signal, *args, **kwargs):
        fitted.append(signal)
        return real(frame, signal, *args, **kwargs)

    monkeypatch.setattr(effects, "fit_effect", counting)
    month = small.latest - 2
    engine = CausalEngine(specs=small.specs, settings=FAST, stored=small.fits)
    with caplog.at_level(logging.INFO, logger="forecast"):
        got = engine.estimate(
            small.tables, None, teams_at(small.tables, month), SIGNAL, 0.05, month
        )
    assert fitted == [SIGNAL]
    assert (got["as_of"] == month_str(month)).all()
    assert any("refitting" in r.getMessage() and "leak" in r.getMessage() for r in caplog.records)


def test_refusal_says_why_a_stored_fit_cannot_answer(small):
    stored = small.fits[SIGNAL]
    assert stored.refusal(small.latest, 3, FAST, small.specs.hash()) is None
    assert stored.refusal(small.latest + 5, 3, FAST) is None
    assert "horizon" in stored.refusal(small.latest, 6, FAST)
    assert "leak" in stored.refusal(small.latest - 1, 3, FAST)
    assert "settings" in stored.refusal(small.latest, 3, EngineSettings())
    assert "specs" in stored.refusal(small.latest, 3, FAST, "another-hash")


# Each setting added after fits were first stored, and another value of it.
ADDED_LATER_CASES = [
    ("csat_survey", "engagement"),
    ("concurrent_months", True),
    ("csat_controls", "all"),
    ("effect_floor", 0.05),
    ("csat_floor", 0.3),
]


def test_every_setting_added_later_is_checked_below():
    assert set(SETTINGS_ADDED_LATER) == {setting for setting, _ in ADDED_LATER_CASES}


@pytest.mark.parametrize(("setting", "other"), ADDED_LATER_CASES)
def test_a_fit_stored_before_a_setting_existed_answers_at_its_old_value(small, setting, other):
    # A fit made when the setting did not exist yet: at its old value, stored without it.
    old = dataclasses.replace(FAST, **{setting: SETTINGS_ADDED_LATER[setting]})
    stored = dataclasses.replace(small.fits[SIGNAL], settings=settings_dict(old))
    older = dataclasses.replace(
        stored, settings={k: v for k, v in stored.settings.items() if k != setting}
    )
    assert older.refusal(small.latest, 3, old) is None
    changed = dataclasses.replace(old, **{setting: other})
    assert "settings" in older.refusal(small.latest, 3, changed)


def test_saving_twice_gives_byte_identical_files(small, tmp_path):
    save_fits(tmp_path / "a", small.fits)
    save_fits(tmp_path / "b", small.fits)
    save_fits(tmp_path / "c", load_fits(tmp_path / "a"))
    first = _files(tmp_path / "a")
    assert set(first) == {MANIFEST, f"{SIGNAL}.json"}
    assert _files(tmp_path / "b") == first
    assert _files(tmp_path / "c") == first


def test_fits_of_an_engine_with_other_fields_are_not_loaded(small, tmp_path):
    folder = save_fits(tmp_path / "fits", small.fits)
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["fields"] = [*manifest["fields"], "a_field_this_engine_lacks"]
    (folder / MANIFEST).write_text(json.dumps(manifest))
    assert load_fits(folder) == {}
    assert load_fits(tmp_path / "nothing-here") is None


def test_a_damaged_fit_is_a_one_line_model_error(small, tmp_path):
    folder = save_fits(tmp_path / "fits", small.fits)
    path = folder / f"{SIGNAL}.json"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ModelError, match="cannot load the stored what-if fit") as info:
        load_fits(folder)
    assert "\n" not in str(info.value)


def test_auto_is_every_settable_signal_and_a_list_is_checked(small):
    from forecast.whatif.signals import settable_signals

    auto = what_if_signals(small.tables, small.specs, "auto")
    assert auto == sorted(settable_signals(small.tables, small.specs)) and SIGNAL in auto
    assert what_if_signals(small.tables, small.specs, [SIGNAL, SIGNAL]) == [SIGNAL]
    with pytest.raises(ConfigError, match=r"^`what_if.signals` .* protected attribute"):
        what_if_signals(small.tables, small.specs, ["gender"])


def test_a_signal_with_too_little_data_is_skipped_not_raised():
    from forecast.simulate import SimConfig, simulate

    result = simulate(SimConfig(n_teams=5, n_months=12, seed=3, compute_truth=False))
    tables = tables_from_frames(result.frames)
    fits, skipped = FitJob(tables, load_specs(), [SIGNAL], 3, settings=FAST, workers=1).wait()
    assert fits == {} and "too little history" in skipped[SIGNAL]


def test_mlflow_metrics_are_the_fits_own_metrics(small):
    metrics = fit_metrics(small.fits)
    own = small.fits[SIGNAL].fit.metrics()
    assert metrics == {f"whatif.{k}.{SIGNAL}": float(v) for k, v in own.items()}
    assert {
        "whatif.theta.after_hours_ratio",
        "whatif.theta_p10.after_hours_ratio",
        "whatif.theta_p90.after_hours_ratio",
    } <= set(metrics)


def test_a_registered_pair_saves_its_fits_again_byte_for_byte(trained_org, tmp_path):
    from forecast.mlops.registry import EFFECTS_DIR, load_bundle, resolve_pair, save_bundle

    resolved = resolve_pair("champion", trained_org.tracking_uri)
    assert set(resolved.what_if_fits) == {SIGNAL}
    save_bundle(tmp_path / "a", resolved.pair, resolved.what_if_fits)
    save_bundle(tmp_path / "b", *load_bundle(tmp_path / "a"))
    assert _files(tmp_path / "a" / EFFECTS_DIR) == _files(tmp_path / "b" / EFFECTS_DIR)
    save_bundle(tmp_path / "old", resolved.pair, None)
    assert not (tmp_path / "old" / EFFECTS_DIR).exists()
    assert load_bundle(tmp_path / "old")[1] is None


def _wait_for(condition, seconds: float = 120.0) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_fits_made_in_worker_processes_are_the_fits_made_in_process(small, tmp_path):
    signals = [SIGNAL, "cases_per_head"]
    files, fitted_by = {}, {}
    # 1 CPU: all in this process; 2: one worker and this process; 3: two workers.
    for cpus in (1, 2, 3):
        with FitJob(small.tables, small.specs, signals, 3, settings=FAST, workers=cpus) as job:
            if cpus == 2:  # the worker claims its first signal, then this process helps
                _wait_for(lambda job=job: "worker 1" in job.claims().values())
            if cpus == 3:  # the workers claim both (which worker takes which may vary)
                _wait_for(lambda job=job: None not in job.claims().values())
            fits, skipped = job.wait()
            fitted_by[cpus] = sorted(job.claims().values())
        assert skipped == {} and list(fits) == signals
        files[cpus] = _files(save_fits(tmp_path / str(cpus), fits))
    assert fitted_by[1] == ["main", "main"] and fitted_by[2] == ["main", "worker 1"]
    assert all(who.startswith("worker") for who in fitted_by[3])
    assert files[1] == files[2] == files[3]


def test_a_failure_while_fits_run_ends_the_worker_processes(small):
    import multiprocessing

    signals = [SIGNAL, "cases_per_head"]
    # Children started by earlier tests' session fixtures (e.g. the served view's what-if
    # worker) are not this job's: count only the processes the job starts.
    before = set(multiprocessing.active_children())
    with (
        pytest.raises(RuntimeError, match="backtest failed"),
        FitJob(small.tables, small.specs, signals, 3, settings=FAST, workers=3) as job,
    ):
        workers = set(multiprocessing.active_children()) - before
        assert len(workers) == 2
        folder = job._folder  # the data the workers read, in a private folder
        assert folder is not None and folder.is_dir()
        raise RuntimeError("backtest failed")
    assert not workers & set(multiprocessing.active_children())
    assert not folder.exists()


def test_a_stopped_job_does_not_wait_and_a_finished_one_answers_again(small):
    job = FitJob(small.tables, small.specs, [SIGNAL], 3, settings=FAST, workers=1)
    job.stop()  # e.g. a failure before the caller waited
    with pytest.raises(RuntimeError, match="has stopped"):
        job.wait()
    job = FitJob(small.tables, small.specs, [SIGNAL], 3, settings=FAST, workers=1)
    first = job.wait()
    assert job.wait() is first


# Worker processes that die or fail: each case runs in its own Python with a time limit, so a
# hang fails the test instead of stalling the suite.
_SCRIPT_HEAD = """
import dataclasses, multiprocessing, os, signal, sys, time
from forecast.data.contract import tables_from_frames
from forecast.whatif.engine import EngineSettings
from forecast.whatif.store import FitJob
from forecast.errors import ModelError
from forecast.simulate import SimConfig, simulate
from forecast.features.specs import load_specs

FAST = dataclasses.replace(EngineSettings(), bootstrap=40)
SIGNALS = ["after_hours_ratio", "cases_per_head"]


def data():
    sim = simulate(SimConfig(n_teams=40, n_months=30, seed=11, compute_truth=False))
    return tables_from_frames(sim.frames), load_specs()


def wait_for(condition):
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
"""


def _run_script(tmp_path: Path, body: str, timeout: float = 120):
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "script.py"
    script.write_text(_SCRIPT_HEAD + textwrap.dedent(body), encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=timeout, cwd=tmp_path
    )


def test_a_worker_killed_mid_fit_is_a_model_error_not_a_hang(tmp_path):
    result = _run_script(
        tmp_path,
        """
        if __name__ == "__main__":
            tables, specs = data()
            with FitJob(tables, specs, SIGNALS, 3, settings=FAST, workers=2) as job:
                wait_for(lambda: job.claims()[SIGNALS[0]] == "worker 1")  # it is fitting
                os.kill(multiprocessing.active_children()[0].pid, signal.SIGKILL)
                try:
                    job.wait()
                except ModelError as exc:
                    print("ModelError:", exc)
                print("claims:", job.claims())
            print("children left:", len(multiprocessing.active_children()))
            print("folder left:", job._folder)
        """,
    )
    assert result.returncode == 0, result.stderr
    assert (
        "ModelError: the process fitting the what-if engine for after_hours_ratio ended "
        "before it finished (exit code -9"
    ) in result.stdout
    # This process fitted the other signal meanwhile, then found the worker gone.
    assert "claims: {'after_hours_ratio': 'worker 1', 'cases_per_head': 'main'}" in result.stdout
    assert "children left: 0" in result.stdout and "folder left: None" in result.stdout


def test_a_worker_that_ends_after_handing_back_its_fit_loses_nothing(tmp_path):
    result = _run_script(
        tmp_path,
        """
        if __name__ == "__main__":
            from forecast.whatif.store import _result_path
            tables, specs = data()
            with FitJob(tables, specs, SIGNALS[:1], 3, settings=FAST, workers=2) as job:
                wait_for(lambda: _result_path(job._folder, 0).exists())
                for child in multiprocessing.active_children():
                    os.kill(child.pid, signal.SIGKILL)
                fits, skipped = job.wait()
            print("fitted:", sorted(fits), "by", job.claims())
            print("children left:", len(multiprocessing.active_children()))
        """,
    )
    assert result.returncode == 0, result.stderr
    assert "fitted: ['after_hours_ratio'] by {'after_hours_ratio': 'worker 1'}" in result.stdout
    assert "children left: 0" in result.stdout


def test_a_script_without_a_main_guard_is_fitted_here_with_a_warning(tmp_path):
    # Spawned workers import the script again; without the guard they cannot start.
    result = _run_script(
        tmp_path,
        """
        def when_the_worker_is_gone(*_progress):  # so its exit is seen, however slow it was
            wait_for(lambda: not multiprocessing.active_children())

        tables, specs = data()
        fits, skipped = FitJob(tables, specs, SIGNALS, 3, settings=FAST, workers=2).wait(
            when_the_worker_is_gone)
        print("fitted:", sorted(fits), skipped)
        """,
    )
    assert result.returncode == 0, result.stderr
    assert "fitted: ['after_hours_ratio', 'cases_per_head'] {}" in result.stdout
    assert "what-if worker process 1 ended before it started" in result.stderr
    assert '`if __name__ == "__main__":`' in result.stderr


class Unpicklable(Exception):
    def __init__(self, a, b):  # pickles, but does not unpickle (one argument is saved)
        super().__init__(f"{a}: {b}")


def test_a_failure_in_a_worker_comes_back_as_text_and_stops_the_claims(
    small, monkeypatch, tmp_path
):
    import multiprocessing
    import os
    import pickle

    from forecast.whatif import store as effects_store

    def broken_fit(*_args, **_kwargs):
        raise Unpicklable("engine", "out of luck")

    monkeypatch.setattr(CausalEngine, "fit", broken_fit)
    ctx = multiprocessing.get_context("spawn")
    claims, stopping, loaded = ctx.Array("i", 2), ctx.Value("b", 0), ctx.Value("i", 0)
    signals = [SIGNAL, "cases_per_head"]
    with open(tmp_path / "inputs.pickle", "wb") as handle:
        pickle.dump((small.tables, small.specs, FAST, 3, signals), handle)
    # The worker's loop, run here: it claims the first signal, fails, and claims no more.
    effects_store._work(1, 1, str(tmp_path), claims, stopping, loaded, os.getppid())
    assert list(claims[:]) == [1, 0] and stopping.value == 1
    assert not (tmp_path / "inputs.pickle").exists()  # its only reader has read it
    error = json.loads((tmp_path / "result-0.json").read_text())["error"]
    assert "fitting the what-if engine for after_hours_ratio failed in a worker" in error
    assert "Unpicklable: engine: out of luck" in error
