"""Who is asking: sessions, CSRF tokens and the sign-in throttle of `forecast serve`.

Sessions live in this process (a restart signs everyone out) and are named in the browser by a
cookie holding a random session id signed with the server's key (itsdangerous, with its
timestamp checked against the session's lifetime): a forged or tampered cookie fails the
signature, an old one fails the age check, and signing out deletes the session, so a copied
cookie dies with it. The cookie is HttpOnly, SameSite=Strict, and Secure when the request came
over TLS.

CSRF (the synchronizer-token pattern): every session has its own random token, sent back in a
hidden form field or the `X-CSRF-Token` header and compared in constant time on every POST; a
POST without it is refused before anything else runs. With `--trusted-header` there is no
session: the token is an HMAC of the user name under the server's key, which a page on another
site cannot read. The sign-in form, before any session exists, carries a token that must match
a signed cookie set with the form (double submit); the JSON sign-in only takes
`application/json`, which a cross-site form cannot send. SameSite=Strict and an Origin check
stand behind all of it.

Throttle: failed sign-ins are counted per name (known or not, so a locked answer tells nothing
about which names exist); each failure after the first doubles a delay before the next check,
and LOCK_FAILURES failures within LOCK_SECONDS lock the name until they age out (HTTP 429).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner

from forecast.report.scope import Scope
from forecast.serve.users import User

SESSION_COOKIE = "forecast_session"
LOGIN_COOKIE = "forecast_login"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
DEFAULT_SESSION_SECONDS = 8 * 3600
MAX_SESSIONS = 10_000


@dataclass(frozen=True)
class Principal:
    """The signed-in reader of one request."""

    name: str
    role: str
    scope: Scope | None  # None: the whole organisation (an analyst)
    csrf_token: str
    session_id: str | None = None  # None with --trusted-header

    @classmethod
    def of(cls, user: User, csrf_token: str, session_id: str | None = None) -> Principal:
        return cls(
            user.name,
            user.role,
            None if user.is_analyst else user.scope,
            csrf_token,
            session_id,
        )


@dataclass
class Session:
    name: str
    csrf_token: str
    password_changed_at: str
    expires: float


@dataclass
class Sessions:
    """Server-side sessions behind signed cookies."""

    secret: bytes
    lifetime: float = DEFAULT_SESSION_SECONDS
    _sessions: dict[str, Session] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._signer = TimestampSigner(self.secret, salt="forecast-session")
        self._login = TimestampSigner(self.secret, salt="forecast-login-form")
        self._csrf_key = hmac.new(self.secret, b"forecast-csrf", hashlib.sha256).digest()

    def create(self, user: User) -> tuple[str, Session]:
        """A new session for `user`: (cookie value, session)."""
        sid = secrets.token_urlsafe(32)
        session = Session(
            user.name,
            secrets.token_urlsafe(32),
            user.password_changed_at,
            time.time() + self.lifetime,
        )
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                self._purge()
            self._sessions[sid] = session
        return self._signer.sign(sid).decode("ascii"), session

    def _purge(self) -> None:
        now = time.time()
        for sid in [s for s, v in self._sessions.items() if v.expires <= now]:
            del self._sessions[sid]
        while len(self._sessions) >= MAX_SESSIONS:  # the oldest go first
            del self._sessions[next(iter(self._sessions))]

    def lookup(self, cookie: str | None) -> tuple[str, Session] | None:
        """(session id, session) named by a cookie, or None when it is missing, forged,
        tampered with, expired or signed out."""
        if not cookie or len(cookie) > 200:
            return None
        try:
            sid = self._signer.unsign(cookie, max_age=self.lifetime).decode("ascii")
        except (BadSignature, SignatureExpired, UnicodeDecodeError):
            return None
        with self._lock:
            session = self._sessions.get(sid)
            if session is None:
                return None
            if session.expires <= time.time():
                del self._sessions[sid]
                return None
        return sid, session

    def end(self, sid: str | None) -> None:
        if sid is None:
            return
        with self._lock:
            self._sessions.pop(sid, None)

    def header_csrf(self, name: str) -> str:
        """The CSRF token of a `--trusted-header` user: an HMAC of the name."""
        return hmac.new(self._csrf_key, name.encode("utf-8"), hashlib.sha256).hexdigest()

    # The sign-in form's double-submit token.
    def login_token(self, cookie: str | None = None) -> tuple[str | None, str]:
        """(cookie value to set, or None to keep the browser's; form token) for a sign-in form.
        A browser's still valid cookie keeps its token: two sign-in pages open at once (or one
        fetched behind another) must not invalidate each other."""
        known = self._login_value(cookie)
        if known is not None:
            return None, known
        token = secrets.token_urlsafe(24)
        return self._login.sign(token).decode("ascii"), token

    def _login_value(self, cookie: str | None) -> str | None:
        if not cookie or len(cookie) > 200:
            return None
        try:
            return self._login.unsign(cookie, max_age=3600).decode("ascii")
        except (BadSignature, SignatureExpired, UnicodeDecodeError):
            return None

    def login_token_ok(self, cookie: str | None, token: str | None) -> bool:
        return tokens_match(self._login_value(cookie), token)


def tokens_match(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison of two tokens; missing ones never match."""
    if not expected or not isinstance(given, str) or not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8", "replace"))


def failure_delay(failures: int, base: float) -> float:
    """Seconds to wait before checking a password after `failures` recent failures of the
    name: nothing after none, then base, 2 base, 4 base, ... (at most 16 base)."""
    if failures <= 0 or base <= 0:
        return 0.0
    return base * 2 ** min(failures - 1, 4)


__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "LOGIN_COOKIE",
    "SESSION_COOKIE",
    "Principal",
    "Sessions",
    "failure_delay",
    "tokens_match",
]
