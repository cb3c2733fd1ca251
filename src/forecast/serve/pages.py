"""The pages of `forecast serve`: sign-in, overview, teams, one team (with its live what-if),
trend and trust. Each page is rendered from the reader's `ScopedView` (serve.views), so a page
can only show the reader's teams; every POST carries the CSRF token in a hidden field.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from forecast.errors import ConfigError
from forecast.report import charts
from forecast.serve.auth import LOGIN_COOKIE, SESSION_COOKIE, Principal
from forecast.serve.context import Context, Refused, form_body, safe_next
from forecast.serve.live import result_words
from forecast.serve.views import ScopedView

INVALID = "The user name or password is not right."
LOCKED = "Too many failed sign-ins for this name: try again in 15 minutes."


def _sparks(view: ScopedView, team_id: str) -> dict[str, str]:
    leavers, csat, months = view.recent(team_id)
    span = f"{months[0]} to {months[-1]}" if months else "no history"
    return {
        "span": span,
        "leavers": charts.sparkline(
            leavers,
            as_bars=True,
            colour=charts.VERMILLION,
            width=240,
            height=48,
            title=f"{team_id}: voluntary leavers per month",
            desc=f"Voluntary leavers per month, {span}: "
            + (", ".join("–" if v is None else f"{v:.0f}" for v in leavers) or "none recorded"),
        ),
        "csat": charts.sparkline(
            csat,
            colour=charts.BLUE,
            width=240,
            height=48,
            title=f"{team_id}: CSAT per month",
            desc=f"Monthly CSAT, {span}: "
            + (", ".join("–" if v is None else f"{v:.0f}" for v in csat) or "no CSAT"),
        ),
    }


def _number_text(raw: str) -> str:
    try:
        value = float(raw) if len(raw) <= 32 else float("nan")
    except ValueError:
        return ""
    return f"{value:g}" if math.isfinite(value) else ""


def _options(ctx: Context, month: str, team_id: str) -> list[dict[str, Any]]:
    """The what-if form's signals, each with the team's current level and the range allowed."""
    if ctx.live is None:
        return []
    options = []
    for c in ctx.live.signals(month).choices.values():
        current = c.current(team_id)
        options.append(
            {
                "signal": c.signal,
                "label": c.label,
                "low": c.low,
                "high": c.high,
                "step": c.step(),
                "median": c.median,
                "current": current,
                "current_text": c.shown(current),
                "range_text": f"{c.shown(c.low)} to {c.shown(c.high)}",
            }
        )
    return options


def router(ctx: Context) -> APIRouter:
    r = APIRouter()

    def login_page(request: Request, status: int = 200, message: str = "", target: str = "/"):
        cookie, token = ctx.sessions.login_token(request.cookies.get(LOGIN_COOKIE))
        response = ctx.render(
            "login.html",
            request,
            status=status,
            principal=None,
            token=token,
            message=message,
            next=target,
        )
        if cookie is not None:
            response.set_cookie(
                LOGIN_COOKIE,
                cookie,
                max_age=3600,
                path="/login",
                httponly=True,
                samesite="strict",
                secure=ctx.is_https(request),
            )
        return response

    @r.get("/login")
    def login(request: Request, next: str = "/") -> Response:
        target = safe_next(next)
        if ctx.who(request) is not None:
            return RedirectResponse(target, status_code=303)
        return login_page(request, target=target)

    @r.post("/login")
    async def login_post(request: Request) -> Response:
        form = await form_body(request)
        target = safe_next(form.get("next"))
        if ctx.settings.trusted_header:
            raise Refused(403, "sign in through your organisation's single sign-on")
        if not ctx.sessions.login_token_ok(
            request.cookies.get(LOGIN_COOKIE), form.get("csrf_token")
        ):
            raise Refused(403, "missing or invalid CSRF token")
        status, found = await ctx.sign_in(request, form.get("username"), form.get("password"))
        if status == 429:
            return login_page(request, 429, LOCKED, target)
        if status != 200:
            return login_page(request, 401, INVALID, target)
        cookie, _ = found
        response = RedirectResponse(target, status_code=303)
        ctx.set_session_cookie(request, response, cookie)
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return response

    @r.post("/logout")
    async def logout(request: Request) -> Response:
        principal = ctx.require(request)
        form = await form_body(request, lenient=True)
        ctx.check_csrf(principal, form.get("csrf_token"))
        ctx.sessions.end(principal.session_id)
        ctx.audit(principal.name, "signed out", "", request)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    def page(request: Request, month: Any) -> tuple[Principal, str, ScopedView]:
        principal = ctx.require(request)
        m = ctx.month_of(month)
        return principal, m, ctx.view(principal, m)

    @r.get("/")
    def overview(request: Request, month: str | None = None) -> Response:
        principal, m, view = page(request, month)
        ctx.audit(principal.name, "viewed overview", f"month {m}, {view.scope_label}", request)
        main = ctx.fragment(("overview", m, view.scope), "overview.html", month=m, view=view)
        return ctx.page(
            request, principal, title=f"Overview {m}", active="overview", month=m, main=main
        )

    @r.get("/teams")
    def teams(request: Request, month: str | None = None) -> Response:
        principal, m, view = page(request, month)
        ctx.audit(principal.name, "viewed teams", f"month {m}, {view.scope_label}", request)
        main = ctx.fragment(("teams", m, view.scope), "teams.html", month=m, view=view)
        return ctx.page(request, principal, title=f"Teams {m}", active="teams", month=m, main=main)

    def team_page(
        request: Request,
        principal: Principal,
        month: str,
        team_id: str,
        *,
        status: int = 200,
        answer: dict[str, str] | None = None,
        problem: str = "",
        asked: dict[str, str] | None = None,
    ) -> Response:
        view = ctx.team_view(principal, month, team_id)
        key = (month, view.scope, team_id)
        main = ctx.fragment(
            ("team", *key),
            "team.html",
            month=month,
            view=view,
            team=view.team_section(team_id),
            sparks=_sparks(view, team_id),
        )
        after = ctx.fragment(
            ("team history", *key),
            "team_history.html",
            history=ctx.served.team_history(principal.scope, team_id),
        )
        return ctx.page(
            request,
            principal,
            status=status,
            title=f"Team {team_id} {month}",
            active="teams",
            month=month,
            main=main,
            after=after,
            view=view,
            team={"team_id": team_id},
            options=_options(ctx, month, team_id),
            live_note=ctx.live_note if ctx.live is None else "",
            answer=answer,
            problem=problem,
            asked=asked or {},
        )

    @r.get("/teams/{team_id}")
    def team(request: Request, team_id: str, month: str | None = None) -> Response:
        principal = ctx.require(request)
        m = ctx.month_of(month)
        try:
            response = team_page(request, principal, m, team_id)
        except Refused:
            ctx.audit(principal.name, "team refused", f"month {m}", request)
            raise
        ctx.audit(principal.name, "viewed team", f"team {team_id}, month {m}", request)
        return response

    @r.post("/teams/{team_id}/what-if")
    async def what_if(request: Request, team_id: str) -> Response:
        principal = ctx.require(request)
        form = await form_body(request, lenient=True)
        ctx.check_csrf(principal, form.get("csrf_token"))
        m = ctx.month_of(form.get("month"))
        await ctx.admit_what_if(principal, m, team_id, request)
        signal, raw = form.get("signal", ""), form.get("value", "")
        choices = ctx.live.signals(m).choices
        # The form shows back only what it offered: a known signal, a value read as a number.
        asked = {"signal": signal if signal in choices else "", "value": _number_text(raw)}
        try:
            if signal not in choices:
                raise ConfigError("choose one of the signals offered")
            number = float(raw) if len(raw) <= 32 else float("nan")
            result = await run_in_threadpool(ctx.live.answer, m, team_id, signal, number)
        except (ConfigError, ValueError) as exc:
            problem = str(exc) if isinstance(exc, ConfigError) else "the value must be a number"
            return await run_in_threadpool(
                lambda: team_page(
                    request, principal, m, team_id, status=422, problem=problem, asked=asked
                )
            )
        words_ = result_words(result, choices[signal])
        ctx.audit(
            principal.name,
            "what-if",
            f"team {team_id}, {signal}={float(result['value'].iloc[0]):g}, month {m}",
            request,
        )
        return await run_in_threadpool(
            lambda: team_page(request, principal, m, team_id, answer=words_, asked=asked)
        )

    @r.get("/trend")
    def trend(request: Request) -> Response:
        principal = ctx.require(request)
        m = ctx.served.latest
        view = ctx.view(principal, m)
        ctx.audit(principal.name, "viewed trend", view.scope_label, request)
        main = ctx.fragment(
            ("trend", view.scope),
            "trend.html",
            month=m,
            view=view,
            trend=ctx.served.trend(principal.scope),
        )
        return ctx.page(request, principal, title="Trend", active="trend", month=m, main=main)

    @r.get("/trust")
    def trust(request: Request, month: str | None = None) -> Response:
        principal, m, view = page(request, month)
        ctx.audit(principal.name, "viewed trust", f"month {m}", request)
        main = ctx.fragment(("trust", m, view.scope), "trust.html", month=m, view=view)
        return ctx.page(request, principal, title=f"Trust {m}", active="trust", month=m, main=main)

    return r


__all__ = ["router"]
