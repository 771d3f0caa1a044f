"""The application: routers, middleware, error handlers and the runtime's lifespan."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import swarmdesk.registrations  # noqa: F401  (job handlers, listeners and adapters register themselves)
from swarmdesk import __version__
from swarmdesk.accounts.router import router as accounts_router
from swarmdesk.auth.router import router as auth_router
from swarmdesk.automation.router import router as automation_router
from swarmdesk.canned_responses.router import router as canned_responses_router
from swarmdesk.channels.email.adapter import MAX_MAIL_BYTES
from swarmdesk.channels.email.router import router as email_router
from swarmdesk.channels.router import public_router as intake_router
from swarmdesk.channels.router import router as channels_router
from swarmdesk.channels.webchat.router import router as webchat_router
from swarmdesk.config import Settings, get_settings
from swarmdesk.contacts.router import router as contacts_router
from swarmdesk.conversations.router import customer_router
from swarmdesk.conversations.router import router as conversations_router
from swarmdesk.core.errors import DomainError
from swarmdesk.inbox.router import router as inbox_router
from swarmdesk.jobs.router import router as jobs_router
from swarmdesk.notifications.router import router as notifications_router
from swarmdesk.ops.router import router as ops_router
from swarmdesk.portal.router import router as portal_router
from swarmdesk.preferences.router import router as preferences_router
from swarmdesk.realtime.router import router as realtime_router
from swarmdesk.routing.router import router as routing_router
from swarmdesk.runtime import Runtime, create_runtime, tune_gc_for_serving
from swarmdesk.sla.router import router as sla_router
from swarmdesk.swarming.router import router as swarming_router
from swarmdesk.web.admin import router as admin_pages_router
from swarmdesk.web.admin_automation import router as admin_automation_pages_router
from swarmdesk.web.admin_routing import router as admin_routing_pages_router
from swarmdesk.web.admin_sla import router as admin_sla_pages_router
from swarmdesk.web.pages import router as pages_router
from swarmdesk.web.portal import router as portal_pages_router
from swarmdesk.web.swarm import router as swarm_pages_router
from swarmdesk.webhooks.router import router as webhooks_router

log = logging.getLogger("swarmdesk.http")
PROBLEM = "application/problem+json"


def problem(status: int, title: str, detail: str, *, type_slug: str = "about:blank", instance: str | None = None,
            headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": type_slug if type_slug == "about:blank" else f"https://swarmdesk.dev/problems/{type_slug}",
                            "title": title, "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


class BodyLimit:
    """Refuse bodies over the limit before they are read into memory (413), whether or not the
    client sent Content-Length."""

    def __init__(self, app: ASGIApp, max_bytes: int, large: tuple[str, ...] = (), large_max_bytes: int = 0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Path suffixes that take whole mails (raw MIME with large attachments).
        self.large = large
        self.large_max_bytes = max(large_max_bytes, max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.large_max_bytes if self.large and scope["path"].endswith(self.large) else self.max_bytes
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await problem(413, "Payload too large", f"request body is larger than {limit} bytes",
                              type_slug="payload-too-large")(scope, receive, send)
                return
        seen = 0
        too_large = False
        started = False

        async def limited_receive() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    too_large = True
                    raise _TooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            # FastAPI turns a failed body read into its own 400: once the limit is crossed, the
            # answer is ours (413), not whatever the app made of the exception.
            if too_large and not started:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _TooLarge:
            pass
        if too_large and not started:
            await problem(413, "Payload too large", f"request body is larger than {limit} bytes",
                          type_slug="payload-too-large")(scope, receive, send)


class _TooLarge(Exception):
    pass


class AccessLogAndHeaders:
    """Request id, one structured access-log line per request, and security headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = os.urandom(8).hex()
        started = time.perf_counter()
        status = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                for key, value in ((b"x-request-id", request_id.encode()), (b"x-content-type-options", b"nosniff"),
                                   (b"referrer-policy", b"same-origin"), (b"x-frame-options", b"DENY")):
                    if key not in present:
                        headers.append((key, value))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            if scope["path"] not in ("/healthz", "/readyz"):
                log.info("request", extra={"request_id": request_id, "method": scope["method"],
                                           "path": scope["path"], "status": status,
                                           "ms": round((time.perf_counter() - started) * 1000, 2)})


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> JSONResponse:
        return problem(exc.status, exc.title, exc.detail, type_slug=exc.type_slug, instance=request.url.path,
                       headers=exc.headers or None, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                  for e in exc.errors()]
        if any(e["type"] == "json_invalid" for e in errors):
            return problem(400, "Malformed JSON", "the request body is not valid JSON", type_slug="malformed-json",
                           instance=request.url.path, errors=errors)
        return problem(422, "Validation failed", "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                                          for e in errors)[:2000],
                       type_slug="validation-failed", instance=request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), str(exc.detail), instance=request.url.path,
                       headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return problem(500, "Internal server error", "an unexpected error occurred; it has been logged",
                       instance=request.url.path)

    # Defence in depth behind input validation: a value the database cannot hold (an id beyond
    # 64 bits, a NUL character in text) can only have come from the request, so it is a 422.
    @app.exception_handler(OverflowError)
    async def number_out_of_range(request: Request, exc: OverflowError) -> JSONResponse:
        return problem(422, "Validation failed", "a number in the request is outside the supported range",
                       type_slug="validation-failed", instance=request.url.path)

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        if not _is_data_exception(exc):
            return await unexpected(request, exc)
        return problem(422, "Validation failed", "a value in the request cannot be stored (a number out of "
                       "range or a NUL character in text)", type_slug="validation-failed",
                       instance=request.url.path)


def _is_data_exception(exc: BaseException) -> bool:
    """SQLSTATE class 22, anywhere in the chain from SQLAlchemy's wrapper to the driver's error."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if str(getattr(current, "sqlstate", "") or "").startswith("22"):
            return True
        current = getattr(current, "orig", None) or getattr(current, "driver_exception", None) or current.__cause__
    return False


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None,
               with_worker: bool | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = runtime or create_runtime(settings)
        app.state.runtime = rt
        await rt.start(with_worker=settings.run_worker if with_worker is None else with_worker)
        tune_gc_for_serving()
        try:
            yield
        finally:
            rt.draining = True
            await rt.stop()

    app = FastAPI(title="Swarmdesk", version=__version__, lifespan=lifespan, docs_url="/docs",
                  redoc_url=None, openapi_url="/openapi.json",
                  description="One system of engagement: every channel, one conversation, the right people.")
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, large=("/email/messages",),
                       large_max_bytes=MAX_MAIL_BYTES)
    app.add_middleware(AccessLogAndHeaders)
    _install_error_handlers(app)
    # Channel intake first: it is the hottest route, and routes are matched in this order.
    for r in (intake_router, ops_router, auth_router, accounts_router, contacts_router, conversations_router,
              customer_router, channels_router, email_router, webhooks_router, jobs_router, realtime_router, webchat_router,
              inbox_router, notifications_router, canned_responses_router, portal_router,
              routing_router, sla_router, automation_router, swarming_router, preferences_router,
              pages_router, admin_pages_router, admin_routing_pages_router, admin_sla_pages_router,
              admin_automation_pages_router, portal_pages_router, swarm_pages_router):
        app.include_router(r)
    return app
