"""Events of the routing domain. A literal ``type`` each; unknown fields are refused."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from swarmdesk.events.base import BaseEvent


class PresenceChanged(BaseEvent):
    """An agent went online, away or offline: set by themselves (``manual``), by their first
    real-time connection (``connected``), after their last one closed (``disconnected``), or because
    their user was deactivated (``deactivated``)."""

    type: Literal["routing.presence_changed"] = "routing.presence_changed"
    user_id: int
    status: Literal["online", "away", "offline"]
    previous_status: Literal["online", "away", "offline"]
    reason: Literal["manual", "connected", "disconnected", "deactivated"]
    changed_at: datetime


class ConversationRouted(BaseEvent):
    """Routing gave a conversation an agent (the assignment itself is the conversation.assigned
    that follows), with the explanation the conversation's activity log shows too."""

    type: Literal["conversation.routed"] = "conversation.routed"
    conversation_id: int
    assignee_id: int
    previous_assignee_id: int | None
    queue_id: int
    strategy: str
    step: int
    lift: int
    reason: str  # new, unassigned, reopened, tags_changed, capacity_freed, agent_online, agent_offline, requested
    explanation: str


class ConversationQueued(BaseEvent):
    """Nobody qualifies yet: the conversation waits in a queue (once per queue it enters, and again
    when an agent going offline puts it back)."""

    type: Literal["conversation.queued"] = "conversation.queued"
    conversation_id: int
    queue_id: int
    queue_name: str
    lift: int
    why: str
    next_attempt_at: datetime | None
