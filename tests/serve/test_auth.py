"""Sessions, CSRF tokens and the sign-in throttle (serve.auth), without a server."""

from __future__ import annotations

import time

from itsdangerous import TimestampSigner

from forecast.serve.auth import Sessions, failure_delay, tokens_match
from forecast.serve.users import User

USER = User("lee", "leader", (("department", "Sales"),), "t0", "t0")


def test_the_delay_doubles_with_each_failure_and_stops_growing() -> None:
    delays = [failure_delay(n, 0.25) for n in range(8)]
    assert delays[:6] == [0.0, 0.25, 0.5, 1.0, 2.0, 4.0]
    assert delays[6] == delays[7] == 4.0


def test_a_session_cookie_is_signed_and_ends_when_signed_out() -> None:
    sessions = Sessions(b"k" * 32)
    cookie, session = sessions.create(USER)
    sid, found = sessions.lookup(cookie)
    assert found is session and len(session.csrf_token) >= 32
    # Tamper with the signature's first character: the last one's low bits are base64
    # padding, so changing "A" to "B" there can leave the signature's bytes as they were.
    body, signature = cookie.rsplit(".", 1)
    tampered = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert sessions.lookup(f"{body}.{tampered}") is None
    assert Sessions(b"x" * 32).lookup(cookie) is None  # another server's key
    sessions.end(sid)
    assert sessions.lookup(cookie) is None


def test_an_old_cookie_fails_its_age_check() -> None:
    sessions = Sessions(b"k" * 32, lifetime=3600)
    cookie, _ = sessions.create(USER)
    sid = cookie.split(".")[0]

    class Backdated(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 7200

    old = Backdated(b"k" * 32, salt="forecast-session").sign(sid).decode()
    assert sessions.lookup(old) is None and sessions.lookup(cookie) is not None


def test_csrf_tokens() -> None:
    a, b = Sessions(b"k" * 32), Sessions(b"j" * 32)
    assert a.header_csrf("lee") == a.header_csrf("lee") != a.header_csrf("sam")
    assert a.header_csrf("lee") != b.header_csrf("lee")
    cookie, token = a.login_token()
    assert a.login_token_ok(cookie, token) and not a.login_token_ok(cookie, token + "x")
    assert a.login_token(cookie) == (None, token)  # a second form keeps the first one's token
    assert not b.login_token_ok(cookie, token)
    assert not tokens_match(None, "x") and not tokens_match("x", None) and not tokens_match("", "")
