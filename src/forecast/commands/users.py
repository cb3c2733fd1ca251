"""`forecast users add|list|remove|passwd|audit`: the accounts of `forecast serve`, kept in one
SQLite file (`--users PATH`, default forecast-users.db in the current directory).

A password comes from standard input (`--password-stdin`, one line) or, at a terminal, from a
prompt that does not echo; it is hashed at once (argon2id) and never printed or logged.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

from forecast.errors import ConfigError
from forecast.serve.users import LOCK_FAILURES, User, UserStore


def read_password(from_stdin: bool, *, confirm: bool = True) -> str:
    """The new password: one line of standard input, or typed twice at a terminal."""
    if from_stdin:
        return sys.stdin.readline()
    if not sys.stdin.isatty():
        raise ConfigError(
            "No terminal to type a password at: pipe it in with `--password-stdin` "
            "(e.g. `printf '%s\\n' \"$PASSWORD\" | forecast users add ...`)."
        )
    first = getpass.getpass("Password: ")
    if confirm and getpass.getpass("Again: ") != first:
        raise ConfigError("The two passwords differ; nothing was changed.")
    return first


def add_user(users: Path, name: str, role: str, scopes: list[str], password: str) -> User:
    store = UserStore(users, create=True)
    try:
        return store.add(name, role, scopes, password)
    finally:
        store.close()


def list_users(users: Path) -> list[dict[str, str]]:
    store = UserStore(users)
    try:
        return [
            {
                "name": u.name,
                "role": u.role,
                "scope": u.describe_scope(),
                "created": u.created_at,
                "password changed": u.password_changed_at,
                "locked": "yes" if store.recent_failures(u.name) >= LOCK_FAILURES else "",
            }
            for u in store.users()
        ]
    finally:
        store.close()


def remove_user(users: Path, name: str) -> None:
    store = UserStore(users)
    try:
        store.remove(name)
    finally:
        store.close()


def user_exists(users: Path, name: str) -> None:
    """A ConfigError when `name` has no account (checked before a password is asked for)."""
    store = UserStore(users)
    try:
        if store.get(name) is None:
            raise ConfigError(f"no user {name!r} in {store.path}.")
    finally:
        store.close()


def change_password(users: Path, name: str, password: str) -> None:
    store = UserStore(users)
    try:
        store.set_password(name, password)
    finally:
        store.close()


def audit_log(users: Path, *, limit: int, user: str | None) -> list[dict[str, str]]:
    if limit < 1:
        raise ConfigError(f"`--limit` must be a positive integer. Got {limit} instead.")
    store = UserStore(users)
    try:
        return store.audit_rows(limit=limit, user=user)
    finally:
        store.close()


__all__ = [
    "add_user",
    "audit_log",
    "change_password",
    "list_users",
    "read_password",
    "remove_user",
    "user_exists",
]
