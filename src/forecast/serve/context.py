"""What every route of `forecast serve` shares (`Context`): the months, the accounts, the
sessions, the live what-ifs and the templates; how a request is told who asks, which month and
team it may see, how a sign-in is checked and throttled; and the request bodies it reads.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.concurrency import run_in_threadpool

from forecast import __version__
from forecast.data.months import is_month_folder
from forecast.report import assets
from forecast.serve.auth import (
    DEFAULT_SESSION_SECONDS,
    SESSION_COOKIE,
    Principal,
    Sessions,
    failure_delay,
    tokens_match,
)
from forecast.serve.live import WhatIfs
from forecast.serve.users import LOCK_FAILURES, MAX_PASSWORD, UserStore, failure_key
from forecast.serve.views import ScopedView, Served

MAX_BODY = 64 * 1024
MAX_FRAGMENTS = 4096
TEAM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.:+-]{0,63}$")
NOT_FOUND = "not found"
_UNKNOWN = object()


@dataclass(frozen=True)
class ServeSettings:
    trusted_header: str | None = None  # e.g. X-Forwarded-Email, set by an SSO proxy
    session_seconds: float = DEFAULT_SESSION_SECONDS
    failure_delay: float = 0.25  # seconds before the 2nd attempt after a failure, doubling
    secure_cookies: bool = False  # Secure cookies even when the request came over plain HTTP
    secret: bytes | None = None  # the key that signs cookies; random per process by default


class NotSignedIn(Exception):
    """No valid session (or trusted identity) for a route that needs one."""


class Refused(Exception):
    """An answer with a status and a fixed message (never the request's input)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


@dataclass
class Context:
    """What every route shares: built once at start-up."""

    served: Served
    users: UserStore
    live: WhatIfs | None
    settings: ServeSettings
    live_note: str = ""
    sessions: Sessions = field(init=False)
    templates: Environment = field(init=False)
    _header_seen: set[str] = field(default_factory=set)
    # Page parts and JSON bodies that are the same for every reader of one scope (and month,
    # team): rendered once, then served from here (least recently used dropped first).
    _fragments: OrderedDict = field(default_factory=OrderedDict)
    _fragments_lock: threading.Lock = field(default_factory=threading.Lock)
    _name_locks: list[asyncio.Lock] = field(
        default_factory=lambda: [asyncio.Lock() for _ in range(64)]
    )

    def __post_init__(self) -> None:
        self.sessions = Sessions(
            self.settings.secret or secrets.token_bytes(32), self.settings.session_seconds
        )
        self.templates = Environment(
            # The served view's pages, then the report's: its _shared.html macros.
            loader=ChoiceLoader([PackageLoader("forecast.serve", "templates"), assets.templates()]),
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    # ------------------------------------------------------------------ who is asking

    def who(self, request: Request) -> Principal | None:
        known = getattr(request.state, "principal", _UNKNOWN)
        if known is not _UNKNOWN:
            return known
        principal = self._who(request)
        request.state.principal = principal
        return principal

    def _who(self, request: Request) -> Principal | None:
        header = self.settings.trusted_header
        if header:
            name = (request.headers.get(header) or "").strip()
            user = self.users.get(name) if name else None
            if user is None:
                return None
            if user.name not in self._header_seen:  # one sign-in entry per user and process
                self._header_seen.add(user.name)
                self.audit(user.name, f"signed in ({header})", "", request)
            return Principal.of(user, self.sessions.header_csrf(user.name))
        found = self.sessions.lookup(request.cookies.get(SESSION_COOKIE))
        if found is None:
            return None
        sid, session = found
        user = self.users.get(session.name)
        # A removed account, or a new password, ends every session it had.
        if user is None or user.password_changed_at != session.password_changed_at:
            self.sessions.end(sid)
            return None
        return Principal.of(user, session.csrf_token, sid)

    def require(self, request: Request) -> Principal:
        principal = self.who(request)
        if principal is None:
            raise NotSignedIn()
        return principal

    def check_csrf(self, principal: Principal, given: Any) -> None:
        if not tokens_match(principal.csrf_token, given if isinstance(given, str) else None):
            raise Refused(403, "missing or invalid CSRF token")

    def name_lock(self, name: str) -> asyncio.Lock:
        """Sign-ins of one name are checked one at a time, so a burst cannot outrun the
        failure count (a fixed pool of locks: names typed by anyone must not grow a table)."""
        digest = hashlib.sha256(failure_key(name).encode("utf-8")).digest()
        return self._name_locks[digest[0] % len(self._name_locks)]

    def audit(self, user: str | None, action: str, detail: str, request: Request) -> None:
        client = request.client.host if request.client else ""
        self.users.audit(user, action, detail, client)

    # ------------------------------------------------------------------ what a reader sees

    def month_of(self, month: Any) -> str:
        if month is None or month == "":
            return self.served.latest
        if not isinstance(month, str) or not is_month_folder(month):
            raise Refused(404, NOT_FOUND)
        if not self.served.has_month(month):
            raise Refused(404, NOT_FOUND)
        return month

    def view(self, principal: Principal, month: str) -> ScopedView:
        return self.served.view(month, principal.scope)

    def team_view(self, principal: Principal, month: str, team_id: Any) -> ScopedView:
        """The view holding `team_id` for this reader, or the same 404 whether the team does
        not exist, lies outside the scope or is below the minimum group size."""
        if not isinstance(team_id, str) or not TEAM_ID.match(team_id):
            raise Refused(404, NOT_FOUND)
        view = self.view(principal, month)
        if not view.can_see(team_id):
            raise Refused(404, NOT_FOUND)
        return view

    async def admit_what_if(
        self, principal: Principal, month: str, team_id: Any, request: Request
    ) -> None:
        """A what-if's checks, for the API and the team page alike: the team in the reader's
        scope (the same 404 as `team_view`, and a refusal is audited), then live what-ifs on."""
        try:
            await run_in_threadpool(self.team_view, principal, month, team_id)
        except Refused:
            self.audit(principal.name, "what-if refused", f"month {month}", request)
            raise
        if self.live is None:
            raise Refused(503, "live what-ifs are off: " + self.live_note)

    # ------------------------------------------------------------------ sign-in

    async def sign_in(self, request: Request, name: Any, password: Any) -> tuple[int, Any]:
        """(200, (cookie, principal)), (401, None) or (429, None); the same for a name that
        has no account as for a wrong password."""
        if not isinstance(name, str) or not isinstance(password, str):
            return 401, None
        if len(name) > 256 or len(password) > MAX_PASSWORD:
            return 401, None
        async with self.name_lock(name):
            failures = await run_in_threadpool(self.users.recent_failures, name)
            if failures >= LOCK_FAILURES:
                known = self.users.get(name.strip()) is not None
                self.audit(name.strip() if known else None, "sign-in refused: locked", "", request)
                return 429, None
            await asyncio.sleep(failure_delay(failures, self.settings.failure_delay))
            user = await run_in_threadpool(self.users.check_password, name.strip(), password)
            if user is None:
                count = await run_in_threadpool(self.users.record_failure, name)
                known = self.users.get(name.strip()) is not None
                who = name.strip() if known else None
                self.audit(who, "sign-in failed", "" if known else "no such account", request)
                if count >= LOCK_FAILURES:
                    self.audit(who, "locked", f"{count} failed sign-ins in 15 minutes", request)
                return 401, None
            await run_in_threadpool(self.users.clear_failures, name)
        cookie, session = self.sessions.create(user)
        self.audit(user.name, "signed in", "password", request)
        return 200, (cookie, Principal.of(user, session.csrf_token))

    def set_session_cookie(self, request: Request, response: Response, cookie: str) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            cookie,
            max_age=int(self.settings.session_seconds),
            path="/",
            httponly=True,
            samesite="strict",
            secure=self.is_https(request),
        )

    def is_https(self, request: Request) -> bool:
        return self.settings.secure_cookies or request.url.scheme == "https"

    def cached(self, key: tuple, build: Callable[[], Any]) -> Any:
        """`build()` once per key; at most MAX_FRAGMENTS kept."""
        with self._fragments_lock:
            if key in self._fragments:
                self._fragments.move_to_end(key)
                return self._fragments[key]
        value = build()
        with self._fragments_lock:
            self._fragments[key] = value
            while len(self._fragments) > MAX_FRAGMENTS:
                self._fragments.popitem(last=False)
        return value

    def fragment(self, key: tuple, name: str, **values: Any) -> str:
        """A page's part that depends on the scope, month (and team) only, never on the reader."""
        return self.cached(
            ("html", *key),
            lambda: self.templates.get_template(name).render(months=self.served.months, **values),
        )

    def json_bytes(self, key: tuple, build: Callable[[], Any]) -> Response:
        body = self.cached(("json", *key), lambda: JSONResponse(build()).body)
        return Response(body, media_type="application/json")

    def page(
        self,
        request: Request,
        principal: Principal,
        *,
        title: str,
        active: str,
        month: str,
        main: str,
        after: str = "",
        status: int = 200,
        **values: Any,
    ) -> HTMLResponse:
        """A whole page: the reader's header around cached parts."""
        return self.render(
            "page.html",
            request,
            status=status,
            principal=principal,
            title=title,
            active=active,
            month=month,
            main=main,
            after=after,
            **values,
        )

    def render(self, name: str, request: Request, status: int = 200, **values: Any) -> HTMLResponse:
        principal = values.pop("principal", None) or self.who(request)
        html = self.templates.get_template(name).render(
            user=principal,
            version=__version__,
            months=self.served.months,
            trusted_header=self.settings.trusted_header,
            **values,
        )
        return HTMLResponse(html, status_code=status)


# ---------------------------------------------------------------------- request bodies


async def read_body(request: Request) -> bytes:
    """The body, refused past MAX_BODY (a length is required: no unbounded chunked bodies)."""
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():
        raise Refused(411, "a Content-Length is required")
    if int(length) > MAX_BODY:
        raise Refused(413, "request body too large")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise Refused(413, "request body too large")
    return body


async def json_body(request: Request) -> dict[str, Any]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise Refused(415, "the body must be application/json")
    try:
        value = json.loads(await read_body(request))
    except (ValueError, UnicodeDecodeError):
        raise Refused(400, "the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise Refused(400, "the body must be a JSON object")
    return value


async def form_body(request: Request, *, lenient: bool = False) -> dict[str, str]:
    """The fields of a url-encoded form (the first value of each). `lenient`: a body that is no
    such form reads as no fields, so that a route checks its CSRF token (403) first."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        if lenient:
            return {}
        raise Refused(415, "the form must be application/x-www-form-urlencoded")
    try:
        text = (await read_body(request)).decode("utf-8")
        fields = parse_qs(text, keep_blank_values=True, strict_parsing=False, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "the form could not be read") from None
    return {k: v[0] for k, v in fields.items() if v}


def safe_next(target: Any) -> str:
    """A local path to go to after signing in, never another site."""
    if not isinstance(target, str) or not re.fullmatch(r"/[A-Za-z0-9/_.:+ -]{0,200}", target):
        return "/"
    if target.startswith("//") or "/../" in target or target.endswith("/.."):
        return "/"
    return target


__all__ = [
    "NOT_FOUND",
    "Context",
    "NotSignedIn",
    "Refused",
    "ServeSettings",
    "form_body",
    "json_body",
    "safe_next",
]
