"""Databases for the tests of `--data URL`: a real PostgreSQL server started from the Debian
binaries (initdb + pg_ctl in a temporary folder, on a loopback port, stopped at the end), and
helpers that put a contract data directory into a database with real column types (DATE,
double precision, text ids) so that the same rows can be read from both.

As root, the server runs as the `postgres` OS user (PostgreSQL refuses root) in a temporary
folder owned by it; as another user, as that user.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from forecast.data.tables import TABLE_NAMES

USER, PASSWORD = "forecast", "s3cret-Pa55"
TEXT_COLUMNS = ("employee_id", "team_id", "exit_type", "exit_reason", "month")
DATE_COLUMNS = ("hire_date", "exit_date")


def postgres_bin() -> Path | None:
    """The newest PostgreSQL server binaries on this machine (Debian keeps them off PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _version(path: str) -> int:
    part = Path(path).parent.parent.name
    return int(part) if part.isdigit() else 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1:port with one password user, `forecast`."""

    bin: Path
    folder: Path
    port: int

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def url(self, database: str, *, password: bool = False) -> str:
        secret = f":{PASSWORD}" if password else ""
        return f"postgresql+psycopg://{USER}{secret}@127.0.0.1:{self.port}/{database}"

    def admin_engine(self, database: str = "postgres") -> sa.Engine:
        return sa.create_engine(
            self.url(database, password=True), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
        )

    def create_database(self, name: str) -> str:
        """A fresh database; returns its URL without the password."""
        engine = self.admin_engine()
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url(name)


def _as_owner(owner: str | None) -> list[str]:
    return ["runuser", "-u", owner, "--"] if owner else []


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a cluster (initdb, pg_ctl start -w), yield it, stop it and remove its folder."""
    bin_dir = postgres_bin()
    assert bin_dir is not None
    owner = "postgres" if os.geteuid() == 0 else None
    folder = Path(tempfile.mkdtemp(prefix="forecast-pg-"))
    if owner:
        entry = pwd.getpwnam(owner)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    run = _as_owner(owner)
    server = PostgresServer(bin_dir, folder, free_port())
    pwfile = folder / "pw"
    pwfile.write_text(PASSWORD + "\n", encoding="utf-8")
    if owner:
        os.chown(pwfile, entry.pw_uid, entry.pw_gid)
    started = False
    try:
        subprocess.run(
            [
                *run,
                str(bin_dir / "initdb"),
                "-D",
                str(server.data),
                "-U",
                USER,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        options = f"-p {server.port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            [
                *run,
                str(bin_dir / "pg_ctl"),
                "-D",
                str(server.data),
                "-o",
                options,
                "-l",
                str(folder / "log"),
                "-w",
                "-t",
                "60",
                "start",
            ],
            check=True,
            capture_output=True,
            timeout=90,
        )
        started = True
        yield server
    finally:
        if started:
            subprocess.run(
                [*run, str(bin_dir / "pg_ctl"), "-D", str(server.data), "-m", "fast", "stop"],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- loading data


def typed_frames(directory: Path) -> dict[str, pd.DataFrame]:
    """A contract directory's CSV files with database types: ids and months as text, dates as
    dates, every other column a number when all its cells are (parsed as the contract parses
    them, so the floats are the same), else text."""
    frames = {}
    for name in TABLE_NAMES:
        path = directory / f"{name}.csv"
        if not path.exists():
            continue
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
        frame = pd.DataFrame(index=raw.index)
        for col in raw.columns:
            cells = pd.Series([None if v == "" else v for v in raw[col].tolist()], dtype=object)
            if col in DATE_COLUMNS:
                frame[col] = pd.Series(
                    [None if v is None else dt.date.fromisoformat(v) for v in cells], dtype=object
                )
            elif col in TEXT_COLUMNS or col.endswith("_id"):
                frame[col] = cells
            else:
                numbers = pd.to_numeric(cells, errors="coerce").astype("float64")
                frame[col] = numbers if numbers.notna().sum() == cells.notna().sum() else cells
        frames[name] = frame
    return frames


def load_frames(url: str, frames: dict[str, pd.DataFrame], *, replace: bool = True) -> None:
    """Write each frame as a table: Python dates as DATE, numbers as double precision, any
    other column as text."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        for name, frame in frames.items():
            dtypes: dict[str, sa.types.TypeEngine] = {}
            for col in frame.columns:
                if pd.api.types.is_numeric_dtype(frame[col]):
                    continue
                values = frame[col].dropna()
                dates = all(isinstance(v, dt.date) for v in values)
                known = len(values) > 0 or col in DATE_COLUMNS
                dtypes[col] = sa.Date() if dates and known else sa.Text()
            frame.to_sql(
                name,
                conn,
                index=False,
                if_exists="replace" if replace else "append",
                dtype=dtypes,
            )
    engine.dispose()
