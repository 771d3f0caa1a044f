"""Domain errors. Routes never build HTTP errors by hand: they raise these, and one handler renders
RFC 9457 problem+json."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status: int = 400
    title: str = "Bad request"
    type_slug: str = "bad-request"

    def __init__(self, detail: str | None = None, *, extra: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra or {}
        self.headers = headers or {}


class BadRequest(DomainError):
    pass


class ValidationFailed(DomainError):
    status, title, type_slug = 422, "Validation failed", "validation-failed"


class NotAuthenticated(DomainError):
    status, title, type_slug = 401, "Not authenticated", "not-authenticated"


class Forbidden(DomainError):
    status, title, type_slug = 403, "Forbidden", "forbidden"


class NotFound(DomainError):
    status, title, type_slug = 404, "Not found", "not-found"


class Conflict(DomainError):
    status, title, type_slug = 409, "Conflict", "conflict"


class PayloadTooLarge(DomainError):
    status, title, type_slug = 413, "Payload too large", "payload-too-large"


class InvalidSignature(DomainError):
    status, title, type_slug = 401, "Invalid signature", "invalid-signature"


class OutboundBlocked(DomainError):
    status, title, type_slug = 422, "Outbound address not allowed", "outbound-blocked"
