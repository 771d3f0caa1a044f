from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from swarmdesk.core.schemas import In


class InboxSettings(In):
    allow_customer_sessions: bool = Field(
        default=False, description="let anonymous visitors open a customer session on this inbox (widget, apps)")


class InboxCreate(In):
    name: str = Field(min_length=1, max_length=200)
    channel_kind: str = Field(min_length=1, max_length=40)
    config: dict[str, Any] = Field(default_factory=dict)
    settings: InboxSettings = Field(default_factory=InboxSettings)


class InboxUpdate(In):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    config: dict[str, Any] | None = Field(default=None, description="merged into the current config")
    settings: InboxSettings | None = None
    is_active: bool | None = None


class InboxOut(BaseModel):
    id: int
    name: str
    channel_kind: str
    public_key: str
    webhook_url: str
    config: dict[str, Any] = Field(description="without secrets, which are write-only")
    secrets_set: list[str]
    settings: dict[str, Any]
    is_active: bool
    created_at: datetime


class InboxCreated(InboxOut):
    generated_secrets: dict[str, str] = Field(
        default_factory=dict, description="secrets Swarmdesk generated for you: shown once, store them now")


class ChannelKindOut(BaseModel):
    kind: str
    title: str
    can_send: bool
    max_message_chars: int | None
    config_schema: dict[str, Any]
    secret_fields: list[str]


class IngestOut(BaseModel):
    message_id: int
    conversation_id: int
    contact_id: int
    duplicate: bool = Field(description="true when this delivery or message id was already received")
