"""Sign-in, static files and the agent workspace's pages (inbox, conversation view) with the
fragments their scripts refresh live."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from swarmdesk.accounts import actions as accounts_actions
from swarmdesk.auth.dependencies import RuntimeDep, Uow
from swarmdesk.auth.router import set_session_cookies
from swarmdesk.core.errors import NotAuthenticated, NotFound
from swarmdesk.web.dependencies import PageStaff, safe_next, same_origin, to_login
from swarmdesk.web.templating import render, static_response

router = APIRouter(include_in_schema=False)


@router.get("/static/{name:path}")
async def static_file(name: str) -> Response:
    response = static_response(name)
    if response is None:
        raise NotFound("no such file")
    return response


@router.get("/")
async def root(me: PageStaff) -> RedirectResponse:
    return RedirectResponse("/app" if me else "/login", status_code=303)


@router.get("/login")
async def login_page(request: Request, me: PageStaff, next: str | None = None) -> Response:
    if me is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "login.html", next=safe_next(next), email="", error=None)


@router.post("/login")
async def login_submit(request: Request, uow: Uow, runtime: RuntimeDep,
                       email: Annotated[str, Form(max_length=320)] = "",
                       password: Annotated[str, Form(max_length=1000)] = "",
                       next: Annotated[str, Form(max_length=2000)] = "/app") -> Response:
    target = safe_next(next)
    if not same_origin(request):
        return render(request, "login.html", status_code=403, next=target, email=email,
                      error="This sign-in form came from another site; open the sign-in page and try again.")
    try:
        _, token, csrf = await accounts_actions.do_login(uow, runtime.settings, email, password)
    except NotAuthenticated:
        return render(request, "login.html", status_code=401, next=target, email=email,
                      error="Email or password is wrong.")
    response = RedirectResponse(target, status_code=303)
    set_session_cookies(response, runtime.settings, token, csrf)
    return response


@router.get("/app")
async def inbox_page(request: Request, me: PageStaff) -> Response:
    if me is None:
        return to_login(request)
    return render(request, "app/inbox.html", me=me, page="inbox", section="inbox")
