from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, model_validator

from swarmdesk.conversations.schemas import MAX_ID
from swarmdesk.core.schemas import In, Out
from swarmdesk.notifications.models import NotificationKind

SNIPPET_CHARS = 200
NotificationId = Annotated[int, Field(ge=1, le=MAX_ID)]


class NotificationOut(Out):
    id: int
    kind: NotificationKind
    conversation_id: int
    message_id: int | None
    actor_name: str = Field(description="who caused it: the assigning agent, the note's author, the customer, "
                                        "whoever invited you to a swarm")
    snippet: str = Field(description=f"plain text, at most {SNIPPET_CHARS} characters")
    read_at: datetime | None
    created_at: datetime = Field(description="a collapsed customer_replied notification: its latest reply")


class UnreadCountOut(Out):
    count: int


class NotificationsRead(In):
    """Mark the caller's notifications read: some by id, or all of them."""

    ids: list[NotificationId] | None = Field(default=None, min_length=1, max_length=500,
                                             description="other users' ids are ignored")
    all: Literal[True] | None = Field(default=None, description="every unread notification of the caller")

    @model_validator(mode="after")
    def _exactly_one(self) -> NotificationsRead:
        if (self.ids is None) == (self.all is None):
            raise ValueError("send exactly one of ids (a list of notification ids) or all (true)")
        return self


class NotificationsReadOut(Out):
    ids: list[int] | None = Field(description="the notifications this marked read (null when all were marked)")
    all: bool
    unread_count: int


class ViewingUpdate(In):
    composing: Literal["reply", "note"] | None = Field(
        default=None, description="what the viewer is writing, if anything: a reply or an internal note")
