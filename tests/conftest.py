"""Shared fixtures. Add yours; do not remove others'."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

# What-if's cache of month inputs (forecast.data.cache): a folder of this test process, never
# the user's ~/.cache. Keys are made from the data's bytes, so sharing it between tests only
# ever gives the answer the long way gives (tests/commands/test_what_if_cache.py checks that).
os.environ["FORECAST_CACHE_DIR"] = tempfile.mkdtemp(prefix="forecast-test-cache-")
atexit.register(shutil.rmtree, os.environ["FORECAST_CACHE_DIR"], ignore_errors=True)

# A tiny model: few trees, small leaves, so the whole scoring suite trains once in seconds.
# The what-if engine is fitted for one signal only (each takes about a second here): what-ifs
# of after_hours_ratio use the stored fit, the others refit as a pair without fits would.
TINY_MODEL = {
    "num_boost_round": 25,
    "early_stopping_rounds": 5,
    "attrition": {"min_data_in_leaf": 20},
    "csat": {"min_data_in_leaf": 20},
    "what_if": {"signals": ["after_hours_ratio"]},
}


@dataclass
class TrainedOrg:
    """A small simulated organisation, written as CSV, with a pair trained and registered in a
    temporary MLflow store (alias champion)."""

    data: Path
    tracking_uri: str
    root: Path
    horizon: int
    latest: str  # latest complete month of `data`


@pytest.fixture(scope="session")
def trained_org(tmp_path_factory: pytest.TempPathFactory) -> TrainedOrg:
    from forecast.commands.train import run_training
    from forecast.data.contract import latest_complete_month, load_tables
    from forecast.data.months import month_str
    from forecast.models.config import DEFAULT_CONFIG_PATH
    from forecast.simulate import SimConfig, simulate, write_simulation

    root = tmp_path_factory.mktemp("scoring_org")
    result = simulate(SimConfig(n_teams=40, n_months=30, seed=11, compute_truth=False))
    # Ids like 007 must survive as text all the way to the outputs.
    emp = result.frames["employees"]
    first_team = sorted(emp["team_id"].unique())[0]
    for frame in result.frames.values():
        if frame is not None and "team_id" in frame:
            frame["team_id"] = frame["team_id"].replace({first_team: "007"})
    data = root / "data"
    write_simulation(result, data)

    config = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
    for key, value in TINY_MODEL.items():
        if isinstance(value, dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    config_path = root / "model.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")

    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    outcome = run_training(data, tracking_uri=uri, config_path=config_path)
    latest = month_str(latest_complete_month(load_tables(data)))
    return TrainedOrg(
        data=data, tracking_uri=uri, root=root, horizon=int(outcome.backtest.horizon), latest=latest
    )


# --------------------------------------------------------------------------- models / backtest
# One simulated organisation with known causes, modelled once per session (tests/test_models.py,
# tests/test_backtest.py). Fast settings: a higher learning rate and early stopping cap the trees.
FAST_MODEL = {
    "num_boost_round": 300,
    "early_stopping_rounds": 20,
    "attrition": {"learning_rate": 0.1},
    "csat": {"learning_rate": 0.1},
}
SIM_TEAMS, SIM_MONTHS, SIM_SEED = 150, 36, 7


@dataclass
class ModelledOrg:
    """A simulated organisation with its truth, panel, targets, backtest and trained pair."""

    truth: object  # pd.DataFrame: the simulator's true expected leavers per team and month
    tables: object
    panel: object
    targets: object
    config: object  # forecast.models.ModelConfig
    backtest: object  # forecast.backtest.BacktestResult
    pair: object  # forecast.models.ModelPair
    employees: object


@pytest.fixture(scope="session")
def fast_config():
    from forecast.models.config import load_model_config

    base = load_model_config()
    changes = {
        k: ({**getattr(base, k), **v} if isinstance(v, dict) else v) for k, v in FAST_MODEL.items()
    }
    return base.replace(**changes)


@pytest.fixture(scope="session")
def modelled_org(fast_config) -> ModelledOrg:
    from forecast.data import contract
    from forecast.features import panel as features
    from forecast.features import specs
    from forecast.features.targets import build_targets
    from forecast.models.backtest import run_backtest
    from forecast.models.pair import train_pair
    from forecast.simulate import SimConfig, simulate

    result = simulate(SimConfig(n_teams=SIM_TEAMS, n_months=SIM_MONTHS, seed=SIM_SEED))
    tables = contract.tables_from_frames(result.frames)
    spec = specs.load_specs()
    panel = features.build_panel(tables, spec)
    targets = build_targets(tables, fast_config.horizon)
    backtest = run_backtest(panel, targets, fast_config, truth=result.truth)
    pair = train_pair(panel, targets, fast_config, spec_hash=spec.hash(), backtest=backtest)
    return ModelledOrg(
        truth=result.truth,
        tables=tables,
        panel=panel,
        targets=targets,
        config=fast_config,
        backtest=backtest,
        pair=pair,
        employees=result.frames["employees"],
    )


# --------------------------------------------------------------------------- tracking / registry
# One small organisation trained twice into one SQLite MLflow store (tests/test_tracking.py,
# tests/test_training.py, tests/test_promote.py): the first pair becomes champion + challenger,
# the second challenger only. Tiny trees and two OOF blocks keep both trainings to seconds.
# No what-if fits: these pairs stand for pairs trained before fits were stored with them.
REGISTRY_MODEL = {
    "num_boost_round": 15,
    "early_stopping_rounds": 5,
    "oof_blocks": 2,
    "attrition": {"min_data_in_leaf": 30},
    "csat": {"min_data_in_leaf": 30},
    "what_if": {"signals": []},
}


@dataclass
class RegistryOrg:
    data: Path
    config_path: Path
    store: Path  # folder holding mlflow.db and artifacts/
    tracking_uri: str
    first: object  # forecast.training.TrainingOutcome
    second: object
    first_aliases: list[str]  # aliases of the first pair right after the first train


@pytest.fixture(scope="session")
def registry_org(tmp_path_factory: pytest.TempPathFactory) -> RegistryOrg:
    from forecast.commands.train import run_training
    from forecast.simulate import SimConfig, simulate, write_simulation

    root = tmp_path_factory.mktemp("registry_org")
    result = simulate(SimConfig(n_teams=30, n_months=36, seed=5, compute_truth=False))
    data = root / "data"
    write_simulation(result, data)
    config_path = root / "model.yaml"
    config_path.write_text(yaml.safe_dump(REGISTRY_MODEL), encoding="utf-8")
    store = root / "mlruns"
    uri = f"sqlite:///{store / 'mlflow.db'}"
    first = run_training(data, tracking_uri=uri, config_path=config_path)
    first_aliases = list(first.pair.aliases)
    second = run_training(data, tracking_uri=uri, config_path=config_path)
    return RegistryOrg(
        data=data,
        config_path=config_path,
        store=store,
        tracking_uri=uri,
        first=first,
        second=second,
        first_aliases=first_aliases,
    )


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite database with its schema migrations applied (they take seconds,
    so tests copy this instead of migrating their own)."""
    from forecast.mlops.tracking import connect

    db = tmp_path_factory.mktemp("migrated") / "mlflow.db"
    connect(f"sqlite:///{db}", create_experiment=False)
    return db


@pytest.fixture
def empty_store(migrated_db: Path, tmp_path: Path) -> str:
    """A tracking URI of an empty, private SQLite store under tmp_path/mlruns."""
    import shutil

    db = tmp_path / "mlruns" / "mlflow.db"
    db.parent.mkdir()
    shutil.copy(migrated_db, db)
    return f"sqlite:///{db}"


@pytest.fixture
def registry_copy(registry_org: RegistryOrg, tmp_path: Path) -> str:
    """A private copy of the registry database (artifacts stay shared, read-only), so a test
    may move aliases without disturbing the others. Returns its tracking URI."""
    import shutil

    db = tmp_path / "mlruns" / "mlflow.db"
    db.parent.mkdir()
    shutil.copy(registry_org.store / "mlflow.db", db)
    return f"sqlite:///{db}"


# --------------------------------------------------------------------------- the slow marker
# Tests that train models carry `slow` (still run by `make test`): those that use a fixture
# which trains, and those in modules that train or fit the what-if engine themselves.
TRAINING_FIXTURES = {
    "trained_org",
    "modelled_org",
    "registry_org",
    "registry_copy",
    "pg_trained",
}
TRAINING_MODULES = {
    "tests/commands/test_backtest.py",
    "tests/commands/test_promote.py",
    "tests/commands/test_train.py",
    "tests/whatif/test_engine.py",
    "tests/whatif/test_store.py",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(str(config.rootpath))
    for item in items:
        module = Path(str(item.fspath)).resolve().relative_to(root).as_posix()
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & TRAINING_FIXTURES or module in TRAINING_MODULES:
            item.add_marker(pytest.mark.slow)


# --------------------------------------------------------------------------- databases (issue 19)
# One PostgreSQL server per session (tests/databases.py), one small organisation written as a
# directory and loaded, with real column types, into PostgreSQL, SQLite and DuckDB (over
# Parquet files), and one tiny training read from PostgreSQL that the database tests share.


@dataclass
class DbOrg:
    """The same rows as a CSV directory (no meta.json: a database has none), an SQLite file, a
    source file for DuckDB reading the rows from Parquet files, and (pg_org) PostgreSQL."""

    data: Path
    sqlite: str  # URL
    duckdb: Path  # source file
    latest: str
    frames: dict  # the typed frames loaded into the databases
    postgres: str = ""  # URL without the password (FORECAST_DB_PASSWORD has it)
    server: object = None  # tests.databases.PostgresServer


@pytest.fixture(scope="session")
def db_org(tmp_path_factory: pytest.TempPathFactory) -> DbOrg:
    from forecast.data.contract import latest_complete_month, load_tables
    from forecast.data.months import month_str
    from forecast.simulate import SimConfig, simulate, write_simulation
    from tests.databases import load_frames, typed_frames

    root = tmp_path_factory.mktemp("db_org")
    result = simulate(SimConfig(n_teams=16, n_months=30, seed=13, compute_truth=False))
    first_team = sorted(result.frames["employees"]["team_id"].unique())[0]
    for frame in result.frames.values():
        if frame is not None and "team_id" in frame:
            frame["team_id"] = frame["team_id"].replace({first_team: "007"})
    data = root / "data"
    write_simulation(result, data)
    (data / "meta.json").unlink()
    frames = typed_frames(data)
    sqlite = f"sqlite:///{root / 'hr.db'}"
    load_frames(sqlite, frames)
    lake = root / "lake"
    lake.mkdir()
    queries = {}
    for name, frame in frames.items():
        frame.to_parquet(lake / f"{name}.parquet", index=False)
        queries[name] = {"query": f"SELECT * FROM read_parquet('{lake / name}.parquet')"}
    duckdb = root / "lake.yaml"
    duckdb.write_text(
        yaml.safe_dump({"url": "duckdb:///:memory:", "tables": queries}), encoding="utf-8"
    )
    latest = month_str(latest_complete_month(load_tables(data)))
    return DbOrg(data=data, sqlite=sqlite, duckdb=duckdb, latest=latest, frames=frames)


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server on a loopback port for the session, with FORECAST_DB_PASSWORD set."""
    from tests.databases import PASSWORD, postgres_bin, postgres_server

    if postgres_bin() is None:
        pytest.skip(
            "no PostgreSQL server binaries (initdb) on this machine: `make test` installs the "
            "Debian package postgresql"
        )
    with pytest.MonkeyPatch.context() as patch, postgres_server() as server:
        patch.setenv("FORECAST_DB_PASSWORD", PASSWORD)
        yield server


@pytest.fixture(scope="session")
def pg_org(db_org: DbOrg, postgres) -> DbOrg:
    from tests.databases import load_frames

    url = postgres.create_database("org")
    load_frames(postgres.url("org", password=True), db_org.frames)
    return DbOrg(**{**db_org.__dict__, "postgres": url, "server": postgres})


@dataclass
class DbTrained:
    org: DbOrg
    tracking_uri: str
    store: Path
    config_path: Path
    outcome: object  # forecast.commands.train.TrainingOutcome


@pytest.fixture(scope="session")
def pg_trained(pg_org: DbOrg, tmp_path_factory: pytest.TempPathFactory) -> DbTrained:
    """TINY_MODEL trained once from PostgreSQL, the password in the URL (a local test
    database), so the tests can check it went nowhere."""
    from forecast.commands.train import run_training
    from forecast.models.config import DEFAULT_CONFIG_PATH

    root = tmp_path_factory.mktemp("pg_trained")
    config = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
    for key, value in TINY_MODEL.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) else value
    config_path = root / "model.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    store = root / "mlruns"
    uri = f"sqlite:///{store / 'mlflow.db'}"
    outcome = run_training(
        pg_org.server.url("org", password=True), tracking_uri=uri, config_path=config_path
    )
    return DbTrained(pg_org, uri, store, config_path, outcome)


# --------------------------------------------------------------------------- Spark (issue 19)
# One local Spark session for the whole run (tests/scoring/test_spark.py, the Spark tests of
# tests/commands/test_database.py): `scoring.spark.spark_session` uses the active session, so
# the engine's own runs share this JVM instead of starting one each (about 10-30 s apiece).


def spark_missing() -> str | None:
    import importlib.util
    import os
    import shutil

    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (pip install -e '.[spark]')"
    if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        return "Java is not installed (Spark needs Java 17)"
    return None


@pytest.fixture(scope="session")
def spark():
    """A local[2] session. Skipped without pyspark or Java, except under CI=true, where that is
    a failure: CI must install the extra. On tables of a few hundred rows Spark spends its time
    planning and compiling each query, not running it, so the session interprets expressions
    instead of generating code (`spark.sql.codegen.factoryMode=NO_CODEGEN`), plans each query
    once (adaptive execution off: it re-plans after every shuffle and runs each stage as a job
    of its own), and splits a shuffle into 2 partitions and the teams into 2 buckets
    (`spark.default.parallelism=1`; still more than one, so a transfer between teams of
    different buckets is exercised). The same results, the tests several times faster; the
    product's sessions keep Spark's defaults. Its JVM compiles with the quick JIT only and
    collects garbage serially (`-XX:TieredStopAtLevel=1 -XX:+UseSerialGC`): a short run on a
    small heap spends its CPU compiling Spark's planner otherwise."""
    import os

    why = spark_missing()
    if why is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but Spark cannot run: {why}")
        pytest.skip(why)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # loopback, whatever the network
    from forecast.scoring.spark import spark_session

    small = {
        "spark.sql.codegen.factoryMode": "NO_CODEGEN",
        "spark.sql.codegen.wholeStage": "false",
        "spark.sql.adaptive.enabled": "false",
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "1",
        "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
    }
    session = spark_session("local[2]", app_name="forecast-tests", conf=small)
    yield session
    session.stop()
