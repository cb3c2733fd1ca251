"""The account store (serve.users) and `forecast users add|list|remove|passwd|audit`."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from forecast.cli import main
from forecast.errors import ConfigError
from forecast.serve.users import LOCK_FAILURES, LOCK_SECONDS, UserStore

PASSWORD = "a-long-secret-1"


@pytest.fixture
def store(tmp_path: Path) -> UserStore:
    s = UserStore(tmp_path / "users.db", create=True)
    s.add("lee", "leader", ["department=Sales"], PASSWORD)
    yield s
    s.close()


def test_a_password_is_kept_as_an_argon2id_hash_only(store: UserStore) -> None:
    raw = sqlite3.connect(store.path).execute("SELECT password_hash FROM users").fetchone()[0]
    assert raw.startswith("$argon2id$") and PASSWORD not in raw
    assert PASSWORD.encode() not in store.path.read_bytes()
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600


def test_check_password(store: UserStore) -> None:
    user = store.check_password("lee", PASSWORD)
    assert user is not None and user.scope == (("department", "Sales"),)
    assert store.check_password("lee", PASSWORD + "x") is None
    assert store.check_password("nobody", PASSWORD) is None


def test_an_unknown_name_costs_one_argon2_check_like_a_wrong_password(store, monkeypatch) -> None:
    from argon2 import PasswordHasher

    calls = []

    class Counting(PasswordHasher):
        def verify(self, hash, password):
            calls.append(hash)
            return super().verify(hash, password)

    original = store._hasher
    monkeypatch.setattr(
        store,
        "_hasher",
        Counting(original.time_cost, original.memory_cost, original.parallelism),
    )
    store.check_password("nobody", "whatever-it-is")
    store.check_password("lee", "whatever-it-is")
    assert len(calls) == 2 and all(h.startswith("$argon2id$") for h in calls)


def test_accounts_are_checked_when_added(store: UserStore) -> None:
    for args in (
        ("LEE", "analyst", [], PASSWORD),  # names are unique whatever their case
        ("ana", "leader", [], PASSWORD),  # a leader needs a scope
        ("ana", "analyst", ["site=Leeds"], PASSWORD),  # an analyst sees everything
        ("ana", "boss", [], PASSWORD),
        ("a b", "analyst", [], PASSWORD),
        ("ana", "analyst", [], "short"),
        ("ana", "leader", ["gender=F"], PASSWORD),
    ):
        with pytest.raises(ConfigError):
            store.add(*args)
    assert [u.name for u in store.users()] == ["lee"]


def test_a_new_password_replaces_the_old_and_clears_failures(store: UserStore) -> None:
    before = store.get("lee")
    for _ in range(3):
        store.record_failure("lee")
    time.sleep(1.1)  # password_changed_at has one-second resolution
    store.set_password("lee", "another-secret-2")
    assert store.check_password("lee", PASSWORD) is None
    assert store.check_password("lee", "another-secret-2") is not None
    assert store.recent_failures("lee") == 0
    assert store.get("lee").password_changed_at != before.password_changed_at


def test_failures_count_within_the_window_only(store: UserStore) -> None:
    t0 = 1_000_000.0
    for i in range(LOCK_FAILURES):
        store.record_failure("Lee ", now=t0 + i)  # counted per name, case and spaces aside
    assert store.recent_failures("lee", now=t0 + 10) == LOCK_FAILURES
    assert store.recent_failures("lee", now=t0 + LOCK_SECONDS + LOCK_FAILURES) == 0
    assert store.record_failure("ghost", now=t0) == 1  # unknown names are counted too


def test_a_missing_store_is_an_error_not_a_new_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no user store"):
        UserStore(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()


# --------------------------------------------------------------------------- the commands


def run(monkeypatch, capsys, args: list[str], stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_users_commands(tmp_path, monkeypatch, capsys) -> None:
    db = str(tmp_path / "u.db")
    code, out, err = run(
        monkeypatch,
        capsys,
        [
            "users",
            "add",
            "sam",
            "--role",
            "leader",
            "--scope",
            "department=Sales",
            "--scope",
            "site=Leeds",
            "--password-stdin",
            "--users",
            db,
        ],
        "pass-word-123\n",
    )
    assert code == 0, err
    assert "department=Sales or site=Leeds" in out
    code, out, _ = run(monkeypatch, capsys, ["users", "list", "--users", db])
    assert code == 0 and "sam" in out and "leader" in out and "pass-word-123" not in out
    code, _, err = run(
        monkeypatch,
        capsys,
        ["users", "passwd", "sam", "--password-stdin", "--users", db],
        "new-pass-word-456\n",
    )
    assert code == 0, err
    store = UserStore(db)
    assert store.check_password("sam", "new-pass-word-456") is not None
    store.close()
    code, out, _ = run(monkeypatch, capsys, ["users", "audit", "--json", "--users", db])
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["action"] for r in rows] == ["user added", "password changed"]
    assert "pass-word" not in out
    code, _, _ = run(monkeypatch, capsys, ["users", "remove", "sam", "--users", db])
    assert code == 0
    code, _, err = run(monkeypatch, capsys, ["users", "remove", "sam", "--users", db])
    assert code == 2 and "no user 'sam'" in err and err.count("\n") == 1


def test_users_command_errors_are_one_line(tmp_path, monkeypatch, capsys) -> None:
    db = str(tmp_path / "u.db")
    cases = [
        (["users", "list", "--users", db], "", "no user store"),
        (
            ["users", "add", "x", "--role", "leader", "--password-stdin", "--users", db],
            "pw-pw-pw-pw\n",
            "needs at least one `--scope",
        ),
        (
            ["users", "add", "x", "--role", "analyst", "--password-stdin", "--users", db],
            "short\n",
            "8 to 1024 characters",
        ),
        (["users", "add", "x", "--role", "analyst", "--users", db], "", "--password-stdin"),
        (["users", "passwd", "x", "--password-stdin", "--users", db], "pw-pw-pw-pw\n", "no user"),
    ]
    for args, stdin, message in cases:
        code, _, err = run(monkeypatch, capsys, args, stdin)
        assert code == 2 and message in err and err.count("\n") == 1, (args, err)
