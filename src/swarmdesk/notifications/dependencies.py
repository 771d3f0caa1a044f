"""Request helpers for the notification and presence routes."""

from __future__ import annotations

from fastapi import Request

from swarmdesk.core.errors import ValidationFailed


async def refuse_null_body(request: Request) -> None:
    """For routes whose JSON body is optional: no body means the defaults, but a body must be an
    object. FastAPI reads a JSON ``null`` as "no body", which would let it through."""
    if (await request.body()).strip() == b"null":
        raise ValidationFailed("the body must be a JSON object, or be left out")
