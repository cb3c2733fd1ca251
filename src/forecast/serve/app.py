"""The web application of `forecast serve` (FastAPI on Starlette): security headers on every
response, cross-site requests refused, errors that never echo their input, and the routes.

`create_app` wires the shared `Context` (serve.context) into the pages (serve.pages) and the JSON
API of the contract (serve.api). Every route but the sign-in form, the session endpoint and the
static files (its own, and the report's stylesheet and table script) needs a signed-in reader:
without one, `/api/` routes answer 401 and pages redirect to the sign-in form, even for paths
that do not exist (so an anonymous caller cannot map the routes). Scope is applied by the
routes, on every request, through `Context.view`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote, urlsplit

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from forecast import __version__
from forecast.report import assets
from forecast.serve import api, pages
from forecast.serve.context import (
    NOT_FOUND,
    Context,
    NotSignedIn,
    Refused,
    ServeSettings,
    safe_next,
)
from forecast.serve.live import WhatIfs
from forecast.serve.users import UserStore
from forecast.serve.views import Served

STATIC = Path(__file__).parent / "static"
# The report's stylesheet and table script are served as they are inlined in its file.
STATIC_DIRS = (STATIC, assets.STATIC)
THREADS = 8  # worker threads for requests (anyio's default is 40)
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
# Scripts only from this server, no inline script or style, nothing framed, forms only here.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on its own
    # form posts, which the cross-site check must refuse.
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}


# ---------------------------------------------------------------------- middleware


class Guard:
    """Pure ASGI middleware: security headers on every response (no-store on everything but
    the static files, HSTS over TLS), and cross-site unsafe requests refused by their Origin."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        origin = headers.get("origin")
        unsafe = method not in ("GET", "HEAD", "OPTIONS")
        # A browser names the page's origin on a cross-site request ("null" from a sandbox or a
        # file): one that is not this host's is refused before any route runs.
        if (
            unsafe
            and origin
            and (
                origin == "null"
                or urlsplit(origin).netloc.lower() != headers.get("host", "").lower()
            )
        ):
            response = JSONResponse({"detail": "cross-site request refused"}, 403)
            await response(scope, receive, self._headers(scope, send))
            return
        await self.app(scope, receive, self._headers(scope, send))

    @staticmethod
    def _headers(scope: Scope, send: Send) -> Send:
        static = str(scope.get("path", "")).startswith("/static/")
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                h = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    h[name] = value
                h["cache-control"] = "private, max-age=3600" if static else "no-store"
                if https:
                    h["strict-transport-security"] = "max-age=31536000"
            await send(message)

        return send_with_headers


# ---------------------------------------------------------------------- the application


def create_app(
    served: Served,
    users: UserStore,
    live: WhatIfs | None,
    settings: ServeSettings | None = None,
    *,
    live_note: str = "",
) -> FastAPI:
    """The application over `served` months for the accounts in `users`."""
    ctx = Context(served, users, live, settings or ServeSettings(), live_note)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Pages are CPU-bound Python: more threads than this only take turns at the
        # interpreter's lock, and a request holding it waits behind all the others.
        anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
        yield

    app = FastAPI(
        title="forecast",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.ctx = ctx

    def api_path(request: Request) -> bool:
        return request.url.path.startswith("/api/") or request.url.path == "/api"

    def error(request: Request, status: int, detail: str) -> Response:
        if api_path(request):
            return JSONResponse({"detail": detail}, status_code=status)
        return ctx.render("error.html", request, status=status, status_code=status, detail=detail)

    def anonymous(request: Request) -> Response:
        if api_path(request):
            return JSONResponse({"detail": "sign in first"}, status_code=401)
        target = safe_next(request.url.path)
        where = "/login" + (f"?next={quote(target)}" if target != "/" else "")
        return RedirectResponse(where, status_code=303)

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        return anonymous(request)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return error(request, exc.status, exc.detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # Unknown paths and methods look the same as known ones to an anonymous caller.
        if ctx.who(request) is None:
            return anonymous(request)
        detail = NOT_FOUND if exc.status_code == 404 else "request refused"
        return error(request, exc.status_code, detail)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        if ctx.who(request) is None:
            return anonymous(request)
        return error(request, 422, "invalid request")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        path = next((d / name for d in STATIC_DIRS if (d / name).is_file()), None)
        if path is None or path.suffix not in STATIC_TYPES or path.name != name:
            raise Refused(404, NOT_FOUND)
        return Response(path.read_bytes(), media_type=STATIC_TYPES[path.suffix])

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)  # browsers ask for it; there is none

    app.include_router(api.router(ctx))
    app.include_router(pages.router(ctx))
    app.add_middleware(Guard)
    return app


__all__ = ["Context", "Refused", "ServeSettings", "create_app"]

__all__ = ["create_app"]
