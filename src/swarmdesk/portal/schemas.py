from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from swarmdesk.contacts.identity import Email
from swarmdesk.conversations.schemas import MAX_MESSAGE_CHARS, AttachmentIn
from swarmdesk.core.schemas import In, Out


class MagicLinkRequest(In):
    email: Email = Field(max_length=320, description="the address the customer wrote to us from")


class MagicLinkAccepted(Out):
    """The same answer whether or not the address belongs to a customer (no enumeration)."""

    status: Literal["accepted"] = "accepted"
    detail: str = ("If this address belongs to one of our customers, a sign-in link is on its way. "
                   "It works once, within 15 minutes.")
    expires_in_minutes: int = 15


class PortalMessageCreate(In):
    content: str = Field(default="", max_length=MAX_MESSAGE_CHARS)
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=10)

    @model_validator(mode="after")
    def _something(self) -> PortalMessageCreate:
        if not self.content and not self.attachments:
            raise ValueError("a message needs text or at least one attachment")
        return self


class PortalConversationCreate(In):
    subject: str = Field(min_length=1, max_length=500)
    content: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=10)


class PortalOut(Out):
    """What the portal can do for the signed-in customer."""

    account_name: str
    account_slug: str
    contact_id: int
    name: str
    can_start_conversations: bool
