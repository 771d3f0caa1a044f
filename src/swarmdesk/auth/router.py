from __future__ import annotations

from fastapi import APIRouter, Request, Response

from swarmdesk.accounts import actions
from swarmdesk.accounts import service as accounts_service
from swarmdesk.accounts.schemas import LoginIn, LoginOut, UserOut
from swarmdesk.auth.dependencies import CSRF_COOKIE, SESSION_COOKIE, RuntimeDep, Staff, Uow
from swarmdesk.config import Settings

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


def set_session_cookies(response: Response, settings: Settings, token: str, csrf: str) -> None:
    secure = settings.base_url.startswith("https://")
    max_age = settings.session_days * 86400
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax", secure=secure, max_age=max_age, path="/")
    # Readable by our own pages so they can echo it in X-CSRF-Token.
    response.set_cookie(CSRF_COOKIE, csrf, httponly=False, samesite="strict", secure=secure, max_age=max_age, path="/")


def clear_session_cookies(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")


@router.post("/login", response_model=LoginOut, summary="Sign in; sets an HttpOnly session cookie")
async def login(payload: LoginIn, uow: Uow, runtime: RuntimeDep, response: Response) -> LoginOut:
    user, token, csrf = await actions.do_login(uow, runtime.settings, payload.email, payload.password)
    set_session_cookies(response, runtime.settings, token, csrf)
    return LoginOut(user=(await accounts_service.users_out(uow.session, [user]))[0], csrf_token=csrf)


@router.post("/logout", status_code=204, response_class=Response)
async def logout(principal: Staff, request: Request, uow: Uow) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token and principal.via == "session":
        await actions.do_logout(uow, token)
    response = Response(status_code=204)
    clear_session_cookies(response)
    return response


@router.get("/me", response_model=UserOut)
async def me(principal: Staff, uow: Uow) -> UserOut:
    user = await accounts_service.get_user(uow.session, principal.account_id, principal.user_id)
    assert user is not None
    return (await accounts_service.users_out(uow.session, [user]))[0]
