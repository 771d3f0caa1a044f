from __future__ import annotations

from datetime import datetime

from pydantic import Field, field_validator

from swarmdesk.core.schemas import In, Out

MAX_BODY_CHARS = 10_000
SHORT_CODE_PATTERN = r"^[a-z0-9][a-z0-9_\-]{0,49}$"


def _short_code(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


class CannedResponseCreate(In):
    short_code: str = Field(pattern=SHORT_CODE_PATTERN, description="what agents type after '/'; stored lower-case")
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=MAX_BODY_CHARS,
                      description="plain text; {{contact.name}}, {{contact.email}}, {{agent.name}} and "
                                  "{{conversation.id}} are filled in when rendered")

    @field_validator("short_code", mode="before")
    @classmethod
    def _code(cls, value: object) -> object:
        return _short_code(value)


class CannedResponseUpdate(In):
    """Only the fields present change."""

    short_code: str | None = Field(default=None, pattern=SHORT_CODE_PATTERN)
    title: str | None = Field(default=None, min_length=1, max_length=200)
    body: str | None = Field(default=None, min_length=1, max_length=MAX_BODY_CHARS)

    @field_validator("short_code", mode="before")
    @classmethod
    def _code(cls, value: object) -> object:
        return _short_code(value)


class CannedResponseOut(Out):
    id: int
    short_code: str
    title: str
    body: str
    created_by: int | None
    created_at: datetime
    updated_at: datetime


class RenderedOut(Out):
    canned_response_id: int
    conversation_id: int
    text: str = Field(description="the body with the known placeholders filled in; others are left as typed")
