"""Jinja2 environment, static files with content-hashed URLs, and the page response with its
security headers."""

from __future__ import annotations

import hashlib
import mimetypes
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from swarmdesk import __version__

WEB_DIR = Path(__file__).parent
STATIC_DIR = WEB_DIR / "static"
TEMPLATES_DIR = WEB_DIR / "templates"


def content_security_policy(request: Request) -> str:
    host = request.headers.get("host", "")
    # connect-src names ws:/wss: for our own host: 'self' does not cover WebSocket schemes everywhere.
    return ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
            f"font-src 'self'; connect-src 'self' ws://{host} wss://{host}; frame-src 'self'; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'")


@lru_cache(maxsize=256)
def _static_hash(name: str) -> str:
    path = (STATIC_DIR / name).resolve()
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    except OSError:
        return __version__


def static_url(name: str) -> str:
    """``/static/<name>?v=<hash>``: browsers cache for a year, a new file gets a new URL."""
    return f"/static/{name}?v={_static_hash(name)}"


def _ago(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return ""
    seconds = int(((now or datetime.now(UTC)) - value).total_seconds())
    if seconds < 60:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return "just now"


def _due(value: datetime | None, now: datetime | None = None) -> str:
    """"in 25m", "in 3h", or "12m ago" (overdue)."""
    if value is None:
        return ""
    seconds = int((value - (now or datetime.now(UTC))).total_seconds())
    past, seconds = seconds < 0, abs(seconds)
    amount = next((f"{seconds // size}{unit}" for unit, size in (("d", 86400), ("h", 3600), ("m", 60))
                   if seconds >= size), "<1m")
    return f"{amount} ago" if past else f"in {amount}"


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES_DIR), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True, auto_reload=False)
    env.globals["static"] = static_url
    env.globals["version"] = __version__
    env.filters["ago"] = _ago
    env.filters["iso"] = _iso
    env.filters["due"] = _due
    return env


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = environment().get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=status_code, headers=page_headers(request))


def page_headers(request: Request) -> dict[str, str]:
    return {"content-security-policy": content_security_policy(request), "cache-control": "no-store",
            "permissions-policy": "camera=(), microphone=(), geolocation=()"}


def static_response(name: str, version: str | None = None, if_none_match: str | None = None) -> Response | None:
    """A file under web/static, or None when the name escapes the directory or does not exist.

    Cached for a year only when asked for by its current content hash (``static_url``); modules
    imported by others (``import … from "./api.js"``) are fetched without one, so they are
    revalidated by ETag instead — an upgrade never leaves a browser on a year-old module."""
    root = STATIC_DIR.resolve()
    path = (STATIC_DIR / name).resolve()
    if root not in path.parents or not path.is_file():
        return None
    digest = _static_hash(name)
    etag = f'"{digest}"'
    cache = "public, max-age=31536000, immutable" if version == digest else "no-cache"
    if if_none_match is not None and etag in [t.strip() for t in if_none_match.split(",")]:
        return Response(status_code=304, headers={"etag": etag, "cache-control": cache})
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if media in ("text/javascript", "application/javascript", "text/css"):
        media += "; charset=utf-8"
    return Response(path.read_bytes(), media_type=media, headers={"cache-control": cache, "etag": etag})
