"""Who is looking at a page. A page never answers 401 with JSON: no session means the sign-in page."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse

from swarmdesk.auth.dependencies import Uow, current_staff
from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.core.errors import DomainError


async def optional_staff(request: Request, uow: Uow) -> StaffPrincipal | None:
    if request.headers.get("authorization"):
        return None  # pages are for browser sessions; API tokens use the API
    try:
        return await current_staff(request, uow)
    except DomainError:
        return None


PageStaff = Annotated[StaffPrincipal | None, Depends(optional_staff)]


def to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def safe_next(value: str | None, default: str = "/app") -> str:
    """Only a path on this site: never another origin (open redirect), never a scheme-relative URL."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


def same_origin(request: Request) -> bool:
    """A form POST must come from our own pages (login CSRF): Origin, or else Referer, names our host."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        return False
    return urlsplit(source).netloc == request.headers.get("host", "")
