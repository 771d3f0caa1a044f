from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field, field_validator, model_validator

from swarmdesk.conversations.models import ConversationStatus, DeliveryStatus, Direction, Priority, SenderType
from swarmdesk.core.schemas import CustomAttributes, In, Out

MAX_MESSAGE_CHARS = 50_000
MAX_MENTIONS = 20
MAX_ID = 2**63 - 1
TAG_PATTERN = r"^[\w][\w\-: ]{0,99}$"


class ContactBrief(Out):
    id: int
    name: str
    email: str | None
    phone: str | None


class ConversationOut(Out):
    id: int
    inbox_id: int
    channel: str
    contact: ContactBrief
    subject: str
    status: ConversationStatus
    priority: Priority
    assignee_id: int | None
    team_id: int | None
    tags: list[str]
    custom_attributes: dict[str, Any]
    snoozed_until: datetime | None
    created_at: datetime
    updated_at: datetime
    last_activity_at: datetime
    first_response_at: datetime | None
    last_customer_message_at: datetime | None
    last_agent_message_at: datetime | None
    waiting_since: datetime | None
    resolved_at: datetime | None
    reopen_count: int
    message_count: int


class SendDecisionOut(Out):
    """What the customer's contact rules decided about a proactive message (docs/contact-rules.md)."""

    outcome: Literal["send", "defer", "move", "refuse"]
    explanation: str = Field(description="for the agent, e.g. \"Ana's quiet hours are 21:00–08:00 "
                                         "(Europe/Berlin): deferred to 08:00\"")
    reasons: list[str] = Field(description="not_subject, quiet_hours, never_channel, preferred_channel or cap")
    channel_kind: str = Field(description="where the message goes (after a move)")
    inbox_id: int | None
    requested_channel_kind: str
    requested_inbox_id: int | None
    send_at: datetime | None = Field(description="defer: when it will be sent; a refusal by the cap: when a "
                                                 "contact becomes possible again")
    message_id: int | None = Field(default=None, description="the message, when it was sent now")
    deferred_send_id: int | None = Field(default=None, description="the held-back message, when deferred")


class ConversationCreatedOut(ConversationOut):
    first_message: SendDecisionOut | None = Field(
        default=None, description="what the customer's contact rules decided about the first message (null "
                                  "without content): sent, moved to another channel, or deferred")


class CustomerConversationOut(Out):
    """What a customer sees of their own conversation: no assignee, team, tags or attributes."""

    id: int
    subject: str
    status: ConversationStatus
    created_at: datetime
    last_activity_at: datetime


class AttachmentOut(Out):
    id: int
    filename: str
    content_type: str
    size: int
    url: str


class SenderOut(Out):
    type: SenderType
    id: int | None
    name: str


class MessageLinkOut(Out):
    reason: str = Field(description="thread, reply_token, same_channel, open_conversation, recent_conversation or new")
    detail: str
    related_conversation_id: int | None = None


class MessageOut(Out):
    id: int
    conversation_id: int
    inbox_id: int
    direction: Direction
    private: bool
    channel: str
    sender: SenderOut
    content: str
    content_html: str | None
    external_id: str | None
    delivery_status: DeliveryStatus
    delivery_error: str | None
    created_at: datetime
    attachments: list[AttachmentOut]
    link: MessageLinkOut | None = Field(default=None, description="why an incoming message joined this conversation")
    meta: dict[str, Any] = Field(default_factory=dict, description="what the channel told us (call data, mail headers)")


class CustomerMessageOut(Out):
    id: int
    conversation_id: int
    direction: Direction
    sender: SenderOut
    content: str
    content_html: str | None
    created_at: datetime
    attachments: list[AttachmentOut]


class ActivityOut(Out):
    id: int
    conversation_id: int
    actor_type: SenderType
    actor_id: int | None
    verb: str
    data: dict[str, Any]
    created_at: datetime


class AttachmentIn(In):
    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field(default="application/octet-stream", max_length=200)
    data_base64: str = Field(min_length=1, description="the file's bytes, base64-encoded")


class MessageCreate(In):
    content: str = Field(default="", max_length=MAX_MESSAGE_CHARS)
    content_html: str | None = Field(default=None, max_length=4 * MAX_MESSAGE_CHARS,
                                     description="sanitized on the way in; plain text is derived if content is empty")
    private: bool = Field(default=False, description="an internal note: never sent to the customer")
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=10)
    inbox_id: int | None = Field(default=None, description="the channel to reply on (see reply-channels); "
                                                           "default: where the customer last wrote")
    mention_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(
        default_factory=list, max_length=MAX_MENTIONS,
        description="colleagues @mentioned in an internal note (private=true only): active users of this "
                    "account, who join the conversation and are notified")

    @field_validator("mention_ids")
    @classmethod
    def _distinct(cls, ids: list[int]) -> list[int]:
        return list(dict.fromkeys(ids))

    @model_validator(mode="after")
    def _mentions_only_in_notes(self) -> MessageCreate:
        if self.mention_ids and not self.private:
            raise ValueError("mention_ids: only an internal note (private=true) can mention colleagues; "
                             "a reply to the customer cannot")
        return self


class AgentTypingUpdate(In):
    private: bool = Field(default=False, description="writing an internal note: only colleagues are told, "
                                                     "never the customer")


class ReplyChannelOut(Out):
    inbox_id: int
    name: str
    channel_kind: str
    available: bool
    reason: str | None = Field(description="why a reply cannot go out there now")
    default: bool = Field(description="where a reply goes when no inbox_id is given")


class CustomerMessageCreate(In):
    content: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=10)


class CustomerConversationCreate(In):
    subject: str = Field(default="", max_length=500)
    content: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)


class ConversationCreate(In):
    inbox_id: int
    contact_id: int
    subject: str = Field(default="", max_length=500)
    content: str | None = Field(default=None, max_length=MAX_MESSAGE_CHARS,
                                description="first outgoing message, sent on the inbox's channel")
    priority: Priority = Priority.none
    team_id: int | None = None
    assignee_id: int | None = None
    tags: list[str] = Field(default_factory=list, max_length=50)

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str]) -> list[str]:
        return normalize_tags(tags)


class ConversationUpdate(In):
    """Only the fields present change; ``null`` clears assignee, team or snooze."""

    status: ConversationStatus | None = None
    priority: Priority | None = None
    assignee_id: int | None = None
    team_id: int | None = None
    subject: str | None = Field(default=None, max_length=500)
    snoozed_until: AwareDatetime | None = Field(default=None, description="with a UTC offset, e.g. ...Z")
    custom_attributes: CustomAttributes | None = None


class TagsUpdate(In):
    add: list[str] = Field(default_factory=list, max_length=50)
    remove: list[str] = Field(default_factory=list, max_length=50)

    @field_validator("add", "remove")
    @classmethod
    def _tags(cls, tags: list[str]) -> list[str]:
        return normalize_tags(tags)


def normalize_tags(tags: list[str]) -> list[str]:
    seen: list[str] = []
    for tag in tags:
        tag = tag.strip().lower()
        if not re.fullmatch(TAG_PATTERN, tag):
            raise ValueError(f"tag {tag!r} must be 1-100 letters, digits, '_', '-', ':' or spaces")
        if tag not in seen:
            seen.append(tag)
    return seen
