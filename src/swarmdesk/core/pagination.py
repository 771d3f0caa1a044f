"""Opaque cursors for keyset pagination."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from swarmdesk.core.errors import BadRequest


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise BadRequest("cursor is not valid; use the next_cursor a previous page returned") from exc
    if not isinstance(values, list) or len(values) != arity:
        raise BadRequest("cursor is not valid; use the next_cursor a previous page returned")
    return values
