from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from swarmdesk.conversations.models import ConversationStatus, Priority
from swarmdesk.conversations.schemas import ConversationOut, normalize_tags
from swarmdesk.core.schemas import In, Out
from swarmdesk.sla.schemas import SlaState

# Ids fit in a signed 64-bit column; anything larger can only be a typo or a probe.
Id = Annotated[int, Field(ge=1, le=2**63 - 1)]
COUNT_CAP = 1000


class View(enum.StrEnum):
    mine = "mine"  # assigned to me
    unassigned = "unassigned"
    my_teams = "my_teams"  # the team is one of mine
    all = "all"  # everything I may see
    mentions = "mentions"  # I was @mentioned in a note; newest mention first


class InboxSort(enum.StrEnum):
    last_activity = "last_activity"  # newest activity first
    waiting = "waiting"  # waiting on us longest first; those not waiting last
    priority = "priority"  # urgent to none, then newest activity


class InboxFilters(In):
    """What narrows the inbox. The same model validates query parameters and saved views, so a
    filter added here (with its condition in ``inbox.service.CONDITIONS``) works in both; later
    issues add ``sla_state`` and ``sentiment`` that way. Unset fields do not filter."""

    view: View | None = Field(default=None, description="default: all")
    status: list[ConversationStatus] | None = Field(default=None, min_length=1, max_length=5,
                                                    description="default: open; repeat for several")
    channel: str | None = Field(default=None, min_length=1, max_length=40, description="the inbox's channel kind")
    inbox_id: Id | None = None
    priority: list[Priority] | None = Field(default=None, min_length=1, max_length=5,
                                            description="repeat for several")
    tag: str | None = Field(default=None, max_length=100)
    team_id: Id | None = None
    assignee_id: Id | None = None
    unread: bool | None = Field(default=None, description="true: only unread for me; false: only read")
    sla_state: list[SlaState] | None = Field(default=None, min_length=1, max_length=6,
                                             description="ok, warning, breached, paused, met or none; "
                                                         "repeat for several")

    @field_validator("tag")
    @classmethod
    def _tag(cls, tag: str | None) -> str | None:
        return None if tag is None else normalize_tags([tag])[0]

    @field_validator("status", "priority", "sla_state", mode="before")
    @classmethod
    def _one_or_many(cls, values: Any) -> Any:
        return [values] if isinstance(values, str) else values

    @field_validator("status", "priority", "sla_state")
    @classmethod
    def _distinct(cls, values: list[Any] | None) -> list[Any] | None:
        return None if values is None else list(dict.fromkeys(values))


class InboxQuery(InboxFilters):
    """``GET /inbox/conversations``: filters (overriding the saved view's, field by field), sort, page."""

    saved_view_id: Id | None = None
    sort: InboxSort | None = Field(default=None, description="default: the saved view's, else last_activity; "
                                                             "the mentions view is always newest mention first")
    cursor: str | None = Field(default=None, max_length=500)
    limit: int = Field(default=50, ge=1, le=200)

    def filters(self) -> InboxFilters:
        """The filters this query names explicitly."""
        return InboxFilters.model_validate(self.model_dump(include=self.model_fields_set & set(InboxFilters.model_fields)))


class InboxRowOut(Out):
    conversation: ConversationOut
    unread: bool


class ViewCountOut(Out):
    open: int = Field(description="open conversations in the view (at most the cap)")
    unread: int = Field(description="of those, unread for the caller")
    capped: bool = Field(description=f"more than {COUNT_CAP} are open: both numbers cover only the "
                                     f"{COUNT_CAP} most recently active (mentions: most recently mentioned)")


class InboxCountsOut(Out):
    mine: ViewCountOut
    unassigned: ViewCountOut
    my_teams: ViewCountOut
    all: ViewCountOut
    mentions: ViewCountOut


class ReadStateOut(Out):
    conversation_id: int
    last_read_message_id: int | None
    read_at: datetime
    unread: bool


def _mentions_has_its_own_order(filters: InboxFilters | None, sort: InboxSort | None) -> None:
    if filters is not None and filters.view == View.mentions and sort is not None:
        raise ValueError("the mentions view is always newest mention first: leave sort out")


class SavedViewCreate(In):
    name: str = Field(min_length=1, max_length=100)
    filters: InboxFilters = Field(default_factory=InboxFilters)
    sort: InboxSort | None = None
    shared: bool = Field(default=False, description="listed for the whole account (only you or an admin edit it)")

    @model_validator(mode="after")
    def _sort(self) -> SavedViewCreate:
        _mentions_has_its_own_order(self.filters, self.sort)
        return self


class SavedViewUpdate(In):
    """Only the fields present change; ``filters`` replaces the whole set."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    filters: InboxFilters | None = None
    sort: InboxSort | None = None
    shared: bool | None = None


class SavedViewOut(Out):
    id: int
    user_id: int
    name: str
    filters: dict[str, Any]
    sort: InboxSort | None
    shared: bool
    editable: bool = Field(description="the caller may change or delete it")
    created_at: datetime
    updated_at: datetime


class BulkUpdate(In):
    """Changes applied to every listed conversation, as one transaction: all or nothing."""

    conversation_ids: list[Id] = Field(min_length=1, max_length=100)
    assignee_id: Id | None = Field(default=None, description="null unassigns")
    team_id: Id | None = Field(default=None, description="null removes the team")
    status: ConversationStatus | None = None
    add_tags: list[str] = Field(default_factory=list, max_length=50)
    remove_tags: list[str] = Field(default_factory=list, max_length=50)

    @field_validator("add_tags", "remove_tags")
    @classmethod
    def _tags(cls, tags: list[str]) -> list[str]:
        return normalize_tags(tags)

    @field_validator("conversation_ids")
    @classmethod
    def _distinct(cls, ids: list[int]) -> list[int]:
        return list(dict.fromkeys(ids))

    @model_validator(mode="after")
    def _something(self) -> BulkUpdate:
        if "status" in self.model_fields_set and self.status is None:
            raise ValueError("status cannot be null")
        if not ({"assignee_id", "team_id", "status"} & self.model_fields_set or self.add_tags or self.remove_tags):
            raise ValueError("name at least one change: assignee_id, team_id, status, add_tags or remove_tags")
        return self
