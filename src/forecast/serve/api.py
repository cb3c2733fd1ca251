"""The JSON API of `forecast serve` (the contract's section 5): the session, the reader's teams,
one team with its drivers, and a live what-if.

Order of checks on every route: a signed-in reader (else 401), then for a POST the CSRF token
(else 403), then the month and the team within the reader's scope (else 404, the same body for
a team that does not exist, lies outside the scope or is too small to show), then the request's
values (else 422, with a message that never repeats them).
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from forecast.errors import ConfigError
from forecast.serve.auth import CSRF_HEADER, SESSION_COOKIE, Principal
from forecast.serve.context import Context, Refused, json_body
from forecast.serve.live import LiveWhatIf

INVALID = "invalid user name or password"
LOCKED = "too many failed sign-ins: try again in 15 minutes"
WHAT_IF_KEYS = {"team_id", "signal", "value", "month"}


def session_json(principal: Principal) -> dict[str, str]:
    return {"username": principal.name, "role": principal.role, "csrf_token": principal.csrf_token}


def number_of(value: Any) -> float:
    """A what-if's value as a finite float (a JSON number, or a number in a string)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Refused(422, "value must be a number")
    try:
        number = float(value) if not isinstance(value, str) or len(value) <= 32 else math.nan
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise Refused(422, "value must be a finite number")
    return number


def router(ctx: Context) -> APIRouter:
    r = APIRouter(prefix="/api")

    @r.post("/session")
    async def sign_in(request: Request) -> Response:
        if ctx.settings.trusted_header:
            # The identity comes from the SSO proxy in front; there is no password here.
            principal = ctx.who(request)
            if principal is None:
                return JSONResponse({"detail": INVALID}, status_code=401)
            return JSONResponse(session_json(principal))
        body = await json_body(request)
        status, found = await ctx.sign_in(request, body.get("username"), body.get("password"))
        if status == 429:
            return JSONResponse({"detail": LOCKED}, status_code=429)
        if status != 200:
            return JSONResponse({"detail": INVALID}, status_code=401)
        cookie, principal = found
        response = JSONResponse(session_json(principal))
        ctx.set_session_cookie(request, response, cookie)
        return response

    @r.get("/session")
    def session(request: Request) -> dict[str, str]:
        return session_json(ctx.require(request))

    @r.delete("/session")
    def sign_out(request: Request) -> Response:
        principal = ctx.require(request)
        ctx.sessions.end(principal.session_id)
        ctx.audit(principal.name, "signed out", "", request)
        response = JSONResponse({"signed_out": True})
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    @r.get("/teams")
    def teams(request: Request, month: str | None = None) -> Response:
        principal = ctx.require(request)
        m = ctx.month_of(month)
        view = ctx.view(principal, m)
        ctx.audit(principal.name, "api: teams", f"month {m}, {view.scope_label}", request)
        return ctx.json_bytes(("teams", m, view.scope), view.team_records)

    @r.get("/teams/{team_id}")
    def team(request: Request, team_id: str, month: str | None = None) -> Response:
        principal = ctx.require(request)
        m = ctx.month_of(month)
        try:
            view = ctx.team_view(principal, m, team_id)
        except Refused:
            ctx.audit(principal.name, "api: team refused", f"month {m}", request)
            raise
        ctx.audit(principal.name, "api: team", f"team {team_id}, month {m}", request)
        return ctx.json_bytes(("team", m, view.scope, team_id), lambda: view.team_record(team_id))

    @r.post("/what-if")
    async def what_if(request: Request) -> Response:
        principal = ctx.require(request)
        ctx.check_csrf(principal, request.headers.get(CSRF_HEADER))
        body = await json_body(request)
        if set(body) - WHAT_IF_KEYS:
            raise Refused(422, "the body takes team_id, signal, value and optionally month")
        month = ctx.month_of(body.get("month"))
        team_id = body.get("team_id")
        await ctx.admit_what_if(principal, month, team_id, request)
        signal, value = body.get("signal"), body.get("value")
        if not isinstance(signal, str) or not 0 < len(signal) <= 64:
            raise Refused(422, "signal must name a workload or engagement signal")
        number = number_of(value)
        try:
            result = await run_in_threadpool(ctx.live.answer, month, team_id, signal, number)
        except ConfigError as exc:
            raise Refused(422, str(exc)) from None
        answer = LiveWhatIf.contract_object(result)
        ctx.audit(
            principal.name,
            "what-if",
            f"team {team_id}, {answer['signal']}={answer['value']:g}, month {month}",
            request,
        )
        return JSONResponse(answer)

    return r


__all__ = ["router", "session_json"]
