"""The account store of `forecast serve`: one SQLite file (`--users PATH`) holding the accounts
(name, role, scope, an argon2id hash of the password), recent failed sign-ins (for the lockout)
and the audit log (who signed in, viewed what, ran which what-if).

A password is never stored, logged or audited in clear: `add` and `set_password` keep only its
argon2id hash (OWASP's minimum parameters: 19 MiB, 2 passes, 1 lane, about 0.05 s a check), and
the audit log records events and their objects (a team, a scope, a what-if), never what was typed
into a password field. A failed sign-in for a name that has no account is audited without the
name (it may be a password typed into the wrong box).

The file is created by `forecast users add` with owner-only permissions; every other use needs
it to exist. All access goes through one connection guarded by a lock (the web app's worker
threads share it); WAL mode lets `forecast users audit` read while the server writes.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from forecast.errors import ConfigError, OutputError
from forecast.report.scope import Scope, parse_scope, scope_text

DEFAULT_USERS = "forecast-users.db"
ROLES = ("analyst", "leader")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
MIN_PASSWORD, MAX_PASSWORD = 8, 1024
LOCK_FAILURES = 5  # failed sign-ins within LOCK_SECONDS that lock an account
LOCK_SECONDS = 15 * 60
SCHEMA_VERSION = "1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY COLLATE NOCASE,
    role TEXT NOT NULL CHECK (role IN ('analyst', 'leader')),
    scope TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    password_changed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sign_in_failures (key TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS sign_in_failures_key ON sign_in_failures (key, at);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    username TEXT,
    action TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    address TEXT NOT NULL DEFAULT ''
);
"""


def hasher() -> PasswordHasher:
    """argon2id with OWASP's minimum parameters (m=19 MiB, t=2, p=1): a check costs about
    0.05 s, so a burst of sign-ins cannot starve a 2-core server; every hash records its own
    parameters, so raising them later re-hashes on the next sign-in."""
    return PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


@dataclass(frozen=True)
class User:
    name: str
    role: str
    scope: Scope  # empty for an analyst: the whole organisation
    created_at: str
    password_changed_at: str

    @property
    def is_analyst(self) -> bool:
        return self.role == "analyst"

    def describe_scope(self) -> str:
        return "whole organisation" if self.is_analyst else scope_text(self.scope)


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def check_name(name: str) -> str:
    name = str(name).strip()
    if not NAME.match(name):
        raise ConfigError(
            "A user name must be 1 to 128 characters: letters, digits and . _ @ + - (an "
            f"e-mail address works), starting with a letter or digit. Got {name!r} instead."
        )
    return name


def check_password(password: str) -> str:
    # Only the trailing newline of `echo secret |` is taken off: spaces may be meant.
    password = password.removesuffix("\n").removesuffix("\r")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ConfigError(
            f"A password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long. Got "
            f"{len(password)} characters instead."
        )
    return password


def check_role_scope(role: str, scopes: list[str]) -> tuple[str, Scope]:
    role = str(role).strip().lower()
    if role not in ROLES:
        raise ConfigError(f"`--role` must be analyst or leader. Got {role!r} instead.")
    scope = parse_scope(scopes)
    if role == "leader" and not scope:
        raise ConfigError(
            "A leader needs at least one `--scope KEY=VALUE` (e.g. --scope department=Sales): "
            "it is what they may see."
        )
    if role == "analyst" and scope:
        raise ConfigError(
            "An analyst sees the whole organisation: `--scope` is for leaders only (use "
            "`--role leader`)."
        )
    return role, scope


class UserStore:
    """Accounts, failed sign-ins and the audit log in one SQLite file."""

    def __init__(self, path: Path | str, *, create: bool = False) -> None:
        self.path = Path(os.path.abspath(path))
        if not self.path.is_file():
            if not create:
                raise ConfigError(
                    f"{self.path}: no user store here; create one with `forecast users add NAME "
                    f"--role analyst --password-stdin --users {self.path}`."
                )
            if not self.path.parent.is_dir():
                raise OutputError(f"{self.path.parent}: no such folder for the user store.")
            # Owner-only from the first byte: the hashes are not secret-free.
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            os.close(fd)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            with self._db:
                self._db.executescript(SCHEMA)
                self._db.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)",
                    (SCHEMA_VERSION,),
                )
        except sqlite3.DatabaseError as exc:
            raise ConfigError(
                f"{self.path}: not a user store of `forecast serve` ({exc})."
            ) from None
        self._lock = threading.Lock()
        self._hasher = hasher()
        # Checked instead of a real hash when the name has no account, so that an unknown name
        # takes as long to refuse as a wrong password.
        self._dummy = self._hasher.hash("no such account: this hash is never matched")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._db:
            yield self._db

    # ------------------------------------------------------------------ accounts

    def add(self, name: str, role: str, scopes: list[str], password: str) -> User:
        name = check_name(name)
        role, scope = check_role_scope(role, scopes)
        digest = self._hasher.hash(check_password(password))
        when = now_text()
        with self._tx() as db:
            if db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise ConfigError(
                    f"user {name!r} already exists in {self.path}; use `forecast users passwd` "
                    f"or remove it first."
                )
            db.execute(
                "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?)",
                (name, role, json.dumps([list(p) for p in scope]), digest, when, when),
            )
        self.audit(None, "user added", f"{name} ({role}, {self._scope_words(role, scope)})")
        return User(name, role, scope, when, when)

    @staticmethod
    def _scope_words(role: str, scope: Scope) -> str:
        return "whole organisation" if role == "analyst" else scope_text(scope)

    def remove(self, name: str) -> None:
        name = check_name(name)
        with self._tx() as db:
            if db.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount == 0:
                raise ConfigError(f"no user {name!r} in {self.path}.")
        self.audit(None, "user removed", name)

    def set_password(self, name: str, password: str) -> None:
        name = check_name(name)
        digest = self._hasher.hash(check_password(password))
        with self._tx() as db:
            changed = db.execute(
                "UPDATE users SET password_hash = ?, password_changed_at = ? WHERE name = ?",
                (digest, now_text(), name),
            ).rowcount
            if changed == 0:
                raise ConfigError(f"no user {name!r} in {self.path}.")
            db.execute("DELETE FROM sign_in_failures WHERE key = ?", (failure_key(name),))
        self.audit(None, "password changed", name)

    def get(self, name: str) -> User | None:
        if not isinstance(name, str) or not NAME.match(name):
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT name, role, scope, created_at, password_changed_at FROM users "
                "WHERE name = ?",
                (name,),
            ).fetchone()
        return _user(row) if row else None

    def users(self) -> list[User]:
        with self._lock:
            rows = self._db.execute(
                "SELECT name, role, scope, created_at, password_changed_at FROM users ORDER BY name"
            ).fetchall()
        return [_user(r) for r in rows]

    def check_password(self, name: str, password: str) -> User | None:
        """The user when `password` is theirs, else None; as slow for an unknown name as for a
        wrong password (one argon2 check either way)."""
        row = None
        if isinstance(name, str) and NAME.match(name):
            with self._lock:
                row = self._db.execute(
                    "SELECT name, role, scope, created_at, password_changed_at, password_hash "
                    "FROM users WHERE name = ?",
                    (name,),
                ).fetchone()
        digest = row[5] if row else self._dummy
        try:
            self._hasher.verify(digest, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if row is None:
            return None
        if self._hasher.check_needs_rehash(digest):
            with self._tx() as db:
                db.execute(
                    "UPDATE users SET password_hash = ? WHERE name = ?",
                    (self._hasher.hash(password), row[0]),
                )
        return _user(row[:5])

    # ------------------------------------------------------------------ failed sign-ins

    def recent_failures(self, name: str, now: float | None = None) -> int:
        now = time.time() if now is None else now
        with self._lock:
            (n,) = self._db.execute(
                "SELECT COUNT(*) FROM sign_in_failures WHERE key = ? AND at > ?",
                (failure_key(name), now - LOCK_SECONDS),
            ).fetchone()
        return int(n)

    def record_failure(self, name: str, now: float | None = None) -> int:
        """Count a failed sign-in for `name` (known or not); the failures now in the window."""
        now = time.time() if now is None else now
        key = failure_key(name)
        with self._tx() as db:
            db.execute("DELETE FROM sign_in_failures WHERE at <= ?", (now - LOCK_SECONDS,))
            db.execute("INSERT INTO sign_in_failures VALUES (?, ?)", (key, now))
            (n,) = db.execute(
                "SELECT COUNT(*) FROM sign_in_failures WHERE key = ?", (key,)
            ).fetchone()
        return int(n)

    def clear_failures(self, name: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM sign_in_failures WHERE key = ?", (failure_key(name),))

    # ------------------------------------------------------------------ audit

    def audit(self, user: str | None, action: str, detail: str = "", address: str = "") -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO audit (at, username, action, detail, address) VALUES (?, ?, ?, ?, ?)",
                (now_text(), user, action, _clip(detail), _clip(address, 64)),
            )

    def audit_rows(self, *, limit: int = 100, user: str | None = None) -> list[dict[str, str]]:
        """The latest `limit` audit entries (oldest first), of one user when given."""
        query = "SELECT at, username, action, detail, address FROM audit"
        args: tuple = ()
        if user is not None:
            query += " WHERE username = ?"
            args = (user,)
        query += " ORDER BY id DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(query, (*args, int(limit))).fetchall()
        keys = ("at", "user", "action", "detail", "address")
        return [dict(zip(keys, (v or "" for v in r), strict=True)) for r in reversed(rows)]


def failure_key(name: str) -> str:
    """Failed sign-ins are counted per name as typed (case-folded), whether or not it is an
    account, so the lockout cannot tell an attacker which names exist."""
    return str(name).strip().casefold()[:128]


def _clip(text: str, n: int = 300) -> str:
    text = "".join(c if c.isprintable() else "?" for c in str(text))
    return text if len(text) <= n else text[: n - 1] + "…"


def _user(row: tuple) -> User:
    scope = tuple((str(k), str(v)) for k, v in json.loads(row[2]))
    return User(row[0], row[1], scope, row[3], row[4])


__all__ = [
    "DEFAULT_USERS",
    "LOCK_FAILURES",
    "LOCK_SECONDS",
    "ROLES",
    "User",
    "UserStore",
    "check_name",
    "check_password",
    "failure_key",
]
