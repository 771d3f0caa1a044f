from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from swarmdesk.contacts.identity import Email
from swarmdesk.core.schemas import In


class WidgetFieldOut(BaseModel):
    name: str
    label: str
    required: bool
    input_type: Literal["text", "email", "tel"]


class WidgetConfigOut(BaseModel):
    title: str
    greeting: str
    offline_message: str
    color: str
    text_color: str
    fields: list[WidgetFieldOut]
    available: bool = Field(description="an agent of the account has the workspace open right now")
    email_fallback: bool = Field(description="when nobody is available, replies and transcripts can go by email")


class WidgetSessionCreate(In):
    fields: dict[str, str] = Field(default_factory=dict, description="the pre-chat form's values, by field name")
    user_id: str | None = Field(default=None, min_length=1, max_length=200,
                                description="a logged-in visitor's id in your system (needs user_hash)")
    user_hash: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$",
                                  description="hex(HMAC-SHA256(identity_secret, user_id)), computed by your server")
    user_email: Email | None = Field(default=None, max_length=320,
                                     description="a logged-in visitor's email (needs user_email_hash)")
    user_email_hash: str | None = Field(
        default=None, pattern=r"^[0-9a-fA-F]{64}$",
        description="hex(HMAC-SHA256(identity_secret, user_email in lower case)), computed by your server: the "
                    "email becomes a verified identity, so the visitor is the same customer on email, SMS…")

    @field_validator("fields")
    @classmethod
    def _sizes(cls, fields: dict[str, str]) -> dict[str, str]:
        if len(fields) > 10:
            raise ValueError("at most 10 form fields")
        for name, value in fields.items():
            if len(name) > 40 or len(value) > 500:
                raise ValueError(f"form field {name[:40]!r}: names are at most 40 characters, values 500")
        return fields


class WidgetSessionOut(BaseModel):
    token: str
    contact_id: int
    expires_at: datetime
    verified: bool = Field(description="the visitor's identity was signed: they joined their own contact")
    email: str | None = Field(description="where replies and transcripts go by email, if anywhere")


class TranscriptOut(BaseModel):
    to: str
    status: Literal["queued"]
