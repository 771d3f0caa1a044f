"""The access gates. Every route states which principal it takes through these aliases; nothing
else in a route decides who may call it."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from swarmdesk.accounts.models import Role
from swarmdesk.auth import service
from swarmdesk.auth.principals import CustomerPrincipal, StaffPrincipal
from swarmdesk.core.db import UnitOfWork
from swarmdesk.core.errors import Forbidden, NotAuthenticated
from swarmdesk.core.security import CUSTOMER_TOKEN_PREFIX, SESSION_TOKEN_PREFIX, USER_TOKEN_PREFIX
from swarmdesk.runtime import Runtime

SESSION_COOKIE = "sd_session"
CSRF_COOKIE = "sd_csrf"
# The customer portal's session (HttpOnly) and the CSRF token its pages echo in X-CSRF-Token.
PORTAL_COOKIE = "sd_portal"
PORTAL_CSRF_COOKIE = "sd_portal_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


async def get_runtime(request: Request) -> Runtime:
    # async: FastAPI runs a plain ``def`` dependency in a worker thread — a thread hop per request.
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_uow(runtime: RuntimeDep) -> AsyncIterator[UnitOfWork]:
    async with runtime.uow() as uow:
        yield uow


# scope="function": the session closes when the endpoint returns, before the response is sent,
# so SQLite's single connection is never held across network I/O.
Uow = Annotated[UnitOfWork, Depends(get_uow, scope="function")]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise NotAuthenticated("Authorization header must be 'Bearer <token>'")
    return value.strip()


async def current_staff(request: Request, uow: Uow) -> StaffPrincipal:
    token = _bearer(request)
    if token is not None:
        if token.startswith(CUSTOMER_TOKEN_PREFIX):
            raise Forbidden("a customer credential cannot be used on an agent route")
        if not token.startswith(USER_TOKEN_PREFIX):
            raise NotAuthenticated("unknown kind of API token")
        found = await service.user_for_api_token(uow.session, token)
        if found is None:
            raise NotAuthenticated("API token is invalid, expired or revoked")
        user, api_token = found
        scopes: frozenset[str] | None = frozenset(api_token.scopes)
        via, credential_id = "token", api_token.id
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie and request.cookies.get(PORTAL_COOKIE):
            # Like a customer token: a portal session is never staff, whatever it is sent to.
            raise Forbidden("a customer portal session cannot be used on an agent route")
        if not cookie or not cookie.startswith(SESSION_TOKEN_PREFIX):
            raise NotAuthenticated("sign in or send an API token")
        found_session = await service.user_for_session(uow.session, cookie)
        if found_session is None:
            raise NotAuthenticated("session expired; sign in again")
        user, browser_session = found_session
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not sent or not hmac.compare_digest(sent.encode(), browser_session.csrf_token.encode()):
                raise Forbidden("missing or wrong CSRF token (send the X-CSRF-Token header)")
        scopes, via, credential_id = None, "session", browser_session.id
    if not user.is_active:
        raise NotAuthenticated("this user is deactivated")
    return StaffPrincipal(
        user_id=user.id, account_id=user.account_id, role=user.role, name=user.name, email=user.email,
        team_ids=await service.team_ids_for(uow.session, user.id), scopes=scopes, via=via,
        credential_id=credential_id)


async def current_customer(request: Request, uow: Uow) -> CustomerPrincipal:
    token = _bearer(request)
    if token is None:
        if request.cookies.get(PORTAL_COOKIE):
            return await _portal_customer(request, uow)
        raise NotAuthenticated("send the customer token as 'Authorization: Bearer <token>'")
    if not token.startswith(CUSTOMER_TOKEN_PREFIX):
        raise Forbidden("this route is for customer sessions; agent credentials cannot be used here")
    cs = await service.customer_session_for(uow.session, token)
    if cs is None:
        raise NotAuthenticated("customer session is invalid or expired")
    return CustomerPrincipal(contact_id=cs.contact_id, account_id=cs.account_id, inbox_id=cs.inbox_id,
                             session_id=cs.id)


async def _portal_customer(request: Request, uow: Uow) -> CustomerPrincipal:
    """The customer portal's cookie: a customer of one contact on every channel (no inbox). The
    browser sends the cookie by itself, so unsafe methods must echo the session's CSRF token."""
    cs = await service.portal_session_for(uow.session, request.cookies.get(PORTAL_COOKIE, ""))
    if cs is None or cs.csrf_token is None:
        raise NotAuthenticated("portal session expired; sign in again")
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        # As bytes: compare_digest refuses non-ASCII text, and a header may carry any byte.
        if not sent or not hmac.compare_digest(sent.encode(), cs.csrf_token.encode()):
            raise Forbidden("missing or wrong CSRF token (send the X-CSRF-Token header)")
    return CustomerPrincipal(contact_id=cs.contact_id, account_id=cs.account_id, inbox_id=cs.inbox_id,
                             session_id=cs.id)


def is_portal_customer(customer: CustomerPrincipal) -> bool:
    """A portal session reaches the contact's conversations on every channel and is bound to no inbox."""
    return customer.inbox_id is None


Staff = Annotated[StaffPrincipal, Depends(current_staff)]
Customer = Annotated[CustomerPrincipal, Depends(current_customer)]


def scoped(scope: str, *, roles: tuple[Role, ...] | None = None) -> Callable[..., Awaitable[StaffPrincipal]]:
    async def gate(principal: Staff) -> StaffPrincipal:  # async: no thread hop per request
        principal.require_scope(scope)
        if roles is not None and principal.role not in roles:
            raise Forbidden(f"requires the {' or '.join(r.value for r in roles)} role")
        return principal
    gate.__name__ = f"require_{scope.replace(':', '_')}"
    return gate


ConversationsReader = Annotated[StaffPrincipal, Depends(scoped("conversations:read"))]
ConversationsWriter = Annotated[StaffPrincipal, Depends(scoped("conversations:write"))]
ContactsReader = Annotated[StaffPrincipal, Depends(scoped("contacts:read", roles=(Role.admin, Role.supervisor, Role.agent)))]
ContactsWriter = Annotated[StaffPrincipal, Depends(scoped("contacts:write", roles=(Role.admin, Role.supervisor, Role.agent)))]
Admin = Annotated[StaffPrincipal, Depends(scoped("admin", roles=(Role.admin,)))]
Supervisor = Annotated[StaffPrincipal, Depends(scoped("conversations:read", roles=(Role.admin, Role.supervisor)))]
